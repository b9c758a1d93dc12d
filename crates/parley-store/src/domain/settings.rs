//! Per-user state (protocol §11): display names, a user's own settings of
//! a conversation, and the order of its conversation list.

use std::cmp::Reverse;

use parley_proto::api::ConversationSettings;
use parley_proto::{Role, UserId};

use crate::error::{StoreError, StoreResult};
use crate::model::{ConversationRecord, ConversationSummaryRecord, SettingsChange};

use parley_proto::limits::DISPLAY_NAME_MAX_CHARS as MAX_DISPLAY_NAME_CHARS;

/// A display name: 1 to 64 characters after trimming.
pub(crate) fn validate_display_name(name: &str) -> StoreResult<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

/// `current` after `change`; `muted_until_ms` is -1 (forever), 0 (not
/// muted) or a time.
pub(crate) fn apply_settings(
    current: ConversationSettings,
    change: SettingsChange,
) -> StoreResult<ConversationSettings> {
    if change.muted_until_ms.is_some_and(|m| m < -1) {
        return Err(StoreError::Invalid(
            "muted_until_ms is -1 (forever), 0 (not muted) or a time in ms".into(),
        ));
    }
    Ok(ConversationSettings {
        muted_until_ms: change.muted_until_ms.unwrap_or(current.muted_until_ms),
        pinned: change.pinned.unwrap_or(current.pinned),
        archived: change.archived.unwrap_or(current.archived),
    })
}

/// Refuses unless `actor` is an active admin of the group `record`.
pub(crate) fn check_admin(record: &ConversationRecord, actor: UserId) -> StoreResult<()> {
    match record.member(actor) {
        None => Err(StoreError::Forbidden(
            "you are not a member of this conversation",
        )),
        Some(member) if member.role != Role::Admin => {
            Err(StoreError::Forbidden("only group admins may do this"))
        }
        Some(_) => Ok(()),
    }
}

/// Shows `record` as a user who left it at seq `departed` may see it: no
/// members, nothing after the departure.
pub(crate) fn as_departed(record: &mut ConversationRecord, departed: u64) {
    record.members.clear();
    record.last_seq = record.last_seq.min(departed);
    record.delivered_all_up_to = record.delivered_all_up_to.min(departed);
    record.read_all_up_to = record.read_all_up_to.min(departed);
}

/// One row of a user's conversation list. Activity is the newest visible
/// message's time, or the conversation's creation when it has none.
pub(crate) fn summary(
    conversation: ConversationRecord,
    last_message: Option<parley_proto::Message>,
    unread_count: u64,
    settings: ConversationSettings,
    left: bool,
    created_at_ms: i64,
) -> ConversationSummaryRecord {
    ConversationSummaryRecord {
        activity_ms: last_message
            .as_ref()
            .map(|m| m.sent_at_ms)
            .unwrap_or(created_at_ms),
        conversation,
        last_message,
        unread_count,
        settings,
        left,
    }
}

/// Orders a conversation list: pinned first, then the most recent
/// activity the user sees, then the newest conversation.
pub(crate) fn order_conversations(list: &mut [ConversationSummaryRecord]) {
    list.sort_by_key(|s| {
        (
            Reverse(s.settings.pinned),
            Reverse(s.activity_ms),
            Reverse(s.conversation.id),
        )
    });
}

#[cfg(test)]
mod tests {
    use parley_proto::ConversationId;
    use parley_proto::api::ConversationKind;

    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(validate_display_name("  Ann ").unwrap(), "Ann");
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name(&"é".repeat(64)).is_ok());
        assert!(validate_display_name(&"é".repeat(65)).is_err());
        assert!(validate_display_name("a\u{7}").is_err());
    }

    #[test]
    fn settings_change_only_what_is_given() {
        let start = ConversationSettings::default();
        let muted = apply_settings(
            start,
            SettingsChange {
                muted_until_ms: Some(-1),
                ..SettingsChange::default()
            },
        )
        .unwrap();
        assert_eq!((muted.muted_until_ms, muted.pinned), (-1, false));
        let pinned = apply_settings(
            muted,
            SettingsChange {
                pinned: Some(true),
                ..SettingsChange::default()
            },
        )
        .unwrap();
        assert_eq!((pinned.muted_until_ms, pinned.pinned), (-1, true));
        assert!(
            apply_settings(
                start,
                SettingsChange {
                    muted_until_ms: Some(-2),
                    ..SettingsChange::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn pinned_conversations_come_first() {
        let summary = |id: i64, activity_ms: i64, pinned: bool| ConversationSummaryRecord {
            conversation: ConversationRecord {
                id: ConversationId(id),
                kind: ConversationKind::Group,
                name: None,
                avatar_media_id: None,
                last_seq: 0,
                members: vec![],
                delivered_all_up_to: 0,
                read_all_up_to: 0,
            },
            last_message: None,
            unread_count: 0,
            settings: ConversationSettings {
                pinned,
                ..ConversationSettings::default()
            },
            left: false,
            activity_ms,
        };
        let mut list = vec![
            summary(1, 10, false),
            summary(2, 5, true),
            summary(3, 20, false),
            summary(4, 10, false),
        ];
        order_conversations(&mut list);
        let ids: Vec<i64> = list.iter().map(|s| s.conversation.id.0).collect();
        assert_eq!(ids, [2, 3, 4, 1]);
    }
}
