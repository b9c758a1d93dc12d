//! `GET /readyz`: 200 only when every dependency answers (the store, and
//! Redis in cluster mode), else 503 naming the ones that do not. Unlike
//! `/healthz` (what a load balancer checks), it follows the dependencies.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_proto::UserId;

use crate::state::AppState;

/// How long each dependency may take to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency reachable.", body = String, content_type = "text/plain"),
        (status = 503, description = "A dependency is not reachable.", body = String, content_type = "text/plain"),
    ),
)]
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut down = Vec::new();
    // Any read goes to the database; user 0 does not exist.
    let store = tokio::time::timeout(CHECK_TIMEOUT, state.store.user_by_id(UserId(0))).await;
    if !matches!(store, Ok(Ok(_))) {
        down.push(if state.config.database.is_some() {
            "postgresql"
        } else {
            "storage"
        });
    }
    if let Some(cluster) = &state.cluster
        && (cluster.ping().await.is_err() || !cluster.is_subscribed())
    {
        down.push("redis");
    }
    if down.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready: {} unreachable\n", down.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
