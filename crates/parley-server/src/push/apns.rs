//! Apple Push Notification service: HTTP/2 `POST /3/device/{token}` with a
//! provider token (an ES256 JWT with the team id and key id, renewed every
//! 50 minutes: APNs refuses one older than an hour) and a fixed alert the
//! app's notification service extension replaces.

use std::sync::Mutex;

use async_trait::async_trait;
use parley_proto::push::{ApnsClaims, JwtHeader, apns_payload, apns_reason, to_json};
use parley_store::PushTarget;

use super::jwt::{JwtKey, key_file_der};
use super::provider::{Outcome, Outgoing, PushProvider, outcome_for, retry_after};
use crate::config::Config;

/// A provider token is renewed after this long.
const TOKEN_SECS: i64 = 50 * 60;

/// The APNs provider.
pub struct ApnsProvider {
    http: reqwest::Client,
    team_id: String,
    key_id: String,
    key: JwtKey,
    base_url: String,
    sandbox_url: String,
    /// The provider token and when it was issued (s). A std mutex: held
    /// only to read or replace, never across an await.
    token: Mutex<Option<(String, i64)>>,
}

impl ApnsProvider {
    /// The provider when `push_apns_team_id` is set (then the key id and
    /// key file are required). `http` must speak HTTP/2.
    pub fn from_config(
        config: &Config,
        http: reqwest::Client,
    ) -> Result<Option<ApnsProvider>, String> {
        let Some(team_id) = config.push_apns_team_id.clone() else {
            return Ok(None);
        };
        let key_id = config
            .push_apns_key_id
            .clone()
            .ok_or("push_apns_team_id needs push_apns_key_id")?;
        let der = key_file_der(config.push_apns_key_file.as_ref(), "push_apns_key_file")?;
        Ok(Some(ApnsProvider {
            http,
            team_id,
            key_id,
            key: JwtKey::es256(&der)?,
            base_url: config.push_apns_base_url.trim_end_matches('/').to_owned(),
            sandbox_url: config
                .push_apns_sandbox_url
                .trim_end_matches('/')
                .to_owned(),
            token: Mutex::new(None),
        }))
    }

    fn provider_token(&self, now_s: i64) -> Result<String, String> {
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, issued)) = cached.as_ref()
            && now_s - issued < TOKEN_SECS
        {
            return Ok(token.clone());
        }
        let header = to_json(&JwtHeader {
            typ: "JWT",
            alg: self.key.alg(),
            kid: Some(&self.key_id),
        });
        let claims = to_json(&ApnsClaims {
            iss: &self.team_id,
            iat: now_s,
        });
        let token = self.key.sign(&header, &claims)?;
        *cached = Some((token.clone(), now_s));
        Ok(token)
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[async_trait]
impl PushProvider for ApnsProvider {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, push: &Outgoing<'_>) -> Outcome {
        let PushTarget::Apns {
            token,
            topic,
            sandbox,
        } = push.target
        else {
            return Outcome::Rejected("not an APNs registration".into());
        };
        let now = parley_proto::now_ms() / 1000;
        let bearer = match self.provider_token(now) {
            Ok(t) => t,
            Err(why) => return Outcome::Rejected(why),
        };
        let base = if *sandbox {
            &self.sandbox_url
        } else {
            &self.base_url
        };
        let response = self
            .http
            .post(format!("{base}/3/device/{token}"))
            .header("authorization", format!("bearer {bearer}"))
            .header("apns-topic", topic.as_str())
            .header("apns-push-type", "alert")
            .header("apns-priority", if push.urgent { "10" } else { "5" })
            .header("apns-expiration", (now + push.ttl_secs as i64).to_string())
            .header("apns-collapse-id", "wake")
            .header("content-type", "application/json")
            .body(apns_payload(push.payload))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(_) => return Outcome::Retry(None),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let reason = apns_reason(&body);
        match (status, reason.as_deref()) {
            (200, _) => Outcome::Delivered,
            (410, _) | (400, Some("BadDeviceToken" | "DeviceTokenNotForTopic")) => Outcome::Gone,
            (403, Some("ExpiredProviderToken")) => {
                self.forget_token();
                Outcome::Retry(retry_after(&headers))
            }
            _ => outcome_for(status, &headers, &body),
        }
    }
}
