//! The provider boundary: what the delivery worker hands a provider, and
//! the outcomes it acts on. Web Push (and UnifiedPush), FCM and APNs all
//! sit behind [`PushProvider`]; the worker knows nothing of their wire.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parley_proto::push::PushPayload;
use parley_store::PushTarget;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// One push to deliver.
pub struct Outgoing<'a> {
    /// Where to.
    pub target: &'a PushTarget,
    /// What the device decrypts.
    pub payload: &'a PushPayload,
    /// High urgency (direct messages).
    pub urgent: bool,
    /// How long the push service may hold it, in seconds.
    pub ttl_secs: u64,
}

/// What came of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the push service.
    Delivered,
    /// Try again later, not before the given wait when the service said
    /// (`Retry-After`).
    Retry(Option<Duration>),
    /// The registration is gone for good (404, 410, an unregistered
    /// token): delete it.
    Gone,
    /// Refused for a reason retrying will not fix (bad request, our
    /// credentials): dropped and counted; the detail goes to the log.
    Rejected(String),
}

impl Outcome {
    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry(_) => "retry",
            Outcome::Gone => "gone",
            Outcome::Rejected(_) => "rejected",
        }
    }
}

/// A push service client.
#[async_trait]
pub trait PushProvider: Send + Sync {
    /// The provider's name in metrics and logs.
    fn name(&self) -> &'static str;
    /// One delivery attempt.
    async fn send(&self, push: &Outgoing<'_>) -> Outcome;
}

/// The common reading of a push service's HTTP answer: 2xx delivered,
/// 404/410 gone, 408/429/5xx retried (honouring `Retry-After`), the rest
/// rejected.
pub fn outcome_for(status: u16, headers: &HeaderMap, body: &[u8]) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::Gone,
        408 | 429 | 500..=599 => Outcome::Retry(retry_after(headers)),
        _ => Outcome::Rejected(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// A `Retry-After` header: seconds, or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The wait before the next attempt after `attempts` failures: doubling
/// from `initial`, capped at `max`, and never shorter than what the push
/// service asked for.
pub fn backoff(
    attempts: u32,
    initial: Duration,
    max: Duration,
    asked: Option<Duration>,
) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempts.min(20));
    doubled.min(max).max(asked.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_map_to_outcomes() {
        let none = HeaderMap::new();
        assert_eq!(outcome_for(201, &none, b""), Outcome::Delivered);
        assert_eq!(outcome_for(410, &none, b""), Outcome::Gone);
        assert_eq!(outcome_for(404, &none, b""), Outcome::Gone);
        assert_eq!(outcome_for(503, &none, b""), Outcome::Retry(None));
        let mut later = HeaderMap::new();
        later.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            outcome_for(429, &later, b""),
            Outcome::Retry(Some(Duration::from_secs(7)))
        );
        assert!(
            matches!(outcome_for(401, &none, b"bad jwt"), Outcome::Rejected(m) if m.contains("bad jwt"))
        );
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let s = Duration::from_secs;
        assert_eq!(backoff(0, s(1), s(60), None), s(1));
        assert_eq!(backoff(3, s(1), s(60), None), s(8));
        assert_eq!(backoff(30, s(1), s(60), None), s(60));
        assert_eq!(backoff(0, s(1), s(60), Some(s(30))), s(30));
    }
}
