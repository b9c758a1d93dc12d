//! `parley admin backup DIR` at the boundary: the built binary backs up the
//! data dir of a real server (SQLite) while clients keep sending; a server
//! started on the backup has every message acknowledged before the backup
//! began, and the old tokens still work (the signing key came along).

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use parley_client::Client;
use parley_proto::ConversationId;

/// Sends `prefix-N` from `client` until `stop`, recording each acknowledged
/// client_msg_id in `acked` as its 201 arrives.
async fn keep_sending(
    client: Client,
    conversation: ConversationId,
    prefix: &'static str,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("{prefix}-{n}");
        client
            .send(conversation, &id, &format!("message {id}"))
            .await
            .expect("send under load");
        acked.lock().unwrap().push(id);
        n += 1;
    }
}

/// Every client_msg_id in the conversation.
async fn stored_ids(client: &Client, conversation: ConversationId) -> HashSet<String> {
    history_all(client, conversation)
        .await
        .into_iter()
        .filter_map(|m| m.client_msg_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_message() {
    // Backups copy SQLite; PostgreSQL is backed up with pg_dump.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("media")).unwrap();
    std::fs::write(data_dir.join("media").join("blob"), b"media bytes").unwrap();
    let mut config = test_config();
    config.data_dir = data_dir.clone();
    config.database = None;
    config.send_rate_per_sec = 100_000.0;
    config.send_burst = 100_000;
    config.http_requests_per_token_per_sec = 100_000.0;
    let mut server = TestServer::start_in(config.clone()).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = [(alice.clone(), "a"), (bob.clone(), "b")].map(|(client, prefix)| {
        tokio::spawn(keep_sending(
            client,
            conversation,
            prefix,
            acked.clone(),
            stop.clone(),
        ))
    });
    // Let the load get going, then note what is acknowledged so far.
    while acked.lock().unwrap().len() < 1_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let backup = dir.path().join("backup");
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command
        .args(["admin", "backup"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("PARLEY_DATABASE_URL");
    let output = tokio::task::spawn_blocking(move || command.output().expect("run backup"))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let during = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert!(
        total > before.len(),
        "sends continued while the backup ran ({} before, {during} after it, {total} in all)",
        before.len()
    );
    eprintln!(
        "backup under load: {} sends acknowledged before it began, {} when it ended, {total} in all",
        before.len(),
        during
    );
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains(r#""media_files":1"#), "{report}");
    assert!(report.contains("token.key"), "{report}");
    assert_eq!(
        std::fs::read(backup.join("media").join("blob")).unwrap(),
        b"media bytes"
    );
    assert!(!backup.join("parley.db-wal").exists(), "no raw WAL copied");
    // The search index is derived: left out, built anew by the server
    // that opens the backup.
    assert!(data_dir.join("parley.db.search").exists(), "the live index");
    for name in [
        "parley.db.search",
        "parley.db.search-wal",
        "parley.db.search-shm",
    ] {
        assert!(!backup.join(name).exists(), "{name} copied");
    }

    // Restore: a server on the backup.
    server.shutdown().await;
    let mut restored_config = config;
    restored_config.data_dir = backup.clone();
    let mut restored = TestServer::start_in(restored_config).await;
    // The signing key came along: the old token still works.
    let alice = restored.client.with_token(alice.token().unwrap());
    alice
        .me()
        .await
        .expect("the old token works on the restored server");
    let stored = stored_ids(&alice, conversation).await;
    let missing: Vec<&String> = before.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages acknowledged before the backup are missing: {:?}",
        missing.len(),
        before.len(),
        &missing[..missing.len().min(5)]
    );
    restored.shutdown().await;
}
