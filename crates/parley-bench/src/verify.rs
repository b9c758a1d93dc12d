//! Loss, duplicate and gap checks.
//!
//! Every scenario that sends messages logs, per conversation, each `sent`
//! ack (seq and sender) and each delivered `message` frame per member, then
//! checks the protocol's promises: seqs are gapless from the conversation's
//! last seq before the run, no seq is handed out twice, and every member
//! receives every acked message of the others exactly once, in seq order.
//! The chaos scenario checks the stored history against the acks instead.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// What one conversation saw during a run.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConversationLog {
    /// The conversation's last seq before the run.
    pub(crate) base: u64,
    /// Its members (bench user indexes) that were online and checked.
    pub(crate) members: Vec<u32>,
    /// Every ack: (seq, sender).
    pub(crate) acked: Vec<(u64, u32)>,
    /// Delivered seqs per member, in arrival order.
    pub(crate) delivered: HashMap<u32, Vec<u64>>,
}

/// The outcome of the checks, summed over conversations.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Conversations checked.
    pub(crate) conversations: u64,
    /// Acks received.
    pub(crate) acked: u64,
    /// A seq acked more than once.
    pub(crate) duplicate_acks: u64,
    /// Seqs missing between the base and the highest ack.
    pub(crate) seq_gaps: u64,
    /// Deliveries the acks call for.
    pub(crate) expected_deliveries: u64,
    /// `message` frames received.
    pub(crate) delivered: u64,
    /// Acked messages a member never received.
    pub(crate) lost: u64,
    /// Messages a member received more than once.
    pub(crate) duplicate_deliveries: u64,
    /// Deliveries whose seq was not above the previous one.
    pub(crate) out_of_order: u64,
    /// Deliveries of seqs nobody saw acked.
    pub(crate) unexpected: u64,
}

impl Verdict {
    /// Nothing lost, duplicated, reordered or skipped.
    pub(crate) fn clean(&self) -> bool {
        self.duplicate_acks == 0
            && self.seq_gaps == 0
            && self.lost == 0
            && self.duplicate_deliveries == 0
            && self.out_of_order == 0
            && self.unexpected == 0
    }

    /// Adds another conversation's verdict.
    pub(crate) fn merge(&mut self, other: &Verdict) {
        self.conversations += other.conversations;
        self.acked += other.acked;
        self.duplicate_acks += other.duplicate_acks;
        self.seq_gaps += other.seq_gaps;
        self.expected_deliveries += other.expected_deliveries;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicate_deliveries += other.duplicate_deliveries;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
    }

    /// One line for the summary table.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} — lost {}, duplicate deliveries {}, out of order {}, seq gaps {}, duplicate seqs {}, unexpected {}",
            if self.clean() { "OK" } else { "FAILED" },
            self.lost,
            self.duplicate_deliveries,
            self.out_of_order,
            self.seq_gaps,
            self.duplicate_acks,
            self.unexpected
        )
    }
}

