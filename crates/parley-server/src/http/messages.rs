//! Messages over HTTP: `GET /v1/conversations/{id}/messages` (history) and
//! `POST /v1/conversations/{id}/messages` (send, through the same send
//! service as the WebSocket).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_proto::api::{HistoryPage, SendRequest, SendResponse};
use parley_proto::{ConversationId, limits};
use parley_store::HistoryQuery;

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::error::{ApiError, ApiResult};
use crate::send::{self, Outgoing};
use crate::state::AppState;

/// Largest `seq` a query may name: what JavaScript holds exactly.
const MAX_QUERY_SEQ: u64 = 1 << 53;

pub(super) fn parse_seq(query: &HashMap<String, String>, key: &str) -> ApiResult<Option<u64>> {
    match query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|&v| v < MAX_QUERY_SEQ)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be a non-negative integer"))),
    }
}

/// `GET /v1/conversations/{id}/messages?before_seq=&after_seq=&limit=`.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}/messages",
    tag = "messages",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A conversation id."),
        ("before_seq" = Option<u64>, Query, description = "Messages below this seq."),
        ("after_seq" = Option<u64>, Query, description = "Messages above this seq."),
        ("limit" = Option<u64>, Query, description = "1 to 100."),
    ),
    responses(
        (status = 200, description = "A page of history, ascending seq.", body = parley_proto::api::HistoryPage),
        (status = 403, description = "Not a member.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such conversation.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn history(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<ConversationId>,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Json<HistoryPage>> {
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

/// `POST /v1/conversations/{id}/messages`: 201 when stored now, 200 for a
/// repeat of a `client_msg_id` already stored.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/messages",
    tag = "messages",
    params(
        ("id" = parley_proto::ConversationId, Path, description = "A conversation id."),
    ),
    request_body = parley_proto::api::SendRequest,
    responses(
        (status = 200, description = "Already stored under this client_msg_id.", body = parley_proto::api::SendResponse),
        (status = 201, description = "Stored.", body = parley_proto::api::SendResponse),
        (status = 403, description = "Not a member, or blocked.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such conversation or message.", body = parley_proto::ErrorBody),
        (status = 413, description = "Over a size limit.", body = parley_proto::ErrorBody),
        (status = 429, description = "Over a rate limit.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn send_message(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<ConversationId>,
    ApiJson(body): ApiJson<SendRequest>,
) -> ApiResult<Response> {
    let outgoing = Outgoing {
        client_msg_id: body.client_msg_id,
        conversation_id: id,
        kind: body.kind,
        text: body.text,
        reply_to_seq: body.reply_to_seq,
        target_seq: body.target_seq,
        emoji: body.emoji,
        forwarded: body.forwarded,
        media: body.media.into_iter().map(|m| m.media_id).collect(),
    };
    let appended = send::start(&state, me, outgoing)?.await?;
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
