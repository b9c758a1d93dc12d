//! `/v1/media` (protocol §9): upload slots, the `local` backend's upload
//! URL, completion, downloads, thumbnails and capability URLs. The work is
//! [`crate::media::Media`]'s; this module reads requests and answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parley_proto::MediaId;
use parley_proto::api::{MediaUploadRequest, MediaUrl, MediaView};

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::error::{ApiError, ApiResult};
use crate::media::{CapabilityQuery, UploadQuery, parse_size};
use crate::state::AppState;

/// `POST /v1/media` → 201 with the upload slot.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<MediaUploadRequest>,
) -> ApiResult<Response> {
    let slot = state
        .media
        .create_slot(&*state.store, me.user, body)
        .await?;
    Ok((StatusCode::CREATED, Json(slot)).into_response())
}

/// `PUT /v1/media/{id}/blob?e=&s=`: the bytes (the `local` backend). The
/// URL is the credential: no bearer token, as for a presigned bucket URL.
pub(super) async fn upload(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(query): ApiQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let (e, s) = signed(&query)?;
    state
        .media
        .receive_upload(&*state.store, id, &UploadQuery { e, s }, &headers, body)
        .await?;
    Ok(StatusCode::OK)
}

/// `POST /v1/media/{id}/complete` → the verified media.
pub(super) async fn complete(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
) -> ApiResult<Json<MediaView>> {
    let view = state.media.complete(&*state.store, me.user, id).await?;
    Ok(Json(view))
}

/// `GET /v1/media/{id}` → the bytes.
pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
) -> ApiResult<Response> {
    let record = state.media.readable(&*state.store, me.user, id).await?;
    state.media.serve(&record, None).await
}

/// `GET /v1/media/{id}/thumbnail?size=s|m|l` → an image.
pub(super) async fn thumbnail(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Response> {
    let size = parse_size(query.get("size").map_or("m", String::as_str))?;
    let record = state.media.readable(&*state.store, me.user, id).await?;
    state.media.serve(&record, Some(size)).await
}

/// `GET /v1/media/{id}/url[?size=]` → a capability URL.
pub(super) async fn capability(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Json<MediaUrl>> {
    let size = query.get("size").map(|s| parse_size(s)).transpose()?;
    let record = state.media.readable(&*state.store, me.user, id).await?;
    Ok(Json(state.media.capability_url(&record, size)))
}

/// `GET /v1/media/{id}/content?v=&e=&s=`: what a capability URL names,
/// without a header.
pub(super) async fn content(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Response> {
    let (e, s) = signed(&query)?;
    let v = query.get("v").cloned().unwrap_or_default();
    let (record, size) = state
        .media
        .check_capability(&*state.store, id, &CapabilityQuery { v, e, s })
        .await?;
    state.media.serve(&record, size).await
}

/// The expiry and signature of a signed URL; a URL without them is as
/// forged as one with wrong ones.
fn signed(query: &HashMap<String, String>) -> ApiResult<(i64, String)> {
    let e = query.get("e").and_then(|e| e.parse().ok());
    match (e, query.get("s")) {
        (Some(e), Some(s)) => Ok((e, s.clone())),
        _ => Err(ApiError::forbidden("the URL is not signed")),
    }
}
