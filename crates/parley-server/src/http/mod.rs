//! The HTTP API under `/v1`, plus `/healthz` and `/metrics`: the router,
//! and one module per resource.
//!
//! - [`extract`]: the extractors every handler uses (JSON body, path, query,
//!   bearer token), each rejecting with the protocol's JSON error.
//! - `accounts`: users, sessions, devices, settings, profiles.
//! - `admin`: the administrators' API (§14), behind [`extract::Admin`].
//! - `blocks`: the caller's blocks.
//! - `conversations`: listing, direct conversations, details.
//! - `messages`: history and sending.
//! - `media`: upload slots, uploads (`local`), completion, downloads,
//!   thumbnails, capability URLs.
//! - `groups`: group creation and administration.
//! - `presence`: one user's presence.
//! - `search`: message search.
//! - `push`: push registrations and the VAPID key (§12).
//! - `health`: `/healthz` and `/metrics`.
//! - `ready`: `/readyz` (every dependency reachable).
//! - `openapi`: the OpenAPI 3.1 document, `GET /v1/openapi.json`, generated
//!   from the handlers' annotations; [`router`] is built from the same
//!   annotations, so every route is in it.
//!
//! `GET /v1/ws` is routed here and handled by [`crate::ws`].

mod accounts;
mod admin;
mod blocks;
mod conversations;
pub mod extract;
mod groups;
mod health;
mod media;
mod messages;
mod openapi;
mod presence;
mod push;
mod ready;
mod search;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// The `/v1` API, health and metrics, with the OpenAPI document of exactly
/// these routes (each handler's `#[utoipa::path]` names its path and
/// method; handlers sharing a path go in one `routes!`).
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(accounts::register, accounts::find_user))
        .routes(routes!(accounts::get_user))
        .routes(routes!(presence::get_presence))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me, accounts::update_me))
        .routes(routes!(blocks::list))
        .routes(routes!(push::vapid))
        .routes(routes!(push::register, push::unregister))
        .routes(routes!(blocks::block, blocks::unblock))
        .routes(routes!(search::search))
        .routes(routes!(media::create))
        .routes(routes!(media::download))
        .routes(routes!(media::upload))
        .routes(routes!(media::complete))
        .routes(routes!(media::thumbnail))
        .routes(routes!(media::capability))
        .routes(routes!(media::content))
        .routes(routes!(accounts::update_settings))
        .routes(routes!(accounts::revoke_device))
        .routes(routes!(conversations::list_conversations))
        .routes(routes!(conversations::open_direct))
        .routes(routes!(conversations::get_conversation))
        .routes(routes!(conversations::update_settings))
        .routes(routes!(messages::history, messages::send_message))
        .routes(routes!(groups::create_group))
        .routes(routes!(groups::rename_group))
        .routes(routes!(groups::add_members))
        .routes(routes!(groups::remove_member))
        .routes(routes!(groups::set_role))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::erase))
        .routes(routes!(admin::disable))
        .routes(routes!(admin::enable))
        .routes(routes!(admin::reset_password))
        .routes(routes!(admin::stats))
        .routes(routes!(crate::ws::upgrade))
        .routes(routes!(openapi::document))
        .routes(routes!(health::healthz))
        .routes(routes!(ready::readyz))
        .routes(routes!(health::metrics))
}

/// The `/v1` API, health and metrics.
pub fn router() -> Router<Arc<AppState>> {
    let (router, _) = routes().split_for_parts();
    router.method_not_allowed_fallback(method_not_allowed)
}

/// The OpenAPI document of [`router`] (served at `GET /v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = routes().split_for_parts();
    openapi::finish(api)
}

async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed("method not allowed on this endpoint").into_response()
}
