//! Session tracking: how many socket tasks are live, so shutdown can wait
//! for them to finish their in-flight sends, and so the connection limit
//! ([`crate::connections`]) counts upgraded sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts live socket tasks.
#[derive(Default)]
pub struct SessionTracker {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by a socket task while it runs; leaves the count when dropped,
/// however the task ends.
pub struct SessionGuard(Arc<SessionTracker>);

impl SessionTracker {
    /// Counts a socket task as running until the guard drops.
    pub fn enter(self: &Arc<Self>) -> SessionGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        SessionGuard(self.clone())
    }

    /// How many socket tasks run now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Resolves once no socket task runs.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
