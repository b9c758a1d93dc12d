//! The dispatcher: turns committed changes into frames on sockets.
//!
//! It is the only consumer of the store's commit stream, and handles events
//! one at a time in commit order, so every socket receives a conversation's
//! messages in `seq` order. It never waits on a socket (see [`crate::hub`]),
//! so a 1,024-member fan-out costs one encoding and 1,024 queue pushes, off
//! the sender's path: the sender's `sent` frame has already gone out.
//!
//! Every committed message also passes through the membership cache's one
//! invalidation rule ([`crate::members`]).

use std::sync::Arc;

use parley_proto::api::ConversationKind;
use parley_proto::{DeviceId, EncodedMessage, ReceiptStatus, ServerFrame, UserId};
use parley_store::{CommitReceiver, Committed, ReceiptChange};

use crate::hub::Outbound;
use crate::state::AppState;

/// Runs until the store closes its commit stream.
pub async fn run(state: Arc<AppState>, mut commits: CommitReceiver) {
    while let Some(event) = commits.recv().await {
        match event {
            Committed::Message {
                message,
                recipients,
            } => {
                state.members.observe_commit(&message);
                let encoded = Arc::new(EncodedMessage::new(&message));
                state.hot.deliveries.increment(recipients.len() as u64);
                for recipient in &recipients {
                    // The sending device's sockets skip it (it had `sent`)
                    // but still advance their cursor past it.
                    let item = Outbound::Message {
                        encoded: encoded.clone(),
                        cursor: recipient.cursor,
                        sender_device: message.sender_device_id,
                    };
                    state.hub.send_to_user(recipient.user_id, &item, None);
                }
                // Push is decided off this path: a bounded hand-off.
                state.push.observe(&message, &recipients, &state.hub);
                if let Some(cluster) = &state.cluster {
                    cluster.route_message(message, recipients);
                }
            }
            Committed::Receipt(change) => {
                route_receipt(&state, &change);
                if let Some(cluster) = &state.cluster {
                    cluster.route_receipt(change);
                }
            }
        }
    }
    tracing::info!("dispatcher stopped");
}

/// The frames a receipt change produces, and who gets each: `(frame,
/// users, except_device)`. Shared by local delivery and the cluster router.
pub fn receipt_frames(change: &ReceiptChange) -> Vec<(ServerFrame, Vec<UserId>, Option<DeviceId>)> {
    let up_to_seq = match change.status {
        ReceiptStatus::Delivered => change.delivered_up_to,
        ReceiptStatus::Read => change.read_up_to,
    };
    let receipt = ServerFrame::Receipt {
        conversation_id: change.conversation_id,
        user_id: change.user_id,
        status: change.status,
        up_to_seq,
    };
    let mut out = vec![(receipt.clone(), vec![change.user_id], change.device_id)];
    match change.kind {
        ConversationKind::Direct => {
            let others: Vec<UserId> = change
                .members
                .iter()
                .copied()
                .filter(|&m| m != change.user_id)
                .collect();
            // With read receipts off on either side, the other member
            // hears of the delivery the read implies, not of the read.
            let receipt = if change.read_hidden {
                ServerFrame::Receipt {
                    conversation_id: change.conversation_id,
                    user_id: change.user_id,
                    status: ReceiptStatus::Delivered,
                    up_to_seq: change.delivered_up_to,
                }
            } else {
                receipt
            };
            out.push((receipt, others, None));
        }
        ConversationKind::Group => {
            if let Some((delivered_all_up_to, read_all_up_to)) = change.summary {
                let summary = ServerFrame::ReceiptSummary {
                    conversation_id: change.conversation_id,
                    delivered_all_up_to,
                    read_all_up_to,
                };
                out.push((summary, change.members.clone(), None));
            }
        }
    }
    out
}

fn route_receipt(state: &AppState, change: &ReceiptChange) {
    let up_to_seq = match change.status {
        ReceiptStatus::Delivered => change.delivered_up_to,
        ReceiptStatus::Read => change.read_up_to,
    };
    let frame: Outbound = Outbound::Frame(
        ServerFrame::Receipt {
            conversation_id: change.conversation_id,
            user_id: change.user_id,
            status: change.status,
            up_to_seq,
        }
        .to_json()
        .into(),
    );
    // The member's own other devices always hear of it.
    state
        .hub
        .send_to_user(change.user_id, &frame, change.device_id);
    match change.kind {
        ConversationKind::Direct => {
            // With read receipts off on either side, the other member
            // hears of the delivery the read implies, not of the read.
            let frame = if change.read_hidden {
                Outbound::Frame(
                    ServerFrame::Receipt {
                        conversation_id: change.conversation_id,
                        user_id: change.user_id,
                        status: ReceiptStatus::Delivered,
                        up_to_seq: change.delivered_up_to,
                    }
                    .to_json()
                    .into(),
                )
            } else {
                frame
            };
            for &member in change.members.iter().filter(|&&m| m != change.user_id) {
                state.hub.send_to_user(member, &frame, None);
            }
        }
        ConversationKind::Group => {
            // Never every member's receipt to every member (O(N²) per
            // read): only the summary, and only when the minimum moved.
            if let Some((delivered_all_up_to, read_all_up_to)) = change.summary {
                let summary = Outbound::Frame(
                    ServerFrame::ReceiptSummary {
                        conversation_id: change.conversation_id,
                        delivered_all_up_to,
                        read_all_up_to,
                    }
                    .to_json()
                    .into(),
                );
                for &member in change.members.iter() {
                    state.hub.send_to_user(member, &summary, None);
                }
            }
        }
    }
}
