//! The OpenAPI 3.1 document of the HTTP API, served at
//! `GET /v1/openapi.json` (public).
//!
//! It is generated, never written by hand: the bodies derive
//! `utoipa::ToSchema` in `parley-proto` (feature `openapi`), every handler
//! carries `#[utoipa::path]`, and the router in `super` is built from those
//! same annotations (`utoipa_axum::routes!`), so a route cannot be served
//! without being documented. [`finish`] adds what every operation shares:
//! the bearer scheme and the protocol's JSON error for the failures any
//! handler can meet (malformed input, a bad token, storage trouble).

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

/// The document's fixed part; paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parley",
        description = "The Parley HTTP API (docs/protocol.md). Errors carry \
            `{\"error\":{\"code\":...,\"message\":...}}` (§1); the WebSocket at \
            `/v1/ws` speaks the frames of §5."
    ),
    components(schemas(parley_proto::ErrorBody))
)]
pub(super) struct ApiDoc;

/// The name of the bearer scheme the handlers' `security(...)` names.
const BEARER: &str = "bearer";

/// Adds the shared parts to the document the router collected.
pub(super) fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_shared_errors(operation);
        }
    }
    api
}

/// The failures every handler can meet through its extractors and the
/// store, each with the protocol's error body. A status the handler's own
/// annotation lists keeps its more specific description.
fn add_shared_errors(operation: &mut Operation) {
    let has_input = operation.request_body.is_some()
        || operation
            .parameters
            .as_ref()
            .is_some_and(|params| !params.is_empty());
    let secured = operation.security.is_some();
    let body = operation.request_body.is_some();
    let shared = [
        (has_input, "400", "Malformed input (bad_request)."),
        (
            secured,
            "401",
            "Missing, invalid, expired or revoked token (unauthorized).",
        ),
        (
            body,
            "413",
            "The body is over the limit (payload_too_large).",
        ),
        (true, "500", "Server-side trouble (internal)."),
        (
            true,
            "503",
            "A dependency is not reachable, or the server is draining (unavailable).",
        ),
    ];
    for (applies, status, description) in shared {
        if applies {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(description).into());
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    super::openapi()
        .to_json()
        .expect("the OpenAPI document always serializes")
});

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", body = Object),
    ),
)]
pub(super) async fn document() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}
