//! Push registrations (protocol §12): `GET /v1/push/vapid`,
//! `PUT /v1/me/devices/current/push`, `DELETE /v1/me/devices/current/push`.
//! The rules live in [`crate::push`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use parley_proto::now_ms;
use parley_proto::push::{PushRegistration, VapidKey};

use super::extract::{ApiJson, Auth};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /v1/push/vapid`: the key browsers subscribe with. Public: it is a
/// public key, and a page may ask before it logs in.
#[utoipa::path(
    get,
    path = "/v1/push/vapid",
    tag = "push",
    responses(
        (status = 200, description = "The server's VAPID public key.", body = parley_proto::push::VapidKey),
    ),
)]
pub(super) async fn vapid(State(state): State<Arc<AppState>>) -> Json<VapidKey> {
    Json(VapidKey {
        public_key: state.push.vapid.public_key().to_owned(),
    })
}

/// `PUT /v1/me/devices/current/push`: sets (replaces) the calling device's
/// registration.
#[utoipa::path(
    put,
    path = "/v1/me/devices/current/push",
    tag = "push",
    request_body = parley_proto::push::PushRegistration,
    responses(
        (status = 204, description = "The caller's device is registered for push."),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn register(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<PushRegistration>,
) -> ApiResult<StatusCode> {
    let target = state
        .push
        .check_registration(&state.config, body)
        .await
        .map_err(ApiError::bad_request)?;
    state
        .store
        .set_push_target(me.user, me.device, target, now_ms())
        .await?;
    state.push.note_registered(me.user);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/me/devices/current/push`.
#[utoipa::path(
    delete,
    path = "/v1/me/devices/current/push",
    tag = "push",
    responses(
        (status = 204, description = "The caller's device gets no more pushes."),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn unregister(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
) -> ApiResult<StatusCode> {
    state.store.delete_push_target(me.device).await?;
    Ok(StatusCode::NO_CONTENT)
}
