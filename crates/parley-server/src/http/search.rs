//! `GET /v1/search?q=&conversation_id=&before_seq=&before_id=&limit=`
//! (protocol §10): the caller's history matching `q`, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use parley_proto::api::SearchResults;
use parley_proto::{ConversationId, MessageId, limits};
use parley_store::SearchQuery;

use super::extract::{ApiQuery, Auth};
use super::messages::parse_seq;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /v1/search`.
#[utoipa::path(
    get,
    path = "/v1/search",
    tag = "messages",
    params(
        ("q" = String, Query, description = "The text to find."),
        ("conversation_id" = Option<String>, Query, description = "Search only this conversation."),
        ("before_id" = Option<String>, Query, description = "Page on: matches older than this message id."),
        ("before_seq" = Option<u64>, Query, description = "Page on within one conversation."),
        ("limit" = Option<u64>, Query, description = "1 to 50."),
    ),
    responses(
        (status = 200, description = "Matching messages, newest first.", body = parley_proto::api::SearchResults),
        (status = 403, description = "Not a member of the conversation.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such conversation.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Json<SearchResults>> {
    let text = query
        .get("q")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("give ?q=TEXT"))?;
    let limit = match parse_seq(&query, "limit")? {
        None => limits::SEARCH_DEFAULT_LIMIT,
        Some(limit) if (1..=limits::SEARCH_MAX_LIMIT as u64).contains(&limit) => limit as usize,
        Some(_) => return Err(ApiError::bad_request("limit must be 1 to 50")),
    };
    // Ids are opaque: one that names nothing reads as the unknown id.
    let conversation = query
        .get("conversation_id")
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<ConversationId>()
                .unwrap_or(ConversationId::UNKNOWN)
        });
    let before_id = match query.get("before_id").filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => Some(
            raw.parse::<MessageId>()
                .map_err(|_| ApiError::bad_request("before_id must be a message id"))?
                .0,
        ),
    };
    let (results, has_more) = state
        .store
        .search(SearchQuery {
            viewer: me.user,
            text,
            conversation,
            before_seq: parse_seq(&query, "before_seq")?,
            before_id,
            limit,
        })
        .await?;
    Ok(Json(SearchResults { results, has_more }))
}
