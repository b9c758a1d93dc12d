//! The administrators' API (protocol §14), every handler behind the
//! [`Admin`] extractor (401 without a valid token, 403 for anyone else):
//! `GET`/`POST /v1/admin/users`, `POST /v1/admin/users/{id}/disable`,
//! `/enable`, `/password`, `DELETE /v1/admin/users/{id}` (erasure) and
//! `GET /v1/admin/stats`.
//!
//! Disabling, a password reset and erasure revoke every device of the user
//! in the store's transaction and then end its sessions at once on every
//! node ([`crate::accounts::end_sessions`]).

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_proto::api::{
    AdminCreateUserRequest, AdminStats, AdminUserList, AdminUserView, ConversationKind,
    PasswordResetRequest, PresenceVisibility,
};
use parley_proto::{UserId, now_ms};
use parley_store::{GroupChange, GroupChangeKind, UserListQuery};

use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use super::messages::parse_seq;
use crate::accounts::{admin_view, create_account, end_sessions, validate_password};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Users per page when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

/// Largest page (the store's bound too).
const MAX_PAGE: u64 = 200;

/// An administrator may not lock themselves out.
fn not_oneself(Admin(me): &Admin, user: UserId, what: &str) -> ApiResult<()> {
    if me.user == user {
        return Err(ApiError::bad_request(format!(
            "administrators cannot {what} their own account"
        )));
    }
    Ok(())
}

/// `GET /v1/admin/users?q=&after=&limit=`.
#[utoipa::path(
    get,
    path = "/v1/admin/users",
    tag = "admin",
    params(
        ("q" = Option<String>, Query, description = "Part of a username or display name."),
        ("after" = Option<String>, Query, description = "Page on after this user id."),
        ("limit" = Option<u64>, Query, description = "1 to 200."),
    ),
    responses(
        (status = 200, description = "A page of users by ascending id.", body = parley_proto::api::AdminUserList),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_users(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Json<AdminUserList>> {
    let limit = match parse_seq(&query, "limit")? {
        None => DEFAULT_PAGE,
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => limit as usize,
        Some(_) => return Err(ApiError::bad_request("limit must be 1 to 200")),
    };
    let after = match query.get("after").filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => Some(
            raw.parse::<UserId>()
                .map_err(|_| ApiError::bad_request("after must be a user id"))?,
        ),
    };
    let (users, more) = state
        .store
        .list_users(UserListQuery {
            search: query.get("q").cloned(),
            after,
            limit,
        })
        .await?;
    let next_after = if more {
        users.last().map(|u| u.id)
    } else {
        None
    };
    Ok(Json(AdminUserList {
        users: users.iter().map(admin_view).collect(),
        next_after,
    }))
}

/// `POST /v1/admin/users`: works whether or not registration is open.
#[utoipa::path(
    post,
    path = "/v1/admin/users",
    tag = "admin",
    request_body = parley_proto::api::AdminCreateUserRequest,
    responses(
        (status = 201, description = "The new account.", body = parley_proto::api::AdminUserView),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
        (status = 409, description = "Username taken.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_user(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    ApiJson(body): ApiJson<AdminCreateUserRequest>,
) -> ApiResult<Response> {
    let record = create_account(&*state.store, state.auth.passwords(), body.into()).await?;
    Ok((StatusCode::CREATED, Json(admin_view(&record))).into_response())
}

/// `POST /v1/admin/users/{id}/disable`.
#[utoipa::path(
    post,
    path = "/v1/admin/users/{user_id}/disable",
    tag = "admin",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 200, description = "The user as it now is.", body = parley_proto::api::AdminUserView),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn disable(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    ApiPath(user): ApiPath<UserId>,
) -> ApiResult<Json<AdminUserView>> {
    not_oneself(&admin, user, "disable")?;
    let (record, revoked) = state.store.set_user_disabled(user, true, now_ms()).await?;
    end_sessions(&state, user, &revoked);
    tracing::info!(admin = %admin.0.user, %user, "account disabled");
    Ok(Json(admin_view(&record)))
}

/// `POST /v1/admin/users/{id}/enable`.
#[utoipa::path(
    post,
    path = "/v1/admin/users/{user_id}/enable",
    tag = "admin",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 200, description = "The user as it now is.", body = parley_proto::api::AdminUserView),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn enable(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    ApiPath(user): ApiPath<UserId>,
) -> ApiResult<Json<AdminUserView>> {
    let (record, _) = state.store.set_user_disabled(user, false, now_ms()).await?;
    tracing::info!(admin = %admin.0.user, %user, "account enabled");
    Ok(Json(admin_view(&record)))
}