/// Checks one conversation.
pub(crate) fn verify(log: &ConversationLog) -> Verdict {
    let mut verdict = Verdict {
        conversations: 1,
        acked: log.acked.len() as u64,
        ..Verdict::default()
    };
    let mut acked = log.acked.clone();
    acked.sort_unstable();
    // The same seq twice (even from the same sender) is a reused seq.
    let before = acked.len();
    acked.dedup_by_key(|(seq, _)| *seq);
    verdict.duplicate_acks = (before - acked.len()) as u64;
    if let Some(&(max, _)) = acked.last() {
        let in_range = acked.iter().filter(|(seq, _)| *seq > log.base).count() as u64;
        verdict.seq_gaps = max.saturating_sub(log.base).saturating_sub(in_range);
    }
    for &member in &log.members {
        let expected: Vec<u64> = acked
            .iter()
            .filter(|(_, sender)| *sender != member)
            .map(|(seq, _)| *seq)
            .collect();
        verdict.expected_deliveries += expected.len() as u64;
        let arrived = log.delivered.get(&member).map(Vec::as_slice).unwrap_or(&[]);
        verdict.delivered += arrived.len() as u64;
        verdict.out_of_order += arrived.windows(2).filter(|w| w[1] <= w[0]).count() as u64;
        let mut got = arrived.to_vec();
        got.sort_unstable();
        let before = got.len();
        got.dedup();
        verdict.duplicate_deliveries += (before - got.len()) as u64;
        // Both sorted: count the intersection by merging.
        let (mut i, mut j, mut common) = (0, 0, 0u64);
        while i < expected.len() && j < got.len() {
            match expected[i].cmp(&got[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        verdict.lost += expected.len() as u64 - common;
        verdict.unexpected += got.len() as u64 - common;
    }
    verdict
}

/// A stored message as the chaos check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its seq.
    pub(crate) seq: u64,
    /// Who sent it (bench user index).
    pub(crate) sender: u32,
    /// The sender's idempotency key.
    pub(crate) client_msg_id: String,
}

/// What the chaos check found in one conversation's stored history.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct HistoryVerdict {
    /// Messages stored.
    pub(crate) stored: u64,
    /// Acks the clients received.
    pub(crate) acked: u64,
    /// Acked messages missing from the history.
    pub(crate) acked_lost: u64,
    /// Acked messages stored under another seq than the ack said.
    pub(crate) seq_mismatch: u64,
    /// (sender, client_msg_id) stored more than once.
    pub(crate) duplicates: u64,
    /// Seqs missing or repeated in 1..=N.
    pub(crate) seq_gaps: u64,
}

impl HistoryVerdict {
    /// Zero acked loss, zero duplicates, zero gaps.
    pub(crate) fn clean(&self) -> bool {
        self.acked_lost == 0 && self.seq_mismatch == 0 && self.duplicates == 0 && self.seq_gaps == 0
    }

    /// Adds another conversation's verdict.
    pub(crate) fn merge(&mut self, other: &HistoryVerdict) {
        self.stored += other.stored;
        self.acked += other.acked;
        self.acked_lost += other.acked_lost;
        self.seq_mismatch += other.seq_mismatch;
        self.duplicates += other.duplicates;
        self.seq_gaps += other.seq_gaps;
    }
}

/// Checks a conversation's full history (ascending, from seq 1) against the
/// acks the senders received: (sender, client_msg_id) -> seq.
pub(crate) fn verify_history(
    stored: &[Stored],
    acked: &HashMap<(u32, String), u64>,
) -> HistoryVerdict {
    let mut verdict = HistoryVerdict {
        stored: stored.len() as u64,
        acked: acked.len() as u64,
        ..HistoryVerdict::default()
    };
    for (i, message) in stored.iter().enumerate() {
        if message.seq != i as u64 + 1 {
            verdict.seq_gaps += 1;
        }
    }
    let mut by_key: HashMap<(u32, &str), u64> = HashMap::with_capacity(stored.len());
    let mut seen = HashSet::with_capacity(stored.len());
    for message in stored {
        if !seen.insert((message.sender, message.client_msg_id.as_str())) {
            verdict.duplicates += 1;
        }
        by_key
            .entry((message.sender, message.client_msg_id.as_str()))
            .or_insert(message.seq);
    }
    for ((sender, key), seq) in acked {
        match by_key.get(&(*sender, key.as_str())) {
            None => verdict.acked_lost += 1,
            Some(stored_seq) if stored_seq != seq => verdict.seq_mismatch += 1,
            Some(_) => {}
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(acked: &[(u64, u32)], delivered: &[(u32, &[u64])]) -> Verdict {
        verify(&ConversationLog {
            base: 0,
            members: vec![0, 1],
            acked: acked.to_vec(),
            delivered: delivered.iter().map(|(m, s)| (*m, s.to_vec())).collect(),
        })
    }

    #[test]
    fn a_clean_exchange_passes() {
        let v = direct(
            &[(1, 0), (2, 1), (3, 0), (4, 1)],
            &[(0, &[2, 4]), (1, &[1, 3])],
        );
        assert!(v.clean(), "{v:?}");
        assert_eq!(v.acked, 4);
        assert_eq!(v.expected_deliveries, 4);
        assert_eq!(v.delivered, 4);
    }

    #[test]
    fn each_fault_is_counted() {
        // Seq 2 acked twice, seq 4 missing, member 1 misses 3, gets 1 twice,
        // and member 0 gets 6 before 5 plus a seq nobody acked.
        let v = direct(
            &[(1, 0), (2, 0), (2, 1), (3, 0), (5, 1), (6, 1)],
            &[(0, &[6, 5, 9]), (1, &[1, 1, 2])],
        );
        assert_eq!(v.duplicate_acks, 1);
        assert_eq!(v.seq_gaps, 1);
        assert_eq!(v.lost, 1, "member 1 never got seq 3");
        assert_eq!(v.duplicate_deliveries, 1);
        assert_eq!(v.out_of_order, 2, "6 then 5, 1 then 1");
        assert_eq!(v.unexpected, 1, "seq 9");
        assert!(!v.clean());
    }

    #[test]
    fn group_base_and_fan_out() {
        // A group whose `created` message is seq 1; one sender, three readers.
        let mut log = ConversationLog {
            base: 1,
            members: vec![0, 1, 2, 3],
            acked: vec![(2, 0), (3, 0)],
            delivered: HashMap::new(),
        };
        for m in 1..4 {
            log.delivered.insert(m, vec![2, 3]);
        }
        let v = verify(&log);
        assert!(v.clean(), "{v:?}");
        assert_eq!(v.expected_deliveries, 6);
        log.delivered.remove(&3);
        let v = verify(&log);
        assert_eq!(v.lost, 2);
        let mut total = Verdict::default();
        total.merge(&v);
        total.merge(&v);
        assert_eq!((total.conversations, total.lost), (2, 4));
    }

    #[test]
    fn history_against_acks() {
        let stored = |seq, sender, key: &str| Stored {
            seq,
            sender,
            client_msg_id: key.into(),
        };
        let history = vec![stored(1, 0, "a"), stored(2, 1, "b"), stored(3, 0, "c")];
        let mut acked = HashMap::new();
        acked.insert((0, "a".to_string()), 1);
        acked.insert((1, "b".to_string()), 2);
        let v = verify_history(&history, &acked);
        assert!(v.clean(), "{v:?}");
        assert_eq!((v.stored, v.acked), (3, 2));

        acked.insert((0, "c".to_string()), 4);
        acked.insert((1, "z".to_string()), 5);
        let broken = vec![
            stored(1, 0, "a"),
            stored(2, 1, "b"),
            stored(3, 0, "c"),
            stored(5, 0, "a"),
        ];
        let v = verify_history(&broken, &acked);
        assert_eq!(v.acked_lost, 1, "z");
        assert_eq!(v.seq_mismatch, 1, "c acked as 4, stored as 3");
        assert_eq!(v.duplicates, 1, "a twice");
        assert_eq!(v.seq_gaps, 1, "5 where 4 belongs");
    }
}
