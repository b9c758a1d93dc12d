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
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::error::{ApiError, ApiResult};
use crate::media::{CapabilityQuery, UploadQuery, parse_size};
use crate::state::AppState;

/// Bytes of any type, as the document shows them: a binary string (a
/// `Vec<u8>` would read as an array of integers).
struct RawBytes;

impl utoipa::PartialSchema for RawBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for RawBytes {}

/// `POST /v1/media` → 201 with the upload slot.
#[utoipa::path(
    post,
    path = "/v1/media",
    tag = "media",
    request_body = parley_proto::api::MediaUploadRequest,
    responses(
        (status = 201, description = "The upload slot: PUT the bytes to `upload.url` with exactly `upload.headers` before `expires_at_ms`.", body = parley_proto::api::MediaUploadSlot),
        (status = 413, description = "Over `max_upload_bytes` or the caller's storage quota.", body = parley_proto::ErrorBody),
        (status = 415, description = "The type is not in `media_allowed_types` (unsupported_media_type).", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    put,
    path = "/v1/media/{id}/blob",
    tag = "media",
    params(
        ("id" = parley_proto::MediaId, Path, description = "A media id."),
        ("e" = i64, Query, description = "The URL's expiry (ms since the epoch), as handed out."),
        ("s" = String, Query, description = "The URL's signature, as handed out."),
    ),
    request_body(content = inline(RawBytes), content_type = "application/octet-stream", description = "The file's bytes: exactly the declared size, sent with the declared `Content-Type` (any type; `application/octet-stream` here stands for it)."),
    responses(
        (status = 200, description = "Received into staging; `complete` verifies it."),
        (status = 403, description = "A changed, expired or unsigned URL, or another Content-Type than the signed one.", body = parley_proto::ErrorBody),
        (status = 404, description = "No such pending media (or the `s3` backend, where uploads go to the bucket).", body = parley_proto::ErrorBody),
        (status = 409, description = "The media is already complete: verified bytes are never replaced.", body = parley_proto::ErrorBody),
    ),
)]
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
#[utoipa::path(
    post,
    path = "/v1/media/{id}/complete",
    tag = "media",
    params(
        ("id" = parley_proto::MediaId, Path, description = "A media id."),
    ),
    responses(
        (status = 200, description = "The verified media.", body = parley_proto::api::MediaView),
        (status = 400, description = "The stored bytes do not match the declared size or sha256, or an image is over the decoding limits (the media is rejected for good).", body = parley_proto::ErrorBody),
        (status = 404, description = "No such media of the caller's, or the bytes were never uploaded.", body = parley_proto::ErrorBody),
        (status = 415, description = "The bytes are not of the declared type (unsupported_media_type).", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn complete(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
) -> ApiResult<Json<MediaView>> {
    let view = state.media.complete(&*state.store, me.user, id).await?;
    Ok(Json(view))
}

/// `GET /v1/media/{id}` → the bytes.
#[utoipa::path(
    get,
    path = "/v1/media/{id}",
    tag = "media",
    params(
        ("id" = parley_proto::MediaId, Path, description = "A media id."),
    ),
    responses(
        (status = 200, description = "The bytes, with their verified Content-Type, `X-Content-Type-Options: nosniff`, a sandboxing CSP, and `Content-Disposition` inline for images, video and audio, attachment otherwise.", content_type = "application/octet-stream", body = inline(RawBytes)),
        (status = 206, description = "`local`: the bytes a `Range: bytes=` header asked for (one range), with `Content-Range`.", content_type = "application/octet-stream", body = inline(RawBytes)),
        (status = 307, description = "`s3` backend: a presigned GET of the bucket, valid at most 120 s.", headers(("Location" = String, description = "The presigned URL."))),
        (status = 416, description = "`local`: the range starts past the end (`Content-Range: bytes */LENGTH`)."),
        (status = 404, description = "No such media, not ready, or not visible to the caller (the same answer).", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let record = state.media.readable(&*state.store, me.user, id).await?;
    state.media.serve(&record, None, range(&headers)).await
}

/// `GET /v1/media/{id}/thumbnail?size=s|m|l` → an image.
#[utoipa::path(
    get,
    path = "/v1/media/{id}/thumbnail",
    tag = "media",
    params(
        ("id" = parley_proto::MediaId, Path, description = "A media id."),
        ("size" = Option<parley_proto::api::ThumbnailSize>, Query, description = "s (96 px), m (320 px, the default) or l (800 px)."),
    ),
    responses(
        (status = 200, description = "The thumbnail: JPEG, or PNG for images with transparency.", content((inline(RawBytes) = "image/jpeg"), (inline(RawBytes) = "image/png"))),
        (status = 307, description = "`s3` backend: a presigned GET of the bucket, valid at most 120 s.", headers(("Location" = String, description = "The presigned URL."))),
        (status = 404, description = "No such media visible to the caller, or it has no thumbnails (not an image).", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn thumbnail(
    State(state): State<Arc<AppState>>,
    Auth(me): Auth,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(query): ApiQuery,
) -> ApiResult<Response> {
    let size = parse_size(query.get("size").map_or("m", String::as_str))?;
    let record = state.media.readable(&*state.store, me.user, id).await?;
    state.media.serve(&record, Some(size), None).await
}

/// `GET /v1/media/{id}/url[?size=]` → a capability URL.
#[utoipa::path(
    get,
    path = "/v1/media/{id}/url",
    tag = "media",
    params(
        ("id" = parley_proto::MediaId, Path, description = "A media id."),
        ("size" = Option<parley_proto::api::ThumbnailSize>, Query, description = "A thumbnail instead of the original."),
    ),
    responses(
        (status = 200, description = "A capability URL (path-absolute) usable without a header, for `<img src>`.", body = parley_proto::api::MediaUrl),
        (status = 404, description = "No such media visible to the caller.", body = parley_proto::ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    get,
    path = "/v1/media/{id}/content",
    tag = "media",
    params(
        ("id" = parley_proto::MediaId, Path, description = "A media id."),
        ("v" = String, Query, description = "What the URL names: `o` (the original) or a thumbnail size."),
        ("e" = i64, Query, description = "The URL's expiry (ms since the epoch)."),
        ("s" = String, Query, description = "The URL's signature."),
    ),
    responses(
        (status = 200, description = "The bytes, with their verified Content-Type, `X-Content-Type-Options: nosniff`, a sandboxing CSP, and `Content-Disposition` inline for images, video and audio, attachment otherwise.", content_type = "application/octet-stream", body = inline(RawBytes)),
        (status = 206, description = "`local`: the bytes a `Range: bytes=` header asked for (one range), with `Content-Range`.", content_type = "application/octet-stream", body = inline(RawBytes)),
        (status = 307, description = "`s3` backend: a presigned GET of the bucket, valid at most 120 s.", headers(("Location" = String, description = "The presigned URL."))),
        (status = 416, description = "`local`: the range starts past the end (`Content-Range: bytes */LENGTH`)."),
        (status = 403, description = "A changed, expired or unsigned URL.", body = parley_proto::ErrorBody),
        (status = 404, description = "The media is gone.", body = parley_proto::ErrorBody),
    ),
)]
pub(super) async fn content(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(query): ApiQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (e, s) = signed(&query)?;
    let v = query.get("v").cloned().unwrap_or_default();
    let (record, size) = state
        .media
        .check_capability(&*state.store, id, &CapabilityQuery { v, e, s })
        .await?;
    state.media.serve(&record, size, range(&headers)).await
}

/// The `Range` header, if any; `If-Range` makes it void (Parley sends no
/// validators, so none can match: the whole object is served).
fn range(headers: &HeaderMap) -> Option<&str> {
    if headers.contains_key(axum::http::header::IF_RANGE) {
        return None;
    }
    headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
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
