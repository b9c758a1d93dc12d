//! Compact JWS (JWT) signing for the providers: VAPID and APNs sign ES256
//! (P-256, the fixed 64-byte `r‖s` signature JWS wants), the FCM OAuth
//! assertion RS256. The JSON of headers and claims comes from
//! `parley_proto::push`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

/// A key a JWT can be signed with.
pub(crate) enum JwtKey {
    /// ES256.
    Es256(EcdsaKeyPair),
    /// RS256.
    Rs256(RsaKeyPair),
}

impl JwtKey {
    /// A P-256 key from PKCS#8 DER.
    pub(crate) fn es256(pkcs8: &[u8]) -> Result<JwtKey, String> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map(JwtKey::Es256)
        .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))
    }

    /// An RSA key from PKCS#8 DER.
    pub(crate) fn rs256(pkcs8: &[u8]) -> Result<JwtKey, String> {
        RsaKeyPair::from_pkcs8(pkcs8)
            .map(JwtKey::Rs256)
            .map_err(|e| format!("not an RSA PKCS#8 key: {e}"))
    }

    /// The `alg` header value.
    pub(crate) fn alg(&self) -> &'static str {
        match self {
            JwtKey::Es256(_) => "ES256",
            JwtKey::Rs256(_) => "RS256",
        }
    }

    /// `header.claims.signature`, each part base64url without padding.
    pub(crate) fn sign(&self, header_json: &str, claims_json: &str) -> Result<String, String> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let rng = SystemRandom::new();
        let signature = match self {
            JwtKey::Es256(key) => key
                .sign(&rng, input.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ES256 signing failed".to_owned())?,
            JwtKey::Rs256(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out)
                    .map_err(|_| "RS256 signing failed".to_owned())?;
                out
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The DER of the PEM key file a provider's configuration names (`what`
/// is the setting, for the error).
pub(crate) fn key_file_der(
    path: Option<&std::path::PathBuf>,
    what: &str,
) -> Result<Vec<u8>, String> {
    let path = path.ok_or_else(|| format!("{what} is required"))?;
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    pem_to_der(&pem)
}

/// The DER inside the first PEM block of `pem` (PKCS#8 `.p8` files and
/// service-account keys).
pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("no PEM block found".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("bad PEM base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = JwtKey::es256(pkcs8.as_ref()).unwrap();
        let token = key.sign(r#"{"alg":"ES256"}"#, r#"{"a":1}"#).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let JwtKey::Es256(pair) = &key else {
            unreachable!()
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .expect("valid signature");
    }

    #[test]
    fn pem_blocks_decode() {
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        assert_eq!(pem_to_der(pem).unwrap(), vec![0, 1, 2, 3]);
        assert!(pem_to_der("nothing").is_err());
    }
}
