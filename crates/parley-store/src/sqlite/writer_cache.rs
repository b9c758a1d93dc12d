//! The writer thread's memory of what sends change: each conversation's
//! seq and members, each recipient's inbox tail, senders' own cursors.
//!
//! With it a send costs one message insert (plus an inbox segment for a
//! recipient whose stream switches conversation) instead of a dozen
//! statements. Dirty values are written back (in the same transaction)
//! before any other job runs and before every COMMIT, so readers and other
//! jobs always see the database exactly as if there were no cache. Any
//! rollback clears it.
//!
//! The flush visits only what changed: the dirty entries are also listed,
//! because the cache holds every user and conversation a send touched
//! lately (up to [`WriterCache::MAX_ENTRIES`] each) and a flush runs before
//! every COMMIT and every other job. Scanning the maps for dirty flags cost
//! O(cached entries) per transaction: 12 % of the server's CPU during a
//! reconnect storm of 19,000 users, where every write job flushed first.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use parley_proto::{ConversationId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::conversations::{active_member_ids, advance_last_seq};
use super::inbox_runs::{self, InboxTail};
use super::settings::blocked_senders;
use crate::domain::to_u64;
use crate::error::StoreResult;

/// See the module documentation.
#[derive(Default)]
pub(super) struct WriterCache {
    conversations: HashMap<ConversationId, CachedConversation>,
    inboxes: HashMap<UserId, CachedInbox>,
    /// Pending advances of senders' own cursors: (conversation, sender) -> seq.
    own_cursors: HashMap<(ConversationId, UserId), u64>,
    /// The conversations whose `dirty` is set, each once.
    dirty_conversations: Vec<ConversationId>,
    /// The users whose inbox entry's `dirty` is set, each once.
    dirty_inboxes: Vec<UserId>,
}

/// A conversation as the writer sees it.
pub(super) struct CachedConversation {
    /// The newest seq given out, written back at flush.
    pub(super) last_seq: u64,
    /// The `last_seq` the database holds: the flush only moves it from here.
    stored_seq: u64,
    last_activity_ms: i64,
    /// Active members, in join order.
    pub(super) members: Arc<[UserId]>,
    /// Members who may not send here (blocked by the other member of a
    /// direct conversation). Blocking drops the cache.
    pub(super) blocked: Arc<[UserId]>,
    dirty: bool,
}

/// A user's inbox tail and whether its head still has to be written.
#[derive(Clone, Copy)]
struct CachedInbox {
    tail: InboxTail,
    dirty: bool,
}

impl WriterCache {
    /// Beyond this many entries the (clean) cache is dropped and refilled.
    const MAX_ENTRIES: usize = 100_000;

    /// Writes every dirty value back. A seq or inbox head leaves its dirty
    /// list only once written; after a failure the writer rolls the batch
    /// back and clears the whole cache, own cursors included.
    pub(super) fn flush(&mut self, conn: &Connection) -> StoreResult<()> {
        while let Some(&id) = self.dirty_conversations.last() {
            let conversation = self.conversations.get_mut(&id);
            debug_assert!(conversation.is_some(), "listed conversations are cached");
            if let Some(conversation) = conversation {
                advance_last_seq(
                    conn,
                    id,
                    conversation.stored_seq,
                    conversation.last_seq,
                    conversation.last_activity_ms,
                )?;
                conversation.stored_seq = conversation.last_seq;
                conversation.dirty = false;
            }
            self.dirty_conversations.pop();
        }
        if !self.dirty_inboxes.is_empty() {
            let mut update_head =
                conn.prepare_cached("UPDATE users SET inbox_head=?2 WHERE id=?1")?;
            while let Some(&user) = self.dirty_inboxes.last() {
                let inbox = self.inboxes.get_mut(&user);
                debug_assert!(inbox.is_some(), "listed inboxes are cached");
                if let Some(inbox) = inbox {
                    update_head.execute(params![user.0, inbox.tail.head as i64])?;
                    inbox.dirty = false;
                }
                self.dirty_inboxes.pop();
            }
        }
        if self.own_cursors.is_empty() {
            return Ok(());
        }
        let mut update_cursor = conn.prepare_cached(
            "UPDATE members SET delivered_up_to=MAX(delivered_up_to, ?3), read_up_to=MAX(read_up_to, ?3)
             WHERE conversation_id=?1 AND user_id=?2",
        )?;
        for ((conversation, user), seq) in self.own_cursors.drain() {
            update_cursor.execute(params![conversation.0, user.0, seq as i64])?;
        }
        Ok(())
    }

