//! Group administration: `POST /v1/groups`, `PATCH /v1/groups/{id}`,
//! `POST /v1/groups/{id}/members`, `DELETE /v1/groups/{id}/members/{user_id}`,
//! `PUT /v1/groups/{id}/members/{user_id}/role`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_proto::api::{
    AddMembersRequest, ConversationCreated, ConversationKind, CreateGroupRequest, RenameRequest,
    RoleRequest,
};
use parley_proto::{ConversationId, UserId, now_ms};
use parley_store::{ConversationRecord, GroupChange, GroupChangeKind, NewGroup};

use super::conversations::created;
use super::extract::{ApiJson, ApiPath, Auth};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `POST /v1/groups`.
#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "groups",
    request_body = parley_proto::api::CreateGroupRequest,
    responses(
        (status = 201, description = "The new group.", body = parley_proto::api::ConversationCreated),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
        (status = 413, description = "Over a size limit.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_group(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<CreateGroupRequest>,
) -> ApiResult<Response> {
    let record = state
        .store
        .create_group(NewGroup {
            creator: me.user,
            name: body.name,
            member_ids: body.member_ids,
            max_members: state.config.max_group_members,
            now_ms: now_ms(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created(&record))).into_response())
}

/// Applies `kind` to group `group` as `actor`. A conversation that is not
/// a group is not a group id: `not_found`, like any unknown id.
async fn change_group(
    state: &AppState,
    actor: UserId,
    group: ConversationId,
    kind: GroupChangeKind,
) -> ApiResult<ConversationRecord> {
    // A conversation's kind never changes, so checking it before the
    // store's transaction cannot race.
    let is_group = state
        .store
        .conversation(group)
        .await?
        .is_some_and(|record| record.kind == ConversationKind::Group);
    if !is_group {
        return Err(ApiError::not_found("group not found"));
    }
    let record = state
        .store
        .change_group(GroupChange {
            conversation: group,
            actor,
            kind,
            max_members: state.config.max_group_members,
            now_ms: now_ms(),
        })
        .await?;
    Ok(record)
}

/// `PATCH /v1/groups/{id}`: rename and/or set the avatar (admins).
#[utoipa::path(
    patch,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A group's conversation id."),
    ),
    request_body = parley_proto::api::RenameRequest,
    responses(
        (status = 200, description = "The group as it now is.", body = parley_proto::api::ConversationCreated),
        (status = 400, description = "A bad name, or the avatar is not a ready image.", body = parley_proto::ErrorBody),
        (status = 403, description = "Not a group admin.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such group, or no such media of the caller's.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn rename_group(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(group): ApiPath<ConversationId>,
    ApiJson(body): ApiJson<RenameRequest>,
) -> ApiResult<Json<ConversationCreated>> {
    if body.name.is_none() && body.avatar_media_id.is_none() {
        return Err(ApiError::bad_request("give name and/or avatar_media_id"));
    }
    let mut record = None;
    if let Some(name) = body.name {
        let kind = GroupChangeKind::Rename { name };
        record = Some(change_group(&state, me.user, group, kind).await?);
    }
    if let Some(avatar) = body.avatar_media_id {
        let store = &state.store;
        record = Some(
            store
                .set_group_avatar(group, me.user, avatar, now_ms())
                .await?,
        );
    }
    let record = record.ok_or_else(|| ApiError::internal("no change applied"))?;
    Ok(Json(created(&record)))
}

/// `POST /v1/groups/{id}/members`.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/members",
    tag = "groups",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A group's conversation id."),
    ),
    request_body = parley_proto::api::AddMembersRequest,
    responses(
        (status = 200, description = "The group as it now is.", body = parley_proto::api::ConversationCreated),
        (status = 403, description = "Not a group admin.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such group or user.", body = parley_proto::ErrorBody),
        (status = 413, description = "Over a size limit.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_members(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(group): ApiPath<ConversationId>,
    ApiJson(body): ApiJson<AddMembersRequest>,
) -> ApiResult<Json<ConversationCreated>> {
    let kind = GroupChangeKind::Add {
        users: body.user_ids,
    };
    let record = change_group(&state, me.user, group, kind).await?;
    Ok(Json(created(&record)))
}

/// `DELETE /v1/groups/{id}/members/{user_id}`: remove a member, or leave.
#[utoipa::path(
    delete,
    path = "/v1/groups/{id}/members/{user_id}",
    tag = "groups",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A group's conversation id."),
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 204, description = "The member is removed (or left)."),
        (status = 403, description = "Not a group admin.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such group or member.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_member(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath((group, user)): ApiPath<(ConversationId, UserId)>,
) -> ApiResult<StatusCode> {
    change_group(&state, me.user, group, GroupChangeKind::Remove { user }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/groups/{id}/members/{user_id}/role`.
#[utoipa::path(
    put,
    path = "/v1/groups/{id}/members/{user_id}/role",
    tag = "groups",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A group's conversation id."),
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    request_body = parley_proto::api::RoleRequest,
    responses(
        (status = 200, description = "The group as it now is.", body = parley_proto::api::ConversationCreated),
        (status = 403, description = "Not a group admin.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such group or member.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn set_role(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath((group, user)): ApiPath<(ConversationId, UserId)>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> ApiResult<Json<ConversationCreated>> {
    let kind = GroupChangeKind::SetRole {
        user,
        role: body.role,
    };
    let record = change_group(&state, me.user, group, kind).await?;
    Ok(Json(created(&record)))
}
