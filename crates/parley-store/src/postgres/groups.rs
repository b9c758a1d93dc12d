//! Group creation and administration in PostgreSQL; the rules are
//! `domain::groups`.

use deadpool_postgres::ClientWrapper;
use parley_proto::{ConversationId, Role, UserId};

use super::batch::Batch;
use super::conversations::{
    active_member_ids, add_member_row, load_conversation, reload_conversation,
};
use super::errors::{OpResult, execute, query_one};
use super::messages::insert_message;
use super::users::{check_users_exist, user_exists};
use crate::domain::{self, GroupPlan, to_i64};
use crate::error::StoreError;
use crate::model::{ConversationRecord, GroupChange, NewGroup};

pub(super) async fn create_group(
    conn: &ClientWrapper,
    batch: &mut Batch,
    new: &NewGroup,
) -> OpResult<ConversationRecord> {
    let plan = domain::plan_new_group(new)?;
    check_users_exist(conn, plan.others()).await?;
    if !user_exists(conn, new.creator).await? {
        return Err(StoreError::NotFound("user").into());
    }
    let row = query_one(
        conn,
        "INSERT INTO conversations(kind, name, last_seq, last_activity_ms, created_at_ms)
         VALUES('group', $1, 0, $2, $2) RETURNING id",
        &[&plan.name, &new.now_ms],
    )
    .await?;
    let conversation = ConversationId(row.try_get(0)?);
    add_member_row(conn, conversation, new.creator, Role::Admin, 1, new.now_ms).await?;
    for &user in plan.others() {
        add_member_row(conn, conversation, user, Role::Member, 1, new.now_ms).await?;
    }
    let message = domain::created_message(conversation, &plan, new.now_ms);
    insert_message(conn, batch, message, &plan.members).await?;
    reload_conversation(conn, conversation).await
}

pub(super) async fn change_group(
    conn: &ClientWrapper,
    batch: &mut Batch,
    change: &GroupChange,
) -> OpResult<ConversationRecord> {
    let conversation = change.conversation;
    let record = load_conversation(conn, conversation)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    let (now, seq, actor) = (change.now_ms, record.last_seq + 1, change.actor);
    let everyone: Vec<UserId> = record.members.iter().map(|m| m.user_id).collect();
    let plan = domain::plan_group_change(&record, change)?;
    let Some(message) = plan.announcement(conversation, seq, actor, now) else {
        return Ok(record);
    };
    match plan {
        GroupPlan::Unchanged => return Ok(record),
        GroupPlan::Add { candidates } => {
            check_users_exist(conn, &candidates).await?;
            for &user in &candidates {
                add_member_row(conn, conversation, user, Role::Member, seq, now).await?;
            }
            let recipients = active_member_ids(conn, conversation).await?;
            insert_message(conn, batch, message, &recipients).await?;
        }
        GroupPlan::Remove {
            user, successor, ..
        } => {
            // The removed member is still active here, so it receives its
            // own removal, and nothing after it.
            insert_message(conn, batch, message, &everyone).await?;
            deactivate_member(conn, conversation, user, seq).await?;
            if let Some(successor) = successor {
                set_role_row(conn, conversation, successor, Role::Admin).await?;
                let promoted = domain::role_changed_message(
                    conversation,
                    seq + 1,
                    actor,
                    successor,
                    Role::Admin,
                    now,
                );
                let remaining = active_member_ids(conn, conversation).await?;
                insert_message(conn, batch, promoted, &remaining).await?;
            }
        }
        GroupPlan::Rename { name } => {
            execute(
                conn,
                "UPDATE conversations SET name=$2 WHERE id=$1",
                &[&conversation.0, &name],
            )
            .await?;
            insert_message(conn, batch, message, &everyone).await?;
        }
        GroupPlan::SetRole { user, role } => {
            set_role_row(conn, conversation, user, role).await?;
            insert_message(conn, batch, message, &everyone).await?;
        }
    }
    reload_conversation(conn, conversation).await
}

/// Ends `user`'s membership (and its period) at `last_seq`.
async fn deactivate_member(
    conn: &ClientWrapper,
    conversation: ConversationId,
    user: UserId,
    last_seq: u64,
) -> OpResult<()> {
    execute(
        conn,
        "UPDATE members SET active=FALSE WHERE conversation_id=$1 AND user_id=$2",
        &[&conversation.0, &user.0],
    )
    .await?;
    execute(
        conn,
        "UPDATE member_periods SET to_seq=$3 WHERE conversation_id=$1 AND user_id=$2 AND to_seq IS NULL",
        &[&conversation.0, &user.0, &to_i64(last_seq)],
    )
    .await?;
    Ok(())
}

async fn set_role_row(
    conn: &ClientWrapper,
    conversation: ConversationId,
    user: UserId,
    role: Role,
) -> OpResult<()> {
    execute(
        conn,
        "UPDATE members SET role=$3 WHERE conversation_id=$1 AND user_id=$2",
        &[&conversation.0, &user.0, &role.as_str()],
    )
    .await?;
    Ok(())
}
