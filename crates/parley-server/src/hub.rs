//! The registry of live sockets, and delivery to them.
//!
//! Every socket has a bounded queue. Delivery never waits: a frame that does
//! not fit means the socket has fallen too far behind, so it is asked to
//! close, and the client catches up from its cursor when it reconnects.
//! That keeps one slow consumer from ever delaying anyone else.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use parley_proto::{DeviceId, EncodedMessage, UserId};
use tokio::sync::Notify;

pub use parley_proto::close_code;

/// Most items queued without waking the socket's task (see
/// [`SocketHandle::push`]).
const UNWOKEN_MAX: usize = 16;

/// One item in a socket's outgoing queue.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A frame already encoded; clones share the bytes, so one encoding
    /// serves every socket that receives it.
    Frame(Utf8Bytes),
    /// A message encoded once for everyone; the socket adds its cursor.
    Message {
        /// The shared encoding.
        encoded: Arc<EncodedMessage>,
        /// The recipient user's inbox cursor.
        cursor: u64,
        /// The device that sent it: that device's sockets advance their
        /// cursor past it without writing it (the device had `sent`).
        sender_device: Option<DeviceId>,
    },
    /// Re-check the socket's cursor against the store and write what it
    /// missed (cluster mode: a notification may have been lost).
    Resync,
}

/// What a socket's task shares with everyone who delivers to it: its
/// outgoing queue and its close switch.
///
/// A hand-rolled queue rather than a Tokio channel: an idle socket then
/// holds an empty `VecDeque` (no allocation) instead of a channel block of 32
/// slots, which matters at tens of thousands of idle sockets.
#[derive(Debug)]
pub struct SocketShared {
    // A std mutex: pushes and pops are a few pointer moves, never an await.
    queue: Mutex<VecDeque<Outbound>>,
    limit: usize,
    ready: Notify,
    close_code: AtomicU16,
    close_requested: Notify,
}

/// Why [`SocketShared::woken`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A close was requested, with this code.
    Close(u16),
    /// Something is queued.
    Queued,
}

/// The queue is full: the socket is too far behind.
#[derive(Debug)]
pub struct QueueFull;

impl SocketShared {
    fn new(limit: usize) -> SocketShared {
        SocketShared {
            queue: Mutex::new(VecDeque::new()),
            limit: limit.max(1),
            ready: Notify::new(),
            close_code: AtomicU16::new(0),
            close_requested: Notify::new(),
        }
    }

    /// Queues `item` unless `limit` items are already waiting.
    pub fn try_push(&self, item: Outbound) -> Result<(), QueueFull> {
        self.try_push_waking(item, true)
    }

    /// [`Self::try_push`]; with `wake` false the socket's task is not woken
    /// for it: the item waits for the task's next wakeup, unless
    /// [`UNWOKEN_MAX`] (or half the limit) are waiting by now, so a socket
    /// that hears only of its own sends (its device sends over HTTP) still
    /// drains its queue long before the limit.
    fn try_push_waking(&self, item: Outbound, wake: bool) -> Result<(), QueueFull> {
        let wake = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.len() >= self.limit {
                return Err(QueueFull);
            }
            queue.push_back(item);
            wake || queue.len() >= UNWOKEN_MAX.min(self.limit / 2).max(1)
        };
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Queues `item` whatever the limit (for the one `reconnect` frame of a
    /// shutdown, which must arrive even on a busy socket).
    pub fn force_push(&self, item: Outbound) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(item);
        self.ready.notify_one();
    }

