//! The HTTP API under `/v1`, plus `/healthz` and `/metrics`.
//!
//! Extractors here turn every malformed input into the protocol's JSON error
//! (never axum's plain-text defaults): [`ApiJson`] for bodies, [`Auth`] for
//! the bearer token, and ids parsed from path strings by hand.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use parley_proto::api::*;
use parley_proto::{ConversationId, DeviceId, Role, UserId, limits, now_ms};
use parley_store::{
    ConversationRecord, GroupChange, GroupChangeKind, HistoryQuery, NewGroup, NewUser, StoreError,
};
use serde::de::DeserializeOwned;

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::hub::close_code;
use crate::state::AppState;

/// The `/v1` API, health and metrics.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/users", post(register).get(find_user))
        .route("/v1/users/{user_id}", get(get_user))
        .route("/v1/users/{user_id}/presence", get(get_presence))
        .route("/v1/sessions", post(login))
        .route("/v1/sessions/current", delete(logout))
        .route("/v1/me", get(me))
        .route("/v1/me/settings", put(update_settings))
        .route("/v1/me/devices/{device_id}", delete(revoke_device))
        .route("/v1/conversations", get(list_conversations))
        .route("/v1/conversations/direct", post(open_direct))
        .route("/v1/conversations/{id}", get(get_conversation))
        .route(
            "/v1/conversations/{id}/messages",
            get(history).post(send_message),
        )
        .route("/v1/groups", post(create_group))
        .route("/v1/groups/{id}", patch(rename_group))
        .route("/v1/groups/{id}/members", post(add_members))
        .route("/v1/groups/{id}/members/{user_id}", delete(remove_member))
        .route("/v1/groups/{id}/members/{user_id}/role", put(set_role))
        .route("/v1/ws", get(crate::ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed() -> Response {
    let mut response = ApiError::bad_request("method not allowed on this endpoint").into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// A JSON body whose rejection is the protocol's own error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("request body is over the limit")
            } else {
                ApiError::bad_request(format!("could not read the body: {rejection}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")))
    }
}

/// Path parameters whose rejection (bad percent-encoding) is our 404.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::not_found(format!("no such resource: {rejection}")))
    }
}

/// The query string as a map, with the protocol's 400 on malformed input.
pub struct ApiQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(map)| ApiQuery(map))
            .map_err(|rejection| {
                ApiError::bad_request(format!("malformed query string: {rejection}"))
            })
    }
}

/// The caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Identity);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer token"))?;
        state.auth.verify(token.trim(), now_ms()).map(Auth)
    }
}

fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("{what} not found")))
}

fn validate_username(username: &str) -> ApiResult<()> {
    let ok_len =
        (limits::USERNAME_MIN_CHARS..=limits::USERNAME_MAX_CHARS).contains(&username.len());
    let ok_chars = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "username must be 3 to 32 of a-z, 0-9, _ and .",
        ))
    }
}

fn user_view(record: &parley_store::UserRecord) -> UserView {
    UserView {
        user_id: record.id,
        username: record.username.clone(),
        display_name: record.display_name.clone(),
    }
}

async fn register(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    if !state.config.registration_open {
        return Err(ApiError::forbidden("registration is closed on this server"));
    }
    validate_username(&body.username)?;
    let password_len = body.password.chars().count();
    if !(limits::PASSWORD_MIN_CHARS..=limits::PASSWORD_MAX_CHARS).contains(&password_len) {
        return Err(ApiError::bad_request(
            "password must be 8 to 256 characters",
        ));
    }
    let display_name = match body.display_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            if name.chars().count() > 64 {
                return Err(ApiError::bad_request(
                    "display_name must be at most 64 characters",
                ));
            }
            name.to_owned()
        }
        _ => body.username.clone(),
    };
    if state
        .store
        .user_by_username(&body.username)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            parley_proto::ErrorCode::Conflict,
            "username is taken",
        ));
    }
    let password_hash = state.auth.hash_password(body.password).await?;
    let record = state
        .store
        .create_user(NewUser {
            username: body.username,
            display_name,
            password_hash,
            now_ms: now_ms(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&record))).into_response())
}

