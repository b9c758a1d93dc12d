//! The per-socket stitcher: exactly once and in cursor order, whatever
//! order and however often messages arrive.
//!
//! A socket hears of a recipient's messages from two sources: commits made
//! on its own node (in cursor order) and envelopes from other nodes (in
//! publish order, at most once). Mixed, they can arrive late, twice, or not
//! at all. The stitcher keeps the socket's last written cursor: a cursor at
//! or below it is dropped, the next one is written, and one beyond it is
//! held until the gap is filled, either by the missing item arriving or by
//! a read of the store (the record: a committed cursor implies every lower
//! cursor of that user is committed, because cursors are handed out under
//! the user row lock). It never guesses: a gap is only ever closed by the
//! item itself or by the store's answer.

use std::collections::BTreeMap;

/// Most items held while a gap is open; past it, the gap is filled from
/// the store at once instead of waiting for the reorder window.
pub const MAX_HELD: usize = 256;

/// The stitching state of one socket. `T` is what is written for a cursor.
#[derive(Debug)]
pub struct Stitcher<T> {
    written: u64,
    held: BTreeMap<u64, T>,
}

impl<T> Stitcher<T> {
    /// A socket that has written everything up to `written`.
    pub fn new(written: u64) -> Stitcher<T> {
        Stitcher {
            written,
            held: BTreeMap::new(),
        }
    }

