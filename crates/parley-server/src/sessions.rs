//! Session tracking: how many socket tasks are live, so shutdown can wait
//! for them to finish their in-flight sends.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts live socket tasks so shutdown can wait for them.
#[derive(Default)]
pub struct SessionTracker {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by a socket task while it runs.
pub struct SessionGuard<'a>(&'a SessionTracker);

impl SessionTracker {
    /// Marks a socket task as running until the guard drops.
    pub fn enter(&self) -> SessionGuard<'_> {
        self.live.fetch_add(1, Ordering::AcqRel);
        SessionGuard(self)
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

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
