//! `GET /v1/users/{user_id}/presence`: a user's presence as the caller may
//! see it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use parley_proto::UserId;
use parley_proto::api::PresenceView;

use super::extract::{ApiPath, Auth};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /v1/users/{user_id}/presence`.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/presence",
    tag = "presence",
    params(
        ("user_id" = parley_proto::UserId, Path, description = "A user id."),
    ),
    responses(
        (status = 200, description = "The user's presence.", body = parley_proto::api::PresenceView),
        (status = 404, description = "No such user.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_presence(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(user): ApiPath<UserId>,
) -> ApiResult<Json<PresenceView>> {
    if state.store.user_by_id(user).await?.is_none() {
        return Err(ApiError::not_found("user not found"));
    }
    Ok(Json(state.presence.view(user, me.user).await?))
}
