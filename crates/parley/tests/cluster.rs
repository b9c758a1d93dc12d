//! Cluster mode (protocol §13): real `parley serve` processes sharing a
//! test database and a private Redis. Users on different nodes exchange
//! messages, receipts, typing and presence; a logout closes a socket on
//! another node; a node killed with `kill -9` under load loses nothing;
//! a Redis outage delays cross-node delivery but loses nothing; an
//! administrator disabling a user closes its sockets on every node.

mod cluster_support;
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cluster_support::{Node, dependencies};
use common::{PASSWORD, direct, expect_close, expect_frame, expect_message, expect_sent, uid};
use parley_client::{Client, Socket};
use parley_proto::{ClientFrame, ConversationId, ReceiptStatus, ServerFrame, UserId, close_code};

async fn account(node: &Node, name: &str) -> Client {
    let client = Client::new(node.base.clone());
    client.register(name, PASSWORD).await.expect("register");
    client.login(name, PASSWORD).await.expect("login")
}

async fn login(node: &Node, name: &str) -> Client {
    Client::new(node.base.clone())
        .login(name, PASSWORD)
        .await
        .expect("login")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_nodes_get_everything_and_logout_closes_remote_sockets() {
    let Some((database, redis)) = dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (n1, n2) = Node::ready_pair(dir.path(), &database.url, &redis.url()).await;

    let alice = account(&n1, "alice").await;
    let bob = account(&n2, "bob").await;
    let carol = account(&n1, "carol").await;
    // A token issued by one node works on the other (shared token_key).
    let alice_via_n2 = Client::new(n2.base.clone()).with_token(alice.token().unwrap());
    alice_via_n2
        .me()
        .await
        .expect("node 2 accepts node 1's token");

    let conv = direct(&alice, &bob).await;
    let mut a = alice.connect(None).await.expect("alice on n1");
    let mut b = bob.connect(None).await.expect("bob on n2");

    // Messages both ways.
    a.send_text(conv, "a1", "hello from n1").await.unwrap();
    expect_sent(&mut a, "a1").await;
    let (_, message) = expect_message(&mut b).await;
    assert_eq!(message.text.as_deref(), Some("hello from n1"));
    b.send_text(conv, "b1", "hello from n2").await.unwrap();
    expect_sent(&mut b, "b1").await;
    let (_, message) = expect_message(&mut a).await;
    assert_eq!(message.text.as_deref(), Some("hello from n2"));

    // Receipts (alice reads bob's message; sending had read her own).
    a.send(&ClientFrame::Receipt {
        conversation_id: conv,
        status: ReceiptStatus::Read,
        up_to_seq: 2,
    })
    .await
    .unwrap();
    let alice_id = uid(&alice);
    expect_frame(&mut b, "alice's read receipt", |f| {
        matches!(f, ServerFrame::Receipt { user_id, status: ReceiptStatus::Read, up_to_seq: 2, .. } if *user_id == alice_id)
    })
    .await;

    // Typing.
    a.send(&ClientFrame::Typing {
        conversation_id: conv,
        active: true,
    })
    .await
    .unwrap();
    expect_frame(
        &mut b,
        "alice typing",
        |f| matches!(f, ServerFrame::Typing { user_id, active: true, .. } if *user_id == alice_id),
    )
    .await;

    // Presence: bob (n2) watches carol, who comes and goes on n1.
    let carol_id = uid(&carol);
    b.send(&ClientFrame::PresenceSubscribe {
        user_ids: vec![carol_id],
    })
    .await
    .unwrap();
    expect_frame(&mut b, "carol offline at first", |f| {
        matches!(f, ServerFrame::Presence { user_id, online: false, .. } if *user_id == carol_id)
    })
    .await;
    let c = carol.connect(None).await.expect("carol on n1");
    expect_frame(&mut b, "carol online", |f| {
        matches!(f, ServerFrame::Presence { user_id, online: true, .. } if *user_id == carol_id)
    })
    .await;
    c.close().await;
    let offline = expect_frame(&mut b, "carol offline after grace", |f| {
        matches!(f, ServerFrame::Presence { user_id, online: false, .. } if *user_id == carol_id)
    })
    .await;
    match offline {
        ServerFrame::Presence { last_seen_ms, .. } => {
            assert!(last_seen_ms.is_some(), "last seen is known");
        }
        _ => unreachable!(),
    }
    // The HTTP view on the other node agrees.
    let view = alice_via_n2.presence(carol_id).await.expect("presence");
    assert!(!view.online);

    // Logout on n1 closes the device's socket on n2.
    let alice_phone = login(&n2, "alice").await;
    let mut phone = alice_phone.connect(None).await.expect("phone on n2");
    Client::new(n1.base.clone())
        .with_token(alice_phone.token().unwrap())
        .logout()
        .await
        .expect("logout via n1");
    expect_close(&mut phone, close_code::UNAUTHORIZED).await;
    // And the token is refused on every node.
    assert!(alice_phone.me().await.is_err(), "refused on n2");

    // Login attempts are limited across nodes (10 per minute by default).
    let mut limited = false;
    for i in 0..12 {
        let node = if i % 2 == 0 { &n1 } else { &n2 };
        let err = Client::new(node.base.clone())
            .login("carol", "wrong password!")
            .await
            .expect_err("wrong password");
        if err.to_string().contains("rate") || err.to_string().contains("too many") {
            limited = true;
            break;
        }
    }
    assert!(limited, "the 11th attempt across two nodes is limited");
}

/// An administrator disabling a user on one node closes the user's
/// sockets on every node at once and its tokens are refused everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_closes_its_sockets_on_every_node() {
    let Some((database, redis)) = dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (n1, n2) = Node::ready_pair(dir.path(), &database.url, &redis.url()).await;
    // The first administrator, made against the shared database.
    let config = parley_server::Config {
        database: Some(database.url.clone()),
        data_dir: dir.path().join("admin-cli"),
        ..common::test_config()
    };
    parley_server::admin::create_user(
        config,
        parley_server::accounts::NewAccount {
            username: "root".into(),
            password: PASSWORD.into(),
            display_name: None,
            is_admin: true,
        },
    )
    .await
    .expect("create the first administrator");
    let admin = login(&n1, "root").await;

    let bob_on_n2 = account(&n2, "bob").await;
    let bob_on_n1 = login(&n1, "bob").await;
    let mut remote = bob_on_n2.connect(None).await.expect("bob on n2");
    let mut local = bob_on_n1.connect(None).await.expect("bob on n1");
    admin
        .admin_disable(uid(&bob_on_n2))
        .await
        .expect("disable via n1");
    expect_close(&mut remote, close_code::UNAUTHORIZED).await;
    expect_close(&mut local, close_code::UNAUTHORIZED).await;
    for (node, client) in [(&n1, &bob_on_n2), (&n2, &bob_on_n1), (&n2, &bob_on_n2)] {
        let via = Client::new(node.base.clone()).with_token(client.token().unwrap());
        assert_eq!(
            via.me().await.expect_err("refused").code(),
            Some(parley_proto::ErrorCode::Unauthorized),
            "on {}",
            node.name
        );
    }
    let refused = Client::new(n2.base.clone())
        .login("bob", PASSWORD)
        .await
        .expect_err("a disabled user cannot log in");
    assert_eq!(refused.code(), Some(parley_proto::ErrorCode::Forbidden));
}

