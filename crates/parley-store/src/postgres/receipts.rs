//! Receipts in PostgreSQL: a member's cursors and a group's summary, read
//! and written in as few round trips as the order allows; the arithmetic is
//! `domain::receipts`.

use deadpool_postgres::ClientWrapper;
use parley_proto::UserId;
use parley_proto::api::ConversationKind;
use tokio_postgres::types::ToSql;

use super::batch::Batch;
use super::errors::{OpResult, execute, query_one, query_opt};
use crate::domain::receipts::raised_summary;
use crate::domain::{self, Cursors, ReceiptRequest, to_i64, to_u64};
use crate::error::StoreError;
use crate::model::{Committed, ReceiptChange};

pub(super) async fn advance_receipt(
    conn: &ClientWrapper,
    batch: &mut Batch,
    request: &ReceiptRequest,
) -> OpResult<ReceiptChange> {
    let (conversation, user) = (request.conversation, request.user);
    let header = query_opt(
        conn,
        "SELECT c.kind, c.last_seq, c.summary_delivered, c.summary_read, m.delivered_up_to, m.read_up_to
         FROM conversations c
         LEFT JOIN members m ON m.conversation_id=c.id AND m.user_id=$2 AND m.active
         WHERE c.id=$1",
        &[&conversation.0, &user.0],
    )
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    let kind = ConversationKind::parse(&header.try_get::<_, String>(0)?);
    let last_seq = to_u64(header.try_get(1)?);
    let current_summary = (to_u64(header.try_get(2)?), to_u64(header.try_get(3)?));
    let (Some(delivered), Some(read)) = (
        header.try_get::<_, Option<i64>>(4)?,
        header.try_get::<_, Option<i64>>(5)?,
    ) else {
        return Err(domain::not_a_member().into());
    };
    let before = Cursors {
        delivered: to_u64(delivered),
        read: to_u64(read),
    };
    let after = before.after_receipt(request.status, request.up_to_seq, last_seq);
    let advanced = after != before;
    let mut summary = None;
    let mut members = vec![user];
    if advanced {
        let (cursor_delivered, cursor_read) = (to_i64(after.delivered), to_i64(after.read));
        let update_params: [&(dyn ToSql + Sync); 4] =
            [&conversation.0, &user.0, &cursor_delivered, &cursor_read];
        let conversation_params: [&(dyn ToSql + Sync); 1] = [&conversation.0];
        // The cursor update and the read of the members after it, in one
        // round trip (the server runs them in order).
        let (_, now) = futures_util::future::try_join(
            execute(
                conn,
                "UPDATE members SET delivered_up_to=$3, read_up_to=$4 WHERE conversation_id=$1 AND user_id=$2",
                &update_params,
            ),
            query_one(
                conn,
                "SELECT MIN(delivered_up_to), MIN(read_up_to),
                        ARRAY_AGG(user_id ORDER BY joined_at_ms, user_id)
                 FROM members WHERE conversation_id=$1 AND active",
                &conversation_params,
            ),
        )
        .await?;
        if kind == ConversationKind::Group {
            let minimums = (
                to_u64(now.try_get::<_, Option<i64>>(0)?.unwrap_or(0)),
                to_u64(now.try_get::<_, Option<i64>>(1)?.unwrap_or(0)),
            );
            summary = raised_summary(current_summary, minimums);
            if let Some((delivered, read)) = summary {
                execute(
                    conn,
                    "UPDATE conversations SET summary_delivered=$2, summary_read=$3 WHERE id=$1",
                    &[&conversation.0, &to_i64(delivered), &to_i64(read)],
                )
                .await?;
            }
        }
        if ReceiptRequest::tells_everyone(kind, summary) {
            members = now
                .try_get::<_, Option<Vec<i64>>>(2)?
                .unwrap_or_default()
                .into_iter()
                .map(UserId)
                .collect();
        }
    }
    let mut change = request.change(kind, before, after, summary, members);
    change.read_hidden = advanced
        && kind == ConversationKind::Direct
        && request.status == parley_proto::ReceiptStatus::Read
        && super::settings::read_receipts_off(conn, conversation).await?;
    if advanced {
        batch.events.push(Committed::Receipt(change.clone()));
    }
    Ok(change)
}