    /// Forgets everything (after a rollback, or a job that changed the
    /// database behind the cache).
    pub(super) fn clear(&mut self) {
        self.conversations.clear();
        self.inboxes.clear();
        self.own_cursors.clear();
        self.dirty_conversations.clear();
        self.dirty_inboxes.clear();
    }

    /// Called after a commit, when everything is clean.
    pub(super) fn trim(&mut self) {
        if self.conversations.len() > Self::MAX_ENTRIES || self.inboxes.len() > Self::MAX_ENTRIES {
            self.clear();
        }
    }

    /// The conversation's seq and members, loaded on first use.
    pub(super) fn conversation(
        &mut self,
        conn: &Connection,
        id: ConversationId,
    ) -> StoreResult<Option<&mut CachedConversation>> {
        let vacant = match self.conversations.entry(id) {
            Entry::Occupied(cached) => return Ok(Some(cached.into_mut())),
            Entry::Vacant(vacant) => vacant,
        };
        let header: Option<(i64, i64)> = conn
            .prepare_cached("SELECT last_seq, last_activity_ms FROM conversations WHERE id=?1")?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((last_seq, last_activity_ms)) = header else {
            return Ok(None);
        };
        let members: Arc<[UserId]> = active_member_ids(conn, id)?.into();
        let blocked: Arc<[UserId]> = blocked_senders(conn, id)?.into();
        Ok(Some(vacant.insert(CachedConversation {
            last_seq: to_u64(last_seq),
            stored_seq: to_u64(last_seq),
            last_activity_ms,
            members,
            blocked,
            dirty: false,
        })))
    }

    /// Gives (`conversation`, `seq`) the user's next inbox cursor.
    pub(super) fn deliver(
        &mut self,
        conn: &Connection,
        user: UserId,
        conversation: ConversationId,
        seq: u64,
        now: i64,
    ) -> StoreResult<u64> {
        let tail = match self.inboxes.get(&user) {
            Some(cached) => cached.tail,
            None => inbox_runs::load_tail(conn, user)?,
        };
        let tail = inbox_runs::next_cursor(conn, user, &tail, conversation, seq, now)?;
        let listed = self
            .inboxes
            .insert(user, CachedInbox { tail, dirty: true })
            .is_some_and(|previous| previous.dirty);
        if !listed {
            self.dirty_inboxes.push(user);
        }
        Ok(tail.head)
    }

    /// Records that `sender` appended `seq` to `conversation` at `now`: the
    /// conversation's seq moves, and the sender's own cursors follow.
    pub(super) fn appended(
        &mut self,
        conversation: ConversationId,
        sender: UserId,
        seq: u64,
        now: i64,
    ) {
        if let Some(cached) = self.conversations.get_mut(&conversation) {
            cached.last_seq = seq;
            cached.last_activity_ms = now;
            if !cached.dirty {
                cached.dirty = true;
                self.dirty_conversations.push(conversation);
            }
        }
        // A member's own sends advance its own cursors.
        let own = self
            .own_cursors
            .entry((conversation, sender))
            .or_insert(seq);
        *own = (*own).max(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO conversations(id, kind, last_seq, last_activity_ms, created_at_ms)
                 VALUES(1, 'group', 3, 1, 1);",
        )
        .unwrap();
        conn
    }