    /// The next queued item, if any.
    pub fn try_pop(&self) -> Option<Outbound> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let item = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 16 {
            // Give a burst's memory back once the socket is idle again.
            *queue = VecDeque::new();
        }
        item
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Waits until a close is requested or something is queued (the
    /// socket's task then takes it with [`Self::try_pop`], together with
    /// whatever else it writes in that wakeup). One future for both, so
    /// an idle socket's task waits on one notification.
    pub async fn woken(&self) -> Wake {
        loop {
            let code = self.close_code.load(Ordering::Acquire);
            if code != 0 {
                return Wake::Close(code);
            }
            if !self.is_empty() {
                return Wake::Queued;
            }
            // `notify_one` stores a permit when nobody waits, so a push or
            // a close between the checks and here is not missed.
            self.ready.notified().await;
        }
    }

    /// Asks the socket to close with `code` (the first request wins);
    /// returns whether this was that first request.
    pub fn close(&self, code: u16) -> bool {
        let first = self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.close_requested.notify_one();
            self.ready.notify_one();
        }
        first
    }

    /// Resolves when a close was requested, with its code.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.close_code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.close_requested.notified().await;
        }
    }
}

/// What the hub keeps of one socket.
#[derive(Debug, Clone)]
pub struct SocketHandle {
    /// Unique per server process.
    pub id: u64,
    /// The device it is authenticated as.
    pub device: DeviceId,
    /// Its queue and close switch.
    pub shared: Arc<SocketShared>,
}

impl SocketHandle {
    /// Queues `item`; closes the socket as too slow when the queue is full.
    pub fn push(&self, item: Outbound) {
        // The sending device's own message only moves the socket's cursor
        // past it; nothing is written, so it does not wake the task (one
        // wakeup less per send). The task takes it, in queue order, at its
        // next wakeup for anything else (an ack, a delivery, a frame from
        // the client: at least a ping per heartbeat).
        let wake = !matches!(
            item,
            Outbound::Message { sender_device: Some(device), .. } if device == self.device
        );
        // Counted once per socket closed as too slow: frames that overflow
        // a socket already closing are not further closes.
        if self.shared.try_push_waking(item, wake).is_err()
            && self.shared.close(close_code::TOO_SLOW)
        {
            metrics::counter!("parley_slow_consumer_closes_total").increment(1);
        }
    }
}

/// All live sockets by user.
pub struct Hub {
    sockets: DashMap<UserId, Vec<SocketHandle>>,
    next_id: AtomicU64,
    queue_frames: usize,
}

impl Hub {
    /// An empty hub whose sockets queue at most `queue_frames` frames.
    pub fn new(queue_frames: usize) -> Hub {
        Hub {
            sockets: DashMap::new(),
            next_id: AtomicU64::new(1),
            queue_frames: queue_frames.max(1),
        }
    }

