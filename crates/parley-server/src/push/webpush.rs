//! Web Push (RFC 8030) with message encryption (RFC 8291, `aes128gcm` of
//! RFC 8188) and VAPID (RFC 8292); UnifiedPush speaks the same protocol.
//!
//! Built on `ring`, which the server already links: the `ece` crate only
//! has an OpenSSL backend, and the `web-push` crate's VAPID `aud` drops a
//! non-default port (design notes, features.md §2.5). The local push
//! service of the tests (Python `http-ece` and `cryptography`) checks this
//! code against an independent implementation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parley_proto::push::{JwtHeader, VapidClaims, to_json};
use parley_store::PushTarget;
use reqwest::Url;
use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use ring::{aead, hkdf};

use super::guard;
use super::jwt::JwtKey;
use super::provider::{Outcome, Outgoing, PushProvider, outcome_for};

/// The record size announced in the header; one record always suffices
/// (payloads are far below it).
const RECORD_SIZE: u32 = 4096;
/// Plaintexts are padded to at least this many bytes, so wake-ups all
/// look alike to the push service.
const PAD_TO: usize = 256;
/// A VAPID JWT is valid this long (RFC 8292 allows at most 24 h) and
/// reused until an hour before it expires.
const VAPID_JWT_SECS: i64 = 12 * 3600;
const VAPID_REUSE_MARGIN_SECS: i64 = 3600;

/// The server's VAPID identity: one P-256 key shared by every node (kept
/// in the store), and a cache of signed JWTs per audience.
pub struct Vapid {
    key: JwtKey,
    public_key: String,
    subject: String,
    /// A std mutex: held only to read or insert, never across an await.
    tokens: Mutex<HashMap<String, (String, i64)>>,
}

impl Vapid {
    /// A fresh PKCS#8 P-256 key, offered to the store as the candidate.
    pub fn generate_pkcs8() -> Result<Vec<u8>, String> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| "could not generate a VAPID key".to_owned())
    }

    /// The identity from a stored PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8], subject: String) -> Result<Vapid, String> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| format!("the stored VAPID key is unusable: {e}"))?;
        let public_key = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(Vapid {
            key: JwtKey::es256(pkcs8)?,
            public_key,
            subject,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The public key, base64url (the browser's `applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header for a request to `endpoint` at `now_s`.
    pub fn authorization(&self, endpoint: &Url, now_s: i64) -> Result<String, String> {
        // RFC 8292: `aud` is the origin, which keeps a non-default port.
        let aud = endpoint.origin().ascii_serialization();
        let cached = {
            let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens
                .get(&aud)
                .filter(|(_, exp)| *exp - VAPID_REUSE_MARGIN_SECS > now_s)
                .map(|(t, _)| t.clone())
        };
        let token = match cached {
            Some(token) => token,
            None => {
                let exp = now_s + VAPID_JWT_SECS;
                let header = to_json(&JwtHeader {
                    typ: "JWT",
                    alg: self.key.alg(),
                    kid: None,
                });
                let claims = to_json(&VapidClaims {
                    aud: &aud,
                    exp,
                    sub: &self.subject,
                });
                let token = self.key.sign(&header, &claims)?;
                let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                // Audiences are few (push services); bound the map anyway.
                if tokens.len() > 1024 {
                    tokens.clear();
                }
                tokens.insert(aud, (token.clone(), exp));
                token
            }
        };
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

/// Decodes a base64url key as browsers give it (padding optional).
pub fn decode_key(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Whether `key` is an uncompressed point on P-256 (a subscription's
/// `p256dh`): ring checks it in an ECDH agreement with a throwaway key.
pub fn is_p256_point(key: &[u8]) -> bool {
    if key.len() != 65 || key[0] != 4 {
        return false;
    }
    let Ok(ephemeral) = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()) else {
        return false;
    };
    agreement::agree_ephemeral(ephemeral, &UnparsedPublicKey::new(&ECDH_P256, key), |_| ()).is_ok()
}

/// Output length for ring's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), String> {
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| "HKDF failed".to_owned())
}

/// Encrypts `plaintext` for the subscription (`ua_public`: its P-256
/// point, `auth`: its secret) as an RFC 8291 `aes128gcm` body.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| "could not generate an ECDH key".to_owned())?;
    let as_public = ephemeral
        .compute_public_key()
        .map_err(|_| "could not compute the ECDH public key".to_owned())?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| "no randomness for the salt".to_owned())?;
    encrypt_with(
        ephemeral,
        as_public.as_ref(),
        &salt,
        ua_public,
        auth,
        plaintext,
    )
}

fn encrypt_with(
    ephemeral: EphemeralPrivateKey,
    as_public: &[u8],
    salt: &[u8; 16],
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public);
    let ecdh_secret = agreement::agree_ephemeral(ephemeral, &peer, |secret| secret.to_vec())
        .map_err(|_| "the subscription's p256dh is not a P-256 point".to_owned())?;
    // RFC 8291 §3.4: the input keying material binds both public keys.
    let mut ikm = [0u8; 32];
    hkdf(
        auth,
        &ecdh_secret,
        &[b"WebPush: info\0", ua_public, as_public],
        &mut ikm,
    )?;
    // RFC 8188 §2.2 / §2.3: content key and nonce.
    let mut cek = [0u8; 16];
    hkdf(salt, &ikm, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    let mut nonce = [0u8; 12];
    hkdf(salt, &ikm, &[b"Content-Encoding: nonce\0"], &mut nonce)?;

    // One record: the payload, the last-record delimiter 2, zero padding.
    let mut record = plaintext.to_vec();
    record.push(2);
    if record.len() < PAD_TO {
        record.resize(PAD_TO, 0);
    }
    if record.len() + 16 > RECORD_SIZE as usize {
        return Err("push payload too large for one record".into());
    }
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_128_GCM, &cek).map_err(|_| "bad content key")?,
    );
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        &mut record,
    )
    .map_err(|_| "encryption failed".to_owned())?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + as_public.len() + record.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// The Web Push (and UnifiedPush) provider.
