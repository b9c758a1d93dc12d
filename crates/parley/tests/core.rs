//! Core server behaviour at the boundary: accounts, direct conversations,
//! sending, delivery, catch-up, receipts, limits and errors.

mod common;

use std::time::Duration;

use common::*;
use parley_client::{ClientError, Method};
use parley_proto::{ClientFrame, ErrorCode, ReceiptStatus, ServerFrame, close_code};
use parley_server::Config;

#[tokio::test]
async fn accounts_register_login_me_and_logout() {
    let server = TestServer::start().await;
    let api = &server.client;
    let alice = api.register("alice", PASSWORD).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.display_name, "alice");

    // Taken, invalid names and passwords.
    let err = api.register("alice", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    for bad in ["al", "Alice", "al ice", "a-b-c", &"x".repeat(33)] {
        let err = api.register(bad, PASSWORD).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BadRequest), "username {bad:?}");
    }
    let err = api.register("shortpw", "1234567").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest));

    // Wrong user and wrong password look the same.
    let (status_user, body_user) = api
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(r#"{"username":"nobody","password":"whatever1"}"#),
        )
        .await
        .unwrap();
    let (status_pw, body_pw) = api
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(r#"{"username":"alice","password":"whatever1"}"#),
        )
        .await
        .unwrap();
    assert_eq!((status_user, status_pw), (401, 401));
    assert_eq!(body_user, body_pw);
    assert_eq!(body_user["error"]["code"], "unauthorized");

    let phone = api.login_device("alice", PASSWORD, "phone").await.unwrap();
    let laptop = api.login_device("alice", PASSWORD, "laptop").await.unwrap();
    let me = phone.me().await.unwrap();
    assert_eq!(me.user_id, alice.user_id);
    let names: Vec<_> = me.devices.iter().map(|d| d.device_name.as_str()).collect();
    assert_eq!(names, ["phone", "laptop"]);

    // Lookups.
    assert_eq!(
        phone.find_user("alice").await.unwrap().user_id,
        alice.user_id
    );
    assert_eq!(
        phone.find_user("ghost").await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );

    // Logout revokes at once and only that device.
    phone.logout().await.unwrap();
    assert_eq!(
        phone.me().await.unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );
    assert!(laptop.me().await.is_ok());
    assert_eq!(laptop.me().await.unwrap().devices.len(), 1);
}

#[tokio::test]
async fn http_errors_are_json_with_codes() {
    let server = TestServer::start().await;
    let api = &server.client;
    let alice = server.user("alice").await;
    // (client, method, path, body, status, code)
    type Case<'a> = (
        &'a parley_client::Client,
        Method,
        &'a str,
        Option<&'a str>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (api, Method::GET, "/v1/me", None, 401, "unauthorized"),
        (api, Method::GET, "/v1/ws", None, 400, "bad_request"),
        (
            api,
            Method::PUT,
            "/v1/users",
            Some("{}"),
            405,
            "method_not_allowed",
        ),
        (api, Method::GET, "/v1/nothing/here", None, 404, "not_found"),
        (
            api,
            Method::POST,
            "/v1/users",
            Some("{not json"),
            400,
            "bad_request",
        ),
        (
            api,
            Method::POST,
            "/v1/users",
            Some(r#"{"username":"x"}"#),
            400,
            "bad_request",
        ),
        (
            api,
            Method::POST,
            "/v1/users",
            Some(r#"[1,2,3]"#),
            400,
            "bad_request",
        ),
        (
            &alice,
            Method::GET,
            "/v1/conversations/c999",
            None,
            404,
            "not_found",
        ),
        (
            &alice,
            Method::GET,
            "/v1/conversations/zzz",
            None,
            404,
            "not_found",
        ),
        (
            &alice,
            Method::GET,
            "/v1/users/u999",
            None,
            404,
            "not_found",
        ),
        (
            &alice,
            Method::POST,
            "/v1/conversations/direct",
            Some(r#"{"user_id":"c1"}"#),
            404,
            "not_found",
        ),
        (
            &alice,
            Method::POST,
            "/v1/conversations/direct",
            Some(r#"{"user_id":"u999"}"#),
            404,
            "not_found",
        ),
    ];
    for (client, method, path, body, status, code) in cases {
        let (got_status, got_body) = client.raw(method.clone(), path, body).await.unwrap();
        assert_eq!(got_status, status, "{method} {path} {body:?}: {got_body}");
        assert_eq!(got_body["error"]["code"], code, "{method} {path}");
        assert!(got_body["error"]["message"].is_string());
    }
    let huge = format!(
        r#"{{"username":"bigbody","password":"{}"}}"#,
        "p".repeat(1 << 20)
    );
    let (status, body) = api
        .raw(Method::POST, "/v1/users", Some(&huge))
        .await
        .unwrap();
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, _) = api.raw(Method::GET, "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn direct_conversations_are_idempotent_per_pair() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (first, created) = alice.direct(uid(&bob)).await.unwrap();
    assert!(created);
    assert_eq!(first.kind, parley_proto::api::ConversationKind::Direct);
    assert_eq!(first.members.len(), 2);
    let (again, created) = bob.direct(uid(&alice)).await.unwrap();
    assert!(!created);
    assert_eq!(again.conversation_id, first.conversation_id);
    assert_eq!(
        alice.direct(uid(&alice)).await.unwrap_err().code(),
        Some(ErrorCode::BadRequest)
    );
    let list = alice.conversations().await.unwrap();
    assert_eq!(list.conversations.len(), 1);
    assert!(list.conversations[0].last_message.is_none());
    // Outsiders cannot look in.
    let carol = server.user("carol").await;
    let err = carol.conversation(first.conversation_id).await.unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::Forbidden | ErrorCode::NotFound)
    ));
    let err = carol
        .history(first.conversation_id, None, None, None)
        .await
        .unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::Forbidden | ErrorCode::NotFound)
    ));
    let err = carol
        .send(first.conversation_id, "k1", "hi")
        .await
        .unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::Forbidden | ErrorCode::NotFound)
    ));
}

