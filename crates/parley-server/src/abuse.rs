//! Abuse limits on HTTP requests, beyond sends and logins: sign-ups per
//! source address, group creations, member additions, media uploads and
//! searches per user, and requests per token. One middleware in front of the router, so that
//! handlers stay free of them; every refusal is `429 rate_limited` with
//! `Retry-After` and counts in `parley_rate_limited_total{limit}`.
//!
//! (The per-socket `presence_subscribe` limit lives with the socket, in
//! [`crate::ws`]; sends, logins and typing have their own limits.)

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parley_proto::{DeviceId, UserId, now_ms};

use crate::config::Config;
use crate::connections::{ConnectionSlot, is_loopback};
use crate::error::ApiError;
use crate::http::extract::bearer_token;
use crate::ratelimit::KeyedLimiter;
use crate::state::AppState;

/// The HTTP abuse limiters.
pub struct Limits {
    /// `None` when `signups_per_ip_per_hour` is 0.
    signups: Option<KeyedLimiter<IpAddr>>,
    group_creations: KeyedLimiter<UserId>,
    member_additions: KeyedLimiter<UserId>,
    media_uploads: KeyedLimiter<UserId>,
    searches: KeyedLimiter<UserId>,
    requests: KeyedLimiter<DeviceId>,
}

impl Limits {
    /// The limiters `config` asks for.
    pub fn new(config: &Config) -> Limits {
        Limits {
            signups: (config.signups_per_ip_per_hour > 0)
                .then(|| per_hour(config.signups_per_ip_per_hour)),
            group_creations: per_hour(config.group_creations_per_user_per_hour),
            member_additions: per_minute(config.member_additions_per_user_per_minute),
            media_uploads: per_hour(config.media_uploads_per_user_per_hour),
            searches: per_minute(config.searches_per_user_per_minute),
            requests: KeyedLimiter::new(
                config.http_requests_per_token_per_sec,
                config.http_requests_per_token_per_sec * 10.0,
            ),
        }
    }
}

/// `n` per hour, bursting `n`.
fn per_hour<K: std::hash::Hash + Eq + Clone>(n: u32) -> KeyedLimiter<K> {
    KeyedLimiter::new(n as f64 / 3600.0, n as f64)
}

/// `n` per minute, bursting `n`.
fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> KeyedLimiter<K> {
    KeyedLimiter::new(n as f64 / 60.0, n as f64)
}

/// Counts a refusal by `limit` and turns the wait into the protocol error.
pub fn refused(limit: &'static str, retry_after_ms: u64) -> ApiError {
    metrics::counter!("parley_rate_limited_total", "limit" => limit).increment(1);
    ApiError::rate_limited(retry_after_ms)
}

/// Middleware: applies the limits that match the request; everything else
/// (bad tokens included, which the handler refuses) passes through.
pub async fn limit_requests(
    State(state): State<Arc<AppState>>,
    ConnectInfo(slot): ConnectInfo<ConnectionSlot>,
    request: Request,
    next: Next,
) -> Response {
    match check(&state, &slot, &request) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

fn check(state: &AppState, slot: &ConnectionSlot, request: &Request) -> Result<(), ApiError> {
    let limits = &state.abuse;
    let path = request.uri().path();
    let post = request.method() == Method::POST;
    let source = slot.remote_ip();
    if post
        && path == "/v1/users"
        && let Some(signups) = &limits.signups
        && (state.config.per_ip_limits_on_loopback || !is_loopback(source))
    {
        signups
            .check(&source)
            .map_err(|wait| refused("signup", wait))?;
    }
    let Ok(token) = bearer_token(request.headers()) else {
        return Ok(());
    };
    let Ok(identity) = state.auth.verify(token, now_ms()) else {
        return Ok(());
    };
    limits
        .requests
        .check(&identity.device)
        .map_err(|wait| refused("http_requests", wait))?;
    if post && path == "/v1/groups" {
        limits
            .group_creations
            .check(&identity.user)
            .map_err(|wait| refused("group_creation", wait))?;
    }
    if post && is_members_path(path) {
        limits
            .member_additions
            .check(&identity.user)
            .map_err(|wait| refused("member_addition", wait))?;
    }
    if post && path == "/v1/media" {
        limits
            .media_uploads
            .check(&identity.user)
            .map_err(|wait| refused("media_upload", wait))?;
    }
    if request.method() == Method::GET && path == "/v1/search" {
        limits
            .searches
            .check(&identity.user)
            .map_err(|wait| refused("search", wait))?;
    }
    Ok(())
}

/// `/v1/groups/{id}/members` (and only that: not a member's own path).
fn is_members_path(path: &str) -> bool {
    path.strip_prefix("/v1/groups/")
        .and_then(|rest| rest.strip_suffix("/members"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_path_is_matched_exactly() {
        assert!(is_members_path("/v1/groups/c7/members"));
        assert!(!is_members_path("/v1/groups//members"));
        assert!(!is_members_path("/v1/groups/c7/members/u1"));
        assert!(!is_members_path("/v1/groups/c7/x/members"));
        assert!(!is_members_path("/v1/groups"));
    }
}
