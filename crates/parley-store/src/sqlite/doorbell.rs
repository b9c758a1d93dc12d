//! How the writer wakes the threads beside it (the checkpointer, the
//! search indexer) after a commit without paying a wake-up per commit:
//! it marks the commit under the thread's mutex (uncontended, cheap) and
//! signals the condvar only when the thread is asleep waiting for exactly
//! that.

use std::sync::{Condvar, MutexGuard, PoisonError};

/// The commit mark a thread beside the writer sleeps on.
#[derive(Debug, Default)]
pub(super) struct Doorbell {
    /// The writer committed since the thread last took the mark.
    committed: bool,
    /// The thread is blocked waiting for a commit.
    waiting: bool,
}

impl Doorbell {
    /// A doorbell already rung: the thread's first round runs without a
    /// commit (to pick up what an earlier run left).
    pub(super) fn rung() -> Doorbell {
        Doorbell {
            committed: true,
            waiting: false,
        }
    }

    /// The writer committed. Signals `wake` only if the thread sleeps.
    pub(super) fn ring(&mut self, wake: &Condvar) {
        self.committed = true;
        if self.waiting {
            self.waiting = false;
            wake.notify_one();
        }
    }

    /// Clears the mark: the thread starts the round the commits asked for.
    pub(super) fn clear(&mut self) {
        self.committed = false;
    }
}

/// Blocks on `wake` until a commit is marked on the doorbell `bell` finds
/// in the state, or `done_waiting` says there is other work (a stop, a
/// search). Leaves the mark for the caller to [`Doorbell::clear`].
pub(super) fn wait_for_commit<'a, S>(
    wake: &Condvar,
    mut state: MutexGuard<'a, S>,
    bell: impl Fn(&mut S) -> &mut Doorbell,
    done_waiting: impl Fn(&S) -> bool,
) -> MutexGuard<'a, S> {
    while !bell(&mut state).committed && !done_waiting(&state) {
        bell(&mut state).waiting = true;
        state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
    bell(&mut state).waiting = false;
    state
}
