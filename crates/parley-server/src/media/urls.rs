//! Parley's own signed URLs: the `local` backend's upload URL, and the
//! capability URLs that let `<img src>` fetch media without a header. Each
//! carries an expiry and an HMAC (a key derived from the token key) over
//! everything it allows, so changing any part, or using it late, fails.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parley_proto::MediaId;
use ring::hmac;

/// Signs and checks media URLs.
pub(crate) struct UrlSigner {
    key: hmac::Key,
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlRefusal {
    /// The signature does not match what the URL asks for.
    BadSignature,
    /// It worked until its expiry, which has passed.
    Expired,
}

impl UrlSigner {
    /// A signer with `key`.
    pub(crate) fn new(key: hmac::Key) -> UrlSigner {
        UrlSigner { key }
    }

    fn sign<S: AsRef<str>>(&self, parts: &[S]) -> String {
        let tag = hmac::sign(&self.key, joined(parts).as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    fn verify<S: AsRef<str>>(
        &self,
        parts: &[S],
        expires_at_ms: i64,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), UrlRefusal> {
        let tag = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| UrlRefusal::BadSignature)?;
        hmac::verify(&self.key, joined(parts).as_bytes(), &tag)
            .map_err(|_| UrlRefusal::BadSignature)?;
        if expires_at_ms < now_ms {
            return Err(UrlRefusal::Expired);
        }
        Ok(())
    }

    /// The signature of an upload URL: binds the media, the expiry and the
    /// declared content type, size and SHA-256.
    pub(crate) fn upload(
        &self,
        id: MediaId,
        expires_at_ms: i64,
        declared: &Declared<'_>,
    ) -> String {
        self.sign(&upload_parts(id, expires_at_ms, declared))
    }

    /// Checks an upload URL's signature and expiry.
    pub(crate) fn check_upload(
        &self,
        id: MediaId,
        expires_at_ms: i64,
        declared: &Declared<'_>,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), UrlRefusal> {
        self.verify(
            &upload_parts(id, expires_at_ms, declared),
            expires_at_ms,
            signature,
            now_ms,
        )
    }

    /// The signature of a capability URL for `variant` (`o` for the
    /// media itself, else a thumbnail size).
    pub(crate) fn capability(&self, id: MediaId, variant: &str, expires_at_ms: i64) -> String {
        self.sign(&["get", &id.to_string(), variant, &expires_at_ms.to_string()])
    }

    /// Checks a capability URL's signature and expiry.
    pub(crate) fn check_capability(
        &self,
        id: MediaId,
        variant: &str,
        expires_at_ms: i64,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), UrlRefusal> {
        self.verify(
            &["get", &id.to_string(), variant, &expires_at_ms.to_string()],
            expires_at_ms,
            signature,
            now_ms,
        )
    }
}

/// The signed text: the parts, one per line.
fn joined<S: AsRef<str>>(parts: &[S]) -> String {
    parts
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What an upload declared, as an upload URL binds it.
pub(crate) struct Declared<'a> {
    /// Content type.
    pub(crate) content_type: &'a str,
    /// Size in bytes.
    pub(crate) size: u64,
    /// SHA-256, base64.
    pub(crate) sha256: &'a str,
}

fn upload_parts(id: MediaId, expires_at_ms: i64, declared: &Declared<'_>) -> [String; 6] {
    [
        "put".to_owned(),
        id.to_string(),
        expires_at_ms.to_string(),
        declared.content_type.to_owned(),
        declared.size.to_string(),
        declared.sha256.to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new(hmac::Key::new(hmac::HMAC_SHA256, b"k"))
    }

    #[test]
    fn capability_urls_refuse_tampering_and_age() {
        let s = signer();
        let sig = s.capability(MediaId(1), "o", 1000);
        assert_eq!(s.check_capability(MediaId(1), "o", 1000, &sig, 999), Ok(()));
        assert_eq!(
            s.check_capability(MediaId(2), "o", 1000, &sig, 999),
            Err(UrlRefusal::BadSignature)
        );
        assert_eq!(
            s.check_capability(MediaId(1), "s", 1000, &sig, 999),
            Err(UrlRefusal::BadSignature)
        );
        assert_eq!(
            s.check_capability(MediaId(1), "o", 5000, &sig, 999),
            Err(UrlRefusal::BadSignature)
        );
        assert_eq!(
            s.check_capability(MediaId(1), "o", 1000, &sig, 1001),
            Err(UrlRefusal::Expired)
        );
    }

    #[test]
    fn upload_urls_bind_what_was_declared() {
        let s = signer();
        let declared = Declared {
            content_type: "image/png",
            size: 10,
            sha256: "abc",
        };
        let sig = s.upload(MediaId(1), 1000, &declared);
        assert_eq!(s.check_upload(MediaId(1), 1000, &declared, &sig, 0), Ok(()));
        let other = Declared {
            size: 11,
            ..declared
        };
        assert_eq!(
            s.check_upload(MediaId(1), 1000, &other, &sig, 0),
            Err(UrlRefusal::BadSignature)
        );
    }
}
