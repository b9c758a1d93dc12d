//! What the PostgreSQL writer works with, as plain data: write ops (so a
//! batch can be re-run after a deadlock), their outputs, and what a batch
//! collects while its ops run. Below both the writer and the operations.

use std::sync::Arc;

use parley_proto::api::PresenceVisibility;
use parley_proto::{ConversationId, DeviceId, Message, UserId};
use tokio::sync::oneshot;

use crate::domain::ReceiptRequest;
use crate::error::StoreResult;
use crate::model::*;

/// One write, as data, so that a batch can be re-run after a deadlock.
#[derive(Debug, Clone)]
pub(super) enum WriteOp {
    CreateUser(NewUser),
    SetPresence(UserId, PresenceVisibility),
    SetLastSeen(UserId, i64),
    CreateDevice(UserId, String, i64),
    RevokeDevice(UserId, DeviceId, i64),
    Direct(UserId, UserId, i64),
    CreateGroup(NewGroup),
    ChangeGroup(GroupChange),
    Append(NewMessage),
    Receipt(ReceiptRequest),
    Prune(i64),
    SetDisabled(UserId, bool, i64),
    SetPassword(UserId, String, i64),
    EraseUser(UserId, i64),
}

impl WriteOp {
    /// The existing conversation whose row this op must hold.
    pub(super) fn conversation(&self) -> Option<ConversationId> {
        match self {
            WriteOp::ChangeGroup(change) => Some(change.conversation),
            WriteOp::Append(new) => Some(new.conversation_id),
            WriteOp::Receipt(request) => Some(request.conversation),
            _ => None,
        }
    }

    /// Runs in a transaction of its own: pruning locks many user rows and
    /// must take them before anything else to keep the global lock order;
    /// erasure locks a user row and then every message it wrote.
    pub(super) fn is_exclusive(&self) -> bool {
        matches!(self, WriteOp::Prune(_) | WriteOp::EraseUser(..))
    }
}

/// What a [`WriteOp`] returns.
#[derive(Debug)]
pub(super) enum Output {
    Unit,
    User(UserRecord),
    Device(DeviceRecord),
    Direct(ConversationRecord, bool),
    Conversation(ConversationRecord),
    Appended(Appended),
    Receipt(ReceiptChange),
    Count(u64),
    Disabled(UserRecord, Vec<DeviceId>),
    Devices(Vec<DeviceId>),
}

/// A queued op and where its result goes.
pub(super) struct Job {
    pub(super) op: WriteOp,
    pub(super) reply: oneshot::Sender<StoreResult<Output>>,
}

/// What a batch collects while its ops run, applied or announced at the end.
#[derive(Default)]
pub(super) struct Batch {
    /// Announcements, in op order.
    pub(super) events: Vec<Committed>,
    /// Inbox entries still waiting for their cursor, in op order.
    pub(super) pointers: Vec<Pointer>,
    /// User-row writes deferred to the end to keep the lock order.
    pub(super) user_updates: Vec<UserUpdate>,
}

/// One recipient of one message; `event` and `slot` say which
/// [`Recipient`] to fill in once the cursor is known.
pub(super) struct Pointer {
    pub(super) user: UserId,
    pub(super) conversation: ConversationId,
    pub(super) seq: u64,
    pub(super) created_at_ms: i64,
    pub(super) event: usize,
    pub(super) slot: usize,
}

/// A user-row write, deferred to the end of the batch.
pub(super) enum UserUpdate {
    LastSeen(UserId, i64),
    Presence(UserId, PresenceVisibility),
}

impl UserUpdate {
    pub(super) fn user(&self) -> UserId {
        match self {
            UserUpdate::LastSeen(user, _) | UserUpdate::Presence(user, _) => *user,
        }
    }
}

impl Batch {
    pub(super) fn mark(&self) -> (usize, usize, usize) {
        (
            self.events.len(),
            self.pointers.len(),
            self.user_updates.len(),
        )
    }

    /// Queues the announcement of `message` and an inbox pointer for each
    /// recipient; cursors are filled in once the batch locks the users'
    /// rows.
    pub(super) fn announce(&mut self, message: Arc<Message>, recipients: &[UserId]) {
        let event = self.events.len();
        for (slot, &user) in recipients.iter().enumerate() {
            self.pointers.push(Pointer {
                user,
                conversation: message.conversation_id,
                seq: message.seq,
                created_at_ms: message.sent_at_ms,
                event,
                slot,
            });
        }
        self.events.push(Committed::Message {
            message,
            recipients: recipients
                .iter()
                .map(|&user_id| Recipient { user_id, cursor: 0 })
                .collect(),
        });
    }

    /// Forgets what an op collected after `mark` (its savepoint rolled back).
    pub(super) fn truncate(&mut self, mark: (usize, usize, usize)) {
        self.events.truncate(mark.0);
        self.pointers.truncate(mark.1);
        self.user_updates.truncate(mark.2);
    }
}
