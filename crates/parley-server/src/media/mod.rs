//! Media (protocol §9): upload slots, receiving and verifying bytes,
//! thumbnails, downloads, and garbage collection, over one blob store.
//!
//! - [`Media`]: the service the HTTP handlers and the collector call.
//! - [`verify`]: the sniffed type against the declared one.
//! - [`thumbs`]: decoding with limits, orientation, re-encoding.
//!
//! `verify` and `thumbs` are public, pure and synchronous so the fuzz
//! targets (fuzz/fuzz_targets/media.rs) drive the very functions
//! `complete` calls.
//! - `urls`: Parley's own signed upload and capability URLs.
//! - `ranges`: which bytes a `Range` header asks for (`local` downloads).
//!
//! Objects live under three prefixes of the blob store: `staging/<id>`
//! (where the client's bytes land), `media/<id>` (the verified bytes, or
//! for images their re-encoded copy, written only by `complete`) and
//! `thumbs/<id>/<size>`. Because `complete` copies out of staging, a
//! still-valid upload URL can overwrite only staging, never what was
//! verified. The rows (state, references, quota) are the store's.

pub(crate) mod ranges;
pub mod thumbs;
pub(crate) mod urls;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::{HeaderName, Method, SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, WriteMultipart,
};
use parley_proto::api::{
    MediaUploadRequest, MediaUploadSlot, MediaUrl, MediaView, ThumbnailSize, UploadTarget,
};
use parley_proto::{MediaId, UserId, now_ms};
use parley_store::{MediaRecord, MediaState, MediaVerified, NewMedia, Store};
use ring::digest;
use tokio::sync::Semaphore;

use crate::config::{Config, MediaBackend};
use crate::error::{ApiError, ApiResult};
use ranges::Wanted;
use thumbs::{ImageLimits, ImageRefusal};
use urls::{Declared, UrlRefusal, UrlSigner};

/// Longest file name kept, in bytes.
const MAX_FILENAME_BYTES: usize = 255;

/// How many media the collector takes per round.
const GC_BATCH: usize = 100;

/// Where the objects are.
enum Backend {
    /// A directory; Parley receives and serves the bytes.
    Local,
    /// A bucket; clients upload and download with presigned URLs.
    S3(Arc<AmazonS3>),
}

/// The media service.
pub struct Media {
    blobs: Arc<dyn ObjectStore>,
    backend: Backend,
    urls: UrlSigner,
    /// Image decodes running at once (`media_thumbnail_workers`).
    decodes: Semaphore,
    max_upload_bytes: u64,
    allowed: Vec<String>,
    quota_bytes: u64,
    upload_url_ms: i64,
    url_ms: i64,
    redirect: Duration,
    max_image_bytes: u64,
    image_limits: ImageLimits,
}

/// Why the media service could not start.
#[derive(Debug, thiserror::Error)]
#[error("media storage: {0}")]
pub struct MediaSetupError(String);

fn staging(id: MediaId) -> ObjectPath {
    ObjectPath::from(format!("staging/{id}"))
}

fn verified(id: MediaId) -> ObjectPath {
    ObjectPath::from(format!("media/{id}"))
}

fn thumbnail(id: MediaId, size: ThumbnailSize) -> ObjectPath {
    ObjectPath::from(format!("thumbs/{id}/{}", size.as_str()))
}

fn secs_to_ms(secs: u64) -> i64 {
    (secs.min(i64::MAX as u64 / 1000) as i64) * 1000
}

