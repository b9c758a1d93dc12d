//! Push notifications (protocol §12): how a registration is stored as a
//! row, and who is woken for a message.
//!
//! The server decides liveness (sockets are not in the store); the store
//! applies the rest of the trigger rule here: a recipient with a
//! registration is woken unless it muted the conversation or blocks the
//! sender.

use crate::error::{StoreError, StoreResult};
use crate::model::PushTarget;

/// A [`PushTarget`] as the columns both engines store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetRow {
    /// `webpush`, `unifiedpush`, `fcm` or `apns`.
    pub(crate) kind: &'static str,
    /// The endpoint (Web Push) or the token (FCM, APNs).
    pub(crate) address: String,
    pub(crate) p256dh: Option<String>,
    pub(crate) auth: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) sandbox: bool,
}

/// The columns that store `target`.
pub(crate) fn target_row(target: &PushTarget) -> TargetRow {
    match target {
        PushTarget::WebPush {
            unified,
            endpoint,
            p256dh,
            auth,
        } => TargetRow {
            kind: if *unified { "unifiedpush" } else { "webpush" },
            address: endpoint.clone(),
            p256dh: Some(p256dh.clone()),
            auth: Some(auth.clone()),
            topic: None,
            sandbox: false,
        },
        PushTarget::Fcm { token } => TargetRow {
            kind: "fcm",
            address: token.clone(),
            p256dh: None,
            auth: None,
            topic: None,
            sandbox: false,
        },
        PushTarget::Apns {
            token,
            topic,
            sandbox,
        } => TargetRow {
            kind: "apns",
            address: token.clone(),
            p256dh: None,
            auth: None,
            topic: Some(topic.clone()),
            sandbox: *sandbox,
        },
    }
}

/// The target stored in these columns.
pub(crate) fn target_from_row(
    kind: &str,
    address: String,
    p256dh: Option<String>,
    auth: Option<String>,
    topic: Option<String>,
    sandbox: bool,
) -> StoreResult<PushTarget> {
    let missing = |what: &str| StoreError::Internal(format!("push registration without {what}"));
    match kind {
        "webpush" | "unifiedpush" => Ok(PushTarget::WebPush {
            unified: kind == "unifiedpush",
            endpoint: address,
            p256dh: p256dh.ok_or_else(|| missing("p256dh"))?,
            auth: auth.ok_or_else(|| missing("auth"))?,
        }),
        "fcm" => Ok(PushTarget::Fcm { token: address }),
        "apns" => Ok(PushTarget::Apns {
            token: address,
            topic: topic.ok_or_else(|| missing("topic"))?,
            sandbox,
        }),
        other => Err(StoreError::Internal(format!(
            "unknown push registration kind {other:?}"
        ))),
    }
}

/// Whether a conversation muted until `muted_until_ms` (-1 forever, 0 not
/// muted, else a time) is muted at `now_ms`.
pub(crate) fn is_muted(muted_until_ms: i64, now_ms: i64) -> bool {
    muted_until_ms == -1 || muted_until_ms > now_ms
}

/// Whether a registered recipient is woken: it has not muted the
/// conversation and does not block the sender.
pub(crate) fn wakes(muted_until_ms: i64, blocks_sender: bool, now_ms: i64) -> bool {
    !blocks_sender && !is_muted(muted_until_ms, now_ms)
}

/// The unread count left on a pending push after a push announcing
/// `sent` of its messages went out while more arrived: at least one.
pub(crate) fn unread_after_send(unread: i64, sent: u64) -> i64 {
    (unread - sent as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_rows() {
        let targets = [
            PushTarget::WebPush {
                unified: false,
                endpoint: "https://push.example/a".into(),
                p256dh: "k".into(),
                auth: "s".into(),
            },
            PushTarget::WebPush {
                unified: true,
                endpoint: "https://up.example/b".into(),
                p256dh: "k".into(),
                auth: "s".into(),
            },
            PushTarget::Fcm { token: "t".into() },
            PushTarget::Apns {
                token: "ab".into(),
                topic: "org.parley".into(),
                sandbox: true,
            },
        ];
        for target in targets {
            let row = target_row(&target);
            let back = target_from_row(
                row.kind,
                row.address,
                row.p256dh,
                row.auth,
                row.topic,
                row.sandbox,
            )
            .unwrap();
            assert_eq!(back, target);
        }
        assert!(target_from_row("carrier-pigeon", "x".into(), None, None, None, false).is_err());
    }

    #[test]
    fn muted_and_blocking_recipients_are_not_woken() {
        assert!(wakes(0, false, 100));
        assert!(!wakes(-1, false, 100), "muted forever");
        assert!(!wakes(200, false, 100), "muted until later");
        assert!(wakes(50, false, 100), "the mute ended");
        assert!(!wakes(0, true, 100), "blocks the sender");
    }

    #[test]
    fn unread_left_after_a_send_counts_only_newer_messages() {
        assert_eq!(unread_after_send(5, 3), 2);
        assert_eq!(unread_after_send(3, 3), 1);
    }
}
