//! Inbox-run arithmetic: a user's inbox is stored as runs, each saying that
//! the user's cursors from `first_cursor` on are one conversation's
//! messages from `first_seq` on, until the user's next run. These are the
//! rules for extending a run and for turning runs back into
//! (cursor, conversation, seq) spans on replay; engines keep the runs in
//! their own tables.

use parley_proto::ConversationId;

/// One run of a user's inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InboxRun {
    pub(crate) conversation: ConversationId,
    pub(crate) first_cursor: u64,
    pub(crate) first_seq: u64,
}

impl InboxRun {
    /// Whether giving (`conversation`, `seq`) the cursor `cursor` continues
    /// this run (same conversation, and the seq the run's arithmetic puts
    /// at that cursor).
    pub(crate) fn continues_with(
        &self,
        conversation: ConversationId,
        seq: u64,
        cursor: u64,
    ) -> bool {
        self.conversation == conversation
            && cursor >= self.first_cursor
            && self.first_seq + (cursor - self.first_cursor) == seq
    }
}

/// What it takes to hand out a user's next cursor: the head and the
/// (conversation, seq) stored at it. Kept on the user's row by PostgreSQL,
/// so that the row a batch locks is all it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InboxTail {
    /// The newest cursor given out (0 if none).
    pub(crate) head: u64,
    /// The conversation and seq at `head`, when known (unknown before the
    /// first entry, and after a migration whose head entry was pruned).
    pub(crate) last: Option<(ConversationId, u64)>,
}

impl InboxTail {
    /// Gives (`conversation`, `seq`) the next cursor; returns it and whether
    /// it starts a new run (a switch of conversation or a gap in seq).
    pub(crate) fn push(&mut self, conversation: ConversationId, seq: u64) -> (u64, bool) {
        let continues = self
            .last
            .is_some_and(|(c, s)| c == conversation && s + 1 == seq);
        self.head += 1;
        self.last = Some((conversation, seq));
        (self.head, !continues)
    }
}

/// Replay of one run: cursors from `start_cursor` on are `conversation`'s
/// messages `first_seq..=last_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplaySpan {
    pub(crate) conversation: ConversationId,
    pub(crate) start_cursor: u64,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
}

impl ReplaySpan {
    /// Entries in the span.
    pub(crate) fn len(&self) -> u64 {
        self.last_seq + 1 - self.first_seq
    }
}

/// The spans holding up to `limit` entries after `since` (up to `head`),
/// given the user's runs in cursor order starting with the one that holds
/// `since + 1`. A run ends where the next begins, or at the head.
pub(crate) fn replay_spans(
    runs: &[InboxRun],
    since: u64,
    head: u64,
    limit: usize,
) -> Vec<ReplaySpan> {
    let mut spans = Vec::new();
    let mut left = limit as u64;
    for (i, run) in runs.iter().enumerate() {
        if left == 0 {
            break;
        }
        let end_cursor = runs
            .get(i + 1)
            .map(|next| next.first_cursor.saturating_sub(1))
            .unwrap_or(head)
            .min(head);
        let start_cursor = run.first_cursor.max(since + 1);
        if start_cursor > end_cursor {
            continue;
        }
        let wanted = (end_cursor - start_cursor + 1).min(left);
        let first_seq = run.first_seq + (start_cursor - run.first_cursor);
        spans.push(ReplaySpan {
            conversation: run.conversation,
            start_cursor,
            first_seq,
            last_seq: first_seq + wanted - 1,
        });
        left -= wanted;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conversation: i64, first_cursor: u64, first_seq: u64) -> InboxRun {
        InboxRun {
            conversation: ConversationId(conversation),
            first_cursor,
            first_seq,
        }
    }

    #[test]
    fn runs_continue_only_with_the_next_seq_of_the_same_conversation() {
        let r = run(1, 10, 5);
        assert!(r.continues_with(ConversationId(1), 8, 13));
        assert!(!r.continues_with(ConversationId(1), 9, 13), "a gap in seq");
        assert!(
            !r.continues_with(ConversationId(2), 8, 13),
            "another conversation"
        );
        assert!(!r.continues_with(ConversationId(1), 4, 9), "before the run");
    }

    #[test]
    fn the_tail_starts_a_run_on_a_switch_or_a_gap() {
        let mut tail = InboxTail {
            head: 0,
            last: None,
        };
        assert_eq!(tail.push(ConversationId(1), 1), (1, true));
        assert_eq!(tail.push(ConversationId(1), 2), (2, false));
        assert_eq!(tail.push(ConversationId(2), 1), (3, true));
        assert_eq!(tail.push(ConversationId(1), 3), (4, true));
        assert_eq!(tail.push(ConversationId(1), 5), (5, true), "missed seq 4");
        assert_eq!(tail.push(ConversationId(1), 6), (6, false));
    }

    #[test]
    fn replay_walks_runs_from_since_to_the_head_within_the_limit() {
        // Cursors 1-2: c1 seqs 1-2; 3: c2 seq 1; 4-6: c1 seqs 3-5.
        let runs = [run(1, 1, 1), run(2, 3, 1), run(1, 4, 3)];
        let all = replay_spans(&runs, 0, 6, 100);
        assert_eq!(
            all.iter()
                .map(|s| (s.conversation.0, s.start_cursor, s.first_seq, s.last_seq))
                .collect::<Vec<_>>(),
            [(1, 1, 1, 2), (2, 3, 1, 1), (1, 4, 3, 5)]
        );
        let later = replay_spans(&runs[2..], 4, 6, 100);
        assert_eq!(
            (later[0].start_cursor, later[0].first_seq, later[0].len()),
            (5, 4, 2)
        );
        let limited = replay_spans(&runs, 1, 6, 2);
        assert_eq!(limited.iter().map(ReplaySpan::len).sum::<u64>(), 2);
        assert_eq!((limited[0].first_seq, limited[1].conversation.0), (2, 2));
        assert!(replay_spans(&runs, 6, 6, 10).is_empty());
        // A last run moved past the head by pruning holds nothing yet.
        assert!(replay_spans(&[run(1, 7, 9)], 6, 6, 10).is_empty());
    }
}