    /// Registers a socket; returns its handle and whether it is the user's
    /// first live socket.
    pub fn register(&self, user: UserId, device: DeviceId) -> (SocketHandle, bool) {
        let handle = SocketHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            device,
            shared: Arc::new(SocketShared::new(self.queue_frames)),
        };
        // Most users have one socket: room for exactly one (a default
        // `Vec` would grow to four at the first push).
        let mut entry = self
            .sockets
            .entry(user)
            .or_insert_with(|| Vec::with_capacity(1));
        let first = entry.is_empty();
        entry.push(handle.clone());
        metrics::gauge!("parley_connections").increment(1.0);
        (handle, first)
    }

    /// Removes a socket; returns whether the user has no live socket left.
    pub fn unregister(&self, user: UserId, socket_id: u64) -> bool {
        let mut last = false;
        let mut removed = false;
        self.sockets.remove_if_mut(&user, |_, sockets| {
            let before = sockets.len();
            sockets.retain(|s| s.id != socket_id);
            removed = sockets.len() != before;
            last = sockets.is_empty();
            last
        });
        if removed {
            metrics::gauge!("parley_connections").decrement(1.0);
        }
        last
    }

    /// Whether the user has at least one live socket.
    pub fn is_connected(&self, user: UserId) -> bool {
        self.sockets.get(&user).is_some_and(|s| !s.is_empty())
    }

    /// Adds the devices of `user` with a live socket here to `out`.
    pub fn live_devices(&self, user: UserId, out: &mut HashSet<DeviceId>) {
        if let Some(sockets) = self.sockets.get(&user) {
            out.extend(sockets.iter().map(|s| s.device));
        }
    }

    /// Whether `device` of `user` has at least one live socket here.
    pub fn device_connected(&self, user: UserId, device: DeviceId) -> bool {
        self.sockets
            .get(&user)
            .is_some_and(|s| s.iter().any(|s| s.device == device))
    }

    /// Queues `item` on every socket of `user` except those of `except`.
    pub fn send_to_user(&self, user: UserId, item: &Outbound, except: Option<DeviceId>) {
        if let Some(sockets) = self.sockets.get(&user) {
            for socket in sockets.iter().filter(|s| Some(s.device) != except) {
                socket.push(item.clone());
            }
        }
    }

    /// Closes every socket of `device`.
    pub fn close_device(&self, user: UserId, device: DeviceId, code: u16) {
        if let Some(sockets) = self.sockets.get(&user) {
            for socket in sockets.iter().filter(|s| s.device == device) {
                socket.shared.close(code);
            }
        }
    }

    /// Closes every socket of `user` (disabled or erased by an
    /// administrator).
    pub fn close_user(&self, user: UserId, code: u16) {
        if let Some(sockets) = self.sockets.get(&user) {
            for socket in sockets.iter() {
                socket.shared.close(code);
            }
        }
    }

    /// How many sockets are live on this node.
    pub fn socket_count(&self) -> usize {
        self.sockets.iter().map(|e| e.value().len()).sum()
    }

    /// Queues `item` on every live socket, ignoring the queue bound (for the
    /// rare [`Outbound::Resync`], which must not close a busy socket).
    pub fn push_all(&self, item: &Outbound) -> usize {
        let mut count = 0;
        for entry in self.sockets.iter() {
            for socket in entry.value() {
                socket.shared.force_push(item.clone());
                count += 1;
            }
        }
        count
    }

    /// Every live socket (for shutdown).
    pub fn all(&self) -> Vec<SocketHandle> {
        self.sockets
            .iter()
            .flat_map(|e| e.value().clone())
            .collect()
    }

    /// Users with at least one live socket.
    pub fn connected_users(&self) -> Vec<UserId> {
        self.sockets.iter().map(|e| *e.key()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Outbound {
        Outbound::Frame("{}".into())
    }

    #[tokio::test]
    async fn woken_tells_a_queued_frame_from_a_close() {
        let shared = Arc::new(SocketShared::new(4));
        let waiter = tokio::spawn({
            let shared = shared.clone();
            async move { shared.woken().await }
        });
        tokio::task::yield_now().await;
        shared.try_push(frame()).unwrap();
        assert_eq!(waiter.await.unwrap(), Wake::Queued);
        // Still queued: it wakes at once until the frame is taken.
        assert_eq!(shared.woken().await, Wake::Queued);
        assert!(shared.try_pop().is_some());

        let waiter = tokio::spawn({
            let shared = shared.clone();
            async move { shared.woken().await }
        });
        tokio::task::yield_now().await;
        assert!(shared.close(close_code::TOO_SLOW));
        assert_eq!(waiter.await.unwrap(), Wake::Close(close_code::TOO_SLOW));
        // A close wins over queued frames, and the first code stays.
        shared.try_push(frame()).unwrap();
        assert!(!shared.close(close_code::GOING_AWAY));
        assert_eq!(shared.woken().await, Wake::Close(close_code::TOO_SLOW));
        assert_eq!(shared.closed().await, close_code::TOO_SLOW);
    }

    #[test]
    fn a_full_queue_refuses_and_a_forced_push_does_not() {
        let shared = SocketShared::new(2);
        shared.try_push(frame()).unwrap();
        shared.try_push(frame()).unwrap();
        assert!(shared.try_push(frame()).is_err());
        shared.force_push(frame());
        let mut popped = 0;
        while shared.try_pop().is_some() {
            popped += 1;
        }
        assert_eq!(popped, 3);
        assert!(shared.is_empty());
    }
}
