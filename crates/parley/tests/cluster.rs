//! Cluster mode (protocol §13): real `parley serve` processes sharing a
//! test database and a private Redis. Users on different nodes exchange
//! messages, receipts, typing and presence; a logout closes a socket on
//! another node; a node killed with `kill -9` under load loses nothing;
//! a Redis outage delays cross-node delivery but loses nothing; a
//! PostgreSQL outage is answered `unavailable` and retries store once; a
//! rolling restart and a reconnect storm behind haproxy lose nothing; a
//! subscriber cut by Redis's output limit, killed, or wedged is recovered;
//! an administrator disabling a user closes its sockets on every node.

mod cluster_support;
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cluster_support::haproxy::Haproxy;
use cluster_support::load::{self, ReceiveReport};
use cluster_support::wedge::WedgeProxy;
use cluster_support::{
    Node, PrivateServer, RedisServer, dependencies, free_port, require, two_nodes,
};
use common::{PASSWORD, direct, expect_close, expect_frame, expect_message, expect_sent, uid};
use parley_client::{Client, Socket};
use parley_proto::{
    ClientFrame, ConversationId, ErrorCode, ReceiptStatus, ServerFrame, UserId, close_code,
};

async fn account(node: &Node, name: &str) -> Client {
    account_at(&node.base, name).await
}

