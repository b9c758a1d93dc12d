//! Accounts, sessions and devices: `POST /v1/users`, `GET /v1/users`,
//! `GET /v1/users/{user_id}`, `POST /v1/sessions`,
//! `DELETE /v1/sessions/current`, `GET /v1/me`, `PATCH /v1/me`,
//! `PUT /v1/me/settings`, `DELETE /v1/me/devices/{device_id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_proto::api::{
    DeviceView, LoginRequest, LoginResponse, MeResponse, ProfileRequest, RegisterRequest,
    SettingsRequest, SettingsResponse, UserView,
};
use parley_proto::{DeviceId, UserId, close_code, now_ms};
use parley_store::{ProfileChange, UserRecord};

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::accounts::{MAX_NAME_CHARS, create_account};
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest password even looked at on login, in bytes.
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

pub(super) fn user_view(record: &UserRecord) -> UserView {
    UserView {
        user_id: record.id,
        username: record.username.clone(),
        display_name: record.display_name.clone(),
        avatar_media_id: record.avatar_media_id.clone(),
    }
}

/// `PATCH /v1/me`: display name and avatar.
#[utoipa::path(
    patch,
    path = "/v1/me",
    tag = "accounts",
    request_body = parley_proto::api::ProfileRequest,
    responses(
        (status = 200, description = "The caller's profile as it now is.", body = parley_proto::api::UserView),
        (status = 400, description = "A bad display name, or the avatar is not a ready image.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such media of the caller's.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn update_me(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<ProfileRequest>,
) -> ApiResult<Json<UserView>> {
    let user = state
        .store
        .update_profile(
            me.user,
            ProfileChange {
                display_name: body.display_name,
                avatar_media_id: body.avatar_media_id,
                now_ms: now_ms(),
                ..ProfileChange::default()
            },
        )
        .await?;
    Ok(Json(user_view(&user)))
}

/// `POST /v1/users`.
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "accounts",
    request_body = parley_proto::api::RegisterRequest,
    responses(
        (status = 201, description = "The new account.", body = parley_proto::api::UserView),
        (status = 403, description = "Registration is closed on this server.", body = parley_proto::ErrorBody),
        (status = 409, description = "Username taken.", body = parley_proto::ErrorBody),
    ),
)]
pub(super) async fn register(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    if !state.config.registration_open {
        return Err(ApiError::forbidden("registration is closed on this server"));
    }
    let record = create_account(&*state.store, state.auth.passwords(), body.into()).await?;
    Ok((StatusCode::CREATED, Json(user_view(&record))).into_response())
}