    fn stored_seq(conn: &Connection) -> i64 {
        conn.query_row("SELECT last_seq FROM conversations WHERE id=1", [], |r| {
            r.get(0)
        })
        .unwrap()
    }

    #[test]
    fn the_flush_moves_last_seq_on_from_what_was_stored() {
        let conn = database();
        let mut cache = WriterCache::default();
        let id = ConversationId(1);
        assert_eq!(cache.conversation(&conn, id).unwrap().unwrap().last_seq, 3);
        cache.appended(id, UserId(1), 4, 10);
        cache.appended(id, UserId(1), 5, 11);
        cache.flush(&conn).unwrap();
        assert_eq!(stored_seq(&conn), 5);
        cache.appended(id, UserId(1), 6, 12);
        cache.flush(&conn).unwrap();
        assert_eq!(stored_seq(&conn), 6);
    }

    fn inbox_head(conn: &Connection, user: i64) -> i64 {
        conn.query_row("SELECT inbox_head FROM users WHERE id=?1", [user], |r| {
            r.get(0)
        })
        .unwrap()
    }

    /// A flush writes what changed since the last one, each entry listed
    /// once, and leaves clean entries alone (that they are not scanned
    /// for is a cost, which only the lists' contents show here).
    #[test]
    fn the_flush_writes_only_what_changed_since_the_last_one() {
        let conn = database();
        for user in 1..=3 {
            conn.execute(
                "INSERT INTO users(id, username, display_name, password_hash, created_at_ms)
                     VALUES(?1, 'u' || ?1, 'u', 'x', 1)",
                [user],
            )
            .unwrap();
        }
        let mut cache = WriterCache::default();
        let id = ConversationId(1);
        cache.conversation(&conn, id).unwrap();
        for (user, seq) in [(1, 4), (2, 4), (1, 5), (3, 5)] {
            cache.deliver(&conn, UserId(user), id, seq, 10).unwrap();
            cache.appended(id, UserId(1), seq, 10);
        }
        assert_eq!(cache.dirty_conversations, vec![id]);
        assert_eq!(
            cache.dirty_inboxes,
            vec![UserId(1), UserId(2), UserId(3)],
            "each user listed once"
        );
        cache.flush(&conn).unwrap();
        assert!(cache.dirty_conversations.is_empty() && cache.dirty_inboxes.is_empty());
        assert_eq!(
            [1, 2, 3].map(|user| inbox_head(&conn, user)),
            [2, 1, 1],
            "user 1 has two entries"
        );
        assert_eq!(stored_seq(&conn), 5);
        // A clean entry is not written again: a value changed behind the
        // cache's back stays as it is, while the changed user is written.
        conn.execute("UPDATE users SET inbox_head=99 WHERE id=2", [])
            .unwrap();
        cache.deliver(&conn, UserId(3), id, 6, 11).unwrap();
        cache.appended(id, UserId(1), 6, 11);
        cache.flush(&conn).unwrap();
        assert_eq!([2, 3].map(|user| inbox_head(&conn, user)), [99, 2]);
        assert_eq!(stored_seq(&conn), 6);
    }

    /// The fast send path keeps the general path's guard: if the stored
    /// `last_seq` moved behind the cache's back, the flush fails (and the
    /// writer rolls the batch back) instead of overwriting it.
    #[test]
    fn the_flush_refuses_a_seq_that_moved_behind_its_back() {
        let conn = database();
        let mut cache = WriterCache::default();
        let id = ConversationId(1);
        cache.conversation(&conn, id).unwrap();
        conn.execute("UPDATE conversations SET last_seq=7 WHERE id=1", [])
            .unwrap();
        cache.appended(id, UserId(1), 4, 10);
        assert!(matches!(cache.flush(&conn), Err(StoreError::Internal(_))));
        assert_eq!(stored_seq(&conn), 7);
        assert_eq!(
            cache.dirty_conversations,
            vec![id],
            "what was not written stays listed"
        );
    }
}