/// Reads message frames into `got` until `want` cursors arrived (or panics
/// after a bound); checks cursors are exactly consecutive.
async fn collect(socket: &mut Socket, got: &mut Vec<(u64, String)>, want: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match socket.recv_within(left).await {
            Ok(ServerFrame::Message { cursor, message }) => {
                if let Some((last, _)) = got.last() {
                    assert_eq!(cursor, last + 1, "cursors in order, no gap, no duplicate");
                }
                got.push((cursor, message.client_msg_id.unwrap_or_default()));
            }
            Ok(_) => {}
            Err(err) => panic!("after {} of {want} messages: {err}", got.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_remote_senders_interleave_exactly_once_in_order() {
    let Some((database, redis)) = dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (n1, n2) = Node::ready_pair(dir.path(), &database.url, &redis.url()).await;
    let reader = account(&n1, "reader").await;
    let local = account(&n1, "local").await;
    let remote = account(&n2, "remote").await;
    let c_local = direct(&local, &reader).await;
    let c_remote = direct(&remote, &reader).await;
    let mut r = reader.connect(None).await.unwrap();
    const EACH: usize = 150;
    let send_all = |client: Client, conv: ConversationId, tag: &'static str| async move {
        let mut socket = client.connect(None).await.unwrap();
        for i in 0..EACH {
            socket
                .send_text(conv, &format!("{tag}{i}"), "x")
                .await
                .unwrap();
        }
        for i in 0..EACH {
            expect_sent(&mut socket, &format!("{tag}{i}")).await;
        }
    };
    let l = tokio::spawn(send_all(local, c_local, "l"));
    let m = tokio::spawn(send_all(remote, c_remote, "r"));
    let mut got = Vec::new();
    collect(&mut r, &mut got, 2 * EACH).await;
    l.await.unwrap();
    m.await.unwrap();
    let ids: HashSet<&String> = got.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 2 * EACH, "every message exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing() {
    let Some((database, redis)) = dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let n1 = Node::spawn("n1", dir.path(), &database.url, &redis.url());
    let mut n2 = Node::spawn("n2", dir.path(), &database.url, &redis.url());
    let n3 = Node::spawn("n3", dir.path(), &database.url, &redis.url());
    for node in [&n1, &n2, &n3] {
        node.wait_ready().await;
    }
    // The receiver stays on n1; one sender is on the victim n2, one on n3;
    // a second receiver is on n2 and must come back elsewhere.
    let receiver = account(&n1, "receiver").await;
    let stayer = account(&n2, "stayer").await;
    let victim_sender = account(&n2, "vsender").await;
    let steady_sender = account(&n3, "ssender").await;
    let c_victim = direct(&victim_sender, &receiver).await;
    let c_steady = direct(&steady_sender, &receiver).await;
    let c_stayer = direct(&steady_sender, &stayer).await;
    let mut r = receiver.connect(None).await.unwrap();
    let mut st = stayer.connect(None).await.unwrap();

    // The victim's sender streams sends and records its acks until n2 dies.
    let mut vs = victim_sender.connect(None).await.unwrap();
    let victim = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..2_000 {
            if vs.send_text(c_victim, &format!("v{i}"), "x").await.is_err() {
                break;
            }
            if i % 8 == 7 {
                // Read what has come back so far, without waiting long.
                while let Ok(frame) = vs.recv_within(Duration::from_millis(5)).await {
                    if let ServerFrame::Sent { client_msg_id, .. } = frame {
                        acked.push(client_msg_id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        while let Ok(frame) = vs.recv_within(Duration::from_millis(500)).await {
            if let ServerFrame::Sent { client_msg_id, .. } = frame {
                acked.push(client_msg_id);
            }
        }
        acked
    });
    // The steady sender sends to both receivers across the kill.
    let mut ss = steady_sender.connect(None).await.unwrap();
    const STEADY: usize = 200;
    let steady = tokio::spawn(async move {
        for i in 0..STEADY {
            ss.send_text(c_steady, &format!("s{i}"), "x").await.unwrap();
            ss.send_text(c_stayer, &format!("t{i}"), "x").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 0..STEADY {
            expect_sent(&mut ss, &format!("s{i}")).await;
            expect_sent(&mut ss, &format!("t{i}")).await;
        }
    });

    // Let load build, then kill n2.
    let mut got_r: Vec<(u64, String)> = Vec::new();
    collect(&mut r, &mut got_r, 60).await;
    n2.kill9();
    let acked = victim.await.unwrap();
    assert!(
        !acked.is_empty(),
        "the victim acked some sends before dying"
    );

    // The stayer's socket died with n2: it reconnects to n3 and catches up.
    let mut got_st: Vec<(u64, String)> = Vec::new();
    loop {
        match st.recv_within(Duration::from_secs(5)).await {
            Ok(ServerFrame::Message { cursor, message }) => {
                if let Some((last, _)) = got_st.last() {
                    assert_eq!(cursor, last + 1);
                }
                got_st.push((cursor, message.client_msg_id.unwrap_or_default()));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    steady.await.unwrap();
    let since = got_st.last().map(|(c, _)| *c).unwrap_or(0);
    let stayer_n3 = Client::new(n3.base.clone()).with_token(stayer.token().unwrap());
    let mut st = stayer_n3.connect(Some(since)).await.unwrap();
    collect(&mut st, &mut got_st, STEADY).await;
    let ids: HashSet<&String> = got_st.iter().map(|(_, id)| id).collect();
    assert_eq!(
        ids.len(),
        STEADY,
        "the stayer got every message exactly once"
    );

    // The receiver never reconnected: it gets every steady message, every
    // acked victim message (even those n2 committed but never published),
    // exactly once, in cursor order.
    let head = receiver.connect(None).await.unwrap().ready.unwrap().cursor;
    collect(&mut r, &mut got_r, head as usize).await;
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for (_, id) in &got_r {
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "no duplicates");
    for i in 0..STEADY {
        assert!(counts.contains_key(&format!("s{i}")), "steady s{i} arrived");
    }
    for id in &acked {
        assert!(
            counts.contains_key(id),
            "acked {id} from the dead node arrived"
        );
    }
    let _ = (UserId(0), n1, n3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_delays_cross_node_delivery_but_loses_nothing() {
    let Some((database, mut redis)) = dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (n1, n2) = Node::ready_pair(dir.path(), &database.url, &redis.url()).await;
    let sender = account(&n1, "sender").await;
    let receiver = account(&n2, "receiver").await;
    let conv = direct(&sender, &receiver).await;
    let mut s = sender.connect(None).await.unwrap();
    let mut r = receiver.connect(None).await.unwrap();
    s.send_text(conv, "before", "x").await.unwrap();
    expect_sent(&mut s, "before").await;
    let mut got = Vec::new();
    collect(&mut r, &mut got, 1).await;

    redis.stop();
    // Readiness follows Redis; health does not.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while n1.status("/readyz").await != 503 {
        assert!(tokio::time::Instant::now() < deadline, "readyz turns 503");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n1.status("/healthz").await, 200);
    assert_eq!(n2.status("/healthz").await, 200);
    // Sends are still acknowledged: PostgreSQL is the record.
    for i in 0..20 {
        s.send_text(conv, &format!("during{i}"), "x").await.unwrap();
    }
    for i in 0..20 {
        expect_sent(&mut s, &format!("during{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Redis comes back empty: everything arrives without reconnecting.
    redis.start_again();
    collect(&mut r, &mut got, 21).await;
    n1.wait_ready().await;
    n2.wait_ready().await;
    // And live delivery works again.
    s.send_text(conv, "after", "x").await.unwrap();
    expect_sent(&mut s, "after").await;
    collect(&mut r, &mut got, 22).await;
    assert_eq!(got.last().unwrap().1, "after");
}