#[tokio::test]
async fn websocket_auth_is_required_and_checked() {
    let server = TestServer::start_with(Config {
        auth_timeout_ms: 300,
        ..test_config()
    })
    .await;
    let url = server.client.ws_url();

    let mut socket = parley_client::Socket::open(&url).await.unwrap();
    socket
        .send(&ClientFrame::Auth {
            token: "not-a-token".into(),
            since: None,
        })
        .await
        .unwrap();
    let (code, _) = expect_error(&mut socket, "auth").await;
    assert_eq!(code, ErrorCode::Unauthorized);
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;

    let mut socket = parley_client::Socket::open(&url).await.unwrap();
    socket
        .send(&ClientFrame::Ping { nonce: None })
        .await
        .unwrap();
    let (code, _) = expect_error(&mut socket, "ping").await;
    assert_eq!(code, ErrorCode::Unauthorized);
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;

    // Silence: closed after the auth timeout.
    let mut socket = parley_client::Socket::open(&url).await.unwrap();
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;

    let alice = server.user("alice").await;
    let socket = alice.connect(None).await.unwrap();
    let ready = socket.ready.unwrap();
    assert_eq!(ready.user_id, uid(&alice));
    assert_eq!(ready.cursor, 0);
    assert_eq!(ready.heartbeat_ms, 25_000);
}

#[tokio::test]
async fn messages_reach_every_other_device_in_order() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let alice_laptop = server.device("alice").await;
    let conversation = direct(&alice, &bob).await;

    let mut a = alice.connect(None).await.unwrap();
    let mut a2 = alice_laptop.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();

    a.send_text(conversation, "k-1", "hello bob").await.unwrap();
    let (seq, message_id) = expect_sent(&mut a, "k-1").await;
    assert_eq!(seq, 1);

    let (cursor, message) = expect_message(&mut b).await;
    assert_eq!(cursor, 1);
    assert_eq!(message.seq, 1);
    assert_eq!(message.message_id, message_id);
    assert_eq!(message.text.as_deref(), Some("hello bob"));
    assert_eq!(message.sender_id, uid(&alice));
    assert_eq!(message.client_msg_id.as_deref(), Some("k-1"));

    // The sender's other device gets it too; the sending device does not.
    let (_, copy) = expect_message(&mut a2).await;
    assert_eq!(copy.message_id, message_id);
    expect_no_frame(&mut a, Duration::from_millis(300), |f| {
        matches!(f, ServerFrame::Message { .. })
    })
    .await;

    // The list shows it.
    let list = bob.conversations().await.unwrap();
    let summary = &list.conversations[0];
    assert_eq!(summary.last_seq, 1);
    assert_eq!(summary.unread_count, 1);
    assert_eq!(
        summary.last_message.as_ref().unwrap().text.as_deref(),
        Some("hello bob")
    );
    let list = alice.conversations().await.unwrap();
    assert_eq!(
        list.conversations[0].unread_count, 0,
        "own messages are not unread"
    );
}

