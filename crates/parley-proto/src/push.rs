//! Push notifications (protocol §12): registration bodies, the payload a
//! woken device decrypts, and the JSON the server sends to push providers
//! (VAPID and APNs JWTs, the FCM OAuth exchange and message, the APNs
//! payload). Keeping the providers' JSON here keeps "only `parley-proto`
//! knows JSON" true for outgoing requests too.

use serde::{Deserialize, Serialize};

use crate::{ConversationId, UserId};

/// Longest Web Push endpoint URL accepted, in bytes.
pub const ENDPOINT_MAX_BYTES: usize = 2_048;
/// Longest FCM or APNs token accepted, in bytes.
pub const TOKEN_MAX_BYTES: usize = 4_096;

/// `PUT /v1/me/devices/current/push`: where this device's pushes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PushRegistration {
    /// A browser's `PushSubscription` (RFC 8030/8291/8292).
    #[serde(rename = "webpush")]
    WebPush {
        /// The push service URL.
        endpoint: String,
        /// The subscription's keys.
        keys: PushKeys,
    },
    /// A UnifiedPush distributor's endpoint; the same protocol as Web Push.
    #[serde(rename = "unifiedpush")]
    UnifiedPush {
        /// The push service URL.
        endpoint: String,
        /// The subscription's keys.
        keys: PushKeys,
    },
    /// A Firebase Cloud Messaging registration token.
    #[serde(rename = "fcm")]
    Fcm {
        /// The token.
        token: String,
    },
    /// An APNs device token.
    #[serde(rename = "apns")]
    Apns {
        /// The device token (hex).
        token: String,
        /// The app's bundle id.
        topic: String,
        /// Whether the token is from the sandbox environment.
        #[serde(default)]
        sandbox: bool,
    },
}

/// A Web Push subscription's keys, base64url as browsers give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushKeys {
    /// The P-256 public key (uncompressed point).
    pub p256dh: String,
    /// The 16-byte authentication secret.
    pub auth: String,
}

/// `GET /v1/push/vapid`: the server's VAPID public key (the browser's
/// `applicationServerKey`), base64url of the uncompressed P-256 point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VapidKey {
    /// The key.
    pub public_key: String,
}

/// What a woken device decrypts: a wake-up, with the message text only
/// when its user opted into previews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPayload {
    /// Always `"wake"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The conversation of the newest message.
    pub conversation_id: ConversationId,
    /// Messages since the last push to this device.
    pub unread: u64,
    /// The newest message's sender (previews only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<UserId>,
    /// The newest message's text, maybe shortened (previews only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl PushPayload {
    /// A content-free wake-up.
    pub fn wake(conversation_id: ConversationId, unread: u64) -> PushPayload {
        PushPayload {
            kind: "wake".into(),
            conversation_id,
            unread,
            sender_id: None,
            text: None,
        }
    }

    /// The JSON the device decrypts.
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// Reads a payload (clients and tests).
    pub fn parse(bytes: &[u8]) -> Result<PushPayload, crate::decode::DecodeError> {
        crate::decode::object_from_slice(bytes)
    }
}

/// A JWT header (`alg` ES256 or RS256; `kid` for APNs).
#[derive(Debug, Clone, Serialize)]
pub struct JwtHeader<'a> {
    /// `JWT`.
    pub typ: &'a str,
    /// The signature algorithm.
    pub alg: &'a str,
    /// The key id (APNs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<&'a str>,
}

/// The claims of a VAPID JWT (RFC 8292).
#[derive(Debug, Clone, Serialize)]
pub struct VapidClaims<'a> {
    /// The push service's origin, with its port when not the default.
    pub aud: &'a str,
    /// Expiry, seconds since the epoch (at most 24 h ahead).
    pub exp: i64,
    /// A contact: `mailto:` or `https:`.
    pub sub: &'a str,
}

/// The claims of an APNs provider token.
#[derive(Debug, Clone, Serialize)]
pub struct ApnsClaims<'a> {
    /// The team id.
    pub iss: &'a str,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
}

/// The claims of a Google service-account assertion exchanged for an
/// OAuth 2 access token (RFC 7523).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceAccountClaims<'a> {
    /// The service account's email.
    pub iss: &'a str,
    /// The scope asked for.
    pub scope: &'a str,
    /// The token URL.
    pub aud: &'a str,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// The answer of an OAuth 2 token endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessToken {
    /// The bearer token.
    pub access_token: String,
    /// Seconds it is valid.
    #[serde(default)]
    pub expires_in: u64,
}

impl AccessToken {
    /// Reads a token endpoint's answer.
    pub fn parse(bytes: &[u8]) -> Result<AccessToken, crate::decode::DecodeError> {
        crate::decode::object_from_slice(bytes)
    }
}

/// An FCM HTTP v1 error answer's `error.details[].errorCode`, if any
/// (`UNREGISTERED` means the token is gone).
pub fn fcm_error_code(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value["error"]["details"]
        .as_array()?
        .iter()
        .find_map(|d| d["errorCode"].as_str().map(str::to_owned))
        .or_else(|| value["error"]["status"].as_str().map(str::to_owned))
}

/// An APNs error answer's `reason` (`Unregistered`, `BadDeviceToken`, ...).
pub fn apns_reason(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value["reason"].as_str().map(str::to_owned)
}

/// The body of an FCM HTTP v1 `messages:send`: a data-only wake-up.
pub fn fcm_message(
    token: &str,
    high_priority: bool,
    ttl_secs: u64,
    payload: &PushPayload,
) -> String {
    let mut data = serde_json::Map::new();
    data.insert("t".into(), "wake".into());
    data.insert(
        "conversation_id".into(),
        payload.conversation_id.to_string().into(),
    );
    data.insert("unread".into(), payload.unread.to_string().into());
    serde_json::json!({
        "message": {
            "token": token,
            "data": data,
            "android": {
                "priority": if high_priority { "HIGH" } else { "NORMAL" },
                "ttl": format!("{ttl_secs}s"),
                "collapse_key": "wake",
            }
        }
    })
    .to_string()
}

/// The body of an APNs push: a fixed alert the app's notification service
/// extension replaces after fetching the messages itself.
pub fn apns_payload(payload: &PushPayload) -> String {
    serde_json::json!({
        "aps": {"alert": {"loc-key": "NEW_MESSAGE"}, "mutable-content": 1},
        "conversation_id": payload.conversation_id.to_string(),
        "unread": payload.unread,
    })
    .to_string()
}

/// Any of the bodies above as JSON.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("push bodies always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_parse_by_kind() {
        let web: PushRegistration = crate::decode::object_from_str(
            r#"{"kind":"webpush","endpoint":"https://p/x","keys":{"p256dh":"B","auth":"a"}}"#,
        )
        .unwrap();
        assert!(matches!(web, PushRegistration::WebPush { .. }));
        let apns: PushRegistration =
            crate::decode::object_from_str(r#"{"kind":"apns","token":"ab","topic":"t"}"#).unwrap();
        assert_eq!(
            apns,
            PushRegistration::Apns {
                token: "ab".into(),
                topic: "t".into(),
                sandbox: false
            }
        );
        assert!(crate::decode::object_from_str::<PushRegistration>(r#"{"kind":"sms"}"#).is_err());
    }

    #[test]
    fn a_wake_up_carries_no_text() {
        let json = PushPayload::wake(ConversationId(7), 3).to_json();
        assert_eq!(json, r#"{"type":"wake","conversation_id":"c7","unread":3}"#);
        assert_eq!(
            PushPayload::parse(json.as_bytes()).unwrap(),
            PushPayload::wake(ConversationId(7), 3)
        );
    }
}
