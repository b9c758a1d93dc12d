//! Hostile clients at the boundary: slow and half-sent requests, shutdown
//! while a request is half sent, non-object bodies and frames, invalid
//! UTF-8, WebSocket protocol violations, what metrics count, and the abuse
//! limits. Raw TCP where a well-behaved client library would refuse to
//! misbehave.

mod common;

use std::time::Duration;

use common::{TestServer, WAIT, test_config};
use parley_client::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("{what}: still open after {WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

async fn open(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connect")
}

async fn healthz_status(server: &TestServer) -> u16 {
    let mut stream = open(server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, "healthz").await;
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

fn slow_config() -> parley_server::Config {
    parley_server::Config {
        http_header_timeout_ms: 300,
        http_body_timeout_ms: 300,
        ..test_config()
    }
}

#[tokio::test]
async fn slow_clients_are_closed_and_healthz_keeps_answering() {
    let server = TestServer::start_with(slow_config()).await;
    // Many connections holding on in each of three ways.
    let mut silent = Vec::new();
    let mut half_header = Vec::new();
    let mut half_body = Vec::new();
    for _ in 0..20 {
        silent.push(open(&server).await);
        let mut stream = open(&server).await;
        stream
            .write_all(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        half_header.push(stream);
        let mut stream = open(&server).await;
        stream
            .write_all(
                b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await
            .unwrap();
        half_body.push(stream);
    }
    assert_eq!(healthz_status(&server).await, 200, "healthz while held");
    for stream in &mut silent {
        read_until_closed(stream, "a connection sending nothing").await;
    }
    for stream in &mut half_header {
        read_until_closed(stream, "half a header").await;
    }
    for stream in &mut half_body {
        let answer = read_until_closed(stream, "half a body").await;
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("http_body_timeout_ms"),
            "half a body is answered bad_request: {answer:?}"
        );
    }
    assert_eq!(healthz_status(&server).await, 200, "healthz afterwards");
    // A whole request on a fresh connection still works.
    server
        .client
        .raw(Method::GET, "/healthz", None)
        .await
        .expect("healthz through the client");
}

#[tokio::test]
async fn connections_per_source_address_are_capped() {
    let server = TestServer::start_with(parley_server::Config {
        max_connections_per_ip: 4,
        per_ip_limits_on_loopback: true,
        ..test_config()
    })
    .await;
    // The harness's own client may keep a pooled connection: fill the cap
    // with idle raw connections until one is refused.
    let mut held = Vec::new();
    let refused = loop {
        assert!(held.len() <= 4, "more than 4 connections were accepted");
        let mut stream = open(&server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if answer.starts_with("HTTP/1.1 503") {
            break (stream, answer);
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        held.push(stream);
    };
    let (mut stream, answer) = refused;
    assert!(answer.contains("\"unavailable\""), "{answer:?}");
    read_until_closed(&mut stream, "a refused connection").await;
    drop(held);
    // Closed connections give their places back.
    let mut status = 0;
    for _ in 0..100 {
        status = healthz_status(&server).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "the cap frees up once connections close");
}

/// The binary with `PARLEY_SHUTDOWN_GRACE_MS=1000` and an info log on a
/// pipe, plus its address.
fn spawn_logging_server(data_dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let config = test_config();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env(
            "PARLEY_ARGON2_MEMORY_KIB",
            config.argon2_memory_kib.to_string(),
        )
        .env(
            "PARLEY_ARGON2_ITERATIONS",
            config.argon2_iterations.to_string(),
        )
        .env("PARLEY_SHUTDOWN_GRACE_MS", "1000")
        .env("PARLEY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn parley");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listen line");
    let addr = line
        .trim()
        .strip_prefix("parley listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

#[tokio::test]
async fn sigterm_completes_while_a_request_is_half_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_logging_server(dir.path());
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    // Serving (and so listening for SIGTERM) once /healthz answers.
    let client = parley_client::Client::new(format!("http://{addr}"));
    let deadline = std::time::Instant::now() + WAIT;
    while client.raw(Method::GET, "/healthz", None).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "server never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut half = TcpStream::connect(&addr).await.expect("connect");
    half.write_all(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // The header is half sent: the server holds the connection.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    // Generous bound: the grace is 1 s; before the fix it never exited.
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("try_wait") {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {WAIT:?} after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let log = log.join().unwrap();
    let at = |what: &str| {
        log.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in the log:\n{log}"))
    };
    assert!(
        at("shutdown requested") < at("storage shut down")
            && at("storage shut down") < at("server stopped"),
        "storage is shut down in order:\n{log}"
    );
    // The half-sent connection was closed, not left behind.
    read_until_closed(&mut half, "the half-sent request").await;
}

/// One request over raw TCP (for bytes no client library would send);
/// returns the status and the body.
async fn raw_http(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = open(server).await;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let answer = read_until_closed(&mut stream, "a raw request").await;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn arrays_in_place_of_objects_are_bad_request() {
    let server = TestServer::start().await;
    let (status, body) = server
        .client
        .raw(
            Method::POST,
            "/v1/users",
            Some(r#"["mallory","correct horse battery"]"#),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let missing = server.client.login("mallory", common::PASSWORD).await;
    assert!(missing.is_err(), "no user was created");

    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let conversation = common::direct(&ann, &bob).await;
    // Every other body shape too: a few endpoints with array bodies.
    for (method, path) in [
        (Method::POST, "/v1/sessions".to_owned()),
        (
            Method::POST,
            format!("/v1/conversations/{conversation}/messages"),
        ),
        (Method::POST, "/v1/groups".to_owned()),
        (Method::PUT, "/v1/me/settings".to_owned()),
    ] {
        let (status, body) = ann
            .raw(
                method.clone(),
                &path,
                Some(&format!(r#"["k","{conversation}","text","hi"]"#)),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{method} {path}");
    }

    let mut socket = ann.connect(None).await.unwrap();
    socket
        .send_raw(format!(r#"["send","k1","{conversation}","text","hi"]"#))
        .await
        .unwrap();
    let (code, _) = common::expect_error_any(&mut socket).await;
    assert_eq!(code, parley_proto::ErrorCode::BadRequest);
    let history = ann.history(conversation, None, None, None).await.unwrap();
    assert!(history.messages.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn invalid_utf8_anywhere_in_a_body_is_bad_request() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let conversation = common::direct(&ann, &bob).await;
    let body = b"{\"client_msg_id\":\"k\",\"kind\":\"text\",\"text\":\"ok\",\"junk\":\"\xc0\xaf\"}";
    let (status, answer) = raw_http(
        &server,
        "POST",
        &format!("/v1/conversations/{conversation}/messages"),
        ann.token(),
        body,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("bad_request") && answer.contains("UTF-8"),
        "{answer}"
    );
    let history = ann.history(conversation, None, None, None).await.unwrap();
    assert!(history.messages.is_empty(), "nothing was stored");
    // And in a sign-up.
    let (status, _) = raw_http(
        &server,
        "POST",
        "/v1/users",
        None,
        b"{\"username\":\"carol\",\"password\":\"correct horse battery\",\"x\":\"\xff\"}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        server
            .client
            .login("carol", common::PASSWORD)
            .await
            .is_err()
    );
}

/// A WebSocket over raw TCP, handshake done, for frames no library sends.
async fn raw_websocket(server: &TestServer) -> TcpStream {
    let mut stream = open(server).await;
    stream
        .write_all(
            b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// A client frame (masked, as clients must), with `first` as its first
/// byte (FIN, reserved bits, opcode).
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads server frames until a close frame; returns its code, or None if
/// the connection ended without one.
async fn read_close_code(stream: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let mut head = [0u8; 2];
            stream.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut ext = [0u8; 2];
                    stream.read_exact(&mut ext).await.ok()?;
                    u16::from_be_bytes(ext) as usize
                }
                127 => {
                    let mut ext = [0u8; 8];
                    stream.read_exact(&mut ext).await.ok()?;
                    u64::from_be_bytes(ext) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0f == 0x8 {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a close in time")
}

#[tokio::test]
async fn websocket_protocol_violations_close_with_their_codes() {
    use parley_proto::close_code;
    let server = TestServer::start().await;
    let ann = server.user("ann").await;

    // Invalid UTF-8 in a text frame, after authenticating: 1007.
    let mut socket = raw_websocket(&server).await;
    let auth = format!(r#"{{"type":"auth","token":"{}"}}"#, ann.token().unwrap());
    let mut auth_frame = Vec::new();
    // The token does not fit a short frame: send it with a 16-bit length.
    {
        let mask = [1u8, 2, 3, 4];
        auth_frame.extend_from_slice(&[0x81, 0x80 | 126]);
        auth_frame.extend_from_slice(&(auth.len() as u16).to_be_bytes());
        auth_frame.extend_from_slice(&mask);
        auth_frame.extend(auth.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }
    socket.write_all(&auth_frame).await.unwrap();
    socket
        .write_all(&client_frame(
            0x81,
            b"{\"type\":\"ping\",\"nonce\":\"\xc0\xaf\"}",
        ))
        .await
        .unwrap();
    assert_eq!(
        read_close_code(&mut socket).await,
        Some(close_code::INVALID_PAYLOAD)
    );

    // Invalid UTF-8 as the very first frame: 1007 too.
    let mut socket = raw_websocket(&server).await;
    socket
        .write_all(&client_frame(0x81, b"\xff\xfe"))
        .await
        .unwrap();
    assert_eq!(
        read_close_code(&mut socket).await,
        Some(close_code::INVALID_PAYLOAD)
    );

    // Reserved bits set (no extension was negotiated): 1002.
    let mut socket = raw_websocket(&server).await;
    socket
        .write_all(&client_frame(0xC1, b"{\"type\":\"ping\"}"))
        .await
        .unwrap();
    assert_eq!(
        read_close_code(&mut socket).await,
        Some(close_code::PROTOCOL_ERROR)
    );
}

/// Asserts a `429 rate_limited` answer from `client.raw`.
fn assert_rate_limited(status: u16, body: &serde_json::Value, what: &str) {
    assert_eq!(status, 429, "{what}: {body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{what}");
}

#[tokio::test]
async fn signups_per_source_address_are_limited() {
    let server = TestServer::start_with(parley_server::Config {
        signups_per_ip_per_hour: 2,
        per_ip_limits_on_loopback: true,
        ..test_config()
    })
    .await;
    server.user("ann").await;
    server.user("bob").await;
    let body = br#"{"username":"carol","password":"correct horse battery"}"#;
    let mut stream = open(&server).await;
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let answer = read_until_closed(&mut stream, "a third sign-up").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: "),
        "{answer}"
    );
    assert!(answer.contains("rate_limited"), "{answer}");
    assert!(
        server
            .client
            .login("carol", common::PASSWORD)
            .await
            .is_err()
    );
    // Logging in is not signing up.
    server.device("ann").await;
}

#[tokio::test]
async fn group_creations_and_member_additions_per_user_are_limited() {
    let server = TestServer::start_with(parley_server::Config {
        group_creations_per_user_per_hour: 2,
        member_additions_per_user_per_minute: 2,
        ..test_config()
    })
    .await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let group = |name: &str| format!(r#"{{"name":"{name}","member_ids":[]}}"#);
    for name in ["one", "two"] {
        let (status, body) = ann
            .raw(Method::POST, "/v1/groups", Some(&group(name)))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = ann
        .raw(Method::POST, "/v1/groups", Some(&group("three")))
        .await
        .unwrap();
    assert_rate_limited(status, &body, "a third group");
    assert_eq!(ann.conversations().await.unwrap().conversations.len(), 2);
    // Another user has a budget of their own.
    let (status, _) = bob
        .raw(Method::POST, "/v1/groups", Some(&group("bob's")))
        .await
        .unwrap();
    assert_eq!(status, 201);

    let list = ann.conversations().await.unwrap().conversations;
    let id = list[0].conversation_id;
    let add = format!(r#"{{"user_ids":["{}"]}}"#, common::uid(&bob));
    let path = format!("/v1/groups/{id}/members");
    for _ in 0..2 {
        let (status, body) = ann.raw(Method::POST, &path, Some(&add)).await.unwrap();
        assert!(status < 300, "{body}");
    }
    let (status, body) = ann.raw(Method::POST, &path, Some(&add)).await.unwrap();
    assert_rate_limited(status, &body, "a third member addition");
}

#[tokio::test]
async fn media_uploads_and_searches_per_user_are_limited() {
    let server = TestServer::start_with(parley_server::Config {
        media_uploads_per_user_per_hour: 2,
        searches_per_user_per_minute: 2,
        ..test_config()
    })
    .await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    // "hello" and its SHA-256; slots only, the bytes never come.
    let slot = r#"{"content_type":"text/plain","size":5,"sha256":"LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="}"#;
    for _ in 0..2 {
        let (status, body) = ann
            .raw(Method::POST, "/v1/media", Some(slot))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = ann
        .raw(Method::POST, "/v1/media", Some(slot))
        .await
        .unwrap();
    assert_rate_limited(status, &body, "a third upload slot");
    let (status, _) = bob
        .raw(Method::POST, "/v1/media", Some(slot))
        .await
        .unwrap();
    assert_eq!(status, 201, "another user has a budget of their own");

    for _ in 0..2 {
        let (status, body) = ann
            .raw(Method::GET, "/v1/search?q=hello", None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = ann
        .raw(Method::GET, "/v1/search?q=hello", None)
        .await
        .unwrap();
    assert_rate_limited(status, &body, "a third search");
    let (status, _) = bob
        .raw(Method::GET, "/v1/search?q=hello", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let metrics = common::scrape_metrics(&server).await;
    for limit in ["media_upload", "search"] {
        let line = format!(r#"parley_rate_limited_total{{limit="{limit}"}} 1"#);
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn http_requests_per_token_are_limited() {
    let server = TestServer::start_with(parley_server::Config {
        // Bursts of ten seconds' worth: 5 requests.
        http_requests_per_token_per_sec: 0.5,
        ..test_config()
    })
    .await;
    let ann = server.user("ann").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, body) = ann.raw(Method::GET, "/v1/me", None).await.unwrap();
        statuses.push(status);
        if status == 429 {
            assert_rate_limited(status, &body, "a sixth request");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    // Another device (token) of the same user has its own budget.
    let laptop = server.device("ann").await;
    let (status, _) = laptop.raw(Method::GET, "/v1/me", None).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn presence_subscribe_frames_per_socket_are_limited() {
    let server = TestServer::start_with(parley_server::Config {
        // Burst 2x: one frame.
        presence_subscribe_rate_per_sec: 0.5,
        ..test_config()
    })
    .await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let mut socket = ann.connect(None).await.unwrap();
    let subscribe = parley_proto::ClientFrame::PresenceSubscribe {
        user_ids: vec![common::uid(&bob)],
    };
    socket.send(&subscribe).await.unwrap();
    common::expect_frame(&mut socket, "presence", |f| {
        matches!(f, parley_proto::ServerFrame::Presence { .. })
    })
    .await;
    socket.send(&subscribe).await.unwrap();
    let (code, retry_after_ms) = common::expect_error(&mut socket, "presence_subscribe").await;
    assert_eq!(code, parley_proto::ErrorCode::RateLimited);
    assert!(retry_after_ms.is_some_and(|ms| ms > 0));
}
