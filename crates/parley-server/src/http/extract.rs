//! Extractors that turn every malformed input into the protocol's JSON
//! error (never axum's plain-text defaults): [`ApiJson`] for bodies,
//! [`ApiPath`] for path parameters (ids among them), [`ApiQuery`] for the
//! query string, [`Auth`] for the bearer token and [`Admin`] for a server
//! administrator's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use parley_proto::now_ms;
use serde::de::DeserializeOwned;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transport::BodyTimeout;

/// A JSON body whose rejection is the protocol's own error; decoded by
/// [`parley_proto::decode`] (objects only, valid UTF-8). Ids in it are
/// read leniently (see [`parley_proto::ids`]): one that names nothing is
/// `not_found` later, not a malformed body now.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("request body is over the limit")
            } else if BodyTimeout::caused(&rejection) {
                // hyper closes the connection after this answer: the body
                // was not read to its end.
                ApiError::bad_request(BodyTimeout.to_string())
            } else {
                ApiError::bad_request(format!("could not read the body: {rejection}"))
            }
        })?;
        // The one strict decoder: an object with named fields, valid UTF-8
        // throughout.
        parley_proto::decode::object_from_slice(&bytes)
            .map(ApiJson)
            .map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")))
    }
}

/// Path parameters. Typed ids read leniently, so any id string is
/// accepted here and an unknown one is `not_found` when it is looked up; a
/// path that cannot be read at all (bad percent-encoding) is our 404 too.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::not_found(format!("no such resource: {rejection}")))
    }
}

/// The query string as a map, with the protocol's 400 on malformed input.
pub struct ApiQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(map)| ApiQuery(map))
            .map_err(|rejection| {
                ApiError::bad_request(format!("malformed query string: {rejection}"))
            })
    }
}

/// The caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Identity);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        Ok(Auth(state.auth.verify(token, now_ms())?))
    }
}

/// A server administrator (protocol §14), from the bearer token: 401 like
/// [`Auth`] without a valid token, 403 for anyone who is not an enabled
/// administrator. Read from the store on every request, so taking the
/// role away takes effect at once.
pub struct Admin(pub Identity);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Auth(identity) = Auth::from_request_parts(parts, state).await?;
        match state.store.user_by_id(identity.user).await? {
            Some(user) if user.is_admin && user.disabled_at_ms.is_none() => Ok(Admin(identity)),
            _ => Err(ApiError::forbidden("server administrators only")),
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer token"))?;
    Ok(token.trim())
}
