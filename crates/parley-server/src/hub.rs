//! The registry of live sockets, and delivery to them.
//!
//! Every socket has a bounded queue. Delivery never waits: a frame that does
//! not fit means the socket has fallen too far behind, so it is asked to
//! close, and the client catches up from its cursor when it reconnects.
//! That keeps one slow consumer from ever delaying anyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use parley_proto::{DeviceId, EncodedMessage, UserId};
use tokio::sync::{Notify, mpsc};

/// Close codes the server uses.
pub mod close_code {
    /// The token was revoked (logout) or never valid.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The socket's queue overflowed; reconnect and catch up by cursor.
    pub const TOO_SLOW: u16 = 4008;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame over `max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// Nothing received for two heartbeat intervals, or no auth in time.
    pub const TIMEOUT: u16 = 4000;
}

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
    },
}

/// A request, from outside the socket's task, to close it.
#[derive(Debug, Default)]
pub struct SocketControl {
    close_code: AtomicU16,
    notify: Notify,
}

impl SocketControl {
    /// Asks the socket to close with `code` (the first request wins).
    pub fn close(&self, code: u16) {
        if self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Resolves when a close was requested, with its code.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.close_code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
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
    /// Its outgoing queue.
    pub queue: mpsc::Sender<Outbound>,
    /// Its close switch.
    pub control: Arc<SocketControl>,
}

impl SocketHandle {
    /// Queues `item`; closes the socket as too slow when the queue is full.
    pub fn push(&self, item: Outbound) {
        match self.queue.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("parley_slow_consumer_closes_total").increment(1);
                self.control.close(close_code::TOO_SLOW);
            }
            // The socket is already going away.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
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

    /// Registers a socket; returns its handle, its queue, and whether it is
    /// the user's first live socket.
    pub fn register(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> (SocketHandle, mpsc::Receiver<Outbound>, bool) {
        let (queue, receiver) = mpsc::channel(self.queue_frames);
        let handle = SocketHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            control: Arc::new(SocketControl::default()),
        };
        let mut entry = self.sockets.entry(user).or_default();
        let first = entry.is_empty();
        entry.push(handle.clone());
        metrics::gauge!("parley_connections").increment(1.0);
        (handle, receiver, first)
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
                socket.control.close(code);
            }
        }
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
