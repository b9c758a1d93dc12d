//! Group creation and administration in SQLite; the rules are
//! `domain::groups`.

use parley_proto::{ConversationId, Role, UserId};
use rusqlite::{Connection, params};

use super::conversations::{active_member_ids, add_member_row, reload_conversation};
use super::messages::insert_message;
use super::users::check_users_exist;
use crate::domain::{self, GroupPlan};
use crate::error::{StoreError, StoreResult};
use crate::model::{Committed, ConversationRecord, GroupChange, NewGroup};

pub(super) fn create_group(
    conn: &Connection,
    events: &mut Vec<Committed>,
    new: NewGroup,
) -> StoreResult<ConversationRecord> {
    let plan = domain::plan_new_group(&new)?;
    check_users_exist(conn, plan.others())?;
    check_users_exist(conn, &[new.creator])?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO conversations(kind, name, last_seq, last_activity_ms, created_at_ms) VALUES('group', ?1, 0, ?2, ?2) RETURNING id",
        )?
        .query_row(params![plan.name, new.now_ms], |r| r.get(0))?;
    let conversation = ConversationId(id);
    add_member_row(conn, conversation, new.creator, Role::Admin, 1, new.now_ms)?;
    for &user in plan.others() {
        add_member_row(conn, conversation, user, Role::Member, 1, new.now_ms)?;
    }
    let message = domain::created_message(conversation, &plan, new.now_ms);
    insert_message(conn, events, message, &plan.members)?;
    reload_conversation(conn, conversation)
}

pub(super) fn change_group(
    conn: &Connection,
    events: &mut Vec<Committed>,
    change: GroupChange,
) -> StoreResult<ConversationRecord> {
    let conversation = change.conversation;
    let record = super::conversations::load_conversation(conn, conversation)?
        .ok_or(StoreError::NotFound("conversation"))?;
    let (now, seq, actor) = (change.now_ms, record.last_seq + 1, change.actor);
    let everyone: Vec<UserId> = record.members.iter().map(|m| m.user_id).collect();
    let plan = domain::plan_group_change(&record, &change)?;
    let Some(message) = plan.announcement(conversation, seq, actor, now) else {
        return Ok(record);
    };
    match plan {
        GroupPlan::Unchanged => return Ok(record),
        GroupPlan::Add { candidates } => {
            check_users_exist(conn, &candidates)?;
            for &user in &candidates {
                add_member_row(conn, conversation, user, Role::Member, seq, now)?;
            }
            let recipients = active_member_ids(conn, conversation)?;
            insert_message(conn, events, message, &recipients)?;
        }
        GroupPlan::Remove {
            user, successor, ..
        } => {
            // The removed member is still active here, so it receives its
            // own removal, and nothing after it.
            insert_message(conn, events, message, &everyone)?;
            deactivate_member(conn, conversation, user, seq)?;
            if let Some(successor) = successor {
                set_role_row(conn, conversation, successor, Role::Admin)?;
                let promoted = domain::role_changed_message(
                    conversation,
                    seq + 1,
                    actor,
                    successor,
                    Role::Admin,
                    now,
                );
                let remaining = active_member_ids(conn, conversation)?;
                insert_message(conn, events, promoted, &remaining)?;
            }
        }
        GroupPlan::Rename { name } => {
            conn.prepare_cached("UPDATE conversations SET name=?2 WHERE id=?1")?
                .execute(params![conversation.0, name])?;
            insert_message(conn, events, message, &everyone)?;
        }
        GroupPlan::SetRole { user, role } => {
            set_role_row(conn, conversation, user, role)?;
            insert_message(conn, events, message, &everyone)?;
        }
    }
    reload_conversation(conn, conversation)
}

/// Ends `user`'s membership (and its period) at `last_seq`.
fn deactivate_member(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    last_seq: u64,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE members SET active=0 WHERE conversation_id=?1 AND user_id=?2")?
        .execute(params![conversation.0, user.0])?;
    conn.prepare_cached(
        "UPDATE member_periods SET to_seq=?3 WHERE conversation_id=?1 AND user_id=?2 AND to_seq IS NULL",
    )?
    .execute(params![conversation.0, user.0, last_seq as i64])?;
    Ok(())
}

fn set_role_row(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    role: Role,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE members SET role=?3 WHERE conversation_id=?1 AND user_id=?2")?
        .execute(params![conversation.0, user.0, role.as_str()])?;
    Ok(())
}
