//! Every metric counts what its name says, checked at the boundary: scrape
//! `/metrics`, do one thing, scrape again, compare. Its own test binary
//! with one test, because the metrics recorder is process-wide.

mod common;

use common::{TestServer, WAIT, direct, expect_message, test_config};
use parley_client::ClientError;
use parley_proto::{ClientFrame, MessageKind};
use parley_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The sum of a metric over its label sets (0 when absent).
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(server: &TestServer) -> String {
    common::scrape_metrics(server).await
}

/// What `names` moved by since `before`.
async fn deltas(server: &TestServer, before: &str, names: &[&str]) -> Vec<f64> {
    let after = scrape(server).await;
    names
        .iter()
        .map(|name| value(&after, name) - value(before, name))
        .collect()
}

/// Polls until `name` moved by `want` since `before` (gauges and counters
/// updated by tasks that finish after the client saw the effect).
async fn settles(server: &TestServer, before: &str, name: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = deltas(server, before, &[name]).await[0];
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} moved by {got}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_metric_counts_what_its_name_says() {
    let server = TestServer::start_with(Config {
        socket_queue_frames: 4,
        send_rate_per_sec: 10_000.0,
        send_burst: 10_000,
        ..test_config()
    })
    .await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let bob_slow = server.device("bob").await;
    let conversation = direct(&ann, &bob).await;

    // One authenticated socket: one connection, one frame out (`ready`);
    // the auth frame is not a frame in.
    let before = scrape(&server).await;
    let mut ann_socket = ann.connect(None).await.unwrap();
    settles(&server, &before, "parley_connections", 1.0).await;
    assert_eq!(
        deltas(
            &server,
            &before,
            &["parley_frames_in_total", "parley_frames_out_total"]
        )
        .await,
        [0.0, 1.0]
    );
    let mut bob_socket = bob.connect(None).await.unwrap();

    // One send over the socket: one frame in, one send, one delivery per
    // recipient inbox (ann's own and bob's), two frames out (`sent` to
    // ann, `message` to bob), at least one group commit.
    let before = scrape(&server).await;
    ann_socket
        .send(&ClientFrame::Send {
            client_msg_id: "k1".into(),
            conversation_id: conversation,
            kind: MessageKind::Text,
            text: "hi".into(),
            reply_to_seq: None,
            target_seq: None,
            emoji: None,
            forwarded: false,
            media: Vec::new(),
        })
        .await
        .unwrap();
    common::expect_sent(&mut ann_socket, "k1").await;
    expect_message(&mut bob_socket).await;
    settles(&server, &before, "parley_frames_out_total", 2.0).await;
    let moved = deltas(
        &server,
        &before,
        &[
            "parley_frames_in_total",
            "parley_sends_total",
            "parley_deliveries_total",
            "parley_commit_seconds_count",
            "parley_commit_batch_size_count",
            "parley_slow_consumer_closes_total",
        ],
    )
    .await;
    assert_eq!(moved[..3], [1.0, 1.0, 2.0], "frames in, sends, deliveries");
    assert!(moved[3] >= 1.0 && moved[4] >= 1.0, "commits: {moved:?}");
    assert_eq!(moved[5], 0.0);

    // One slow consumer: bob's second device stops reading while 150 big
    // messages arrive. One socket closed as too slow is one close, however
    // many frames overflowed its queue.
    let slow = bob_slow.connect(None).await.unwrap();
    let before = scrape(&server).await;
    let big = "x".repeat(60_000);
    const N: usize = 150;
    let sender = {
        let ann = ann.clone();
        tokio::spawn(async move {
            for i in 0..N {
                ann.send(conversation, &format!("h{i}"), &big)
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..N {
        expect_message(&mut bob_socket).await;
    }
    sender.await.unwrap();
    let mut slow = slow;
    loop {
        match slow.recv_within(WAIT).await {
            Ok(_) => {}
            Err(ClientError::Closed { .. } | ClientError::Ws(_)) => break,
            Err(err) => panic!("slow socket: {err}"),
        }
    }
    settles(&server, &before, "parley_connections", -1.0).await;
    let moved = deltas(
        &server,
        &before,
        &[
            "parley_slow_consumer_closes_total",
            "parley_sends_total",
            "parley_deliveries_total",
            "parley_frames_in_total",
        ],
    )
    .await;
    assert_eq!(moved, [1.0, N as f64, 2.0 * N as f64, 0.0]);
    drop((ann_socket, bob_socket));
    drop(server);

    // One connection over max_connections: one refusal.
    let server = TestServer::start_with(Config {
        max_connections: 3,
        ..test_config()
    })
    .await;
    let before = scrape(&server).await;
    let (held, refusals) = fill(&server).await;
    assert_eq!(refusals, 1);
    drop(held);
    settles(&server, &before, "parley_refused_connections_total", 1.0).await;
    drop(server);

    // One connection over max_connections_per_ip: one refusal of that kind.
    let server = TestServer::start_with(Config {
        max_connections_per_ip: 3,
        per_ip_limits_on_loopback: true,
        signups_per_ip_per_hour: 1,
        ..test_config()
    })
    .await;
    // One refused sign-up: one rate-limited request, labelled by its limit.
    let before = scrape(&server).await;
    server
        .client
        .register("xavier", common::PASSWORD)
        .await
        .unwrap();
    assert!(
        server
            .client
            .register("yvonne", common::PASSWORD)
            .await
            .is_err()
    );
    settles(&server, &before, "parley_rate_limited_total", 1.0).await;
    let after = scrape(&server).await;
    assert!(
        after.contains(r#"parley_rate_limited_total{limit="signup"}"#),
        "{after}"
    );
    let before = scrape(&server).await;
    let (held, refusals) = fill(&server).await;
    assert_eq!(refusals, 1);
    drop(held);
    settles(
        &server,
        &before,
        "parley_refused_connections_per_ip_total",
        1.0,
    )
    .await;
    assert_eq!(
        deltas(&server, &before, &["parley_refused_connections_total"]).await[0],
        0.0
    );
}

/// Opens keep-alive connections, each asking `/healthz`, until one is
/// refused; returns the ones served and the refusal count (1).
async fn fill(server: &TestServer) -> (Vec<tokio::net::TcpStream>, usize) {
    let mut held = Vec::new();
    loop {
        assert!(held.len() < 10, "never refused");
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 503") {
            return (held, 1);
        }
        held.push(stream);
    }
}