async fn account_at(base: &str, name: &str) -> Client {
    let client = Client::new(base.to_owned());
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
    let (n1, n2) = two_nodes(dir.path(), &database.url, &redis.url()).await;

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

/// A reader on node 1 with a direct conversation with `local` (node 1)
/// and one with `remote` (node 2).
struct Trio {
    reader: Client,
    local: Client,
    remote: Client,
    c_local: ConversationId,
    c_remote: ConversationId,
    _nodes: (Node, Node),
    _services: (common::TestDatabase, RedisServer, tempfile::TempDir),
}

impl Trio {
    async fn start() -> Option<Trio> {
        let (database, redis) = dependencies().await?;
        let dir = tempfile::tempdir().expect("dir");
        let (n1, n2) = two_nodes(dir.path(), &database.url, &redis.url()).await;
        let reader = account(&n1, "reader").await;
        let local = account(&n1, "local").await;
        let remote = account(&n2, "remote").await;
        let c_local = direct(&local, &reader).await;
        let c_remote = direct(&remote, &reader).await;
        Some(Trio {
            reader,
            local,
            remote,
            c_local,
            c_remote,
            _nodes: (n1, n2),
            _services: (database, redis, dir),
        })
    }
}

/// An administrator disabling a user on one node closes the user's
/// sockets on every node at once and its tokens are refused everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_closes_its_sockets_on_every_node() {
    let Some((database, redis)) = dependencies().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (n1, n2) = two_nodes(dir.path(), &database.url, &redis.url()).await;
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
    let Some(Trio {
        reader,
        local,
        remote,
        c_local,
        c_remote,
        _nodes,
        _services,
    }) = Trio::start().await
    else {
        return;
    };
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
    let (n1, n2) = two_nodes(dir.path(), &database.url, &redis.url()).await;
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

/// A private PostgreSQL (which the test may stop), or `None` (skipped)
/// outside CI when it cannot be started.
async fn private_postgres() -> Option<PrivateServer> {
    match tokio::task::spawn_blocking(PrivateServer::start)
        .await
        .unwrap()
    {
        Ok(server) => Some(server),
        Err(why) => {
            require(false, &format!("a private PostgreSQL ({why})"));
            None
        }
    }
}

/// Every acknowledged id arrived exactly once (cursor order and no gaps
/// were checked as they arrived), and nothing arrived that was not sent.
fn assert_exactly_once(received: &ReceiveReport, acked: &HashSet<String>) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for message in &received.got {
        *counts.entry(message.id.as_str()).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    let unknown: Vec<_> = counts.keys().filter(|id| !acked.contains(**id)).collect();
    assert!(
        unknown.is_empty(),
        "delivered but never acknowledged: {unknown:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_unavailable_and_retries_store_once() {
    if !require(RedisServer::available(), "redis-server") {
        return;
    }
    let Some(postgres) = private_postgres().await else {
        return;
    };
    let postgres = Arc::new(postgres);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    // Short store timeouts: a send during the outage fails fast.
    let env = [("PARLEY_DATABASE_TIMEOUT_MS", "2000")];
    let spawn = |name| {
        Node::spawn_with(
            name,
            dir.path(),
            &postgres.url(),
            &redis.url(),
            "127.0.0.1:0",
            &env,
        )
    };
    let n1 = spawn("n1");
    let n2 = spawn("n2");
    n1.wait_ready().await;
    n2.wait_ready().await;
    // Two senders, one per node, into one receiver on n2: one stream is
    // same-node, the other cross-node.
    let receiver = account(&n2, "receiver").await;
    let near = account(&n2, "near").await;
    let far = account(&n1, "far").await;
    let prober = account(&n1, "prober").await;
    let c_near = direct(&near, &receiver).await;
    let c_far = direct(&far, &receiver).await;
    let c_probe = direct(&prober, &receiver).await;

    let stop = Arc::new(AtomicBool::new(false));
    let want = Arc::new(AtomicUsize::new(usize::MAX));
    let r = tokio::spawn(load::receive(
        n2.base.clone(),
        receiver.token().unwrap().to_owned(),
        want.clone(),
        Duration::from_secs(90),
    ));
    let sender = |node: &Node, client: &Client, conv, prefix: &str| {
        tokio::spawn(load::send(
            node.base.clone(),
            client.token().unwrap().to_owned(),
            conv,
            prefix.to_owned(),
            usize::MAX,
            Duration::from_millis(10),
            stop.clone(),
        ))
    };
    let s_near = sender(&n2, &near, c_near, "near");
    let s_far = sender(&n1, &far, c_far, "far");
    let mut probe = prober.connect(None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // PostgreSQL goes away.
    let stopping = postgres.clone();
    tokio::task::spawn_blocking(move || stopping.stop("fast"))
        .await
        .unwrap()
        .expect("stop PostgreSQL");
    // A send now is answered `unavailable`, never `sent`.
    probe.send_text(c_probe, "probe", "0").await.unwrap();
    let answer = expect_frame(&mut probe, "an answer to the probe", |f| match f {
        ServerFrame::Sent { client_msg_id, .. } => client_msg_id == "probe",
        ServerFrame::Error { reference, .. } => reference.as_deref() == Some("probe"),
        _ => false,
    })
    .await;
    assert!(
        matches!(
            answer,
            ServerFrame::Error {
                code: ErrorCode::Unavailable,
                ..
            }
        ),
        "a send while PostgreSQL is down is unavailable, got {answer:?}"
    );
    // Readiness follows PostgreSQL; health does not.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while n1.status("/readyz").await != 503 {
        assert!(tokio::time::Instant::now() < deadline, "readyz turns 503");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n1.status("/healthz").await, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // PostgreSQL is back: the probe's retry (same client_msg_id) succeeds
    // within seconds.
    let starting = postgres.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .unwrap()
        .expect("start PostgreSQL again");
    let back = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "sends work again");
        probe.send_text(c_probe, "probe", "0").await.unwrap();
        let answer = expect_frame(&mut probe, "an answer to the probe", |f| match f {
            ServerFrame::Sent { client_msg_id, .. } => client_msg_id == "probe",
            ServerFrame::Error { reference, .. } => reference.as_deref() == Some("probe"),
            _ => false,
        })
        .await;
        if matches!(answer, ServerFrame::Sent { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "sends succeed again {:?} after PostgreSQL is back",
        back.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let near_report = s_near.await.unwrap();
    let far_report = s_far.await.unwrap();
    eprintln!("same-node sender: {}", near_report.summary());
    eprintln!("cross-node sender: {}", far_report.summary());
    assert!(
        near_report.unavailable + far_report.unavailable > 0,
        "the load saw the outage"
    );
    let mut acked: HashSet<String> = near_report.acked.into_iter().collect();
    acked.extend(far_report.acked);
    acked.insert("probe".to_owned());
    want.store(acked.len(), Ordering::Relaxed);
    let received = r.await.unwrap();
    assert_exactly_once(&received, &acked);
}

/// Three nodes on fixed addresses (so they can restart on them) and
/// haproxy in front; `None` (skipped) outside CI when haproxy, Redis or
/// PostgreSQL is missing.
struct Fronted {
    nodes: Vec<Node>,
    front: Haproxy,
    _redis: RedisServer,
    _database: common::TestDatabase,
    _dir: tempfile::TempDir,
}

async fn three_nodes_behind_haproxy() -> Option<Fronted> {
    if !require(Haproxy::available(), "haproxy") {
        return None;
    }
    let (database, redis) = dependencies().await?;
    let dir = tempfile::tempdir().expect("dir");
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let nodes: Vec<Node> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            Node::spawn_on(
                &format!("n{i}"),
                dir.path(),
                &database.url,
                &redis.url(),
                addr,
            )
        })
        .collect();
    for node in &nodes {
        node.wait_ready().await;
    }
    let backends: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let front = Haproxy::start(&backends);
    Some(Fronted {
        nodes,
        front,
        _redis: redis,
        _database: database,
        _dir: dir,
    })
}

/// `pairs` senders, each in a direct conversation with its own receiver,
/// all connected through `base`; the senders run until `stop`.
struct Traffic {
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<load::SendReport>>,
    receivers: Vec<(Arc<AtomicUsize>, tokio::task::JoinHandle<ReceiveReport>)>,
}

impl Traffic {
    async fn start(base: &str, pairs: usize, pace: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let mut users = Vec::new();
        for i in 0..pairs {
            let sender = account_at(base, &format!("sender{i}")).await;
            let receiver = account_at(base, &format!("receiver{i}")).await;
            let conv = direct(&sender, &receiver).await;
            users.push((sender, receiver, conv));
        }
        let mut receivers = Vec::new();
        for (_, receiver, _) in &users {
            let want = Arc::new(AtomicUsize::new(usize::MAX));
            let task = tokio::spawn(load::receive(
                base.to_owned(),
                receiver.token().unwrap().to_owned(),
                want.clone(),
                Duration::from_secs(90),
            ));
            receivers.push((want, task));
        }
        let senders = users
            .iter()
            .enumerate()
            .map(|(i, (sender, _, conv))| {
                tokio::spawn(load::send(
                    base.to_owned(),
                    sender.token().unwrap().to_owned(),
                    *conv,
                    format!("m{i}."),
                    usize::MAX,
                    pace,
                    stop.clone(),
                ))
            })
            .collect();
        Traffic {
            stop,
            senders,
            receivers,
        }
    }

    /// Stops the senders, waits for every receiver to have everything its
    /// sender had acknowledged, and checks exactly-once delivery for each.
    async fn finish(self) -> (Vec<load::SendReport>, Vec<ReceiveReport>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut sent = Vec::new();
        for task in self.senders {
            sent.push(task.await.unwrap());
        }
        let mut received = Vec::new();
        for ((want, task), report) in self.receivers.into_iter().zip(&sent) {
            want.store(report.acked.len(), Ordering::Relaxed);
            let got = task.await.unwrap();
            assert_exactly_once(&got, &report.acked.iter().cloned().collect());
            received.push(got);
        }
        (sent, received)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_haproxy_loses_nothing() {
    let Some(mut cluster) = three_nodes_behind_haproxy().await else {
        return;
    };
    let base = cluster.front.base();
    let traffic = Traffic::start(&base, 4, Duration::from_millis(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // One node after the other: SIGTERM (it drains: `reconnect` to every
    // socket, haproxy sees /healthz 503), start again on the same address,
    // wait until it is ready and haproxy has seen it up.
    for node in &mut cluster.nodes {
        tokio::task::block_in_place(|| node.terminate());
        tokio::task::block_in_place(|| node.restart());
        node.wait_ready().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (sent, received) = traffic.finish().await;
    let acked: usize = sent.iter().map(|r| r.acked.len()).sum();
    let send_reconnects: usize = sent.iter().map(|r| r.reconnects).sum();
    let receive_reconnects: usize = received.iter().map(|r| r.reconnects).sum();
    eprintln!(
        "rolling restart: {acked} messages acknowledged and delivered once; \
         reconnects: senders {send_reconnects}, receivers {receive_reconnects}"
    );
    // Every socket was on a node that restarted.
    assert!(
        received.iter().all(|r| r.reconnects > 0),
        "every receiver came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_after_a_node_dies_catches_everyone_up() {
    let Some(mut cluster) = three_nodes_behind_haproxy().await else {
        return;
    };
    let base = cluster.front.base();
    // Least connections: about a third of the sockets are on each node.
    let traffic = Traffic::start(&base, 12, Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let on_victim = cluster.nodes[1].metric("parley_connections", "").await;
    tokio::task::block_in_place(|| cluster.nodes[1].kill9());
    let killed = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (sent, received) = traffic.finish().await;

    // Report: the survivors' latency before and during the storm, and how
    // the others came back.
    let storm = killed..killed + Duration::from_secs(5);
    let (mut before, mut during) = (Vec::new(), Vec::new());
    for report in received.iter().filter(|r| r.reconnects == 0) {
        for message in &report.got {
            if message.at < killed {
                before.push(message.latency_ms);
            } else if storm.contains(&message.at) {
                during.push(message.latency_ms);
            }
        }
    }
    let back: Vec<&ReceiveReport> = received.iter().filter(|r| r.reconnects > 0).collect();
    let (b50, b99, bmax) = load::percentiles(&mut before);
    let (d50, d99, dmax) = load::percentiles(&mut during);
    eprintln!(
        "reconnect storm: {on_victim} sockets on the killed node; {} of {} receivers and {} of {} senders came back",
        back.len(),
        received.len(),
        sent.iter().filter(|r| r.reconnects > 0).count(),
        sent.len(),
    );
    eprintln!(
        "survivors' send→deliver latency (ms): before p50 {b50} p99 {b99} max {bmax} ({} msgs); \
         during the storm p50 {d50} p99 {d99} max {dmax} ({} msgs)",
        before.len(),
        during.len()
    );
    let total_reconnects: usize = sent.iter().map(|r| r.reconnects).sum::<usize>()
        + received.iter().map(|r| r.reconnects).sum::<usize>();
    assert!(total_reconnects > 0, "some clients were on the killed node");
}

/// Waits until `node`'s `parley_router_resyncs_total{cause}` is above
/// `before`.
async fn wait_resync(node: &Node, cause: &str, before: f64, what: &str) {
    let labels = format!("cause=\"{cause}\"");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.metric("parley_router_resyncs_total", &labels).await <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: no `{cause}` resync"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_or_wedged_redis_subscriber_is_detected_and_loses_nothing() {
    let Some((database, redis)) = dependencies().await else {
        return;
    };
    // n2 reaches Redis through a proxy that can wedge its subscriber.
    let proxy = WedgeProxy::start(redis.port).await;
    let dir = tempfile::tempdir().expect("dir");
    let n1 = Node::spawn("n1", dir.path(), &database.url, &redis.url());
    let n2 = Node::spawn("n2", dir.path(), &database.url, &proxy.url());
    n1.wait_ready().await;
    n2.wait_ready().await;
    let sender = account(&n1, "sender").await;
    let bulk = account(&n1, "bulk").await;
    let receiver = account(&n2, "receiver").await;
    let conv = direct(&sender, &receiver).await;
    let c_bulk = direct(&bulk, &receiver).await;
    // Steady cross-node traffic for the whole test, into one socket that
    // must never need to reconnect.
    let stop = Arc::new(AtomicBool::new(false));
    let want = Arc::new(AtomicUsize::new(usize::MAX));
    let r = tokio::spawn(load::receive(
        n2.base.clone(),
        receiver.token().unwrap().to_owned(),
        want.clone(),
        Duration::from_secs(90),
    ));
    let s = tokio::spawn(load::send(
        n1.base.clone(),
        sender.token().unwrap().to_owned(),
        conv,
        "m".to_owned(),
        usize::MAX,
        Duration::from_millis(10),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resyncs = |cause: &'static str| {
        let n2 = &n2;
        async move {
            n2.metric("parley_router_resyncs_total", &format!("cause=\"{cause}\""))
                .await
        }
    };

    // 1. Too slow: Redis's pub/sub output limit, set low, cuts the
    // subscribers during a burst of large messages.
    redis.command(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 8kb 0 0",
    ]);
    let before = resyncs("subscribe").await;
    let mut b = bulk.connect(None).await.unwrap();
    const BURST: usize = 40;
    let padding = "x".repeat(16_000);
    for i in 0..BURST {
        let text = format!("{} {padding}", load::now_ms());
        b.send_text(c_bulk, &format!("bulk{i}"), &text)
            .await
            .unwrap();
    }
    for i in 0..BURST {
        expect_sent(&mut b, &format!("bulk{i}")).await;
    }
    wait_resync(&n2, "subscribe", before, "output limit").await;
    redis.command(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 32mb 8mb 60",
    ]);
    let info = redis.command(&["INFO", "stats"]);
    let cut = info
        .lines()
        .find(|l| l.starts_with("client_output_buffer_limit_disconnections"))
        .unwrap_or("(not reported by this Redis)");
    eprintln!("output limit: {cut}");

    // 2. Cut: Redis closes every subscriber connection.
    let before = resyncs("subscribe").await;
    redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    wait_resync(&n2, "subscribe", before, "CLIENT KILL").await;

    // 3. Wedged: the connection stays open but nothing comes through; the
    // node's probe of its own channel notices.
    let before = resyncs("probe").await;
    proxy.wedge();
    wait_resync(&n2, "probe", before, "wedged subscriber").await;

    // Whatever was published meanwhile came from the store instead.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let report = s.await.unwrap();
    let mut acked: HashSet<String> = report.acked.into_iter().collect();
    acked.extend((0..BURST).map(|i| format!("bulk{i}")));
    want.store(acked.len(), Ordering::Relaxed);
    let received = r.await.unwrap();
    assert_exactly_once(&received, &acked);
    assert_eq!(
        received.reconnects, 0,
        "the receiver never had to reconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_opened_without_since_starts_at_the_head() {
    let Some(Trio {
        reader,
        local,
        remote,
        c_local,
        c_remote,
        _nodes,
        _services,
    }) = Trio::start().await
    else {
        return;
    };
    // History the new socket does not ask for.
    let mut l = local.connect(None).await.unwrap();
    let mut m = remote.connect(None).await.unwrap();
    for i in 0..3 {
        l.send_text(c_local, &format!("old{i}"), "x").await.unwrap();
        expect_sent(&mut l, &format!("old{i}")).await;
    }
    let mut r = reader.connect(None).await.unwrap();
    let head = r.ready.as_ref().unwrap().cursor;
    assert_eq!(head, 3);
    // The next message, local then remote, is the next cursor: nothing of
    // the history is sent again (a stitcher that started at 0 instead of
    // the head filled the "gap" 1..=3 from the store).
    l.send_text(c_local, "new-local", "x").await.unwrap();
    m.send_text(c_remote, "new-remote", "x").await.unwrap();
    let mut got = Vec::new();
    collect(&mut r, &mut got, 2).await;
    assert_eq!(got[0].0, head + 1);
    let ids: HashSet<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["new-local", "new-remote"]));
    // And nothing else arrives.
    if let Ok(ServerFrame::Message { cursor, .. }) = r.recv_within(Duration::from_millis(300)).await
    {
        panic!("unexpected cursor {cursor}");
    }
}
