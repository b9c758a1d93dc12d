//! Receipt rules: cursors only move forward, never past the last message,
//! and reading implies delivery; group summaries are the members' minimums;
//! and who hears about a change.

use parley_proto::api::ConversationKind;
use parley_proto::{ConversationId, DeviceId, ReceiptStatus, UserId};

use crate::model::ReceiptChange;

/// A member's delivered and read cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursors {
    /// Delivered up to this seq.
    pub(crate) delivered: u64,
    /// Read up to this seq.
    pub(crate) read: u64,
}

impl Cursors {
    /// The cursors after a receipt for `up_to_seq` in a conversation whose
    /// newest message is `last_seq`. A cursor never moves back, never passes
    /// the last message (a client cannot pre-read messages that do not exist
    /// yet), and a read receipt also delivers.
    pub(crate) fn after_receipt(
        self,
        status: ReceiptStatus,
        up_to_seq: u64,
        last_seq: u64,
    ) -> Cursors {
        let target = up_to_seq.min(last_seq);
        Cursors {
            delivered: self.delivered.max(target),
            read: match status {
                ReceiptStatus::Read => self.read.max(target),
                ReceiptStatus::Delivered => self.read,
            },
        }
    }
}

/// A group's new (delivered, read) summary given the active members'
/// minimum cursors, when it moves; it never moves back (a member leaving
/// must not lower what was announced).
pub(crate) fn raised_summary(summary: (u64, u64), minimums: (u64, u64)) -> Option<(u64, u64)> {
    let next = (summary.0.max(minimums.0), summary.1.max(minimums.1));
    (next != summary).then_some(next)
}

/// A receipt as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReceiptRequest {
    /// The conversation.
    pub(crate) conversation: ConversationId,
    /// Whose cursor.
    pub(crate) user: UserId,
    /// The device that sent it.
    pub(crate) device: Option<DeviceId>,
    /// Delivered or read.
    pub(crate) status: ReceiptStatus,
    /// Up to this seq.
    pub(crate) up_to_seq: u64,
}

impl ReceiptRequest {
    /// Whether every active member hears about an advance: in a direct
    /// conversation always (the other side shows ticks), in a group only
    /// when its summary moved. Otherwise only the user's own devices do.
    pub(crate) fn tells_everyone(kind: ConversationKind, summary: Option<(u64, u64)>) -> bool {
        kind == ConversationKind::Direct || summary.is_some()
    }

    /// The outcome: `before` and `after` are the member's cursors, `members`
    /// who hears about it (see [`ReceiptRequest::tells_everyone`]).
    pub(crate) fn change(
        &self,
        kind: ConversationKind,
        before: Cursors,
        after: Cursors,
        summary: Option<(u64, u64)>,
        members: Vec<UserId>,
    ) -> ReceiptChange {
        ReceiptChange {
            conversation_id: self.conversation,
            kind,
            user_id: self.user,
            device_id: self.device,
            status: self.status,
            delivered_up_to: after.delivered,
            read_up_to: after.read,
            advanced: after != before,
            summary,
            members,
            read_hidden: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Cursors = Cursors {
        delivered: 4,
        read: 2,
    };

    #[test]
    fn cursors_never_move_back() {
        assert_eq!(AT.after_receipt(ReceiptStatus::Read, 1, 10), AT);
        assert_eq!(AT.after_receipt(ReceiptStatus::Delivered, 3, 10), AT);
    }

    #[test]
    fn cursors_stop_at_the_last_message() {
        assert_eq!(
            AT.after_receipt(ReceiptStatus::Delivered, 99, 6),
            Cursors {
                delivered: 6,
                read: 2
            }
        );
    }

    #[test]
    fn reading_implies_delivery() {
        assert_eq!(
            AT.after_receipt(ReceiptStatus::Read, 8, 10),
            Cursors {
                delivered: 8,
                read: 8
            }
        );
        assert_eq!(
            AT.after_receipt(ReceiptStatus::Read, 3, 10),
            Cursors {
                delivered: 4,
                read: 3
            }
        );
    }

    #[test]
    fn summaries_only_rise() {
        assert_eq!(raised_summary((3, 2), (5, 1)), Some((5, 2)));
        assert_eq!(raised_summary((3, 2), (1, 1)), None);
    }

    #[test]
    fn who_hears_about_a_receipt() {
        assert!(ReceiptRequest::tells_everyone(
            ConversationKind::Direct,
            None
        ));
        assert!(!ReceiptRequest::tells_everyone(
            ConversationKind::Group,
            None
        ));
        assert!(ReceiptRequest::tells_everyone(
            ConversationKind::Group,
            Some((1, 1))
        ));
        let request = ReceiptRequest {
            conversation: ConversationId(1),
            user: UserId(2),
            device: None,
            status: ReceiptStatus::Read,
            up_to_seq: 8,
        };
        let after = AT.after_receipt(request.status, request.up_to_seq, 10);
        let change = request.change(ConversationKind::Group, AT, after, None, vec![UserId(2)]);
        assert!(change.advanced);
        assert_eq!((change.delivered_up_to, change.read_up_to), (8, 8));
        let still = request.change(ConversationKind::Group, AT, AT, None, vec![UserId(2)]);
        assert!(!still.advanced);
    }
}