impl Media {
    /// Opens the configured backend; `url_key` signs Parley's own URLs.
    pub fn open(config: &Config, url_key: ring::hmac::Key) -> Result<Media, MediaSetupError> {
        let (blobs, backend): (Arc<dyn ObjectStore>, Backend) = match config.media_backend {
            MediaBackend::Local => {
                let dir = config.media_dir();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| MediaSetupError(format!("{}: {e}", dir.display())))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| MediaSetupError(e.to_string()))?;
                (Arc::new(local), Backend::Local)
            }
            MediaBackend::S3 => {
                // `check()` made sure every field is set.
                let field = |v: &Option<String>| v.clone().unwrap_or_default();
                let s3 = AmazonS3Builder::new()
                    .with_endpoint(field(&config.s3_endpoint))
                    .with_region(&config.s3_region)
                    .with_bucket_name(field(&config.s3_bucket))
                    .with_access_key_id(field(&config.s3_access_key_id))
                    .with_secret_access_key(field(&config.s3_secret_access_key))
                    .with_allow_http(true)
                    .build()
                    .map_err(|e| MediaSetupError(e.to_string()))?;
                let s3 = Arc::new(s3);
                (s3.clone(), Backend::S3(s3))
            }
        };
        Ok(Media {
            blobs,
            backend,
            urls: UrlSigner::new(url_key),
            decodes: Semaphore::new(config.media_thumbnail_workers.max(1)),
            max_upload_bytes: config.max_upload_bytes,
            allowed: config.media_allowed_types.clone(),
            quota_bytes: config.media_quota_bytes,
            upload_url_ms: secs_to_ms(config.media_upload_url_secs),
            url_ms: secs_to_ms(config.media_url_secs),
            redirect: Duration::from_secs(config.media_redirect_secs),
            max_image_bytes: config.media_max_image_bytes,
            image_limits: ImageLimits::of(config),
        })
    }

    /// `POST /v1/media`: checks the request against the limits, the type
    /// allow-list and the quota, stores a pending row, and hands out where
    /// to send the bytes.
    pub async fn create_slot(
        &self,
        store: &dyn Store,
        owner: UserId,
        request: MediaUploadRequest,
    ) -> ApiResult<MediaUploadSlot> {
        let content_type = verify::normalize(&request.content_type);
        if !self.allowed.contains(&content_type) {
            return Err(ApiError::unsupported_media_type(format!(
                "{content_type} is not an allowed upload type"
            )));
        }
        if request.size == 0 {
            return Err(ApiError::bad_request("size must be at least 1 byte"));
        }
        if request.size > self.max_upload_bytes {
            return Err(ApiError::too_large(format!(
                "the upload is {} bytes; the limit is {}",
                request.size, self.max_upload_bytes
            )));
        }
        let digest_ok = STANDARD
            .decode(request.sha256.trim())
            .is_ok_and(|d| d.len() == digest::SHA256_OUTPUT_LEN);
        if !digest_ok {
            return Err(ApiError::bad_request(
                "sha256 must be the base64 of the file's 32-byte SHA-256",
            ));
        }
        let filename = request
            .filename
            .as_deref()
            .map(clean_filename)
            .transpose()?;
        let now = now_ms();
        let expires_at_ms = now.saturating_add(self.upload_url_ms);
        let record = store
            .create_media(NewMedia {
                owner,
                content_type,
                size: request.size,
                sha256: request.sha256.trim().to_owned(),
                filename,
                now_ms: now,
                expires_at_ms,
                quota_bytes: self.quota_bytes,
            })
            .await?;
        let upload = self.upload_target(&record, expires_at_ms).await?;
        Ok(MediaUploadSlot {
            media_id: record.id,
            upload,
            expires_at_ms,
        })
    }

    /// Where the client sends the bytes: Parley's own signed URL, or a
    /// presigned `PUT` of the bucket binding the content type and the
    /// SHA-256 (so the bucket refuses other types and other bytes).
    async fn upload_target(
        &self,
        record: &MediaRecord,
        expires_at_ms: i64,
    ) -> ApiResult<UploadTarget> {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("content-type".to_owned(), record.content_type.clone());
        let url = match &self.backend {
            Backend::Local => {
                let signature = self
                    .urls
                    .upload(record.id, expires_at_ms, &declared(record));
                format!(
                    "/v1/media/{}/blob?e={expires_at_ms}&s={signature}",
                    record.id
                )
            }
            Backend::S3(s3) => {
                headers.insert("x-amz-checksum-sha256".to_owned(), record.sha256.clone());
                let mut options = SignedUrlOptions::new();
                for (name, value) in &headers {
                    let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(value),
                    ) else {
                        return Err(ApiError::bad_request("a declared value is not a header"));
                    };
                    options = options.with_signed_header(name, value);
                }
                let ttl = Duration::from_millis(self.upload_url_ms.max(1000) as u64);
                s3.signed_url_opts(Method::PUT, &staging(record.id), ttl, &options)
                    .await
                    .map_err(blob_error)?
                    .to_string()
            }
        };
        Ok(UploadTarget {
            method: "PUT".into(),
            url,
            headers,
        })
    }

    /// Stores `bytes` at `path`; on S3 with their content type, which the
    /// bucket then serves.
    async fn put_typed(
        &self,
        path: &ObjectPath,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> ApiResult<()> {
        let payload = PutPayload::from(bytes);
        let result = match self.backend {
            Backend::Local => self.blobs.put(path, payload).await,
            Backend::S3(_) => {
                let attributes =
                    Attributes::from_iter([(Attribute::ContentType, content_type.to_owned())]);
                let options = PutOptions {
                    attributes,
                    ..PutOptions::default()
                };
                self.blobs.put_opts(path, payload, options).await
            }
        };
        result.map(|_| ()).map_err(blob_error)
    }

    /// The `local` backend's `PUT` of the bytes: the URL's signature and
    /// expiry, the signed content type, a pending media, and at most the
    /// declared size; streamed into staging.
    pub async fn receive_upload(
        &self,
        store: &dyn Store,
        id: MediaId,
        query: &UploadQuery,
        headers: &HeaderMap,
        body: Body,
    ) -> ApiResult<()> {
        if !matches!(self.backend, Backend::Local) {
            return Err(ApiError::not_found("uploads go to the bucket"));
        }
        let record = store
            .media(id)
            .await?
            .ok_or_else(|| ApiError::not_found("media not found"))?;
        self.urls
            .check_upload(id, query.e, &declared(&record), &query.s, now_ms())
            .map_err(url_refusal)?;
        if record.state != MediaState::Pending {
            return Err(ApiError::conflict(
                "this upload is complete; its bytes cannot be replaced",
            ));
        }
        let sent_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if sent_type != record.content_type {
            return Err(ApiError::forbidden(
                "Content-Type is not the one this URL was signed for",
            ));
        }
        let upload = self
            .blobs
            .put_multipart(&staging(id))
            .await
            .map_err(blob_error)?;
        let mut writer = WriteMultipart::new(upload);
        let mut received: u64 = 0;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(ApiError::bad_request(format!(
                        "could not read the body: {err}"
                    )));
                }
            };
            received += chunk.len() as u64;
            if received > record.size {
                let _ = writer.abort().await;
                return Err(ApiError::too_large(format!(
                    "the body is longer than the declared {} bytes",
                    record.size
                )));
            }
            writer.put(chunk);
        }
        writer.finish().await.map_err(blob_error)?;
        Ok(())
    }

    /// `POST /v1/media/{id}/complete`: re-reads what was stored and checks
    /// size, SHA-256 and the sniffed type; images are decoded (bounded,
    /// off the async workers), oriented and re-encoded with thumbnails.
    /// Only then are the bytes copied to where downloads read them and the
    /// media made ready. Wrong bytes reject the media for good.
    pub async fn complete(
        &self,
        store: &dyn Store,
        owner: UserId,
        id: MediaId,
    ) -> ApiResult<MediaView> {
        let record = store
            .media(id)
            .await?
            .filter(|r| r.owner == owner)
            .ok_or_else(|| ApiError::not_found("media not found"))?;
        match record.state {
            MediaState::Ready => return Ok(view(&record)),
            MediaState::Pending => {}
            MediaState::Rejected => {
                return Err(ApiError::bad_request(
                    "this upload was rejected; ask for a new slot",
                ));
            }
            MediaState::Deleting => return Err(ApiError::not_found("media not found")),
        }
        match self.verify(&record).await {
            Ok(found) => {
                let ready = store.complete_media(id, found).await?;
                // Best effort: the collector removes what is left.
                let _ = self.blobs.delete(&staging(id)).await;
                Ok(view(&ready))
            }
            Err(Verdict::Wrong(err)) => {
                store.reject_media(id, now_ms()).await?;
                let _ = self.blobs.delete(&staging(id)).await;
                Err(err)
            }
            Err(Verdict::Trouble(err)) => Err(err),
        }
    }

    async fn verify(&self, record: &MediaRecord) -> Result<MediaVerified, Verdict> {
        let id = record.id;
        let meta = match self.blobs.head(&staging(id)).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Verdict::Trouble(ApiError::bad_request(
                    "nothing was uploaded yet: PUT the bytes first",
                )));
            }
            Err(err) => return Err(Verdict::Trouble(blob_error(err))),
        };
        if meta.size != record.size {
            return Err(Verdict::Wrong(ApiError::bad_request(format!(
                "{} bytes were uploaded; {} were declared",
                meta.size, record.size
            ))));
        }
        let is_image = record.content_type.starts_with("image/");
        let keep_all = is_image && record.size <= self.max_image_bytes;
        let got = self
            .blobs
            .get(&staging(id))
            .await
            .map_err(|e| Verdict::Trouble(blob_error(e)))?;
        let mut stream = got.into_stream();
        let mut hasher = digest::Context::new(&digest::SHA256);
        let mut head: Vec<u8> = Vec::with_capacity(verify::SNIFF_BYTES);
        let mut all: Vec<u8> = Vec::new();
        let mut total: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Verdict::Trouble(blob_error(e)))?;
            total += chunk.len() as u64;
            if total > record.size {
                return Err(Verdict::Wrong(ApiError::bad_request(
                    "more bytes were uploaded than were declared",
                )));
            }
            hasher.update(&chunk);
            if head.len() < verify::SNIFF_BYTES {
                let take = (verify::SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if keep_all {
                all.extend_from_slice(&chunk);
            }
        }
        let sha = STANDARD.encode(hasher.finish().as_ref());
        if total != record.size || sha != record.sha256 {
            return Err(Verdict::Wrong(ApiError::bad_request(
                "the uploaded bytes do not match the declared sha256",
            )));
        }
        verify::check_sniffed(&record.content_type, &head)
            .map_err(|why| Verdict::Wrong(ApiError::unsupported_media_type(why)))?;
        let mut found = MediaVerified {
            content_type: record.content_type.clone(),
            now_ms: now_ms(),
            ..MediaVerified::default()
        };
        let mut display = None;
        if keep_all {
            let processed = self.process_image(all, &record.content_type).await?;
            found.width = Some(processed.width);
            found.height = Some(processed.height);
            for (bytes, thumb) in processed.thumbnails {
                let kind = infer::get(&bytes).map_or("image/jpeg", |k| k.mime_type());
                self.put_typed(&thumbnail(id, thumb.size), bytes, kind)
                    .await
                    .map_err(Verdict::Trouble)?;
                found.thumbnails.push(thumb);
            }
            display = processed.display;
        }
        match display {
            Some(bytes) => self
                .put_typed(&verified(id), bytes, &record.content_type)
                .await
                .map_err(Verdict::Trouble)?,
            None => self
                .blobs
                .copy(&staging(id), &verified(id))
                .await
                .map_err(|e| Verdict::Trouble(blob_error(e)))?,
        }
        Ok(found)
    }

    /// Decodes an image on the blocking pool, at most
    /// `media_thumbnail_workers` at once.
    async fn process_image(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<thumbs::Processed, Verdict> {
        let _permit = self
            .decodes
            .acquire()
            .await
            .map_err(|e| Verdict::Trouble(ApiError::internal(e)))?;
        let content_type = content_type.to_owned();
        let limits = self.image_limits;
        let started = std::time::Instant::now();
        let result =
            tokio::task::spawn_blocking(move || thumbs::process(&bytes, &content_type, limits))
                .await
                .map_err(|e| Verdict::Trouble(ApiError::internal(e)))?;
        metrics::histogram!("parley_media_image_seconds").record(started.elapsed().as_secs_f64());
        result.map_err(|refusal| match refusal {
            ImageRefusal::TooLarge(why) => Verdict::Wrong(ApiError::bad_request(why)),
            ImageRefusal::Undecodable(why) => Verdict::Wrong(ApiError::unsupported_media_type(why)),
        })
    }

    /// Ready media `id` if `viewer` may read it (the same 404 otherwise,
    /// whether it exists or not).
    pub async fn readable(
        &self,
        store: &dyn Store,
        viewer: UserId,
        id: MediaId,
    ) -> ApiResult<MediaRecord> {
        let not_found = || ApiError::not_found("media not found");
        if !store.media_visible(id, viewer).await? {
            return Err(not_found());
        }
        store
            .media(id)
            .await?
            .filter(|r| r.state == MediaState::Ready)
            .ok_or_else(not_found)
    }

    /// A capability URL for `variant` of ready media (checked by the
    /// caller), path-absolute: clients resolve it against the server.
    pub fn capability_url(&self, record: &MediaRecord, size: Option<ThumbnailSize>) -> MediaUrl {
        let expires_at_ms = now_ms().saturating_add(self.url_ms);
        let variant = size.map_or("o", ThumbnailSize::as_str);
        let signature = self.urls.capability(record.id, variant, expires_at_ms);
        MediaUrl {
            url: format!(
                "/v1/media/{}/content?v={variant}&e={expires_at_ms}&s={signature}",
                record.id
            ),
            expires_at_ms,
        }
    }

    /// Checks a capability URL and returns what it names.
    pub async fn check_capability(
        &self,
        store: &dyn Store,
        id: MediaId,
        query: &CapabilityQuery,
    ) -> ApiResult<(MediaRecord, Option<ThumbnailSize>)> {
        let size = match query.v.as_str() {
            "o" => None,
            other => Some(parse_size(other)?),
        };
        self.urls
            .check_capability(id, &query.v, query.e, &query.s, now_ms())
            .map_err(url_refusal)?;
        let record = store
            .media(id)
            .await?
            .filter(|r| r.state == MediaState::Ready)
            .ok_or_else(|| ApiError::not_found("media not found"))?;
        Ok((record, size))
    }

    /// The bytes of ready media (or of one of its thumbnails), with the
    /// headers that keep a browser from treating them as anything else.
    /// On `local`, a `Range` header (`range`) on the original gets 206 with
    /// those bytes, or 416 when none of them exist; thumbnails are small
    /// and always served whole.
    pub async fn serve(
        &self,
        record: &MediaRecord,
        size: Option<ThumbnailSize>,
        range: Option<&str>,
    ) -> ApiResult<Response> {
        let (path, content_type) = match size {
            None => (verified(record.id), record.content_type.clone()),
            Some(size) => {
                if !record.thumbnails.iter().any(|t| t.size == size) {
                    return Err(ApiError::not_found("this media has no thumbnails"));
                }
                (thumbnail(record.id, size), String::new())
            }
        };
        let disposition = disposition(record, size.is_some());
        if let Backend::S3(s3) = &self.backend {
            return self.redirect(s3, &path, &content_type, &disposition).await;
        }
        let part = match range {
            Some(_) if !content_type.is_empty() => {
                // The served size: for images, their re-encoded copy.
                let length = self.blobs.head(&path).await.map_err(blob_error)?.size;
                match ranges::wanted(range, length) {
                    Wanted::All => None,
                    Wanted::Part(part) => Some((part, length)),
                    Wanted::Unsatisfiable => {
                        let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                        let value = HeaderValue::from_str(&format!("bytes */{length}"))
                            .map_err(ApiError::internal)?;
                        response.headers_mut().insert(header::CONTENT_RANGE, value);
                        return Ok(response);
                    }
                }
            }
            _ => None,
        };
        let options = GetOptions {
            range: part
                .as_ref()
                .map(|(part, _)| GetRange::Bounded(*part.start()..part.end() + 1)),
            ..GetOptions::default()
        };
        let got = self
            .blobs
            .get_opts(&path, options)
            .await
            .map_err(blob_error)?;
        let length = got.range.end - got.range.start;
        let (body, content_type) = if content_type.is_empty() {
            // A thumbnail: JPEG, or PNG with transparency; small.
            let bytes = got.bytes().await.map_err(blob_error)?;
            let kind = infer::get(&bytes)
                .map(|k| k.mime_type().to_owned())
                .unwrap_or_else(|| "application/octet-stream".into());
            (Body::from(bytes), kind)
        } else {
            (Body::from_stream(got.into_stream()), content_type)
        };
        let status = if part.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if size.is_none() {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        if let Some((part, total)) = &part {
            let value = format!("bytes {}-{}/{total}", part.start(), part.end());
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&value).map_err(ApiError::internal)?,
            );
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=600"),
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        Ok(response)
    }

    /// S3: a 307 to a presigned `GET` valid `media_redirect_secs`, asking
    /// the bucket to answer with the verified type (thumbnails carry
    /// their own) and the disposition.
    async fn redirect(
        &self,
        s3: &AmazonS3,
        path: &ObjectPath,
        content_type: &str,
        disposition: &str,
    ) -> ApiResult<Response> {
        let mut query = vec![("response-content-disposition", disposition.to_owned())];
        if !content_type.is_empty() {
            query.push(("response-content-type", content_type.to_owned()));
        }
        let options = SignedUrlOptions::new().with_query(query);
        let url = s3
            .signed_url_opts(Method::GET, path, self.redirect, &options)
            .await
            .map_err(blob_error)?;
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
        response.headers_mut().insert(header::LOCATION, location);
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        Ok(response)
    }

    /// One round of garbage collection: claims collectable media (an
    /// upload never completed, or nothing references it, for longer than
    /// the grace period before `before_ms`), deletes their objects, then
    /// their rows. A crash between the steps leaves them claimed, and the
    /// next round finishes them: deleting a missing object succeeds.
    /// Returns how many media were removed.
    pub async fn collect_garbage(&self, store: &dyn Store, before_ms: i64) -> ApiResult<u64> {
        let mut removed = 0;
        loop {
            let ids = store.claim_media_garbage(before_ms, GC_BATCH).await?;
            if ids.is_empty() {
                return Ok(removed);
            }
            for &id in &ids {
                let mut paths = vec![staging(id), verified(id)];
                paths.extend(ThumbnailSize::ALL.map(|size| thumbnail(id, size)));
                for path in paths {
                    match self.blobs.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(err) => return Err(blob_error(err)),
                    }
                }
            }
            let n = store.forget_media(ids.clone()).await?;
            removed += n;
            metrics::counter!("parley_media_collected_total").increment(n);
            if ids.len() < GC_BATCH {
                return Ok(removed);
            }
        }
    }
}

