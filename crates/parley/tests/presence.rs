//! Presence, last seen, typing, and multi-device behaviour.

mod common;

use std::time::Duration;

use common::*;
use parley_proto::api::PresenceVisibility;
use parley_proto::{ClientFrame, ErrorCode, ServerFrame, UserId};
use parley_server::Config;

fn quick_presence() -> Config {
    Config {
        presence_grace_ms: 300,
        ..test_config()
    }
}

async fn expect_presence(socket: &mut parley_client::Socket, user: UserId) -> (bool, Option<i64>) {
    match expect_frame(
        socket,
        "presence",
        |f| matches!(f, ServerFrame::Presence { user_id, .. } if *user_id == user),
    )
    .await
    {
        ServerFrame::Presence {
            online,
            last_seen_ms,
            ..
        } => (online, last_seen_ms),
        _ => unreachable!(),
    }
}

fn subscribe(users: Vec<UserId>) -> ClientFrame {
    ClientFrame::PresenceSubscribe { user_ids: users }
}

#[tokio::test]
async fn subscribers_see_online_and_last_seen() {
    let server = TestServer::start_with(quick_presence()).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut a = alice.connect(None).await.unwrap();
    a.send(&subscribe(vec![uid(&bob)])).await.unwrap();
    assert_eq!(
        expect_presence(&mut a, uid(&bob)).await,
        (false, None),
        "never seen"
    );

    let b = bob.connect(None).await.unwrap();
    assert!(expect_presence(&mut a, uid(&bob)).await.0);
    let view = alice.presence(uid(&bob)).await.unwrap();
    assert!(view.online);

    let before = parley_proto::now_ms();
    b.close().await;
    let (online, last_seen) = expect_presence(&mut a, uid(&bob)).await;
    assert!(!online);
    let last_seen = last_seen.expect("last seen after going offline");
    assert!(
        last_seen >= before - 1000,
        "last seen is when the socket went away"
    );
    let view = alice.presence(uid(&bob)).await.unwrap();
    assert_eq!((view.online, view.last_seen_ms), (false, Some(last_seen)));

    // Unsubscribed sockets hear nothing.
    a.send(&ClientFrame::PresenceUnsubscribe {
        user_ids: vec![uid(&bob)],
    })
    .await
    .unwrap();
    let _b = bob.connect(None).await.unwrap();
    expect_no_frame(&mut a, Duration::from_millis(500), |f| {
        matches!(f, ServerFrame::Presence { .. })
    })
    .await;

    // Last seen survives a restart.
    drop(a);
    drop(_b);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stored = alice
        .presence(uid(&bob))
        .await
        .unwrap()
        .last_seen_ms
        .unwrap();
    let server = server.restart().await;
    let alice_again = server.client.with_token(alice.token().unwrap());
    let view = alice_again.presence(uid(&bob)).await.unwrap();
    assert!(!view.online);
    assert_eq!(view.last_seen_ms, Some(stored));
}

