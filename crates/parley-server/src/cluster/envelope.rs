//! What nodes send each other through Redis: one envelope per destination
//! node per router batch, or one on the control channel for everyone.
//!
//! Envelopes are hints, delivered at most once: a message's record is the
//! store, and a socket that misses one heals from it by cursor
//! ([`super::stitch`]). So an envelope carries only what the receiving node
//! needs to write frames now.

use parley_proto::api::PresenceVisibility;
use parley_proto::{DeviceId, Message, UserId};
use serde::{Deserialize, Serialize};

/// Largest envelope in bytes; a batch that encodes larger is split.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// One publish.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub src: String,
    /// The sending process's epoch (new on every start).
    pub epoch: u64,
    /// Per (sender epoch → this destination) sequence, from 1; 0 on the
    /// control channel. A jump means envelopes were lost: re-check.
    pub link: u64,
    /// When it was published (ms since the epoch; nodes share a clock
    /// closely enough for a latency histogram).
    pub sent_ms: i64,
    /// What it carries.
    pub items: Vec<Item>,
}

/// One thing an envelope carries.
// `Message` grew its event fields (§8); items live only between decoding an
// envelope and pushing it, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Item {
    /// A committed message and the recipients on the destination node,
    /// each with their inbox cursor.
    Message {
        /// The message.
        message: Message,
        /// `(user, cursor)`.
        to: Vec<(UserId, u64)>,
    },
    /// An encoded frame (receipt, receipt summary, typing) for users.
    Frame {
        /// The frame's JSON.
        frame: String,
        /// Who gets it.
        to: Vec<UserId>,
        /// A device that must not get it (the one that caused it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<DeviceId>,
    },
    /// A user's presence changed (or its visibility did).
    Presence {
        /// Whose.
        user: UserId,
        /// Online anywhere in the cluster.
        online: bool,
        /// When it was last seen, if known.
        last_seen_ms: Option<i64>,
        /// Its visibility setting, when that changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visibility: Option<PresenceVisibility>,
    },
    /// A device was logged out: refuse its token, close its sockets.
    Revoke {
        /// The device's user.
        user: UserId,
        /// The device.
        device: DeviceId,
    },
    /// An administrator disabled, reset or erased a user: refuse the
    /// tokens of `devices` and close every socket of `user`.
    Disable {
        /// The user.
        user: UserId,
        /// Its devices revoked just now.
        devices: Vec<DeviceId>,
    },
    /// Re-check every socket's cursor against the store (a node could not
    /// publish something).
    Resync,
    /// A node's probe of its own subscription.
    Probe,
}

impl Item {
    /// How many messages it carries (for the per-envelope histogram).
    pub fn message_count(&self) -> usize {
        matches!(self, Item::Message { .. }) as usize
    }
}

impl Envelope {
    /// The envelope's text for Redis.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("envelopes always serialize")
    }

    /// Reads an envelope received from Redis.
    pub fn parse(payload: &[u8]) -> Result<Envelope, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
}

/// Encodes `items` as envelopes of at most [`MAX_ENVELOPE_BYTES`] (a single
/// larger item still goes alone). `next_link` numbers them.
pub fn encode(
    src: &str,
    epoch: u64,
    sent_ms: i64,
    items: Vec<Item>,
    mut next_link: impl FnMut() -> u64,
) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut pending: Vec<Item> = Vec::new();
    let mut pending_bytes = 0usize;
    let flush = |pending: &mut Vec<Item>, out: &mut Vec<(String, usize)>, link: u64| {
        let messages = pending.iter().map(Item::message_count).sum();
        let envelope = Envelope {
            src: src.to_owned(),
            epoch,
            link,
            sent_ms,
            items: std::mem::take(pending),
        };
        out.push((
            serde_json::to_string(&envelope).expect("envelopes always serialize"),
            messages,
        ));
    };
    for item in items {
        let size = serde_json::to_string(&item).map(|s| s.len()).unwrap_or(0);
        if !pending.is_empty() && pending_bytes + size > MAX_ENVELOPE_BYTES {
            flush(&mut pending, &mut out, next_link());
            pending_bytes = 0;
        }
        pending_bytes += size;
        pending.push(item);
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut out, next_link());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_split_and_round_trip() {
        let items: Vec<Item> = (0..100)
            .map(|i| Item::Frame {
                frame: "x".repeat(2_000),
                to: vec![UserId(i)],
                except: None,
            })
            .collect();
        let mut link = 0;
        let encoded = encode("n1", 7, 1, items, || {
            link += 1;
            link
        });
        assert!(encoded.len() >= 3, "{} envelopes", encoded.len());
        let mut total = 0;
        for (i, (text, _)) in encoded.iter().enumerate() {
            assert!(text.len() <= MAX_ENVELOPE_BYTES + 4_096);
            let envelope: Envelope = serde_json::from_str(text).unwrap();
            assert_eq!(envelope.link, i as u64 + 1);
            total += envelope.items.len();
        }
        assert_eq!(total, 100);
    }
}
