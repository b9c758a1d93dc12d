//! Push notifications (§12) end to end, with a real local push service and
//! no vendor: `tests/push/push_service.py` verifies the VAPID JWT
//! (signature, `aud` with the port, `exp` within 24 h), decrypts the
//! `aes128gcm` body with the subscription's private key (Python `http_ece`,
//! an implementation independent of the server's) and records every
//! attempt. Its FCM side checks the OAuth assertion (RS256) and bearer.
//!
//! The Python packages live in a venv outside the checkout
//! (`~/.cache/parley-pyenv`, or `PARLEY_PYENV`), made on first use; when
//! it cannot be made the tests are skipped with the reason, or fail when
//! `CI=true`.
//!
//! "Nothing was pushed" is never a timed wait: a later message that must
//! push (a sentinel) shows it, because the trigger handles messages in
//! commit order and a device's pushes coalesce into one pending push whose
//! `unread` counts them.

mod cluster_support;
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, WAIT, direct, png, test_config, uid};
use parley_client::{Client, Method};
use parley_proto::api::{ConversationSettingsRequest, SendRequest, SettingsRequest};
use parley_proto::push::{PushKeys, PushPayload, PushRegistration};
use parley_proto::{DeviceId, MessageKind};
use parley_server::Config;
use parley_store::Store;
use serde_json::{Value, json};

