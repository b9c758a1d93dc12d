//! Receipts in SQLite: a member's cursors and a group's summary; the
//! arithmetic is `domain::receipts`.

use parley_proto::api::ConversationKind;
use rusqlite::{Connection, OptionalExtension, params};

use super::conversations::active_member_ids;
use crate::domain::receipts::raised_summary;
use crate::domain::{self, Cursors, ReceiptRequest, to_u64};
use crate::error::{StoreError, StoreResult};
use crate::model::{Committed, ReceiptChange};

pub(super) fn advance_receipt(
    conn: &Connection,
    events: &mut Vec<Committed>,
    request: ReceiptRequest,
) -> StoreResult<ReceiptChange> {
    let conversation = request.conversation;
    let user = request.user;
    let (kind, last_seq, summary_delivered, summary_read) = conn
        .prepare_cached(
            "SELECT kind, last_seq, summary_delivered, summary_read FROM conversations WHERE id=?1",
        )?
        .query_row([conversation.0], |r| {
            Ok((
                ConversationKind::parse(&r.get::<_, String>(0)?),
                to_u64(r.get(1)?),
                to_u64(r.get(2)?),
                to_u64(r.get(3)?),
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    let before = conn
        .prepare_cached("SELECT delivered_up_to, read_up_to FROM members WHERE conversation_id=?1 AND user_id=?2 AND active=1")?
        .query_row(params![conversation.0, user.0], |r| {
            Ok(Cursors {
                delivered: to_u64(r.get(0)?),
                read: to_u64(r.get(1)?),
            })
        })
        .optional()?
        .ok_or_else(domain::not_a_member)?;
    let after = before.after_receipt(request.status, request.up_to_seq, last_seq);
    let advanced = after != before;
    let mut summary = None;
    if advanced {
        conn.prepare_cached(
            "UPDATE members SET delivered_up_to=?3, read_up_to=?4 WHERE conversation_id=?1 AND user_id=?2",
        )?
        .execute(params![conversation.0, user.0, after.delivered as i64, after.read as i64])?;
        if kind == ConversationKind::Group {
            let minimums = conn
                .prepare_cached(
                    "SELECT MIN(delivered_up_to), MIN(read_up_to) FROM members WHERE conversation_id=?1 AND active=1",
                )?
                .query_row([conversation.0], |r| {
                    Ok((
                        to_u64(r.get::<_, Option<i64>>(0)?.unwrap_or(0)),
                        to_u64(r.get::<_, Option<i64>>(1)?.unwrap_or(0)),
                    ))
                })?;
            summary = raised_summary((summary_delivered, summary_read), minimums);
            if let Some((delivered, read)) = summary {
                conn.prepare_cached(
                    "UPDATE conversations SET summary_delivered=?2, summary_read=?3 WHERE id=?1",
                )?
                .execute(params![
                    conversation.0,
                    delivered as i64,
                    read as i64
                ])?;
            }
        }
    }
    let members = if advanced && ReceiptRequest::tells_everyone(kind, summary) {
        active_member_ids(conn, conversation)?
    } else {
        vec![user]
    };
    let mut change = request.change(kind, before, after, summary, members);
    change.read_hidden = advanced
        && kind == ConversationKind::Direct
        && request.status == parley_proto::ReceiptStatus::Read
        && super::settings::read_receipts_off(conn, conversation)?;
    if advanced {
        events.push(Committed::Receipt(change.clone()));
    }
    Ok(change)
}