pub struct WebPushProvider {
    http: reqwest::Client,
    vapid: Arc<Vapid>,
    insecure: bool,
}

impl WebPushProvider {
    /// A provider signing with `vapid` over `http` (whose resolver refuses
    /// internal addresses unless `insecure`).
    pub fn new(http: reqwest::Client, vapid: Arc<Vapid>, insecure: bool) -> WebPushProvider {
        WebPushProvider {
            http,
            vapid,
            insecure,
        }
    }
}

#[async_trait]
impl PushProvider for WebPushProvider {
    fn name(&self) -> &'static str {
        "webpush"
    }

    async fn send(&self, push: &Outgoing<'_>) -> Outcome {
        let PushTarget::WebPush {
            endpoint,
            p256dh,
            auth,
            ..
        } = push.target
        else {
            return Outcome::Rejected("not a Web Push registration".into());
        };
        let Ok(url) = Url::parse(endpoint) else {
            return Outcome::Gone;
        };
        if !self.insecure && guard::literal_is_internal(&url) {
            return Outcome::Gone;
        }
        let (Some(ua_public), Some(auth)) = (decode_key(p256dh), decode_key(auth)) else {
            return Outcome::Gone;
        };
        let body = match encrypt(&ua_public, &auth, push.payload.to_json().as_bytes()) {
            Ok(body) => body,
            Err(why) => return Outcome::Rejected(why),
        };
        let authorization = match self
            .vapid
            .authorization(&url, parley_proto::now_ms() / 1000)
        {
            Ok(a) => a,
            Err(why) => return Outcome::Rejected(why),
        };
        let request = self
            .http
            .post(url)
            .header("Authorization", authorization)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("TTL", push.ttl_secs.to_string())
            .header("Urgency", if push.urgent { "high" } else { "normal" })
            // RFC 8030 §5.4: an undelivered older wake-up is replaced.
            .header("Topic", "wake")
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                outcome_for(status, &headers, &body)
            }
            Err(err) => {
                tracing::debug!(%err, "push service unreachable");
                Outcome::Retry(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapid_audience_keeps_a_non_default_port() {
        let pkcs8 = Vapid::generate_pkcs8().unwrap();
        let vapid = Vapid::from_pkcs8(&pkcs8, "mailto:a@b".into()).unwrap();
        let header = vapid
            .authorization(&Url::parse("http://127.0.0.1:39011/push/1").unwrap(), 1_000)
            .unwrap();
        let token = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split(", k=")
            .next()
            .unwrap();
        let claims = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let claims = String::from_utf8(claims).unwrap();
        assert!(
            claims.contains(r#""aud":"http://127.0.0.1:39011""#),
            "{claims}"
        );
        assert!(claims.contains(r#""exp":44200"#), "{claims}");
        let again = vapid
            .authorization(&Url::parse("http://127.0.0.1:39011/push/2").unwrap(), 2_000)
            .unwrap();
        assert_eq!(again, header, "one JWT per audience, reused");
        let default_port = vapid
            .authorization(&Url::parse("https://push.example:443/x").unwrap(), 1_000)
            .unwrap();
        let token = default_port.strip_prefix("vapid t=").unwrap();
        let claims = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        assert!(
            String::from_utf8(claims)
                .unwrap()
                .contains(r#""aud":"https://push.example""#)
        );
    }

    /// The header layout of the RFC 8291 §5 example (ring cannot import its
    /// fixed ephemeral key; the tests' push service decrypts real bodies).
    #[test]
    fn body_layout_follows_the_rfc_8291_example() {
        let plaintext = b"When I grow up, I want to be a watermelon";
        let ua_public = decode_key(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        )
        .unwrap();
        let auth = decode_key("BTBZMqHH6r4Tts7J_aSIgg").unwrap();
        let salt: [u8; 16] = decode_key("DGv6ra1nlYgDCS1FRnbzlw")
            .unwrap()
            .try_into()
            .unwrap();
        let expected = decode_key(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        )
        .unwrap();
        assert_eq!(&expected[..16], &salt);
        assert_eq!(&expected[16..20], &RECORD_SIZE.to_be_bytes());
        assert_eq!(expected[20], 65);
        // And that our own output has the same shape for the same inputs.
        let rng = SystemRandom::new();
        let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let public = ephemeral.compute_public_key().unwrap();
        let body = encrypt_with(
            ephemeral,
            public.as_ref(),
            &salt,
            &ua_public,
            &auth,
            plaintext,
        )
        .unwrap();
        assert_eq!(&body[..21], &expected[..21]);
        assert_eq!(body.len(), 21 + 65 + PAD_TO + 16);
    }
}
