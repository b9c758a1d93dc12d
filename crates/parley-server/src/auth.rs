//! Passwords, signed tokens, and revocation.
//!
//! Tokens are `base64url(user.device.expiry) . base64url(HMAC-SHA256)`,
//! signed with a key created in the data dir on first start. Verifying one
//! needs no storage round trip; revocation is an in-memory set of device
//! ids, seeded from storage at start and updated on logout, so it takes
//! effect at once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::RwLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parley_proto::{DeviceId, UserId};
use ring::hmac;

/// Why a token or a password operation failed. Mapped to protocol codes
/// in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Malformed, tampered with, or expired.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Its device was logged out (revoked).
    #[error("this session was logged out")]
    LoggedOut,
    /// Hashing or checking a password failed (no randomness, a corrupt
    /// stored hash, a lost blocking task): a server fault.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

fn hashing(err: impl std::fmt::Display) -> AuthError {
    AuthError::Hashing(err.to_string())
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: UserId,
    /// The device (login) the token was issued to.
    pub device: DeviceId,
}

/// Hashes and checks passwords (argon2id with the configured cost). Needs
/// no signing key, so `parley admin create-user` can use it without the
/// server's data.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
}

impl Passwords {
    /// argon2id with `memory_kib` and `iterations` (`argon2_memory_kib`,
    /// `argon2_iterations`).
    pub fn new(memory_kib: u32, iterations: u32) -> std::io::Result<Passwords> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| std::io::Error::other(format!("argon2 parameters: {e}")))?;
        Ok(Passwords { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password with argon2id on the blocking pool: it is
    /// deliberately slow and memory-hard, so never on an async worker.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            let mut salt_bytes = [0u8; 16];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt_bytes)
                .map_err(|_| hashing("no system randomness"))?;
            let salt = SaltString::encode_b64(&salt_bytes).map_err(hashing)?;
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(hashing)
        })
        .await
        .map_err(hashing)?
    }

    /// Checks a password against a stored hash, on the blocking pool.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, AuthError> {
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(hashing)?;
            Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(hashing)?
    }
}

/// Issues and verifies tokens; hashes and checks passwords.
pub struct Authenticator {
    key: hmac::Key,
    ttl_ms: i64,
    passwords: Passwords,
    // A std RwLock: lookups are tiny and never await.
    revoked: RwLock<HashSet<DeviceId>>,
}

impl Authenticator {
    /// Signs with `shared_key` when given (`token_key`: every node of a
    /// cluster verifies every other node's tokens), else with the key in
    /// `data_dir/token.key`, created if missing.
    pub fn open_with_key(
        shared_key: Option<&[u8]>,
        data_dir: &Path,
        ttl_secs: u64,
        memory_kib: u32,
        iterations: u32,
    ) -> std::io::Result<Authenticator> {
        match shared_key {
            Some(secret) => Self::from_secret(secret, ttl_secs, memory_kib, iterations),
            None => Self::open(data_dir, ttl_secs, memory_kib, iterations),
        }
    }

