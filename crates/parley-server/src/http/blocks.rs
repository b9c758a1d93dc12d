//! Blocking (protocol §11): `PUT /v1/me/blocks/{user_id}`,
//! `DELETE /v1/me/blocks/{user_id}`, `GET /v1/me/blocks`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use parley_proto::api::BlockList;
use parley_proto::{UserId, now_ms};

use super::extract::{ApiPath, Auth};
use crate::error::ApiResult;
use crate::state::AppState;

async fn set_block(state: &AppState, user: UserId, other: UserId, blocked: bool) -> ApiResult<()> {
    state
        .store
        .set_block(user, other, blocked, now_ms())
        .await?;
    // Presence and typing follow at once; sends are checked by the store.
    state.presence.blocks_changed(user, other).await?;
    Ok(())
}

/// `PUT /v1/me/blocks/{user_id}`.
#[utoipa::path(
    put,
    path = "/v1/me/blocks/{user_id}",
    tag = "blocks",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 204, description = "The user is blocked."),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn block(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(other): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    set_block(&state, me.user, other, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/me/blocks/{user_id}`.
#[utoipa::path(
    delete,
    path = "/v1/me/blocks/{user_id}",
    tag = "blocks",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 204, description = "The user is not blocked."),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn unblock(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(other): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    set_block(&state, me.user, other, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/me/blocks`.
#[utoipa::path(
    get,
    path = "/v1/me/blocks",
    tag = "blocks",
    responses(
        (status = 200, description = "Users the caller blocks.", body = parley_proto::api::BlockList),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
) -> ApiResult<Json<BlockList>> {
    Ok(Json(BlockList {
        user_ids: state.store.blocks(me.user).await?,
    }))
}