#[tokio::test]
async fn a_quick_reconnect_does_not_flap() {
    let server = TestServer::start_with(Config {
        presence_grace_ms: 1500,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let b = bob.connect(None).await.unwrap();
    let mut a = alice.connect(None).await.unwrap();
    a.send(&subscribe(vec![uid(&bob)])).await.unwrap();
    assert!(expect_presence(&mut a, uid(&bob)).await.0);
    b.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _b = bob.connect(None).await.unwrap();
    expect_no_frame(&mut a, Duration::from_millis(2000), |f| {
        matches!(f, ServerFrame::Presence { .. })
    })
    .await;
    assert!(alice.presence(uid(&bob)).await.unwrap().online);
}

#[tokio::test]
async fn a_silently_dead_client_goes_offline_by_heartbeat_timeout() {
    let server = TestServer::start_with(Config {
        heartbeat_ms: 250,
        presence_grace_ms: 100,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // Bob's socket stays open at the TCP level but sends nothing.
    let _silent_bob = bob.connect(None).await.unwrap();
    let mut a = alice.connect(None).await.unwrap();
    a.send(&subscribe(vec![uid(&bob)])).await.unwrap();
    assert!(expect_presence(&mut a, uid(&bob)).await.0);
    // Keep alice alive while waiting.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        a.send(&ClientFrame::Ping { nonce: None }).await.unwrap();
        match a.recv_within(Duration::from_millis(150)).await {
            Ok(ServerFrame::Presence { online: false, .. }) => break,
            Ok(_) | Err(parley_client::ClientError::Timeout) => {}
            Err(err) => panic!("{err}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never went offline"
        );
    }
}

#[tokio::test]
async fn nobody_visibility_hides_presence_and_is_pushed() {
    let server = TestServer::start_with(quick_presence()).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut b = bob.connect(None).await.unwrap();
    let mut a = alice.connect(None).await.unwrap();
    a.send(&subscribe(vec![uid(&bob)])).await.unwrap();
    assert!(expect_presence(&mut a, uid(&bob)).await.0);
    // Bob watches himself too: he sees through his own setting.
    b.send(&subscribe(vec![uid(&bob)])).await.unwrap();
    assert!(expect_presence(&mut b, uid(&bob)).await.0);

    bob.set_presence_visibility(PresenceVisibility::Nobody)
        .await
        .unwrap();
    assert_eq!(expect_presence(&mut a, uid(&bob)).await, (false, None));
    assert!(expect_presence(&mut b, uid(&bob)).await.0);
    let view = alice.presence(uid(&bob)).await.unwrap();
    assert_eq!((view.online, view.last_seen_ms), (false, None));
    assert_eq!(
        bob.me().await.unwrap().presence_visibility,
        PresenceVisibility::Nobody
    );

    // Going offline and back stays hidden.
    b.close().await;
    expect_no_frame(&mut a, Duration::from_millis(600), |f| {
        matches!(
            f,
            ServerFrame::Presence { online: true, .. }
                | ServerFrame::Presence {
                    last_seen_ms: Some(_),
                    ..
                }
        )
    })
    .await;
    let view = alice.presence(uid(&bob)).await.unwrap();
    assert_eq!((view.online, view.last_seen_ms), (false, None));

    bob.set_presence_visibility(PresenceVisibility::Everyone)
        .await
        .unwrap();
    let (online, last_seen) = expect_presence(&mut a, uid(&bob)).await;
    assert!(!online);
    assert!(last_seen.is_some());
    let (status, body) = bob
        .raw(
            parley_client::Method::PUT,
            "/v1/me/settings",
            Some(r#"{"presence_visibility":"friends"}"#),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn presence_subscriptions_are_limited_per_socket() {
    let server = TestServer::start_with(Config {
        max_presence_subscriptions: 3,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let mut a = alice.connect(None).await.unwrap();
    let ids: Vec<UserId> = (100..104).map(UserId).collect();
    a.send(&subscribe(ids[..3].to_vec())).await.unwrap();
    for &id in &ids[..3] {
        expect_presence(&mut a, id).await;
    }
    a.send(&subscribe(ids[3..].to_vec())).await.unwrap();
    let (code, _) = expect_error(&mut a, "presence_subscribe").await;
    assert_eq!(code, ErrorCode::BadRequest);
    a.send(&ClientFrame::PresenceUnsubscribe {
        user_ids: vec![ids[0]],
    })
    .await
    .unwrap();
    a.send(&subscribe(ids[3..].to_vec())).await.unwrap();
    expect_presence(&mut a, ids[3]).await;
}

#[tokio::test]
async fn typing_reaches_the_other_members_only() {
    let server = TestServer::start_with(Config {
        typing_rate_per_sec: 2.0,
        ..test_config()
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let alice_laptop = server.device("alice").await;
    let conversation = direct(&alice, &bob).await;
    let group = alice
        .create_group("Typists", &[uid(&bob), uid(&carol)])
        .await
        .unwrap()
        .conversation_id;
    let mut a = alice.connect(None).await.unwrap();
    let mut a2 = alice_laptop.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    let mut c = carol.connect(None).await.unwrap();

    a.send(&ClientFrame::Typing {
        conversation_id: conversation,
        active: true,
    })
    .await
    .unwrap();
    let frame = expect_frame(&mut b, "typing", |f| {
        matches!(f, ServerFrame::Typing { .. })
    })
    .await;
    assert_eq!(
        frame,
        ServerFrame::Typing {
            conversation_id: conversation,
            user_id: uid(&alice),
            active: true,
        }
    );
    a.send(&ClientFrame::Typing {
        conversation_id: group,
        active: false,
    })
    .await
    .unwrap();
    expect_frame(&mut b, "group typing", |f| {
        matches!(f, ServerFrame::Typing { active: false, .. })
    })
    .await;
    expect_frame(&mut c, "group typing", |f| {
        matches!(f, ServerFrame::Typing { active: false, .. })
    })
    .await;
    // Not to the typist's own devices, never stored, not to outsiders.
    expect_no_frame(&mut a2, Duration::from_millis(300), |f| {
        matches!(f, ServerFrame::Typing { .. })
    })
    .await;
    assert!(
        bob.history(conversation, None, None, None)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    c.send(&ClientFrame::Typing {
        conversation_id: conversation,
        active: true,
    })
    .await
    .unwrap();
    let (code, _) = expect_error(&mut c, "typing").await;
    assert!(matches!(code, ErrorCode::Forbidden | ErrorCode::NotFound));
    // Rate limited per socket.
    let mut limited = false;
    for _ in 0..10 {
        a.send(&ClientFrame::Typing {
            conversation_id: conversation,
            active: true,
        })
        .await
        .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match a.recv_within(Duration::from_millis(500)).await {
            Ok(ServerFrame::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::RateLimited);
                limited = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(limited, "typing is rate limited");
}

#[tokio::test]
async fn every_device_of_a_user_stays_in_sync() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let alice_laptop = server.device("alice").await;
    let conversation = direct(&alice, &bob).await;
    let mut phone = alice.connect(None).await.unwrap();
    let mut laptop = alice_laptop.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();

    // What bob sends reaches both; what alice sends from one reaches the other.
    b.send_text(conversation, "b1", "hi alice").await.unwrap();
    assert_eq!(
        expect_message(&mut phone).await.1.text.as_deref(),
        Some("hi alice")
    );
    assert_eq!(
        expect_message(&mut laptop).await.1.text.as_deref(),
        Some("hi alice")
    );
    phone
        .send_text(conversation, "a1", "from my phone")
        .await
        .unwrap();
    expect_sent(&mut phone, "a1").await;
    assert_eq!(
        expect_message(&mut laptop).await.1.text.as_deref(),
        Some("from my phone")
    );

    // Reading on the phone marks it read on the laptop.
    b.send_text(conversation, "b2", "again").await.unwrap();
    expect_message(&mut phone).await;
    expect_message(&mut laptop).await;
    phone
        .send(&ClientFrame::Receipt {
            conversation_id: conversation,
            status: parley_proto::ReceiptStatus::Read,
            up_to_seq: 3,
        })
        .await
        .unwrap();
    let frame = expect_frame(&mut laptop, "own receipt", |f| {
        matches!(f, ServerFrame::Receipt { .. })
    })
    .await;
    assert_eq!(
        frame,
        ServerFrame::Receipt {
            conversation_id: conversation,
            user_id: uid(&alice),
            status: parley_proto::ReceiptStatus::Read,
            up_to_seq: 3,
        }
    );
    expect_no_frame(&mut phone, Duration::from_millis(300), |f| {
        matches!(f, ServerFrame::Receipt { .. })
    })
    .await;
    let frame = expect_frame(&mut b, "peer receipt", |f| {
        matches!(f, ServerFrame::Receipt { .. })
    })
    .await;
    assert!(matches!(frame, ServerFrame::Receipt { up_to_seq: 3, .. }));
    let devices = alice.me().await.unwrap().devices;
    assert_eq!(devices.len(), 2);
}
