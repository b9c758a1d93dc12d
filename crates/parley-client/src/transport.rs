//! HTTP request/response plumbing: the one place in this crate that turns
//! request bodies into JSON and response bodies back (through serde and the
//! `parley-proto` types), and reads the protocol's error body.

use parley_proto::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClientError, ClientResult};
use crate::http::Client;

impl Client {
    /// Any request; returns the status and the JSON body (Null if empty).
    /// For tests of bad input: the body is whatever the server sent, so it
    /// is untyped on purpose.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> ClientResult<(u16, serde_json::Value)> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Ok((status, value))
    }

    /// A typed request: `body` is sent as JSON, a success body decodes as
    /// `T` (use [`serde::de::IgnoredAny`] when there is none), an error
    /// body becomes [`ClientError::Api`].
    pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<(StatusCode, T)> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let body = if bytes.is_empty() {
            b"null".as_slice()
        } else {
            &bytes
        };
        let value = serde_json::from_slice(body)
            .map_err(|e| ClientError::Protocol(format!("bad response body: {e}")))?;
        Ok((status, value))
    }
}

/// The error a failed response's body describes: the protocol's error
/// body as [`ClientError::Api`], anything else as a protocol error.
pub(crate) fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => ClientError::Protocol(format!("{status}: {}", String::from_utf8_lossy(bytes))),
    }
}