#[tokio::test]
async fn a_thousand_rapid_sends_keep_their_order() {
    let server = TestServer::start_with(Config {
        send_rate_per_sec: 100_000.0,
        send_burst: 100_000,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    let mut a = alice.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    const N: u64 = 1000;
    for i in 0..N {
        a.send_text(conversation, &format!("k{i}"), &format!("message {i}"))
            .await
            .unwrap();
    }
    for i in 0..N {
        let (seq, _) = expect_sent(&mut a, &format!("k{i}")).await;
        assert_eq!(seq, i + 1, "acks in send order with gapless seqs");
    }
    for i in 0..N {
        let (cursor, message) = expect_message(&mut b).await;
        assert_eq!(message.seq, i + 1);
        assert_eq!(cursor, i + 1);
        assert_eq!(message.text.unwrap(), format!("message {i}"));
    }
    let page = bob
        .history(conversation, None, None, Some(100))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 100);
    assert!(page.has_more);
    assert_eq!(page.messages.first().unwrap().seq, 901);
    assert_eq!(page.messages.last().unwrap().seq, 1000);
    let older = bob
        .history(conversation, Some(901), None, Some(100))
        .await
        .unwrap();
    assert_eq!(older.messages.first().unwrap().seq, 801);
    assert_eq!(older.messages.last().unwrap().seq, 900);
    let newer = bob
        .history(conversation, None, Some(995), None)
        .await
        .unwrap();
    let seqs: Vec<u64> = newer.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [996, 997, 998, 999, 1000]);
    assert!(!newer.has_more);
    let default = bob.history(conversation, None, None, None).await.unwrap();
    assert_eq!(default.messages.len(), 50);
    for bad in ["limit=0", "limit=101", "limit=x", "before_seq=-1"] {
        let (status, body) = bob
            .raw(
                Method::GET,
                &format!("/v1/conversations/{conversation}/messages?{bad}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn retries_are_deduplicated_even_across_a_restart() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;

    let (first, created) = alice.send(conversation, "same-key", "once").await.unwrap();
    assert!(created);
    let (repeat, created) = alice.send(conversation, "same-key", "once").await.unwrap();
    assert!(!created);
    assert_eq!(repeat.seq, first.seq);
    assert_eq!(repeat.message_id, first.message_id);

    let mut a = alice.connect(None).await.unwrap();
    a.send_text(conversation, "same-key", "once").await.unwrap();
    let (seq, id) = expect_sent(&mut a, "same-key").await;
    assert_eq!((seq, id), (first.seq, first.message_id));
    drop(a);

    let server = server.restart().await;
    let alice_again = server.client.with_token(alice.token().unwrap());
    let (after_restart, created) = alice_again
        .send(conversation, "same-key", "once")
        .await
        .unwrap();
    assert!(!created, "dedup survives a restart");
    assert_eq!(after_restart.seq, first.seq);
    let page = alice_again
        .history(conversation, None, None, None)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    // The same key from another user is another message.
    let bob_again = server.client.with_token(bob.token().unwrap());
    let (bobs, created) = bob_again
        .send(conversation, "same-key", "mine")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(bobs.seq, 2);
}

#[tokio::test]
async fn offline_users_catch_up_from_their_cursor() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;

    let mut b = bob.connect(None).await.unwrap();
    alice
        .send(conversation, "k0", "while online")
        .await
        .unwrap();
    let (cursor, _) = expect_message(&mut b).await;
    b.close().await;

    for i in 1..=5 {
        alice
            .send(conversation, &format!("k{i}"), &format!("missed {i}"))
            .await
            .unwrap();
    }
    let mut b = bob.connect(Some(cursor)).await.unwrap();
    assert_eq!(b.ready.unwrap().cursor, cursor + 5);
    for i in 1..=5u64 {
        let (got_cursor, message) = expect_message(&mut b).await;
        assert_eq!(got_cursor, cursor + i);
        assert_eq!(message.text.unwrap(), format!("missed {i}"));
    }
    let synced = expect_frame(&mut b, "synced", |f| {
        matches!(f, ServerFrame::Synced { .. })
    })
    .await;
    assert_eq!(synced, ServerFrame::Synced { cursor: cursor + 5 });

    // Live delivery continues without duplicates.
    alice.send(conversation, "k6", "live").await.unwrap();
    let (live_cursor, live) = expect_message(&mut b).await;
    assert_eq!(live_cursor, cursor + 6);
    assert_eq!(live.text.as_deref(), Some("live"));

    // Without since: no replay, and a cursor from the future needs a resync.
    let mut fresh = bob.connect(None).await.unwrap();
    expect_no_frame(&mut fresh, Duration::from_millis(300), |f| {
        matches!(f, ServerFrame::Message { .. } | ServerFrame::Synced { .. })
    })
    .await;
    let mut future = bob.connect(Some(10_000)).await.unwrap();
    let (code, _) = expect_error(&mut future, "auth").await;
    assert_eq!(code, ErrorCode::ResyncRequired);
}

#[tokio::test]
async fn receipts_move_forward_only_and_reach_the_right_devices() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let bob_tablet = server.device("bob").await;
    let conversation = direct(&alice, &bob).await;
    for i in 1..=3 {
        alice
            .send(conversation, &format!("k{i}"), "hi")
            .await
            .unwrap();
    }
    let mut a = alice.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    let mut b2 = bob_tablet.connect(None).await.unwrap();

    let receipt = |status, up_to_seq| ClientFrame::Receipt {
        conversation_id: conversation,
        status,
        up_to_seq,
    };
    b.send(&receipt(ReceiptStatus::Delivered, 3)).await.unwrap();
    let expected = ServerFrame::Receipt {
        conversation_id: conversation,
        user_id: uid(&bob),
        status: ReceiptStatus::Delivered,
        up_to_seq: 3,
    };
    assert_eq!(
        expect_frame(&mut a, "receipt", |f| matches!(
            f,
            ServerFrame::Receipt { .. }
        ))
        .await,
        expected
    );
    assert_eq!(
        expect_frame(&mut b2, "receipt", |f| matches!(
            f,
            ServerFrame::Receipt { .. }
        ))
        .await,
        expected
    );

    b.send(&receipt(ReceiptStatus::Read, 2)).await.unwrap();
    let frame = expect_frame(&mut a, "read receipt", |f| {
        matches!(f, ServerFrame::Receipt { .. })
    })
    .await;
    assert_eq!(
        frame,
        ServerFrame::Receipt {
            conversation_id: conversation,
            user_id: uid(&bob),
            status: ReceiptStatus::Read,
            up_to_seq: 2,
        }
    );
    // Backwards and beyond-the-end receipts do not move cursors backwards
    // or past the last message.
    b.send(&receipt(ReceiptStatus::Delivered, 1)).await.unwrap();
    b.send(&receipt(ReceiptStatus::Read, 99)).await.unwrap();
    let frame = expect_frame(&mut a, "read receipt", |f| {
        matches!(f, ServerFrame::Receipt { .. })
    })
    .await;
    assert_eq!(
        frame,
        ServerFrame::Receipt {
            conversation_id: conversation,
            user_id: uid(&bob),
            status: ReceiptStatus::Read,
            up_to_seq: 3,
        }
    );
    let details = alice.conversation(conversation).await.unwrap();
    let bob_state = details
        .members
        .iter()
        .find(|m| m.user_id == uid(&bob))
        .unwrap();
    assert_eq!((bob_state.delivered_up_to, bob_state.read_up_to), (3, 3));
    let alice_state = details
        .members
        .iter()
        .find(|m| m.user_id == uid(&alice))
        .unwrap();
    assert_eq!(
        (alice_state.delivered_up_to, alice_state.read_up_to),
        (3, 3),
        "own sends advance own cursors"
    );
    let list = bob.conversations().await.unwrap();
    assert_eq!(list.conversations[0].unread_count, 0);
    assert_eq!(list.conversations[0].read_up_to, 3);

    // Read implies delivered.
    alice.send(conversation, "k4", "more").await.unwrap();
    b.send(&receipt(ReceiptStatus::Read, 4)).await.unwrap();
    expect_frame(&mut a, "read 4", |f| {
        matches!(f, ServerFrame::Receipt { up_to_seq: 4, .. })
    })
    .await;
    let details = alice.conversation(conversation).await.unwrap();
    let bob_state = details
        .members
        .iter()
        .find(|m| m.user_id == uid(&bob))
        .unwrap();
    assert_eq!((bob_state.delivered_up_to, bob_state.read_up_to), (4, 4));

    // A receipt for a conversation one is not in is refused.
    let carol = server.user("carol").await;
    let mut c = carol.connect(None).await.unwrap();
    c.send(&receipt(ReceiptStatus::Read, 1)).await.unwrap();
    let (code, _) = expect_error(&mut c, "receipt").await;
    assert!(matches!(code, ErrorCode::Forbidden | ErrorCode::NotFound));
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_socket_stays_open() {
    let server = TestServer::start_with(Config {
        max_text_bytes: 1000,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    let mut a = alice.connect(None).await.unwrap();
    let cases = [
        ("{nope".to_owned(), None),
        (r#"{"type":"teleport"}"#.to_owned(), Some("teleport")),
        (r#"{"no_type":1}"#.to_owned(), None),
        (
            format!(r#"{{"type":"send","client_msg_id":"k1","conversation_id":"{conversation}"}}"#),
            Some("k1"),
        ),
        (
            format!(
                r#"{{"type":"send","client_msg_id":"k3","conversation_id":"{conversation}","kind":"system","text":"x"}}"#
            ),
            Some("k3"),
        ),
        (
            format!(
                r#"{{"type":"receipt","conversation_id":"{conversation}","status":"seen","up_to_seq":1}}"#
            ),
            Some("receipt"),
        ),
    ];
    for (frame, reference) in cases {
        a.send_raw(frame.clone()).await.unwrap();
        let got = expect_frame(&mut a, "error", |f| matches!(f, ServerFrame::Error { .. })).await;
        match got {
            ServerFrame::Error {
                code, reference: r, ..
            } => {
                assert_eq!(code, ErrorCode::BadRequest, "{frame}");
                assert_eq!(r.as_deref(), reference, "{frame}");
            }
            _ => unreachable!(),
        }
    }
    // Too long a text: payload_too_large, nothing stored.
    a.send_text(conversation, "big", &"x".repeat(1001))
        .await
        .unwrap();
    let (code, _) = expect_error(&mut a, "big").await;
    assert_eq!(code, ErrorCode::PayloadTooLarge);
    // Unknown conversation.
    a.send_text(conversation_id("c9999"), "lost", "x")
        .await
        .unwrap();
    let (code, _) = expect_error(&mut a, "lost").await;
    assert_eq!(code, ErrorCode::NotFound);
    // Still open and working.
    a.send(&ClientFrame::Ping {
        nonce: Some(serde_json::json!("n-1")),
    })
    .await
    .unwrap();
    let pong = expect_frame(&mut a, "pong", |f| matches!(f, ServerFrame::Pong { .. })).await;
    assert_eq!(
        pong,
        ServerFrame::Pong {
            nonce: Some(serde_json::json!("n-1"))
        }
    );
    a.send_text(conversation, "ok", "fine").await.unwrap();
    let (seq, _) = expect_sent(&mut a, "ok").await;
    assert_eq!(seq, 1, "nothing was stored for the refused sends");
    let page = alice.history(conversation, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 1);
}

fn conversation_id(s: &str) -> parley_proto::ConversationId {
    s.parse().unwrap()
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let server = TestServer::start_with(Config {
        max_frame_bytes: 4096,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let mut a = alice.connect(None).await.unwrap();
    let frame = format!(r#"{{"type":"ping","nonce":"{}"}}"#, "x".repeat(10_000));
    a.send_raw(frame).await.unwrap();
    expect_close(&mut a, close_code::TOO_BIG).await;
    // The server is fine.
    let mut again = alice.connect(None).await.unwrap();
    again
        .send(&ClientFrame::Ping { nonce: None })
        .await
        .unwrap();
    expect_frame(&mut again, "pong", |f| {
        matches!(f, ServerFrame::Pong { .. })
    })
    .await;
}

#[tokio::test]
async fn sends_over_the_rate_limit_are_refused_and_not_stored() {
    let server = TestServer::start_with(Config {
        send_rate_per_sec: 1.0,
        send_burst: 5,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    let mut a = alice.connect(None).await.unwrap();
    for i in 0..8 {
        a.send_text(conversation, &format!("k{i}"), "spam")
            .await
            .unwrap();
    }
    // Refusals are immediate, acks come at commit: collect all eight in
    // whatever order they arrive.
    let mut sent = 0;
    let mut limited = 0;
    while sent + limited < 8 {
        let frame = expect_frame(&mut a, "ack or error", |f| {
            matches!(f, ServerFrame::Sent { .. } | ServerFrame::Error { .. })
        })
        .await;
        match frame {
            ServerFrame::Sent { .. } => sent += 1,
            ServerFrame::Error {
                code,
                retry_after_ms,
                ..
            } => {
                assert_eq!(code, ErrorCode::RateLimited);
                assert!(retry_after_ms.unwrap() > 0);
                limited += 1;
            }
            _ => unreachable!(),
        }
    }
    assert!(sent >= 5 && limited >= 1, "sent {sent}, limited {limited}");
    let page = alice.history(conversation, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), sent);
    // HTTP sends share the budget and say Retry-After.
    let mut saw_429 = false;
    for i in 0..5 {
        if let Err(err) = alice.send(conversation, &format!("h{i}"), "x").await {
            assert_eq!(err.code(), Some(ErrorCode::RateLimited));
            saw_429 = true;
        }
    }
    assert!(saw_429);
}

#[tokio::test]
async fn logout_closes_the_devices_sockets() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let laptop = server.device("alice").await;
    let mut phone_socket = alice.connect(None).await.unwrap();
    let mut laptop_socket = laptop.connect(None).await.unwrap();
    alice.logout().await.unwrap();
    expect_close(&mut phone_socket, close_code::UNAUTHORIZED).await;
    // The other device stays.
    laptop_socket
        .send(&ClientFrame::Ping { nonce: None })
        .await
        .unwrap();
    expect_frame(&mut laptop_socket, "pong", |f| {
        matches!(f, ServerFrame::Pong { .. })
    })
    .await;
    let err = alice.connect(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Api {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{err}"
    );
    // Revoking another device closes it too.
    let me = laptop.me().await.unwrap();
    let other = server.device("alice").await;
    let mut other_socket = other.connect(None).await.unwrap();
    let other_id = other.session.as_ref().unwrap().device_id;
    assert!(laptop.me().await.unwrap().devices.len() > me.devices.len());
    laptop.revoke_device(other_id).await.unwrap();
    expect_close(&mut other_socket, close_code::UNAUTHORIZED).await;
}

#[tokio::test]
async fn silent_sockets_are_closed_after_two_heartbeats() {
    let server = TestServer::start_with(Config {
        heartbeat_ms: 200,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let mut a = alice.connect(None).await.unwrap();
    assert_eq!(a.ready.unwrap().heartbeat_ms, 200);
    // Pinging keeps it open past the limit...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        a.send(&ClientFrame::Ping { nonce: None }).await.unwrap();
        expect_frame(&mut a, "pong", |f| matches!(f, ServerFrame::Pong { .. })).await;
    }
    // ...silence closes it.
    expect_close(&mut a, close_code::TIMEOUT).await;
}

#[tokio::test]
async fn metrics_are_exposed() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    alice.send(conversation, "k", "x").await.unwrap();
    let (status, body) = server
        .client
        .raw(Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    assert!(text.contains("parley_sends_total"), "{text}");
    assert!(text.contains("parley_commit_seconds"), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_tells_sockets_to_reconnect() {
    let mut server = TestServer::start_with(Config {
        reconnect_jitter_ms: 1000,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let mut a = alice.connect(None).await.unwrap();
    server.shutdown().await;
    let frame = expect_frame(&mut a, "reconnect", |f| {
        matches!(f, ServerFrame::Reconnect { .. })
    })
    .await;
    match frame {
        ServerFrame::Reconnect { after_ms } => assert!(after_ms < 1000),
        _ => unreachable!(),
    }
    expect_close(&mut a, close_code::GOING_AWAY).await;
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_without_slowing_anyone_and_catches_up() {
    let server = TestServer::start_with(Config {
        socket_queue_frames: 4,
        send_rate_per_sec: 10_000.0,
        send_burst: 10_000,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let bob_fast = server.device("bob").await;
    let conversation = direct(&alice, &bob).await;
    // Bob's phone stops reading; his laptop keeps up.
    let slow = bob.connect(None).await.unwrap();
    let mut fast = bob_fast.connect(None).await.unwrap();
    let big = "x".repeat(60_000);
    const N: usize = 150;
    let sender = {
        let alice = alice.clone();
        tokio::spawn(async move {
            for i in 0..N {
                alice
                    .send(conversation, &format!("k{i}"), &big)
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..N {
        let (cursor, message) = expect_message(&mut fast).await;
        assert_eq!(message.seq, i as u64 + 1);
        assert_eq!(cursor, i as u64 + 1);
    }
    sender.await.unwrap();
    // The slow socket was closed (4008 when the close frame got through, or
    // simply dropped): it never gets all N.
    let mut slow = slow;
    let mut got = 0;
    let closed = loop {
        match slow.recv_within(WAIT).await {
            Ok(ServerFrame::Message { .. }) => got += 1,
            Ok(_) => {}
            Err(ClientError::Closed { code, .. }) => break code,
            Err(ClientError::Ws(_)) => break parley_client::error::ABNORMAL,
            Err(err) => panic!("slow socket: {err}"),
        }
    };
    assert!(got < N, "the slow socket was cut off (got {got})");
    assert!(
        matches!(
            closed,
            close_code::TOO_SLOW | parley_client::error::ABNORMAL
        ),
        "closed with {closed}"
    );
    // It catches up from its cursor.
    let mut again = bob.connect(Some(got as u64)).await.unwrap();
    for i in got..N {
        let (cursor, _) = expect_message(&mut again).await;
        assert_eq!(cursor, i as u64 + 1);
    }
    expect_frame(&mut again, "synced", |f| {
        matches!(f, ServerFrame::Synced { .. })
    })
    .await;
}

#[tokio::test]
async fn login_attempts_are_limited_per_username() {
    let server = TestServer::start_with(Config {
        login_attempts_per_minute: 3,
        ..test_config()
    })
    .await;
    let api = &server.client;
    api.register("alice", PASSWORD).await.unwrap();
    api.register("bob", PASSWORD).await.unwrap();
    let wrong = r#"{"username":"alice","password":"not the password"}"#;
    for _ in 0..3 {
        let (status, _) = api
            .raw(Method::POST, "/v1/sessions", Some(wrong))
            .await
            .unwrap();
        assert_eq!(status, 401);
    }
    let (status, body) = api
        .raw(Method::POST, "/v1/sessions", Some(wrong))
        .await
        .unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Even the right password waits; other users are unaffected.
    let err = api.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    assert!(api.login("bob", PASSWORD).await.is_ok());
}

/// Ids are opaque to clients: an id that names nothing is `not_found`,
/// whatever its shape (wrong kind, no digits, not an id at all), in a path,
/// in a body, or in a frame.
#[tokio::test]
async fn unknown_ids_of_any_shape_are_not_found() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    let group = alice
        .create_group("Team", &[uid(&bob)])
        .await
        .unwrap()
        .conversation_id;
    let send_body = r#"{"client_msg_id":"h1","kind":"text","text":"x"}"#;
    let cases: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, "/v1/users/zzz".into(), None),
        (Method::GET, "/v1/users/c1".into(), None),
        (Method::GET, "/v1/users/u999".into(), None),
        (Method::GET, "/v1/users/zzz/presence".into(), None),
        (Method::GET, "/v1/conversations/xyz".into(), None),
        (
            Method::GET,
            format!("/v1/conversations/{}", uid(&bob)),
            None,
        ),
        (Method::GET, "/v1/conversations/xyz/messages".into(), None),
        (
            Method::POST,
            "/v1/conversations/xyz/messages".into(),
            Some(send_body),
        ),
        (
            Method::POST,
            "/v1/conversations/c999/messages".into(),
            Some(send_body),
        ),
        (Method::DELETE, "/v1/me/devices/nope".into(), None),
        (Method::DELETE, "/v1/me/devices/d999".into(), None),
        (
            Method::POST,
            "/v1/conversations/direct".into(),
            Some(r#"{"user_id":"zzz"}"#),
        ),
        (
            Method::POST,
            "/v1/groups".into(),
            Some(r#"{"name":"x","member_ids":["nope"]}"#),
        ),
        (
            Method::PATCH,
            "/v1/groups/zzz".into(),
            Some(r#"{"name":"y"}"#),
        ),
        // A direct conversation is not a group.
        (
            Method::PATCH,
            format!("/v1/groups/{conversation}"),
            Some(r#"{"name":"y"}"#),
        ),
        (
            Method::POST,
            format!("/v1/groups/{group}/members"),
            Some(r#"{"user_ids":["nope"]}"#),
        ),
        (
            Method::DELETE,
            format!("/v1/groups/{group}/members/zzz"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/groups/{group}/members/nope/role"),
            Some(r#"{"role":"admin"}"#),
        ),
    ];
    for (method, path, body) in cases {
        let (status, got) = alice.raw(method.clone(), &path, body).await.unwrap();
        assert_eq!(status, 404, "{method} {path} {body:?}: {got}");
        assert_eq!(got["error"]["code"], "not_found", "{method} {path}");
    }

    let mut a = alice.connect(None).await.unwrap();
    for (n, id) in ["no-such-conversation", "u1", "c9999", ""]
        .iter()
        .enumerate()
    {
        let reference = format!("lost-{n}");
        a.send_raw(format!(
            r#"{{"type":"send","client_msg_id":"{reference}","conversation_id":"{id}","kind":"text","text":"x"}}"#
        ))
        .await
        .unwrap();
        let (code, _) = expect_error(&mut a, &reference).await;
        assert_eq!(code, ErrorCode::NotFound, "send to {id:?}");
    }
    a.send_raw(
        r#"{"type":"receipt","conversation_id":"zzz","status":"read","up_to_seq":1}"#.to_owned(),
    )
    .await
    .unwrap();
    let (code, _) = expect_error(&mut a, "receipt").await;
    assert_eq!(code, ErrorCode::NotFound);
    a.send_raw(r#"{"type":"typing","conversation_id":"zzz","active":true}"#.to_owned())
        .await
        .unwrap();
    let (code, _) = expect_error(&mut a, "typing").await;
    assert_eq!(code, ErrorCode::NotFound);
    // Nothing was stored, and the socket still works.
    a.send_text(conversation, "ok", "fine").await.unwrap();
    let (seq, _) = expect_sent(&mut a, "ok").await;
    assert_eq!(seq, 1);
}

/// An endpoint that exists but not with this method says so.
#[tokio::test]
async fn a_wrong_method_is_method_not_allowed() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for (method, path) in [
        (Method::PUT, "/v1/users"),
        (Method::DELETE, "/v1/conversations"),
        (Method::POST, "/v1/me"),
    ] {
        let (status, body) = alice.raw(method.clone(), path, Some("{}")).await.unwrap();
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
}

/// Connections over `max_connections` get a clean `503 unavailable`, and
/// are served again once others close.
#[tokio::test]
async fn connections_over_the_limit_are_refused_cleanly() {
    let server = TestServer::start_with(Config {
        max_connections: 3,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    // The test's HTTP client keeps a connection or two of the limit; fill
    // the rest with sockets until one is refused.
    let mut sockets = Vec::new();
    let refused = loop {
        match alice.connect(None).await {
            Ok(socket) => {
                sockets.push(socket);
                assert!(sockets.len() <= 3, "more sockets than max_connections");
            }
            Err(err) => break err,
        }
    };
    assert!(
        matches!(refused, ClientError::Ws(_)),
        "the upgrade is refused, not the session: {refused}"
    );
    // A new HTTP connection gets the protocol's JSON error.
    let fresh = parley_client::Client::new(format!("http://{}", server.addr));
    let (status, body) = fresh.raw(Method::GET, "/v1/me", None).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    drop(fresh);
    // Closing a socket makes room again.
    assert!(!sockets.is_empty(), "at least one socket fits");
    sockets.pop();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut again = loop {
        match alice.connect(None).await {
            Ok(socket) => break socket,
            Err(err) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no room after a close: {err}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    again
        .send(&ClientFrame::Ping { nonce: None })
        .await
        .unwrap();
    expect_frame(&mut again, "pong", |f| {
        matches!(f, ServerFrame::Pong { .. })
    })
    .await;
}