/// The venv's python with `http_ece` and `cryptography`, made if missing;
/// `None` (skip) when it cannot be had, a panic when `CI=true`.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("PARLEY_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/parley-pyenv")
        });
    let python = venv.join("bin/python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import http_ece, cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Some(python);
    }
    // One test at a time sets it up; the others find it made.
    static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = SETUP.lock().unwrap_or_else(|p| p.into_inner());
    if ready(&python) {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "http-ece", "cryptography"])
            .status()
            .is_ok_and(|s| s.success());
    if made && ready(&python) {
        return Some(python);
    }
    let why = format!(
        "the push service needs python3 with http-ece and cryptography in {}",
        venv.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// The local push service, killed when dropped.
struct PushService {
    child: Child,
    control: Client,
    base: String,
}

/// A subscription made by the push service (it keeps the private key).
struct Subscription {
    id: String,
    registration: PushRegistration,
}

/// One request the push service received.
#[derive(Debug)]
struct Attempt {
    status: u64,
    error: Option<String>,
    payload: Option<PushPayload>,
    plaintext: String,
    ttl: String,
    urgency: String,
    topic: String,
    received_at_ms: i64,
}

impl PushService {
    fn start() -> Option<PushService> {
        let python = python()?;
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/push/push_service.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--max-seconds", "300"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the push service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its first line");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let base = format!("http://127.0.0.1:{port}");
        Some(PushService {
            child,
            control: Client::new(base.clone()),
            base,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, value) = self
            .control
            .raw(Method::POST, path, Some(&body.to_string()))
            .await
            .expect("push service control");
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    async fn subscribe(&self, server: &TestServer) -> Subscription {
        let vapid = server.client.vapid_key().await.expect("vapid key");
        let sub = self
            .post("/_subscribe", json!({"vapid_key": vapid.public_key}))
            .await;
        let text = |k: &str| sub[k].as_str().unwrap().to_owned();
        Subscription {
            id: text("id"),
            registration: PushRegistration::WebPush {
                endpoint: text("endpoint"),
                keys: PushKeys {
                    p256dh: text("p256dh"),
                    auth: text("auth"),
                },
            },
        }
    }

    /// The next answers to `sub`'s pushes: a status, or `[status, retry_after]`.
    async fn script(&self, sub: &Subscription, answers: Value) {
        self.post(&format!("/_script/{}", sub.id), answers).await;
    }

    async fn attempts(&self, sub: &Subscription) -> Vec<Attempt> {
        let (_, value) = self
            .control
            .raw(Method::GET, &format!("/_received/{}", sub.id), None)
            .await
            .expect("received");
        let text = |a: &Value, k: &str| a[k].as_str().unwrap_or_default().to_owned();
        value["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| Attempt {
                status: a["status"].as_u64().unwrap(),
                error: a["error"].as_str().map(str::to_owned),
                payload: a["payload"]
                    .as_str()
                    .map(|p| PushPayload::parse(p.as_bytes()).expect("a push payload")),
                plaintext: text(a, "payload"),
                ttl: text(a, "ttl"),
                urgency: text(a, "urgency"),
                topic: text(a, "topic"),
                received_at_ms: a["received_at_ms"].as_i64().unwrap(),
            })
            .collect()
    }

    /// Waits until `sub` has at least `n` attempts; fails on a request the
    /// service refused as invalid.
    async fn wait_for(&self, sub: &Subscription, n: usize) -> Vec<Attempt> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let attempts = self.attempts(sub).await;
            for a in &attempts {
                assert!(a.error.is_none(), "the push service refused a push: {a:?}");
            }
            if attempts.len() >= n {
                return attempts;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} pushes expected, got {attempts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push_config() -> Config {
    Config {
        push_allow_insecure_endpoints: true,
        push_delay_ms: 300,
        push_poll_ms: 100,
        push_retry_initial_ms: 100,
        presence_grace_ms: 0,
        send_rate_per_sec: 10_000.0,
        send_burst: 10_000,
        ..test_config()
    }
}

/// A second handle on the server's storage, to look at registrations and
/// pending pushes.
async fn peek(server: &TestServer) -> Arc<dyn Store> {
    parley_store::open(&parley_server::store_config(&server.config))
        .await
        .expect("open the server's store")
        .0
}

async fn device_of(client: &Client) -> DeviceId {
    let me = client.me().await.unwrap();
    assert_eq!(me.devices.len(), 1);
    me.devices[0].device_id
}

async fn registered(push: &PushService, server: &TestServer, name: &str) -> (Client, Subscription) {
    let client = server.user(name).await;
    let sub = push.subscribe(server).await;
    client
        .register_push(&sub.registration)
        .await
        .expect("register");
    (client, sub)
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wake(attempt: &Attempt) -> &PushPayload {
    attempt.payload.as_ref().expect("decrypted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_an_offline_device_is_one_content_free_wake_up() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(Config {
        // Long enough for 20 sends to land in one pending push.
        push_delay_ms: 3_000,
        ..push_config()
    })
    .await;
    let alice = server.user("alice").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    let chat = direct(&alice, &bob).await;
    for i in 0..20 {
        alice
            .send(chat, &format!("k{i}"), &format!("secret text {i}"))
            .await
            .unwrap();
    }
    let attempts = push.wait_for(&sub, 1).await;
    let first = &attempts[0];
    assert_eq!(first.status, 201);
    assert_eq!(
        wake(first),
        &PushPayload::wake(chat, 20),
        "one push for all 20"
    );
    assert!(!first.plaintext.contains("secret"), "{}", first.plaintext);
    assert_eq!(
        (first.urgency.as_str(), first.topic.as_str()),
        ("high", "wake")
    );
    let ttl: u64 = first.ttl.parse().unwrap();
    assert!(ttl > 0 && ttl <= 86_400, "{ttl}");
    // Nothing else is pending: there can be no second push.
    let store = peek(&server).await;
    wait_until("the push is finished", || async {
        store.next_push_due().await.unwrap().is_none()
    })
    .await;
    assert_eq!(push.attempts(&sub).await.len(), 1);
    let (_, metrics) = server
        .client
        .raw(Method::GET, "/metrics", None)
        .await
        .unwrap();
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("parley_push_sent_total{provider=\"webpush\"}"));
    assert!(
        metrics.contains("parley_push_latency_seconds_bucket{provider=\"webpush\",le=\"300\"}"),
        "push latency has buckets in seconds up to minutes:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_push_while_the_device_has_a_socket() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(push_config()).await;
    let alice = server.user("alice").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    let chat = direct(&alice, &bob).await;
    // `connect` returns after `ready`: the socket is registered by then.
    let mut socket = bob.connect(None).await.unwrap();
    alice.send(chat, "k1", "while online").await.unwrap();
    common::expect_message(&mut socket).await;
    drop(socket);
    let bob_id = uid(&bob);
    wait_until("bob is offline", || async {
        !alice.presence(bob_id).await.unwrap().online
    })
    .await;
    alice.send(chat, "k2", "while offline").await.unwrap();
    let attempts = push.wait_for(&sub, 1).await;
    assert_eq!(
        wake(&attempts[0]),
        &PushPayload::wake(chat, 1),
        "only the message sent while offline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_conversations_and_blocked_senders_stay_silent() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(push_config()).await;
    let alice = server.user("alice").await;
    let carol = server.user("carol").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    let muted = direct(&alice, &bob).await;
    let group = alice
        .create_group("team", &[uid(&bob), uid(&carol)])
        .await
        .unwrap()
        .conversation_id;
    bob.set_conversation_settings(
        muted,
        &ConversationSettingsRequest {
            muted_until_ms: Some(-1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    bob.block(uid(&carol)).await.unwrap();
    alice.send(muted, "m1", "muted").await.unwrap();
    carol
        .send(group, "b1", "from a blocked sender")
        .await
        .unwrap();
    alice.send(group, "s1", "the sentinel").await.unwrap();
    let attempts = push.wait_for(&sub, 1).await;
    assert_eq!(
        wake(&attempts[0]),
        &PushPayload::wake(group, 1),
        "only the sentinel woke bob"
    );
    assert_eq!(
        attempts[0].urgency, "normal",
        "group messages are not urgent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_carry_text_only_when_opted_in() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(push_config()).await;
    let alice = server.user("alice").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    let chat = direct(&alice, &bob).await;
    alice.send(chat, "k1", "the secret word").await.unwrap();
    let attempts = push.wait_for(&sub, 1).await;
    assert!(!attempts[0].plaintext.contains("secret"));
    assert_eq!(wake(&attempts[0]).sender_id, None);
    bob.update_settings(&SettingsRequest {
        push_previews: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    alice.send(chat, "k2", "hello preview").await.unwrap();
    let attempts = push.wait_for(&sub, 2).await;
    let preview = wake(&attempts[1]);
    assert_eq!(preview.text.as_deref(), Some("hello preview"));
    assert_eq!(preview.sender_id, Some(uid(&alice)));
}

/// Uploads `media` (kind, bytes, type, file name) and sends it with
/// `caption`.
async fn send_media(
    client: &Client,
    chat: parley_proto::ConversationId,
    key: &str,
    media: (MessageKind, Vec<u8>, &str, Option<&str>),
    caption: &str,
) {
    let (kind, bytes, content_type, name) = media;
    let view = client
        .upload_media(&bytes, content_type, name)
        .await
        .unwrap();
    client
        .send_request(chat, &SendRequest::media(key, kind, view.media_id, caption))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_messages_wake_devices_and_previews_name_their_kind() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(push_config()).await;
    let alice = server.user("alice").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    let chat = direct(&alice, &bob).await;
    // Previews off: a photo wakes bob, and the push says nothing of it.
    let photo = (MessageKind::Image, png(4, 4), "image/png", None);
    send_media(&alice, chat, "p1", photo, "our secret place").await;
    let attempts = push.wait_for(&sub, 1).await;
    assert_eq!(wake(&attempts[0]), &PushPayload::wake(chat, 1));
    assert!(!attempts[0].plaintext.contains("secret"));
    bob.update_settings(&SettingsRequest {
        push_previews: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    // Previews on: each push (waited for before the next send, so none
    // coalesce) names what arrived, or shows its caption.
    let wav = [b"RIFF\x24\0\0\0WAVEfmt ".as_slice(), &[0; 32]].concat();
    let cases = [
        (
            "p2",
            MessageKind::Image,
            png(4, 4),
            "image/png",
            None,
            "",
            "📷 Photo",
        ),
        (
            "p3",
            MessageKind::Image,
            png(4, 4),
            "image/png",
            None,
            "at the beach",
            "📷 at the beach",
        ),
        (
            "p4",
            MessageKind::Audio,
            wav,
            "audio/wav",
            Some("note.wav"),
            "",
            "🎤 Voice message",
        ),
        (
            "p5",
            MessageKind::File,
            b"minutes".to_vec(),
            "text/plain",
            Some("minutes.txt"),
            "",
            "📎 minutes.txt",
        ),
    ];
    for (n, (key, kind, bytes, content_type, name, caption, shown)) in cases.into_iter().enumerate()
    {
        send_media(
            &alice,
            chat,
            key,
            (kind, bytes, content_type, name),
            caption,
        )
        .await;
        let attempts = push.wait_for(&sub, n + 2).await;
        let preview = wake(&attempts[n + 1]);
        assert_eq!(preview.text.as_deref(), Some(shown), "{kind:?}");
        assert_eq!(preview.sender_id, Some(uid(&alice)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_registration_is_deleted_and_gets_nothing_more() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(push_config()).await;
    let alice = server.user("alice").await;
    let (bob, gone) = registered(&push, &server, "bob").await;
    let (carol, sentinel) = registered(&push, &server, "carol").await;
    push.script(&gone, json!([410])).await;
    let to_bob = direct(&alice, &bob).await;
    let to_carol = direct(&alice, &carol).await;
    alice.send(to_bob, "k1", "first").await.unwrap();
    let attempts = push.wait_for(&gone, 1).await;
    assert_eq!(attempts[0].status, 410);
    let store = peek(&server).await;
    let bob_device = device_of(&bob).await;
    wait_until("the registration is deleted", || async {
        store.push_target(bob_device).await.unwrap().is_none()
    })
    .await;
    alice.send(to_bob, "k2", "second").await.unwrap();
    alice.send(to_carol, "k3", "sentinel").await.unwrap();
    push.wait_for(&sentinel, 1).await;
    wait_until("nothing is pending", || async {
        store.next_push_due().await.unwrap().is_none()
    })
    .await;
    assert_eq!(push.attempts(&gone).await.len(), 1, "no push after the 410");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_retried_after_that_wait() {
    let Some(push) = PushService::start() else {
        return;
    };
    let server = TestServer::start_with(push_config()).await;
    let alice = server.user("alice").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    push.script(&sub, json!([[503, "1"]])).await;
    let chat = direct(&alice, &bob).await;
    alice.send(chat, "k1", "hello").await.unwrap();
    let attempts = push.wait_for(&sub, 2).await;
    assert_eq!((attempts[0].status, attempts[1].status), (503, 201));
    assert_eq!(wake(&attempts[1]), &PushPayload::wake(chat, 1));
    assert!(
        attempts[1].received_at_ms - attempts[0].received_at_ms >= 1_000,
        "Retry-After: 1 was honoured (a lower bound, not a timing race)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pushes_survive_a_restart() {
    let Some(push) = PushService::start() else {
        return;
    };
    // No delivery worker on the first run: the push can only be pending.
    let mut server = TestServer::start_with(Config {
        push_concurrency: 0,
        ..push_config()
    })
    .await;
    let alice = server.user("alice").await;
    let (bob, sub) = registered(&push, &server, "bob").await;
    let chat = direct(&alice, &bob).await;
    alice.send(chat, "k1", "before the restart").await.unwrap();
    {
        let store = peek(&server).await;
        wait_until("the push is queued", || async {
            store.next_push_due().await.unwrap().is_some()
        })
        .await;
        store.shutdown().await;
    }
    server.config.push_concurrency = 4;
    let server = server.restart().await;
    let attempts = push.wait_for(&sub, 1).await;
    assert_eq!(attempts[0].status, 201);
    assert_eq!(wake(&attempts[0]), &PushPayload::wake(chat, 1));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_checked_replaced_and_removed_with_the_device() {
    let server = TestServer::start().await;
    let vapid = server.client.vapid_key().await.unwrap();
    let key = parley_server::push::webpush::decode_key(&vapid.public_key).unwrap();
    assert_eq!((key.len(), key[0]), (65, 4), "an uncompressed P-256 point");

    let bob = server.user("bob").await;
    let keys = PushKeys {
        p256dh: vapid.public_key.clone(),
        auth: "AAAAAAAAAAAAAAAAAAAAAA".into(),
    };
    let web = |endpoint: &str| PushRegistration::WebPush {
        endpoint: endpoint.into(),
        keys: keys.clone(),
    };
    // Without push_allow_insecure_endpoints: https and public only.
    for bad in [
        web("http://push.example/x"),
        web("https://127.0.0.1/x"),
        web("https://10.0.0.8/x"),
        web("https://[::1]/x"),
        web("https://localhost/x"),
        web(&format!("https://8.8.8.8/{}", "x".repeat(3000))),
        PushRegistration::WebPush {
            endpoint: "https://8.8.8.8/x".into(),
            keys: PushKeys {
                p256dh: "AAAA".into(),
                auth: keys.auth.clone(),
            },
        },
        PushRegistration::WebPush {
            endpoint: "https://8.8.8.8/x".into(),
            keys: PushKeys {
                // The right length and prefix, but not a point on the curve.
                p256dh: format!("BA{}", "A".repeat(85)),
                auth: keys.auth.clone(),
            },
        },
        PushRegistration::Fcm { token: "t".into() },
    ] {
        let err = bob.register_push(&bad).await.unwrap_err();
        assert!(err.to_string().contains("bad_request"), "{bad:?}: {err}");
    }
    let (status, _) = bob
        .raw(
            Method::PUT,
            "/v1/me/devices/current/push",
            Some(r#"{"kind":"carrier-pigeon"}"#),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);

    let store = peek(&server).await;
    let device = device_of(&bob).await;
    bob.register_push(&web("https://8.8.8.8/one"))
        .await
        .unwrap();
    bob.register_push(&web("https://8.8.8.8/two"))
        .await
        .unwrap();
    match store.push_target(device).await.unwrap() {
        Some(parley_store::PushTarget::WebPush { endpoint, .. }) => {
            assert_eq!(endpoint, "https://8.8.8.8/two", "replaced")
        }
        other => panic!("{other:?}"),
    }
    bob.register_push(&PushRegistration::UnifiedPush {
        endpoint: "https://8.8.8.8/up".into(),
        keys: keys.clone(),
    })
    .await
    .unwrap();
    assert!(matches!(
        store.push_target(device).await.unwrap(),
        Some(parley_store::PushTarget::WebPush { unified: true, .. })
    ));
    bob.unregister_push().await.unwrap();
    assert_eq!(store.push_target(device).await.unwrap(), None);
    bob.register_push(&web("https://8.8.8.8/three"))
        .await
        .unwrap();
    bob.logout().await.unwrap();
    assert_eq!(
        store.push_target(device).await.unwrap(),
        None,
        "gone with the device"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_adapter_authenticates_and_sends_a_data_wake_up() {
    let Some(push) = PushService::start() else {
        return;
    };
    // The fake answers the first send 200 and the second 404 UNREGISTERED.
    let key = push.post("/_fcm", json!([200, 404])).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fcm.pem");
    std::fs::write(&key_file, key["key_pem"].as_str().unwrap()).unwrap();
    let server = TestServer::start_with(Config {
        push_fcm_project: Some("parley-test".into()),
        push_fcm_client_email: Some("push@parley-test.example".into()),
        push_fcm_key_file: Some(key_file),
        push_fcm_base_url: format!("{}/fcm", push.base),
        push_fcm_token_url: format!("{}/fcm/token", push.base),
        ..push_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    bob.register_push(&PushRegistration::Fcm {
        token: "fcm-token-of-bob".into(),
    })
    .await
    .unwrap();
    let chat = direct(&alice, &bob).await;
    alice.send(chat, "k1", "no text to google").await.unwrap();
    let received = |n: usize| {
        let control = push.control.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let (_, v) = control
                    .raw(Method::GET, "/_fcm/received", None)
                    .await
                    .unwrap();
                let messages = v["messages"].as_array().unwrap().clone();
                if messages.len() >= n {
                    return messages;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{n} FCM sends expected"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let messages = received(1).await;
    assert_eq!(messages[0]["project"], "parley-test");
    let message = &messages[0]["message"];
    assert_eq!(message["token"], "fcm-token-of-bob");
    assert_eq!(message["data"]["t"], "wake");
    assert_eq!(message["data"]["conversation_id"], chat.to_string());
    assert_eq!(message["android"]["priority"], "HIGH");
    assert_eq!(message["android"]["collapse_key"], "wake");
    assert!(message["android"]["ttl"].as_str().unwrap().ends_with('s'));
    assert!(!message.to_string().contains("no text"));

    alice.send(chat, "k2", "to a stale token").await.unwrap();
    received(2).await;
    let store = peek(&server).await;
    let device = device_of(&bob).await;
    wait_until("the unregistered token is deleted", || async {
        store.push_target(device).await.unwrap().is_none()
    })
    .await;
}

/// An APNs fake: h2c (HTTP/2 with prior knowledge), checks the provider
/// token (ES256 with the team's key, `kid`, `iss`) and the headers, and
/// answers from a script. Records `(path, headers, body)`.
mod apns_fake {
    use std::sync::{Arc, Mutex};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use serde_json::Value;

    /// One request: path, headers, JSON body.
    pub(crate) type Recorded = (String, Vec<(String, String)>, Value);

    #[derive(Default)]
    pub(crate) struct Log {
        pub(crate) requests: Vec<Recorded>,
        pub(crate) errors: Vec<String>,
        pub(crate) script: Vec<(u16, &'static str)>,
    }

    fn check(req: &Request<Incoming>, public_key: &[u8]) -> Result<(), String> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or(format!("no {name}"))
        };
        if req.version() != hyper::Version::HTTP_2 {
            return Err("not HTTP/2".into());
        }
        let token = header("authorization")?
            .strip_prefix("bearer ")
            .ok_or("not a bearer token")?
            .to_owned();
        let (input, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| e.to_string())?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
            .verify(input.as_bytes(), &signature)
            .map_err(|_| "bad ES256 signature")?;
        let part = |i: usize| -> Result<Value, String> {
            let raw = URL_SAFE_NO_PAD
                .decode(input.split('.').nth(i).ok_or("short JWT")?)
                .map_err(|e| e.to_string())?;
            serde_json::from_slice(&raw).map_err(|e| e.to_string())
        };
        let (head, claims) = (part(0)?, part(1)?);
        if head["alg"] != "ES256" || head["kid"] != "KEY123" || claims["iss"] != "TEAM42" {
            return Err(format!("bad JWT {head} {claims}"));
        }
        if header("apns-push-type")? != "alert" || header("apns-collapse-id")? != "wake" {
            return Err("bad apns headers".into());
        }
        header("apns-expiration")?
            .parse::<i64>()
            .map_err(|_| "apns-expiration is not a number")?;
        Ok(())
    }

    /// Serves on 127.0.0.1:0 until the runtime ends; returns the base URL.
    pub(crate) async fn start(public_key: Vec<u8>, log: Arc<Mutex<Log>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, key) = (log.clone(), public_key.clone());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (log, key) = (log.clone(), key.clone());
                    async move {
                        let verdict = check(&req, &key);
                        let path = req.uri().path().to_owned();
                        let headers: Vec<(String, String)> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let mut log = log.lock().unwrap();
                        let (status, reason) = match verdict {
                            Err(why) => {
                                log.errors.push(why);
                                (403, "InvalidProviderToken")
                            }
                            Ok(()) => {
                                log.requests.push((path, headers, body));
                                if log.script.is_empty() {
                                    (200, "")
                                } else {
                                    log.script.remove(0)
                                }
                            }
                        };
                        let body = if reason.is_empty() {
                            Bytes::new()
                        } else {
                            Bytes::from(format!(r#"{{"reason":"{reason}"}}"#))
                        };
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        base
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_adapter_signs_provider_tokens_and_drops_unregistered_tokens() {
    use base64::Engine;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("AuthKey.p8");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
    );
    std::fs::write(&key_file, pem).unwrap();
    let log = Arc::new(std::sync::Mutex::new(apns_fake::Log {
        script: vec![(200, ""), (410, "Unregistered")],
        ..Default::default()
    }));
    let base = apns_fake::start(pair.public_key().as_ref().to_vec(), log.clone()).await;
    let server = TestServer::start_with(Config {
        push_apns_team_id: Some("TEAM42".into()),
        push_apns_key_id: Some("KEY123".into()),
        push_apns_key_file: Some(key_file),
        push_apns_base_url: "http://127.0.0.1:9".into(),
        push_apns_sandbox_url: base,
        ..push_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    bob.register_push(&PushRegistration::Apns {
        token: "ab12cd".into(),
        topic: "org.parley.app".into(),
        sandbox: true,
    })
    .await
    .unwrap();
    let chat = direct(&alice, &bob).await;
    alice.send(chat, "k1", "nothing for apple").await.unwrap();
    let count = |log: &Arc<std::sync::Mutex<apns_fake::Log>>| {
        let log = log.lock().unwrap();
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        log.requests.len()
    };
    wait_until("one APNs request", || async { count(&log) >= 1 }).await;
    {
        let log = log.lock().unwrap();
        let (path, headers, body) = &log.requests[0];
        assert_eq!(path, "/3/device/ab12cd");
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("apns-topic"), Some("org.parley.app"));
        assert_eq!(
            header("apns-priority"),
            Some("10"),
            "direct messages are urgent"
        );
        assert_eq!(body["aps"]["alert"]["loc-key"], "NEW_MESSAGE");
        assert_eq!(body["aps"]["mutable-content"], 1);
        assert!(!body.to_string().contains("nothing for apple"));
    }
    alice.send(chat, "k2", "to a gone token").await.unwrap();
    wait_until("a second APNs request", || async { count(&log) >= 2 }).await;
    let store = peek(&server).await;
    let device = device_of(&bob).await;
    wait_until("the unregistered token is deleted", || async {
        store.push_target(device).await.unwrap().is_none()
    })
    .await;
}

/// `PUSH_BENCH_DEVICES=300 cargo test -p parley --test push -- --ignored
/// push_bench --nocapture`: commit → push service latency (p50/p99, one
/// message at a time, `push_delay_ms` 0) and the pushes per second the
/// worker sustains against the local push service (every device's push
/// queued while no worker runs, then a restart with one). Numbers in
/// BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn push_bench() {
    let Some(push) = PushService::start() else {
        return;
    };
    let devices: usize = std::env::var("PUSH_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let concurrency: usize = std::env::var("PUSH_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut server = TestServer::start_with(Config {
        push_delay_ms: 0,
        push_concurrency: concurrency,
        http_requests_per_token_per_sec: 100_000.0,
        ..push_config()
    })
    .await;
    let alice = server.user("alice").await;
    let mut targets = Vec::with_capacity(devices);
    for i in 0..devices {
        let (bob, sub) = registered(&push, &server, &format!("bob{i}")).await;
        targets.push((direct(&alice, &bob).await, sub));
    }
    // Latency: one message at a time, each to a device with nothing pending.
    let mut latencies = Vec::new();
    for (i, (chat, sub)) in targets.iter().enumerate().take(200) {
        let (message, _) = alice.send(*chat, &format!("l{i}"), "x").await.unwrap();
        let attempts = push.wait_for(sub, 1).await;
        latencies.push(attempts[0].received_at_ms - message.sent_at_ms);
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "commit -> push service: n={} p50={} ms p99={} ms max={} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies[latencies.len() - 1]
    );

    // Throughput: queue one push per device with no worker, then start one.
    server.shutdown().await;
    server.config.push_concurrency = 0;
    let server = server.restart().await;
    // A restart listens on a new port.
    let alice = server.client.with_token(alice.token().unwrap());
    for (i, (chat, _)) in targets.iter().enumerate() {
        alice.send(*chat, &format!("t{i}"), "x").await.unwrap();
    }
    let store = peek(&server).await;
    wait_until("every push is queued", || async {
        let (_, metrics) = server
            .client
            .raw(Method::GET, "/metrics", None)
            .await
            .unwrap();
        let text = metrics.as_str().unwrap_or_default().to_owned();
        let queued = text
            .lines()
            .find(|l| l.starts_with("parley_push_queued_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        queued as usize >= devices + devices.min(200)
    })
    .await;
    store.shutdown().await;
    let mut server = server;
    server.config.push_concurrency = concurrency;
    let started = parley_proto::now_ms();
    let _server = server.restart().await;
    let (mut first, mut last) = (i64::MAX, 0);
    for (i, (_, sub)) in targets.iter().enumerate() {
        let attempts = push.wait_for(sub, if i < 200 { 2 } else { 1 }).await;
        let at = attempts.last().unwrap().received_at_ms;
        (first, last) = (first.min(at), last.max(at));
    }
    let secs = (last - first) as f64 / 1000.0;
    println!(
        "worker: {devices} pushes, first to last received {secs:.2} s = {:.0} pushes/s \
         ({:.2} s from the restart), concurrency {concurrency}",
        (devices - 1) as f64 / secs,
        (last - started) as f64 / 1000.0
    );
}

/// The sum of a counter's series in a node's `/metrics`.
async fn counter(node: &cluster_support::Node, name: &str) -> f64 {
    let (_, text) = Client::new(node.base.clone())
        .raw(Method::GET, "/metrics", None)
        .await
        .unwrap();
    text.as_str()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Two nodes on one database and Redis: they share the VAPID key; a push
/// is queued by the node that committed the message and delivered by
/// either; while the user has a socket on any node, its other device is
/// not woken (the registry is per user, docs/push.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_nodes_share_the_key_and_skip_users_online_elsewhere() {
    let Some(push) = PushService::start() else {
        return;
    };
    let Some((database, redis)) = cluster_support::dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PARLEY_PUSH_ALLOW_INSECURE_ENDPOINTS", "true"),
        ("PARLEY_PUSH_DELAY_MS", "200"),
        ("PARLEY_PUSH_POLL_MS", "100"),
    ];
    let spawn = |name: &str| {
        cluster_support::Node::spawn_with(
            name,
            dir.path(),
            &database.url,
            &redis.url(),
            "127.0.0.1:0",
            &env,
        )
    };
    let (n1, n2) = (spawn("n1"), spawn("n2"));
    n1.wait_ready().await;
    n2.wait_ready().await;
    let key = |node: &cluster_support::Node| {
        let client = Client::new(node.base.clone());
        async move { client.vapid_key().await.unwrap().public_key }
    };
    assert_eq!(key(&n1).await, key(&n2).await, "one VAPID key per cluster");

    let on = |node: &cluster_support::Node| Client::new(node.base.clone());
    on(&n1).register("alice", common::PASSWORD).await.unwrap();
    on(&n1).register("bob", common::PASSWORD).await.unwrap();
    let alice = on(&n1).login("alice", common::PASSWORD).await.unwrap();
    let phone = on(&n1).login("bob", common::PASSWORD).await.unwrap();
    let laptop = on(&n2).login("bob", common::PASSWORD).await.unwrap();
    let vapid = phone.vapid_key().await.unwrap();
    let sub = push
        .post("/_subscribe", json!({"vapid_key": vapid.public_key}))
        .await;
    let registration = PushRegistration::WebPush {
        endpoint: sub["endpoint"].as_str().unwrap().into(),
        keys: PushKeys {
            p256dh: sub["p256dh"].as_str().unwrap().into(),
            auth: sub["auth"].as_str().unwrap().into(),
        },
    };
    let sub = Subscription {
        id: sub["id"].as_str().unwrap().into(),
        registration,
    };
    phone.register_push(&sub.registration).await.unwrap();
    let chat = direct(&alice, &phone).await;
    let store = parley_store::open(&parley_store::StoreConfig::Postgres {
        url: database.url.clone(),
        options: Default::default(),
    })
    .await
    .unwrap()
    .0;

    // Bob's laptop is online on n2: alice's message on n1 wakes nobody.
    let mut socket = laptop.connect(None).await.unwrap();
    alice.send(chat, "k1", "laptop is open").await.unwrap();
    common::expect_message(&mut socket).await;
    wait_until("a node skipped the push (bob is online)", || async {
        counter(&n1, "parley_push_skipped_total").await
            + counter(&n2, "parley_push_skipped_total").await
            >= 1.0
    })
    .await;
    assert_eq!(
        store.next_push_due().await.unwrap(),
        None,
        "nothing pending"
    );
    drop(socket);
    let bob = uid(&phone);
    wait_until("bob is offline everywhere", || async {
        !alice.presence(bob).await.unwrap().online
    })
    .await;
    alice.send(chat, "k2", "laptop is closed").await.unwrap();
    let attempts = push.wait_for(&sub, 1).await;
    assert_eq!(
        wake(&attempts[0]),
        &PushPayload::wake(chat, 1),
        "only the message sent while bob was offline"
    );
}