/// `POST /v1/admin/users/{id}/password`: every device is logged out.
#[utoipa::path(
    post,
    path = "/v1/admin/users/{user_id}/password",
    tag = "admin",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    request_body = parley_proto::api::PasswordResetRequest,
    responses(
        (status = 204, description = "The password is set; every device of the user is logged out."),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn reset_password(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    ApiPath(user): ApiPath<UserId>,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> ApiResult<StatusCode> {
    validate_password(&body.password)?;
    // Refuse an unknown user before spending an argon2 run on it.
    if state.store.user_by_id(user).await?.is_none() {
        return Err(ApiError::not_found("user not found"));
    }
    let hash = state.auth.hash_password(body.password).await?;
    let revoked = state.store.set_password(user, hash, now_ms()).await?;
    end_sessions(&state, user, &revoked);
    tracing::info!(admin = %admin.0.user, %user, "password reset");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/admin/users/{id}`: erasure (see `parley_store::Store::erase_user`).
#[utoipa::path(
    delete,
    path = "/v1/admin/users/{user_id}",
    tag = "admin",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 204, description = "The user is erased."),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn erase(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    ApiPath(user): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    not_oneself(&admin, user, "delete")?;
    // It leaves its groups first, as if it left itself: the others see it
    // go (`member_left`), and a group it was the last admin of gets the
    // longest-standing member as admin (the groups rule), instead of
    // keeping an admin nobody can log in as.
    for summary in state.store.conversations_for(user).await? {
        let group = &summary.conversation;
        if group.kind == ConversationKind::Group && group.member(user).is_some() {
            state
                .store
                .change_group(GroupChange {
                    conversation: group.id,
                    actor: user,
                    kind: GroupChangeKind::Remove { user },
                    max_members: state.config.max_group_members,
                    now_ms: now_ms(),
                })
                .await?;
        }
    }
    let revoked = state.store.erase_user(user, now_ms()).await?;
    end_sessions(&state, user, &revoked);
    // The store now hides its presence from everyone; so must the cached
    // profiles here and (cluster mode) on the other nodes.
    state
        .presence
        .visibility_changed(user, PresenceVisibility::Nobody)
        .await;
    tracing::info!(admin = %admin.0.user, %user, "account erased");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/admin/stats`.
#[utoipa::path(
    get,
    path = "/v1/admin/stats",
    tag = "admin",
    responses(
        (status = 200, description = "Counts for the whole server.", body = parley_proto::api::AdminStats),
        (status = 403, description = "Server administrators only.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn stats(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> ApiResult<Json<AdminStats>> {
    let counts = state.store.stats().await?;
    let media_dir = state.config.data_dir.join("media");
    let media_bytes = tokio::task::spawn_blocking(move || dir_bytes(&media_dir))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(AdminStats {
        users: counts.users,
        disabled_users: counts.disabled_users,
        devices: counts.devices,
        conversations: counts.conversations,
        messages: counts.messages,
        live_sockets: state.hub.socket_count() as u64,
        media_bytes,
    }))
}

/// Bytes of the files under `dir` (0 when it does not exist); symlinks are
/// not followed.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
