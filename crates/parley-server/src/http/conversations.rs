//! Conversations: `GET /v1/conversations`, `POST /v1/conversations/direct`,
//! `GET /v1/conversations/{id}`, `PUT /v1/conversations/{id}/settings`, and
//! the record → response views the group endpoints share.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_proto::api::{
    ConversationCreated, ConversationDetails, ConversationKind, ConversationList,
    ConversationSettings, ConversationSettingsRequest, ConversationSummary, DirectRequest,
    MemberRole, MemberState,
};
use parley_proto::{ConversationId, ServerFrame, UserId, now_ms};
use parley_store::{ConversationRecord, SettingsChange};

use crate::hub::Outbound;

use super::extract::{ApiJson, ApiPath, Auth};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The answer to creating or changing a conversation.
pub(super) fn created(record: &ConversationRecord) -> ConversationCreated {
    ConversationCreated {
        conversation_id: record.id,
        kind: record.kind,
        name: record.name.clone(),
        avatar_media_id: record.avatar_media_id.clone(),
        members: record
            .members
            .iter()
            .map(|m| MemberRole {
                user_id: m.user_id,
                role: m.role,
            })
            .collect(),
    }
}

fn details(record: &ConversationRecord) -> ConversationDetails {
    ConversationDetails {
        conversation_id: record.id,
        kind: record.kind,
        name: record.name.clone(),
        avatar_media_id: record.avatar_media_id.clone(),
        last_seq: record.last_seq,
        delivered_all_up_to: record.delivered_all_up_to,
        read_all_up_to: record.read_all_up_to,
        members: record
            .members
            .iter()
            .map(|m| MemberState {
                user_id: m.user_id,
                role: m.role,
                delivered_up_to: m.delivered_up_to,
                read_up_to: m.read_up_to,
            })
            .collect(),
    }
}

/// `POST /v1/conversations/direct`.
#[utoipa::path(
    post,
    path = "/v1/conversations/direct",
    tag = "conversations",
    request_body = parley_proto::api::DirectRequest,
    responses(
        (status = 200, description = "The existing direct conversation.", body = parley_proto::api::ConversationCreated),
        (status = 201, description = "A new direct conversation.", body = parley_proto::api::ConversationCreated),
        (status = 403, description = "Blocked.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn open_direct(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<DirectRequest>,
) -> ApiResult<Response> {
    let (record, was_created) = state
        .store
        .get_or_create_direct(me.user, body.user_id, now_ms())
        .await?;
    let status = if was_created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created(&record))).into_response())
}

/// `GET /v1/conversations`.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "conversations",
    responses(
        (status = 200, description = "The caller's conversations, most recent activity first.", body = parley_proto::api::ConversationList),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_conversations(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
) -> ApiResult<Json<ConversationList>> {
    let summaries = state.store.conversations_for(me.user).await?;
    let conversations = summaries
        .into_iter()
        .map(|s| {
            // A left conversation lists no members, so the caller's own
            // cursors come from the summary's own fields.
            let own = s.conversation.member(me.user);
            ConversationSummary {
                conversation_id: s.conversation.id,
                kind: s.conversation.kind,
                name: s.conversation.name.clone(),
                members: s.conversation.members.iter().map(|m| m.user_id).collect(),
                last_seq: s.conversation.last_seq,
                last_message: s.last_message,
                unread_count: s.unread_count,
                read_up_to: own.map(|m| m.read_up_to).unwrap_or(0),
                delivered_up_to: own.map(|m| m.delivered_up_to).unwrap_or(0),
                delivered_all_up_to: s.conversation.delivered_all_up_to,
                read_all_up_to: s.conversation.read_all_up_to,
                avatar_media_id: s.conversation.avatar_media_id.clone(),
                muted_until_ms: s.settings.muted_until_ms,
                pinned: s.settings.pinned,
                archived: s.settings.archived,
                left: s.left,
            }
        })
        .collect();
    Ok(Json(ConversationList { conversations }))
}

/// The conversation if `user` is an active member: 404 for unknown ids,
/// 403 for non-members.
async fn member_conversation(
    state: &AppState,
    id: ConversationId,
    user: UserId,
) -> ApiResult<ConversationRecord> {
    let record = state
        .store
        .conversation(id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation not found"))?;
    if record.member(user).is_none() {
        return Err(ApiError::forbidden(
            "you are not a member of this conversation",
        ));
    }
    Ok(record)
}

/// `GET /v1/conversations/{id}`.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "conversations",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A conversation id."),
    ),
    responses(
        (status = 200, description = "Members and their cursors.", body = parley_proto::api::ConversationDetails),
        (status = 403, description = "Not a member.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such conversation.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_conversation(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<ConversationId>,
) -> ApiResult<Json<ConversationDetails>> {
    let mut record = member_conversation(&state, id, me.user).await?;
    if record.kind == ConversationKind::Direct && read_receipts_hidden(&state, &record).await? {
        // Either side turned read receipts off: the other's read cursor
        // is not shown (its delivered cursor still is).
        for member in record.members.iter_mut().filter(|m| m.user_id != me.user) {
            member.read_up_to = 0;
        }
    }
    Ok(Json(details(&record)))
}

async fn read_receipts_hidden(state: &AppState, record: &ConversationRecord) -> ApiResult<bool> {
    for member in &record.members {
        if let Some(user) = state.store.user_by_id(member.user_id).await?
            && !user.read_receipts
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `PUT /v1/conversations/{id}/settings`: the caller's own mute, pin and
/// archive; every device of the caller hears of it live.
#[utoipa::path(
    put,
    path = "/v1/conversations/{id}/settings",
    tag = "conversations",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A conversation id."),
    ),
    request_body = parley_proto::api::ConversationSettingsRequest,
    responses(
        (status = 200, description = "The caller's settings of the conversation as they now are.", body = parley_proto::api::ConversationSettings),
        (status = 403, description = "Not a member.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such conversation.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn update_settings(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<ConversationId>,
    ApiJson(body): ApiJson<ConversationSettingsRequest>,
) -> ApiResult<Json<ConversationSettings>> {
    let settings = state
        .store
        .set_conversation_settings(
            me.user,
            id,
            SettingsChange {
                muted_until_ms: body.muted_until_ms,
                pinned: body.pinned,
                archived: body.archived,
            },
        )
        .await?;
    let json = ServerFrame::ConversationSettings {
        conversation_id: id,
        muted_until_ms: settings.muted_until_ms,
        pinned: settings.pinned,
        archived: settings.archived,
    }
    .to_json();
    // No inbox cursor: a plain frame, also to the caller's devices on
    // other nodes.
    if let Some(cluster) = &state.cluster {
        cluster.route_frame(json.clone(), vec![me.user]);
    }
    state
        .hub
        .send_to_user(me.user, &Outbound::Frame(json.into()), None);
    Ok(Json(settings))
}