/// How a verification ended other than well.
enum Verdict {
    /// The bytes are wrong: the media is rejected.
    Wrong(ApiError),
    /// Something else failed (nothing uploaded yet, storage trouble): the
    /// client may try again.
    Trouble(ApiError),
}

/// The query of an upload URL.
#[derive(Debug, serde::Deserialize)]
pub struct UploadQuery {
    /// Expiry, ms since the epoch.
    pub e: i64,
    /// Signature.
    pub s: String,
}

/// The query of a capability URL.
#[derive(Debug, serde::Deserialize)]
pub struct CapabilityQuery {
    /// `o` or a thumbnail size.
    pub v: String,
    /// Expiry, ms since the epoch.
    pub e: i64,
    /// Signature.
    pub s: String,
}

/// A thumbnail size from the wire.
pub fn parse_size(size: &str) -> ApiResult<ThumbnailSize> {
    ThumbnailSize::ALL
        .into_iter()
        .find(|s| s.as_str() == size)
        .ok_or_else(|| ApiError::bad_request("size must be s, m or l"))
}

fn declared(record: &MediaRecord) -> Declared<'_> {
    Declared {
        content_type: &record.content_type,
        size: record.size,
        sha256: &record.sha256,
    }
}

fn view(record: &MediaRecord) -> MediaView {
    MediaView {
        media_id: record.id,
        status: "ready".into(),
        content_type: record.content_type.clone(),
        size: record.size,
        width: record.width,
        height: record.height,
        duration_ms: record.duration_ms,
        thumbnails: record.thumbnails.clone(),
    }
}

