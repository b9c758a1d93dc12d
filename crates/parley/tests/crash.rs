//! Durability: `kill -9` the real binary right after acks arrive, restart it
//! on the same data dir, and check every acked message is there with the
//! same seq, with no gaps and no duplicates.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::{PASSWORD, ServerProcess, history_all};
use parley_client::Client;
use parley_proto::{ConversationId, ServerFrame};

/// The server under test: the binary, on PostgreSQL when
/// `PARLEY_CRASH_DATABASE_URL` names a database, else on SQLite in
/// `data_dir`.
fn spawn_server(data_dir: &std::path::Path) -> ServerProcess {
    let database = std::env::var("PARLEY_CRASH_DATABASE_URL").ok();
    ServerProcess::spawn(data_dir, database.as_deref())
}

/// Streams sends until `kill_after` acks arrived, then kills the server
/// immediately. Returns (client_msg_id -> acked seq).
async fn stream_until_kill(
    client: &Client,
    server: &mut ServerProcess,
    conversation: ConversationId,
    round: usize,
    kill_after: usize,
) -> HashMap<String, u64> {
    let socket = client.connect(None).await.expect("connect");
    let (mut writer, mut reader) = socket.split();
    let sender = tokio::spawn(async move {
        for i in 0..100_000 {
            let frame = parley_proto::ClientFrame::Send {
                client_msg_id: format!("r{round}-{i}"),
                conversation_id: conversation,
                kind: parley_proto::MessageKind::Text,
                text: format!("round {round} message {i}"),
                reply_to_seq: None,
                target_seq: None,
                emoji: None,
                forwarded: false,
                media: Vec::new(),
            };
            if writer.send(&frame).await.is_err() {
                return;
            }
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut acked = HashMap::new();
    while acked.len() < kill_after {
        match tokio::time::timeout(Duration::from_secs(30), reader.recv()).await {
            Ok(Ok(ServerFrame::Sent {
                client_msg_id, seq, ..
            })) => {
                acked.insert(client_msg_id, seq);
            }
            Ok(Ok(ServerFrame::Error { code, message, .. })) => {
                panic!("send refused: {code} {message}")
            }
            Ok(Ok(_)) => {}
            other => panic!("socket failed before the kill point: {other:?}"),
        }
    }
    server.kill9();
    // Acks that were already in flight when we killed also count: they
    // were only sent after commit.
    while let Ok(Ok(frame)) = tokio::time::timeout(Duration::from_secs(5), reader.recv()).await {
        if let ServerFrame::Sent {
            client_msg_id, seq, ..
        } = frame
        {
            acked.insert(client_msg_id, seq);
        }
    }
    sender.abort();
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_server(dir.path());
    let api = Client::new(server.base.clone());
    api.register("alice", PASSWORD).await.unwrap();
    api.register("bob", PASSWORD).await.unwrap();
    let alice = api.login("alice", PASSWORD).await.unwrap();
    let bob_id = alice.find_user("bob").await.unwrap().user_id;
    let token = alice.token().unwrap().to_owned();
    let conversation = alice.direct(bob_id).await.unwrap().0.conversation_id;

    let mut all_acked: HashMap<String, u64> = HashMap::new();
    for (round, kill_after) in [1usize, 37, 400, 1500].into_iter().enumerate() {
        let client = Client::new(server.base.clone()).with_token(token.clone());
        let acked = stream_until_kill(&client, &mut server, conversation, round, kill_after).await;
        assert!(acked.len() >= kill_after);
        all_acked.extend(acked);

        server = spawn_server(dir.path());
        let client = Client::new(server.base.clone()).with_token(token.clone());
        verify(&client, conversation, &all_acked).await;
    }
    server.kill9();
}

async fn verify(client: &Client, conversation: ConversationId, acked: &HashMap<String, u64>) {
    let stored = history_all(client, conversation).await;
    for (i, message) in stored.iter().enumerate() {
        assert_eq!(message.seq, i as u64 + 1, "seqs are gapless from 1");
    }
    let mut by_key: HashMap<&str, u64> = HashMap::new();
    for message in &stored {
        let key = message.client_msg_id.as_deref().unwrap();
        assert!(by_key.insert(key, message.seq).is_none(), "duplicate {key}");
    }
    let mut missing = 0;
    for (key, seq) in acked {
        match by_key.get(key.as_str()) {
            Some(stored_seq) => assert_eq!(stored_seq, seq, "{key} kept its seq"),
            None => missing += 1,
        }
    }
    assert_eq!(missing, 0, "acked messages lost after kill -9");
    println!(
        "verified {} stored messages, {} acked",
        stored.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_server(dir.path());
    let api = Client::new(server.base.clone());
    api.register("alice", PASSWORD).await.unwrap();
    let alice = api.login("alice", PASSWORD).await.unwrap();
    let mut socket = alice.connect(None).await.unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let mut saw_reconnect = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.recv()).await {
            Ok(Ok(ServerFrame::Reconnect { .. })) => saw_reconnect = true,
            Ok(Ok(_)) => {}
            Ok(Err(parley_client::ClientError::Closed { code, .. })) => {
                assert_eq!(code, parley_proto::close_code::GOING_AWAY);
                break;
            }
            other => panic!("expected reconnect then close, got {other:?}"),
        }
    }
    assert!(saw_reconnect);
    let exit = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().expect("wait");
        (status, server)
    })
    .await
    .unwrap()
    .0;
    assert!(exit.success(), "exit status {exit:?}");
}