async fn login(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    state
        .login_limiter
        .check(&body.username)
        .map_err(ApiError::rate_limited)?;
    let bad = || ApiError::unauthorized("wrong username or password");
    if body.password.len() > 1024 {
        return Err(bad());
    }
    let Some(user) = state.store.user_by_username(&body.username).await? else {
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
    let device_name = body
        .device_name
        .map(|n| n.trim().chars().take(64).collect::<String>())
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

async fn end_device(state: &AppState, user: UserId, device: DeviceId) -> ApiResult<()> {
    state.store.revoke_device(user, device, now_ms()).await?;
    state.auth.revoke(device);
    state
        .hub
        .close_device(user, device, close_code::UNAUTHORIZED);
    Ok(())
}

async fn logout(State(state): State<Arc<AppState>>, Auth(me): Auth) -> ApiResult<StatusCode> {
    end_device(&state, me.user, me.device).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_device(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(device_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let device: DeviceId = parse_id(&device_id, "device")?;
    end_device(&state, me.user, device).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<Arc<AppState>>, Auth(me): Auth) -> ApiResult<Json<MeResponse>> {
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

async fn update_settings(
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
    let user = state
        .store
        .user_by_id(me.user)
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    Ok(Json(SettingsResponse {
        presence_visibility: user.presence_visibility,
    }))
}

async fn get_user(
    State(state): State<Arc<AppState>>,
    Auth(_): Auth,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<Json<UserView>> {
    let id: UserId = parse_id(&user_id, "user")?;
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    Ok(Json(user_view(&user)))
}

async fn find_user(
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

async fn get_presence(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<Json<PresenceView>> {
    let id: UserId = parse_id(&user_id, "user")?;
    if state.store.user_by_id(id).await?.is_none() {
        return Err(ApiError::not_found("user not found"));
    }
    Ok(Json(state.presence.view(id, me.user).await?))
}

fn member_roles(record: &ConversationRecord) -> Vec<MemberRole> {
    record
        .members
        .iter()
        .map(|m| MemberRole {
            user_id: m.user_id,
            role: m.role,
        })
        .collect()
}

fn created(record: &ConversationRecord) -> ConversationCreated {
    ConversationCreated {
        conversation_id: record.id,
        kind: record.kind,
        name: record.name.clone(),
        members: member_roles(record),
    }
}

fn details(record: &ConversationRecord) -> ConversationDetails {
    ConversationDetails {
        conversation_id: record.id,
        kind: record.kind,
        name: record.name.clone(),
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

async fn open_direct(
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

async fn list_conversations(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
) -> ApiResult<Json<ConversationList>> {
    let summaries = state.store.conversations_for(me.user).await?;
    let conversations = summaries
        .into_iter()
        .map(|s| {
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

async fn get_conversation(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ConversationDetails>> {
    let id: ConversationId = parse_id(&id, "conversation")?;
    let record = member_conversation(&state, id, me.user).await?;
    Ok(Json(details(&record)))
}

fn parse_seq(query: &HashMap<String, String>, key: &str) -> ApiResult<Option<u64>> {
    match query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|&v| v < (1u64 << 53))
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be a non-negative integer"))),
    }
}

async fn history(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Json<HistoryPage>> {
    let id: ConversationId = parse_id(&id, "conversation")?;
    let limit = match parse_seq(&query, "limit")? {
        None => limits::HISTORY_DEFAULT_LIMIT,
        Some(limit) if (1..=limits::HISTORY_MAX_LIMIT as u64).contains(&limit) => limit as usize,
        Some(_) => return Err(ApiError::bad_request("limit must be 1 to 100")),
    };
    let (messages, has_more) = state
        .store
        .history(HistoryQuery {
            conversation: id,
            viewer: me.user,
            before_seq: parse_seq(&query, "before_seq")?,
            after_seq: parse_seq(&query, "after_seq")?,
            limit,
        })
        .await?;
    Ok(Json(HistoryPage { messages, has_more }))
}

async fn send_message(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SendRequest>,
) -> ApiResult<Response> {
    let id: ConversationId = parse_id(&id, "conversation")?;
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return Err(ApiError::new(
            parley_proto::ErrorCode::Unavailable,
            "server is shutting down",
        ));
    }
    let new = crate::ws::validate_send(
        &state,
        me,
        body.client_msg_id,
        id,
        body.kind,
        body.text,
        body.reply_to_seq,
    )?;
    state.check_send_rate(me.user)?;
    metrics::counter!("parley_sends_total").increment(1);
    let appended = state.store.append_message(new).await?;
    let status = if appended.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(SendResponse {
            message: appended.message,
        }),
    )
        .into_response())
}

async fn create_group(
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

async fn change_group(
    state: &AppState,
    actor: UserId,
    id: &str,
    kind: GroupChangeKind,
) -> ApiResult<ConversationRecord> {
    let conversation: ConversationId = parse_id(id, "group")?;
    state
        .store
        .change_group(GroupChange {
            conversation,
            actor,
            kind,
            max_members: state.config.max_group_members,
            now_ms: now_ms(),
        })
        .await
        .map_err(|err| match err {
            StoreError::Invalid(message) if message.contains("only groups") => {
                ApiError::not_found("group not found")
            }
            other => other.into(),
        })
}

async fn rename_group(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RenameRequest>,
) -> ApiResult<Json<ConversationCreated>> {
    let record = change_group(
        &state,
        me.user,
        &id,
        GroupChangeKind::Rename { name: body.name },
    )
    .await?;
    Ok(Json(created(&record)))
}

async fn add_members(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddMembersRequest>,
) -> ApiResult<Json<ConversationCreated>> {
    let record = change_group(
        &state,
        me.user,
        &id,
        GroupChangeKind::Add {
            users: body.user_ids,
        },
    )
    .await?;
    Ok(Json(created(&record)))
}

async fn remove_member(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let user: UserId = parse_id(&user_id, "member")?;
    change_group(&state, me.user, &id, GroupChangeKind::Remove { user }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_role(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> ApiResult<Json<ConversationCreated>> {
    let user: UserId = parse_id(&user_id, "member")?;
    let role: Role = body.role;
    let record = change_group(
        &state,
        me.user,
        &id,
        GroupChangeKind::SetRole { user, role },
    )
    .await?;
    Ok(Json(created(&record)))
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}
