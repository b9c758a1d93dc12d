//! Media (protocol §9): upload in three steps (slot, `PUT` of the bytes
//! to wherever the slot says, `complete`), and downloads: by bearer token,
//! thumbnails, and capability URLs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parley_proto::MediaId;
use parley_proto::api::{
    MediaUploadRequest, MediaUploadSlot, MediaUrl, MediaView, ThumbnailSize, UploadTarget,
};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::error::{ClientError, ClientResult};
use crate::http::Client;
use crate::transport::api_error;

/// What a download answered.
#[derive(Debug, Clone)]
pub struct Download {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// `Content-Type`.
    pub content_type: String,
    /// `Content-Disposition` (`inline` or `attachment; filename=...`).
    pub disposition: String,
    /// `X-Content-Type-Options`.
    pub nosniff: bool,
}

/// The standard base64 of the SHA-256 of `bytes`, as an upload declares it.
pub fn sha256_base64(bytes: &[u8]) -> String {
    STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

impl Client {
    /// Uploads `bytes` as `content_type` and completes the upload: the
    /// three steps of §9 in one call.
    pub async fn upload_media(
        &self,
        bytes: &[u8],
        content_type: &str,
        filename: Option<&str>,
    ) -> ClientResult<MediaView> {
        let slot = self
            .create_media(&MediaUploadRequest {
                content_type: content_type.into(),
                size: bytes.len() as u64,
                sha256: sha256_base64(bytes),
                filename: filename.map(String::from),
            })
            .await?;
        self.put_upload(&slot.upload, bytes.to_vec()).await?;
        self.complete_media(slot.media_id).await
    }

    /// `POST /v1/media`: an upload slot.
    pub async fn create_media(&self, body: &MediaUploadRequest) -> ClientResult<MediaUploadSlot> {
        Ok(self.call(Method::POST, "/v1/media", Some(body)).await?.1)
    }

    /// Sends the bytes as the slot says: `PUT url` with exactly its
    /// headers and no bearer token (the URL is the credential; a bucket
    /// would refuse a second one).
    pub async fn put_upload(&self, target: &UploadTarget, bytes: Vec<u8>) -> ClientResult<()> {
        let method = Method::from_bytes(target.method.as_bytes())
            .map_err(|_| ClientError::Protocol(format!("bad upload method {}", target.method)))?;
        let mut request = self.plain_request(method, &target.url);
        for (name, value) in &target.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(ClientError::Protocol(format!("bad upload header {name}")));
            };
            request = request.header(name, value);
        }
        let response = request.body(bytes).send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await?;
        Err(api_error(status, &body))
    }

    /// `POST /v1/media/{id}/complete`.
    pub async fn complete_media(&self, id: MediaId) -> ClientResult<MediaView> {
        let path = format!("/v1/media/{id}/complete");
        Ok(self.call::<(), _>(Method::POST, &path, None).await?.1)
    }

    /// `GET /v1/media/{id}`, following a redirect to the bucket.
    pub async fn download_media(&self, id: MediaId) -> ClientResult<Download> {
        self.fetch(self.request(Method::GET, &format!("/v1/media/{id}")))
            .await
    }

    /// `GET /v1/media/{id}/thumbnail?size=`.
    pub async fn thumbnail(&self, id: MediaId, size: ThumbnailSize) -> ClientResult<Download> {
        let path = format!("/v1/media/{id}/thumbnail?size={}", size.as_str());
        self.fetch(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/media/{id}/url[?size=]`: a capability URL.
    pub async fn media_url(
        &self,
        id: MediaId,
        size: Option<ThumbnailSize>,
    ) -> ClientResult<MediaUrl> {
        let path = match size {
            Some(size) => format!("/v1/media/{id}/url?size={}", size.as_str()),
            None => format!("/v1/media/{id}/url"),
        };
        Ok(self.call::<(), _>(Method::GET, &path, None).await?.1)
    }

    /// Fetches a URL without the bearer token, as `<img src>` would: a
    /// capability URL (path-absolute ones are resolved against this
    /// server).
    pub async fn fetch_url(&self, url: &str) -> ClientResult<Download> {
        self.fetch(self.plain_request(Method::GET, url)).await
    }

    /// A request to `url` (absolute, or a path on this server) without
    /// the bearer token.
    fn plain_request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base())
        } else {
            url.to_owned()
        };
        self.http().request(method, url)
    }

    async fn fetch(&self, request: reqwest::RequestBuilder) -> ClientResult<Download> {
        let response = request.send().await?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let content_type = header(CONTENT_TYPE);
        let disposition = header(CONTENT_DISPOSITION);
        let nosniff = header(reqwest::header::X_CONTENT_TYPE_OPTIONS) == "nosniff";
        let bytes = response.bytes().await?;
        if status != StatusCode::OK {
            return Err(api_error(status, &bytes));
        }
        Ok(Download {
            bytes: bytes.to_vec(),
            content_type,
            disposition,
            nosniff,
        })
    }
}