    /// The last cursor written (or skipped as the socket's own send).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether items are held behind a gap.
    pub fn has_gap(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether so many items are held that the store should be read now.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    /// The usual case of [`Self::offer`] without its list: when `cursor` is
    /// the next one and nothing is held, records it as written and returns
    /// true (the caller writes its item); otherwise changes nothing.
    pub fn take_next(&mut self, cursor: u64) -> bool {
        if cursor == self.written + 1 && self.held.is_empty() {
            self.written = cursor;
            true
        } else {
            false
        }
    }

    /// Offers the item for `cursor`; whatever became writable, in cursor
    /// order, is appended to `ready`. Duplicates are dropped.
    pub fn offer(&mut self, cursor: u64, item: T, ready: &mut Vec<(u64, T)>) {
        if cursor <= self.written {
            return;
        }
        if cursor == self.written + 1 {
            self.written = cursor;
            ready.push((cursor, item));
            self.release(ready);
        } else {
            self.held.entry(cursor).or_insert(item);
        }
    }

    /// The store answered a read of everything after [`Self::written`]
    /// (ascending): those entries are offered in order. When the store has
    /// nothing more (`complete`), whatever is still held is written too:
    /// held cursors were committed, so a cursor the store does not return
    /// below them no longer exists (pruned by retention).
    pub fn fill(
        &mut self,
        entries: impl IntoIterator<Item = (u64, T)>,
        complete: bool,
        ready: &mut Vec<(u64, T)>,
    ) {
        for (cursor, item) in entries {
            self.offer(cursor, item, ready);
        }
        if complete {
            let held = std::mem::take(&mut self.held);
            for (cursor, item) in held {
                if cursor > self.written {
                    self.written = cursor;
                    ready.push((cursor, item));
                }
            }
        }
    }

    fn release(&mut self, ready: &mut Vec<(u64, T)>) {
        while let Some(entry) = self.held.first_entry() {
            let cursor = *entry.key();
            if cursor <= self.written {
                entry.remove();
            } else if cursor == self.written + 1 {
                self.written = cursor;
                ready.push((cursor, entry.remove()));
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One step of the world around a socket.
    #[derive(Debug, Clone)]
    enum Step {
        /// A message for the user commits (cursor = next in the store).
        Commit { local: bool, own_device: bool },
        /// The oldest pending remote notification is delivered.
        DeliverRemote,
        /// A pending remote notification (by index) is delivered early.
        DeliverRemoteOutOfOrder(usize),
        /// The oldest pending remote notification is lost.
        DropRemote,
        /// A random earlier cursor is delivered again.
        Duplicate(u64),
        /// The reorder timer fires: read the store after `written`.
        Fill,
        /// A position check (resync) reads the store in pages of `page`.
        Replay(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (any::<bool>(), prop::bool::weighted(0.2))
                .prop_map(|(local, own_device)| Step::Commit { local, own_device }),
            3 => Just(Step::DeliverRemote),
            1 => (0usize..8).prop_map(Step::DeliverRemoteOutOfOrder),
            1 => Just(Step::DropRemote),
            1 => (1u64..60).prop_map(Step::Duplicate),
            1 => Just(Step::Fill),
            1 => (1usize..5).prop_map(Step::Replay),
        ]
    }

    /// What the socket writes: (cursor, whether it was its own send).
    type Item = bool;

    /// What the socket does with a live item: [`Stitcher::take_next`] for
    /// the usual next cursor, else [`Stitcher::offer`].
    fn deliver(
        stitcher: &mut Stitcher<Item>,
        cursor: u64,
        item: Item,
        ready: &mut Vec<(u64, Item)>,
    ) {
        if cursor <= stitcher.written() {
            return;
        }
        if stitcher.take_next(cursor) {
            ready.push((cursor, item));
        } else {
            stitcher.offer(cursor, item, ready);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Against the model "the store is a list of cursors 1..=n": the
        /// socket writes strictly increasing cursors, never one twice, and
        /// after a final position check it has written every cursor
        /// exactly once (own sends are skipped by the socket, not here).
        #[test]
        fn writes_every_cursor_once_in_order(steps in prop::collection::vec(step(), 0..120)) {
            let start = 0u64;
            let mut store: Vec<Item> = Vec::new();
            let mut remote: Vec<u64> = Vec::new();
            let mut stitcher: Stitcher<Item> = Stitcher::new(start);
            let mut written: Vec<u64> = Vec::new();
            let mut ready = Vec::new();
            let read_store = |store: &Vec<Item>, after: u64, limit: usize| -> Vec<(u64, Item)> {
                store
                    .iter()
                    .enumerate()
                    .map(|(i, own)| (i as u64 + 1, *own))
                    .filter(|(c, _)| *c > after)
                    .take(limit)
                    .collect()
            };
            for step in steps {
                match step {
                    Step::Commit { local, own_device } => {
                        store.push(own_device);
                        let cursor = store.len() as u64;
                        if local {
                            deliver(&mut stitcher, cursor, own_device, &mut ready);
                        } else {
                            remote.push(cursor);
                        }
                    }
                    Step::DeliverRemote => {
                        if !remote.is_empty() {
                            let c = remote.remove(0);
                            deliver(&mut stitcher, c, store[c as usize - 1], &mut ready);
                        }
                    }
                    Step::DeliverRemoteOutOfOrder(i) => {
                        if !remote.is_empty() {
                            let c = remote.remove(i % remote.len());
                            deliver(&mut stitcher, c, store[c as usize - 1], &mut ready);
                        }
                    }
                    Step::DropRemote => {
                        if !remote.is_empty() {
                            remote.remove(0);
                        }
                    }
                    Step::Duplicate(c) => {
                        if c as usize <= store.len() {
                            deliver(&mut stitcher, c, store[c as usize - 1], &mut ready);
                        }
                    }
                    Step::Fill => {
                        if stitcher.has_gap() {
                            let entries = read_store(&store, stitcher.written(), usize::MAX);
                            stitcher.fill(entries, true, &mut ready);
                            prop_assert!(!stitcher.has_gap());
                        }
                    }
                    Step::Replay(page) => loop {
                        let entries = read_store(&store, stitcher.written(), page);
                        let complete = entries.len() < page;
                        stitcher.fill(entries, complete, &mut ready);
                        if complete { break; }
                    },
                }
                for (cursor, _) in ready.drain(..) {
                    if let Some(&last) = written.last() {
                        prop_assert!(cursor == last + 1, "wrote {cursor} after {last}");
                    } else {
                        prop_assert_eq!(cursor, start + 1);
                    }
                    written.push(cursor);
                }
            }
            // The final position check (a resync trigger) heals every loss.
            let entries = read_store(&store, stitcher.written(), usize::MAX);
            stitcher.fill(entries, true, &mut ready);
            for (cursor, _) in ready.drain(..) {
                written.push(cursor);
            }
            let expected: Vec<u64> = (1..=store.len() as u64).collect();
            prop_assert_eq!(written, expected);
        }
    }

    #[test]
    fn holds_a_gap_until_the_missing_cursor_arrives() {
        let mut s: Stitcher<&str> = Stitcher::new(4);
        let mut ready = Vec::new();
        s.offer(6, "six", &mut ready);
        assert!(ready.is_empty() && s.has_gap());
        s.offer(5, "five", &mut ready);
        assert_eq!(ready, vec![(5, "five"), (6, "six")]);
        assert!(!s.has_gap());
        ready.clear();
        s.offer(5, "again", &mut ready);
        assert!(ready.is_empty());
        assert_eq!(s.written(), 6);
    }
}