/// `POST /v1/sessions`.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "accounts",
    request_body = parley_proto::api::LoginRequest,
    responses(
        (status = 201, description = "A new device and its token.", body = parley_proto::api::LoginResponse),
        (status = 401, description = "Wrong username or password.", body = parley_proto::ErrorBody),
        (status = 403, description = "The account is disabled.", body = parley_proto::ErrorBody),
        (status = 429, description = "Over a rate limit.", body = parley_proto::ErrorBody),
    ),
)]
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    match &state.cluster {
        Some(cluster) => {
            cluster
                .check_login(
                    &state.login_limiter,
                    &body.username,
                    state.config.login_attempts_per_minute,
                )
                .await
        }
        None => state.login_limiter.check(&body.username),
    }
    .map_err(ApiError::rate_limited)?;
    let bad = || ApiError::unauthorized("wrong username or password");
    if body.password.len() > MAX_LOGIN_PASSWORD_BYTES {
        return Err(bad());
    }
    // An erased account has no password; it answers like an unknown name.
    let user = state
        .store
        .user_by_username(&body.username)
        .await?
        .filter(|user| user.erased_at_ms.is_none());
    let Some(user) = user else {
        state.auth.dummy_verify(body.password).await;
        return Err(bad());
    };
    if !state
        .auth
        .verify_password(body.password, user.password_hash.clone())
        .await?
    {
        return Err(bad());
    }
    // Told only to whoever knows the password. The store checks again
    // when it makes the device, so a login racing a disable cannot win.
    if user.disabled_at_ms.is_some() {
        return Err(ApiError::forbidden("this account is disabled"));
    }
    let device_name = body
        .device_name
        .map(|n| n.trim().chars().take(MAX_NAME_CHARS).collect::<String>())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unnamed device".into());
    let now = now_ms();
    let device = state.store.create_device(user.id, device_name, now).await?;
    let identity = Identity {
        user: user.id,
        device: device.id,
    };
    let (token, expires_at_ms) = state.auth.issue(identity, now);
    let body = LoginResponse {
        token,
        user_id: user.id,
        device_id: device.id,
        expires_at_ms,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes `device` of `user`: storage, the token check, its sockets.
async fn end_device(state: &AppState, user: UserId, device: DeviceId) -> ApiResult<()> {
    state.store.revoke_device(user, device, now_ms()).await?;
    state.auth.revoke(device);
    state
        .hub
        .close_device(user, device, close_code::UNAUTHORIZED);
    if let Some(cluster) = &state.cluster {
        cluster.broadcast_revoke(user, device);
    }
    Ok(())
}

/// `DELETE /v1/sessions/current`.
#[utoipa::path(
    delete,
    path = "/v1/sessions/current",
    tag = "accounts",
    responses(
        (status = 204, description = "The caller's device is logged out."),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
) -> ApiResult<StatusCode> {
    end_device(&state, me.user, me.device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/me/devices/{device_id}`.
#[utoipa::path(
    delete,
    path = "/v1/me/devices/{device_id}",
    tag = "accounts",
    params(
        ("device_id" = parley_proto::DeviceId, Path, description = "One of the caller's devices."),
    ),
    responses(
        (status = 204, description = "The device is logged out."),
        (status = 404, description = "No such device.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke_device(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(device): ApiPath<DeviceId>,
) -> ApiResult<StatusCode> {
    end_device(&state, me.user, device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/me`.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    responses(
        (status = 200, description = "The caller's account and devices.", body = parley_proto::api::MeResponse),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn me(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
) -> ApiResult<Json<MeResponse>> {
    let user = state
        .store
        .user_by_id(me.user)
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    let devices = state.store.devices(me.user).await?;
    Ok(Json(MeResponse {
        user_id: user.id,
        username: user.username,
        display_name: user.display_name,
        presence_visibility: user.presence_visibility,
        avatar_media_id: user.avatar_media_id,
        read_receipts: user.read_receipts,
        push_previews: user.push_previews,
        is_admin: user.is_admin,
        devices: devices
            .into_iter()
            .map(|d| DeviceView {
                device_id: d.id,
                device_name: d.name,
                created_at_ms: d.created_at_ms,
            })
            .collect(),
    }))
}

/// `PUT /v1/me/settings`.
#[utoipa::path(
    put,
    path = "/v1/me/settings",
    tag = "accounts",
    request_body = parley_proto::api::SettingsRequest,
    responses(
        (status = 200, description = "The settings as they now are.", body = parley_proto::api::SettingsResponse),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn update_settings(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<SettingsRequest>,
) -> ApiResult<Json<SettingsResponse>> {
    if let Some(visibility) = body.presence_visibility {
        state
            .store
            .set_presence_visibility(me.user, visibility)
            .await?;
        state.presence.visibility_changed(me.user, visibility).await;
    }
    let user = if body.read_receipts.is_some() || body.push_previews.is_some() {
        state
            .store
            .update_profile(
                me.user,
                ProfileChange {
                    read_receipts: body.read_receipts,
                    push_previews: body.push_previews,
                    ..ProfileChange::default()
                },
            )
            .await?
    } else {
        state
            .store
            .user_by_id(me.user)
            .await?
            .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?
    };
    Ok(Json(SettingsResponse {
        presence_visibility: user.presence_visibility,
        read_receipts: user.read_receipts,
        push_previews: user.push_previews,
    }))
}

/// `GET /v1/users/{user_id}`.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}",
    tag = "accounts",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 200, description = "The user.", body = parley_proto::api::UserView),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_user(
    State(state): State<Arc<AppState>>,
    Auth(_): Auth,
    ApiPath(user): ApiPath<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = state
        .store
        .user_by_id(user)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    Ok(Json(user_view(&user)))
}

/// `GET /v1/users?username=NAME`.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "accounts",
    params(
        ("username" = String, Query, description = "The login name to look up."),
    ),
    responses(
        (status = 200, description = "The user.", body = parley_proto::api::UserView),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn find_user(
    State(state): State<Arc<AppState>>,
    Auth(_): Auth,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Json<UserView>> {
    let username = query
        .get("username")
        .ok_or_else(|| ApiError::bad_request("give ?username=NAME"))?;
    let user = state
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    Ok(Json(user_view(&user)))
}
