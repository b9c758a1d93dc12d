//! The HTTP API under `/v1`, plus `/healthz` and `/metrics`: the router,
//! and one module per resource.
//!
//! - [`extract`]: the extractors every handler uses (JSON body, path, query,
//!   bearer token), each rejecting with the protocol's JSON error.
//! - `accounts`: users, sessions, devices, settings, profiles.
//! - `blocks`: the caller's blocks.
//! - `conversations`: listing, direct conversations, details.
//! - `messages`: history and sending.
//! - `media`: upload slots, uploads (`local`), completion, downloads,
//!   thumbnails, capability URLs.
//! - `groups`: group creation and administration.
//! - `presence`: one user's presence.
//! - `search`: message search.
//! - `health`: `/healthz` and `/metrics`.
//! - `ready`: `/readyz` (every dependency reachable).
//!
//! `GET /v1/ws` is routed here and handled by [`crate::ws`].

mod accounts;
mod blocks;
mod conversations;
pub mod extract;
mod groups;
mod health;
mod media;
mod messages;
mod presence;
mod ready;
mod search;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};

use crate::error::ApiError;
use crate::state::AppState;

/// The `/v1` API, health and metrics.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/users",
            post(accounts::register).get(accounts::find_user),
        )
        .route("/v1/users/{user_id}", get(accounts::get_user))
        .route("/v1/users/{user_id}/presence", get(presence::get_presence))
        .route("/v1/sessions", post(accounts::login))
        .route("/v1/sessions/current", delete(accounts::logout))
        .route("/v1/me", get(accounts::me).patch(accounts::update_me))
        .route("/v1/me/blocks", get(blocks::list))
        .route(
            "/v1/me/blocks/{user_id}",
            put(blocks::block).delete(blocks::unblock),
        )
        .route("/v1/search", get(search::search))
        .route("/v1/me/settings", put(accounts::update_settings))
        .route(
            "/v1/me/devices/{device_id}",
            delete(accounts::revoke_device),
        )
        .route("/v1/conversations", get(conversations::list_conversations))
        .route("/v1/conversations/direct", post(conversations::open_direct))
        .route(
            "/v1/conversations/{id}",
            get(conversations::get_conversation),
        )
        .route(
            "/v1/conversations/{id}/settings",
            put(conversations::update_settings),
        )
        .route(
            "/v1/conversations/{id}/messages",
            get(messages::history).post(messages::send_message),
        )
        .route("/v1/media", post(media::create))
        .route("/v1/media/{id}", get(media::download))
        .route("/v1/media/{id}/blob", put(media::upload))
        .route("/v1/media/{id}/complete", post(media::complete))
        .route("/v1/media/{id}/thumbnail", get(media::thumbnail))
        .route("/v1/media/{id}/url", get(media::capability))
        .route("/v1/media/{id}/content", get(media::content))
        .route("/v1/groups", post(groups::create_group))
        .route("/v1/groups/{id}", patch(groups::rename_group))
        .route("/v1/groups/{id}/members", post(groups::add_members))
        .route(
            "/v1/groups/{id}/members/{user_id}",
            delete(groups::remove_member),
        )
        .route(
            "/v1/groups/{id}/members/{user_id}/role",
            put(groups::set_role),
        )
        .route("/v1/ws", get(crate::ws::upgrade))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(ready::readyz))
        .route("/metrics", get(health::metrics))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed("method not allowed on this endpoint").into_response()
}
