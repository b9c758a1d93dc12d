//! Built-in TLS, optional (`tls_cert` / `tls_key`): HTTPS and WSS with
//! rustls, for servers that face the internet without a reverse proxy.
//! Plain HTTP behind a proxy stays the default.
//!
//! The certificate chain and key are PEM files. [`Tls::reload`] reads them
//! again (the server calls it on SIGHUP, so a renewed certificate is picked
//! up without a restart); connections accepted after it use the new one,
//! open ones keep theirs. A reload that fails keeps the old certificate and
//! says why in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The TLS acceptor and where its certificate comes from.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    // A std RwLock: held only to clone or replace an `Arc`, never across
    // an await.
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Reads the PEM certificate chain `cert` and private key `key`.
    pub fn load(cert: &Path, key: &Path) -> std::io::Result<Tls> {
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            acceptor: RwLock::new(acceptor(cert, key)?),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again; on success new connections use them.
    pub fn reload(&self) -> std::io::Result<()> {
        let fresh = acceptor(&self.cert, &self.key)?;
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Reloads on every SIGHUP until the task is aborted.
    #[cfg(unix)]
    pub async fn reload_on_sighup(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP; the certificate will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate")
                }
                Err(err) => tracing::error!(
                    %err,
                    cert = %self.cert.display(),
                    "could not reload the TLS certificate; keeping the old one"
                ),
            }
        }
    }
}

/// Signs a probe with `key` and verifies it with the public key of `leaf`.
/// `with_single_cert` does not check that they belong together (with ring
/// it cannot), and a mismatch would otherwise fail every handshake instead
/// of stopping the server at start (or failing the reload).
fn check_key_fits(
    leaf: &CertificateDer<'_>,
    key: &PrivateKeyDer<'_>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(), String> {
    use rustls::SignatureScheme as S;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| e.to_string())?;
    let signer = signing_key
        .choose_scheme(&[
            S::ECDSA_NISTP256_SHA256,
            S::ECDSA_NISTP384_SHA384,
            S::ED25519,
            S::RSA_PSS_SHA256,
        ])
        .ok_or("a key type TLS 1.3 cannot use")?;
    let probe = b"parley: does this key belong to this certificate?";
    let signature = signer.sign(probe).map_err(|e| e.to_string())?;
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let algorithms = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .filter(|(scheme, _)| *scheme == signer.scheme())
        .flat_map(|(_, algorithms)| algorithms.iter());
    for algorithm in algorithms {
        if cert.verify_signature(*algorithm, probe, &signature).is_ok() {
            return Ok(());
        }
    }
    Err("the key's signature does not verify with the certificate's public key".into())
}

/// An acceptor for the PEM files, speaking HTTP/1.1 (what the server's
/// transport serves; WebSockets upgrade from it).
fn acceptor(cert: &Path, key: &Path) -> std::io::Result<TlsAcceptor> {
    let problem = |what: &str, path: &Path, err: &dyn std::fmt::Display| {
        std::io::Error::other(format!("{what} {}: {err}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| problem("cannot read tls_cert", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem("cannot read tls_cert", cert, &e))?;
    if chain.is_empty() {
        return Err(problem(
            "no certificate in tls_cert",
            cert,
            &"expected PEM CERTIFICATE blocks",
        ));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| problem("cannot read tls_key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    check_key_fits(&chain[0], &private_key, &provider)
        .map_err(|e| problem("tls_key does not fit tls_cert", key, &e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| problem("TLS setup for", cert, &e))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| problem("tls_key does not fit tls_cert", key, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
