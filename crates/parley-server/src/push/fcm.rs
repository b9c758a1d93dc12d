//! Firebase Cloud Messaging, HTTP v1: a data-only wake-up to a
//! registration token. Auth is an OAuth 2 access token obtained by
//! exchanging a service-account assertion (an RS256 JWT, RFC 7523) at the
//! token URL, cached until shortly before it expires.

use std::sync::Mutex;

use async_trait::async_trait;
use parley_proto::push::{
    AccessToken, JwtHeader, ServiceAccountClaims, fcm_error_code, fcm_message, to_json,
};
use parley_store::PushTarget;

use super::jwt::{JwtKey, key_file_der};
use super::provider::{Outcome, Outgoing, PushProvider, outcome_for, retry_after};
use crate::config::Config;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is renewed this long before it expires.
const RENEW_MARGIN_SECS: i64 = 300;

/// The FCM provider.
pub struct FcmProvider {
    http: reqwest::Client,
    project: String,
    client_email: String,
    key: JwtKey,
    base_url: String,
    token_url: String,
    /// The cached access token and when it expires (s). A std mutex: held
    /// only to read or replace, never across an await.
    token: Mutex<Option<(String, i64)>>,
}

impl FcmProvider {
    /// The provider when `push_fcm_project` is set (then the email and key
    /// file are required).
    pub fn from_config(
        config: &Config,
        http: reqwest::Client,
    ) -> Result<Option<FcmProvider>, String> {
        let Some(project) = config.push_fcm_project.clone() else {
            return Ok(None);
        };
        let client_email = config
            .push_fcm_client_email
            .clone()
            .ok_or("push_fcm_project needs push_fcm_client_email")?;
        let der = key_file_der(config.push_fcm_key_file.as_ref(), "push_fcm_key_file")?;
        Ok(Some(FcmProvider {
            http,
            project,
            client_email,
            key: JwtKey::rs256(&der)?,
            base_url: config.push_fcm_base_url.trim_end_matches('/').to_owned(),
            token_url: config.push_fcm_token_url.clone(),
            token: Mutex::new(None),
        }))
    }

    fn cached_token(&self, now_s: i64) -> Option<String> {
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        token
            .as_ref()
            .filter(|(_, exp)| exp - RENEW_MARGIN_SECS > now_s)
            .map(|(t, _)| t.clone())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn access_token(&self) -> Result<String, Outcome> {
        let now = parley_proto::now_ms() / 1000;
        if let Some(token) = self.cached_token(now) {
            return Ok(token);
        }
        let header = to_json(&JwtHeader {
            typ: "JWT",
            alg: self.key.alg(),
            kid: None,
        });
        let claims = to_json(&ServiceAccountClaims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_url,
            iat: now,
            exp: now + 3600,
        });
        let assertion = self.key.sign(&header, &claims).map_err(Outcome::Rejected)?;
        // The JWT is base64url and dots: nothing to escape in the form.
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let response = self
            .http
            .post(&self.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|_| Outcome::Retry(None))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        if status != 200 {
            return Err(match outcome_for(status, &headers, &body) {
                // A 404 from the token URL is our misconfiguration, not a
                // device that is gone.
                Outcome::Gone | Outcome::Delivered => {
                    Outcome::Rejected(format!("token URL answered {status}"))
                }
                other => other,
            });
        }
        let token = AccessToken::parse(&body)
            .map_err(|e| Outcome::Rejected(format!("bad token answer: {e}")))?;
        let expires = now + token.expires_in.max(60) as i64;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((token.access_token.clone(), expires));
        Ok(token.access_token)
    }
}

#[async_trait]
impl PushProvider for FcmProvider {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, push: &Outgoing<'_>) -> Outcome {
        let PushTarget::Fcm { token } = push.target else {
            return Outcome::Rejected("not an FCM registration".into());
        };
        let access = match self.access_token().await {
            Ok(access) => access,
            Err(outcome) => return outcome,
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.base_url, self.project
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(access)
            .header("Content-Type", "application/json")
            .body(fcm_message(token, push.urgent, push.ttl_secs, push.payload))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(_) => return Outcome::Retry(None),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let code = fcm_error_code(&body);
        match (status, code.as_deref()) {
            (200, _) => Outcome::Delivered,
            (_, Some("UNREGISTERED")) | (404, _) => Outcome::Gone,
            (401, _) => {
                self.forget_token();
                Outcome::Retry(retry_after(&headers))
            }
            _ => outcome_for(status, &headers, &body),
        }
    }
}
