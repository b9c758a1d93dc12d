//! Domain rules every storage engine applies the same way, decided once and
//! unit-tested here.
//!
//! Engines decide *how* to read and write (their own SQL); these modules
//! decide *what* happens, from primitive values the engine read inside its
//! transaction. Keeping the rules here means SQLite and PostgreSQL cannot
//! drift apart (the conformance suite checks the rest).
//!
//! - [`groups`]: who may change a group and how, names, sizes, and the
//!   `system` messages announcing changes.
//! - [`inbox`]: the inbox stored as runs: when a run continues, and how
//!   runs turn back into replayed entries.
//! - [`messages`]: append checks, the shape of text and system messages,
//!   history windows.
//! - [`events`]: edits, deletes and reactions (who may, windows, emoji,
//!   aggregated state) and reply quotes.
//! - [`settings`]: display names, per-user conversation settings and the
//!   order of a user's conversation list.
//! - [`search`]: search queries and their paging.
//! - [`push`]: push registrations as rows, and who is woken (§12).
//! - [`media`]: the shape of media messages, what a message may reference,
//!   media rows.
//! - [`receipts`]: cursor arithmetic and who hears about a receipt.
//! - [`rows`]: engine-neutral rows and their decoding into records.
//! - [`admin`]: the administrators' user list and what erasure keeps.

pub(crate) mod admin;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod inbox;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod push;
pub(crate) mod receipts;
pub(crate) mod rows;
pub(crate) mod search;
pub(crate) mod settings;

use parley_proto::UserId;
use parley_proto::api::PresenceVisibility;

use crate::error::{StoreError, StoreResult};
use crate::model::{NewUser, UserRecord};

pub(crate) use groups::{
    GroupPlan, created_message, plan_group_change, plan_new_group, role_changed_message,
};
pub(crate) use messages::{
    HistoryWindow, check_append, history_refusal, not_a_member, text_message,
};
pub(crate) use receipts::{Cursors, ReceiptRequest};
pub(crate) use rows::{
    CONVERSATION_COLUMNS, ConversationRow, MESSAGE_COLUMNS, MemberRow, MessageRow, USER_COLUMNS,
    UserRow,
};

/// A stored integer as an unsigned count; negatives (never written) read as 0.
pub(crate) fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

/// Rows to read for a page of `limit`: one more, to learn whether there
/// is more.
pub(crate) fn page_fetch(limit: usize) -> i64 {
    limit as i64 + 1
}

/// The page of `limit` from rows read with [`page_fetch`], and whether more
/// lie beyond it.
pub(crate) fn page_finish<T>(mut rows: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}

/// An unsigned count as a stored integer, saturating.
pub(crate) fn to_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// The key that makes a pair's direct conversation unique, whichever of the
/// two asks: `"low:high"`. Refuses a conversation with oneself.
pub(crate) fn direct_key(a: UserId, b: UserId) -> StoreResult<String> {
    if a == b {
        return Err(StoreError::Invalid(
            "a direct conversation needs two different users".into(),
        ));
    }
    Ok(format!("{}:{}", a.0.min(b.0), a.0.max(b.0)))
}

/// Refuses an inbox replay from `since` unless it lies within what is kept:
/// from the `floor` (pruned up to) to the `head`.
pub(crate) fn check_inbox_cursor(since: u64, head: u64, floor: u64) -> StoreResult<()> {
    if since < floor || since > head {
        return Err(StoreError::ResyncRequired);
    }
    Ok(())
}

/// The record of a user just stored under `id`.
pub(crate) fn created_user(id: UserId, new: NewUser) -> UserRecord {
    UserRecord {
        id,
        username: new.username,
        display_name: new.display_name,
        password_hash: new.password_hash,
        presence_visibility: PresenceVisibility::Everyone,
        last_seen_ms: None,
        created_at_ms: new.now_ms,
        avatar_media_id: None,
        read_receipts: true,
        push_previews: false,
        is_admin: new.is_admin,
        disabled_at_ms: None,
        erased_at_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_key_ignores_who_asks() {
        assert_eq!(direct_key(UserId(7), UserId(3)).unwrap(), "3:7");
        assert_eq!(direct_key(UserId(3), UserId(7)).unwrap(), "3:7");
        assert!(matches!(
            direct_key(UserId(3), UserId(3)),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn inbox_replays_start_within_what_is_kept() {
        assert!(check_inbox_cursor(3, 10, 3).is_ok());
        assert!(check_inbox_cursor(10, 10, 3).is_ok());
        assert!(matches!(
            check_inbox_cursor(2, 10, 3),
            Err(StoreError::ResyncRequired)
        ));
        assert!(matches!(
            check_inbox_cursor(11, 10, 3),
            Err(StoreError::ResyncRequired)
        ));
    }

    #[test]
    fn integer_conversions_saturate() {
        assert_eq!(to_u64(-5), 0);
        assert_eq!(to_u64(5), 5);
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(5), 5);
    }

    #[test]
    fn a_new_user_sees_presence_everyone() {
        let new = NewUser {
            username: "alice".into(),
            display_name: "Alice".into(),
            password_hash: "h".into(),
            now_ms: 42,
            is_admin: false,
        };
        let record = created_user(UserId(1), new);
        assert_eq!(record.presence_visibility, PresenceVisibility::Everyone);
        assert_eq!((record.created_at_ms, record.last_seen_ms), (42, None));
        assert_eq!(record.username, "alice");
    }
}