    /// Loads the signing key from `data_dir/token.key`, creating it if missing.
    pub fn open(
        data_dir: &Path,
        ttl_secs: u64,
        memory_kib: u32,
        iterations: u32,
    ) -> std::io::Result<Authenticator> {
        let path = data_dir.join("token.key");
        let secret = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= 32 => bytes,
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is shorter than 32 bytes; remove it to create a new key (this logs everyone out)",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| std::io::Error::other("no system randomness"))?;
                write_private(&path, &bytes)?;
                bytes
            }
            Err(e) => return Err(e),
        };
        Self::from_secret(&secret, ttl_secs, memory_kib, iterations)
    }

    fn from_secret(
        secret: &[u8],
        ttl_secs: u64,
        memory_kib: u32,
        iterations: u32,
    ) -> std::io::Result<Authenticator> {
        Ok(Authenticator {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            ttl_ms: (ttl_secs as i64).saturating_mul(1000),
            passwords: Passwords::new(memory_kib, iterations)?,
            revoked: RwLock::new(HashSet::new()),
        })
    }

    /// A key for another kind of signature (media URLs), derived from the
    /// token key so that every node of a cluster derives the same one and
    /// a media URL can never pass for a token.
    pub fn derive_key(&self, purpose: &str) -> hmac::Key {
        let tag = hmac::sign(&self.key, purpose.as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
    }

    /// A token for `identity`, and when it expires.
    pub fn issue(&self, identity: Identity, now_ms: i64) -> (String, i64) {
        let expires_at_ms = now_ms.saturating_add(self.ttl_ms);
        let payload = format!("{}.{}.{}", identity.user, identity.device, expires_at_ms);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        );
        (token, expires_at_ms)
    }

    /// The identity of a valid, unexpired, unrevoked token.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Identity, AuthError> {
        let invalid = || AuthError::InvalidToken;
        if token.len() > 512 {
            return Err(invalid());
        }
        let (payload_b64, tag_b64) = token.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag_b64).map_err(|_| invalid())?;
        hmac::verify(&self.key, &payload, &tag).map_err(|_| invalid())?;
        let payload = std::str::from_utf8(&payload).map_err(|_| invalid())?;
        let mut parts = payload.split('.');
        let (Some(user), Some(device), Some(expiry), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let identity = Identity {
            user: user.parse().map_err(|_| invalid())?,
            device: device.parse().map_err(|_| invalid())?,
        };
        let expires_at_ms: i64 = expiry.parse().map_err(|_| invalid())?;
        if expires_at_ms <= now_ms {
            return Err(invalid());
        }
        if self.is_revoked(identity.device) {
            return Err(AuthError::LoggedOut);
        }
        Ok(identity)
    }

    /// Marks a device's tokens invalid from now on.
    pub fn revoke(&self, device: DeviceId) {
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device);
    }

    /// Seeds the revocation set from storage.
    pub fn revoke_all(&self, devices: impl IntoIterator<Item = DeviceId>) {
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(devices);
    }

    /// Whether the device was logged out.
    pub fn is_revoked(&self, device: DeviceId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&device)
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Hashes a password (see [`Passwords::hash`]).
    pub async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        self.passwords.hash(password).await
    }

    /// Checks a password against a stored hash (see [`Passwords::verify`]).
    pub async fn verify_password(&self, password: String, hash: String) -> Result<bool, AuthError> {
        self.passwords.verify(password, hash).await
    }

    /// Spends the same time as a real check, so a wrong username cannot be
    /// told from a wrong password by timing.
    pub async fn dummy_verify(&self, password: String) {
        let _ = self.hash_password(password).await;
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(dir: &Path) -> Authenticator {
        Authenticator::open(dir, 60, 64, 1).unwrap()
    }

    #[test]
    fn tokens_verify_expire_and_revoke() {
        let dir = std::env::temp_dir().join(format!("parley-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let auth = authenticator(&dir);
        let identity = Identity {
            user: UserId(3),
            device: DeviceId(9),
        };
        let (token, expires) = auth.issue(identity, 1_000);
        assert_eq!(expires, 61_000);
        assert_eq!(auth.verify(&token, 2_000).unwrap(), identity);
        assert!(auth.verify(&token, 61_000).is_err(), "expired");
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('d') { "e" } else { "d" });
        assert!(auth.verify(&tampered, 2_000).is_err(), "tampered");
        assert!(auth.verify("garbage", 2_000).is_err());
        // The same key is loaded again after a restart.
        let again = authenticator(&dir);
        assert_eq!(again.verify(&token, 2_000).unwrap(), identity);
        auth.revoke(DeviceId(9));
        assert!(
            matches!(auth.verify(&token, 2_000), Err(AuthError::LoggedOut)),
            "revoked"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