/// `inline` for images, video and audio (and thumbnails); `attachment`
/// for the rest, so a browser never renders an uploaded document as a
/// page of Parley's origin. The file name is ASCII-safe in `filename` and
/// exact in `filename*`.
fn disposition(record: &MediaRecord, thumbnail: bool) -> String {
    let kind = if thumbnail || verify::is_inline(&record.content_type) {
        "inline"
    } else {
        "attachment"
    };
    let name = record.filename.as_deref().unwrap_or("");
    if name.is_empty() {
        return kind.to_owned();
    }
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A file name as kept: no path, no control characters, at most
/// [`MAX_FILENAME_BYTES`] bytes.
fn clean_filename(name: &str) -> ApiResult<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if base.is_empty() || base.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "filename must be a plain file name without control characters",
        ));
    }
    if base.len() > MAX_FILENAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "filename is longer than {MAX_FILENAME_BYTES} bytes"
        )));
    }
    Ok(base.to_owned())
}

fn url_refusal(refusal: UrlRefusal) -> ApiError {
    match refusal {
        UrlRefusal::BadSignature => ApiError::forbidden("the URL's signature is not valid"),
        UrlRefusal::Expired => ApiError::forbidden("the URL has expired"),
    }
}

fn blob_error(err: object_store::Error) -> ApiError {
    match err {
        object_store::Error::NotFound { .. } => ApiError::not_found("media not found"),
        other => ApiError::internal(format!("blob store: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_attachments_are_quoted_safely() {
        assert_eq!(clean_filename("../../etc/passwd").unwrap(), "passwd");
        assert!(clean_filename("a\nb").is_err());
        assert!(clean_filename("dir/").is_err());
        let record = MediaRecord {
            id: MediaId(1),
            owner: UserId(1),
            state: MediaState::Ready,
            content_type: "text/html".into(),
            size: 1,
            sha256: String::new(),
            filename: Some("résumé \"x\".html".into()),
            width: None,
            height: None,
            duration_ms: None,
            thumbnails: Vec::new(),
            created_at_ms: 0,
            expires_at_ms: 0,
        };
        let d = disposition(&record, false);
        assert!(
            d.starts_with("attachment; filename=\"r_sum_ _x_.html\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.html"),
            "{d}"
        );
    }
}
