//! Built-in TLS at the boundary: `parley serve` with `tls_cert` /
//! `tls_key` (certificates this test makes with rcgen) serves HTTPS and
//! WSS, picks up a new certificate on SIGHUP without a restart, and
//! refuses to start with a key that does not fit the certificate.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{PASSWORD, ServerProcess, WAIT};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM, DER).
fn certificate() -> (String, String, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (
        made.cert.pem(),
        made.key_pair.serialize_pem(),
        made.cert.der().clone(),
    )
}

/// A client that trusts exactly `roots`.
fn connector(roots: &[&CertificateDer<'static>]) -> TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(addr: &str, tls: &TlsConnector) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    tls.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// The certificate the server presented on `stream`.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// One HTTP/1.1 request over a new TLS connection: (status line, body).
async fn https(
    addr: &str,
    tls: &TlsConnector,
    method: &str,
    path: &str,
    body: &str,
) -> (String, String) {
    let mut stream = connect(addr, tls).await;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The server closes after answering (Connection: close); a TLS peer
    // may close without close_notify, which is fine here.
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

fn tls_env(dir: &Path) -> [(&'static str, String); 2] {
    [
        (
            "PARLEY_TLS_CERT",
            dir.join("cert.pem").display().to_string(),
        ),
        ("PARLEY_TLS_KEY", dir.join("key.pem").display().to_string()),
    ]
}

fn spawn(dir: &Path) -> Result<ServerProcess, String> {
    let env = tls_env(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServerProcess::spawn_with(&dir.join("data"), None, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_a_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = certificate();
    let (cert_b, key_b, der_b) = certificate();
    write_pair(dir.path(), &cert_a, &key_a);
    let server = spawn(dir.path()).expect("serves with TLS");
    let addr = server.base.trim_start_matches("http://").to_owned();
    let tls = connector(&[&der_a, &der_b]);

    // HTTPS, with certificate A.
    let stream = connect(&addr, &tls).await;
    assert_eq!(presented(&stream), der_a);
    drop(stream);
    let (status, body) = https(&addr, &tls, "GET", "/healthz", "").await;
    assert!(status.contains(" 200"), "{status} {body}");
    let account = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let (status, _) = https(&addr, &tls, "POST", "/v1/users", &account).await;
    assert!(status.contains(" 201"), "{status}");
    let (status, login) = https(&addr, &tls, "POST", "/v1/sessions", &account).await;
    assert!(status.contains(" 201"), "{status}");
    let token = login
        .split(r#""token":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token")
        .to_owned();

    // WSS: the upgrade and the protocol's first frames over TLS.
    let stream = connect(&addr, &tls).await;
    let (mut socket, response) = tokio_tungstenite::client_async("wss://localhost/v1/ws", stream)
        .await
        .expect("WebSocket upgrade over TLS");
    assert_eq!(response.status(), 101);
    let auth = format!(r#"{{"type":"auth","token":"{token}"}}"#);
    socket.send(auth.into()).await.unwrap();
    let first = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("a frame");
    assert!(
        first.to_text().unwrap().contains(r#""type":"ready""#),
        "{first:?}"
    );

    // SIGHUP with certificate B in the files: new connections get B, the
    // open socket is not disturbed.
    write_pair(dir.path(), &cert_b, &key_b);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stream = connect(&addr, &tls).await;
        if presented(&stream) == der_b {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still certificate A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    socket
        .send(r#"{"type":"ping","nonce":1}"#.into())
        .await
        .expect("the open socket still works");
    let (status, _) = https(&addr, &tls, "GET", "/healthz", "").await;
    assert!(status.contains(" 200"), "{status}");

    // A broken file on SIGHUP keeps the certificate that works.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stream = connect(&addr, &tls).await;
    assert_eq!(presented(&stream), der_b);
}

#[test]
fn a_key_that_does_not_fit_the_certificate_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, _, _) = certificate();
    let (_, key_b, _) = certificate();
    write_pair(dir.path(), &cert_a, &key_b);
    let err = match spawn(dir.path()) {
        Ok(_) => panic!("started with a mismatched key"),
        Err(err) => err,
    };
    assert!(err.contains("tls_key"), "{err}");
    // Only one of the two is a configuration error too.
    let data = dir.path().join("data");
    let err = match ServerProcess::spawn_with(
        &data,
        None,
        &[(
            "PARLEY_TLS_CERT",
            dir.path().join("cert.pem").to_str().unwrap(),
        )],
    ) {
        Ok(_) => panic!("started with tls_cert alone"),
        Err(err) => err,
    };
    assert!(err.contains("tls_cert and tls_key"), "{err}");
}
