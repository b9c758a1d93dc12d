//! `deploy/` and `docs/operations.md` against a live server: every
//! `parley_*` name the Prometheus alert rules and the Grafana dashboard use
//! is on `/metrics`, and the operations guide's metric table lists exactly
//! the metrics the server exports (`parley_server::catalog`).
//!
//! The live servers are two cluster-mode nodes in this process (a private
//! Redis and a test database), so cluster metrics move too; the metrics
//! recorder is process-wide, so one test in its own binary. Without Redis or
//! PostgreSQL the test skips (fails with `CI=true`).

mod cluster_support;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{TestServer, direct, expect_message, test_config};
use parley_server::catalog::{Kind, METRICS};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `parley_*` word in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("parley_") {
        let start = i + found;
        let before_ok = start == 0 || !is_word(bytes[start - 1]);
        let mut end = start;
        while end < bytes.len() && is_word(bytes[end]) {
            end += 1;
        }
        // `parley_*` in prose names no metric.
        if before_ok && end > start + "parley_".len() {
            names.insert(text[start..end].to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

fn is_word(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The metric names a Prometheus text exposition has samples for.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn deploy_files() -> Vec<PathBuf> {
    [
        "deploy/prometheus/parley-alerts.yml",
        "deploy/grafana/parley-dashboard.json",
    ]
    .iter()
    .map(|p| repo().join(p))
    .collect()
}

/// The rows of the metric table in docs/operations.md: (name, kind).
fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix("`parley_")?.strip_suffix('`')?;
            let kind = cells.next()?;
            Some((format!("parley_{name}"), kind.to_owned()))
        })
        .collect()
}

#[test]
fn the_operations_guide_lists_every_metric() {
    let catalog: BTreeSet<(String, String)> = METRICS
        .iter()
        .map(|m| {
            let kind = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            (m.name.to_owned(), kind.to_owned())
        })
        .collect();
    assert_eq!(documented(), catalog, "docs/operations.md vs catalog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_deploy_uses_exists_on_a_live_server() {
    let Some((database, redis)) = cluster_support::dependencies().await else {
        return;
    };
    let node = |name: &str| parley_server::Config {
        database: Some(database.url.clone()),
        redis_url: Some(redis.url()),
        token_key: Some(cluster_support::TOKEN_KEY.into()),
        node_id: Some(name.into()),
        ..test_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut n1 = node("n1");
    n1.data_dir = dir.path().join("n1");
    let mut n2 = node("n2");
    n2.data_dir = dir.path().join("n2");
    std::fs::create_dir_all(&n1.data_dir).unwrap();
    std::fs::create_dir_all(&n2.data_dir).unwrap();
    let mut n1 = TestServer::start_in(n1).await;
    let mut n2 = TestServer::start_in(n2).await;
    // A message across nodes moves the commit and router histograms.
    let alice = n1.user("alice").await;
    n1.client.register("bob", common::PASSWORD).await.unwrap();
    let bob = n2.device("bob").await;
    let conversation = direct(&alice, &bob).await;
    let mut socket = bob.connect(None).await.expect("bob on n2");
    alice
        .send(conversation, "m1", "across nodes")
        .await
        .expect("send");
    expect_message(&mut socket).await;

    let text = common::scrape_metrics(&n1).await;
    let live = exposed(&text);
    for metric in METRICS {
        let present = match metric.kind {
            Kind::Histogram => live.contains(&format!("{}_count", metric.name)),
            _ => live.contains(metric.name),
        };
        assert!(present, "{} is registered at start", metric.name);
        assert!(
            text.contains(&format!("# HELP {} ", metric.name)),
            "{} has help text",
            metric.name
        );
    }
    for file in deploy_files() {
        let used = metric_names(&std::fs::read_to_string(&file).unwrap());
        assert!(!used.is_empty(), "{} uses metrics", file.display());
        for name in used {
            assert!(
                live.contains(&name),
                "{} uses {name}, which /metrics does not have",
                file.display()
            );
        }
    }
    n1.shutdown().await;
    n2.shutdown().await;
}

/// `PARLEY_LOG_FORMAT=json`: every line the server logs is one JSON object
/// with its level and message (what the systemd unit turns on).
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("PARLEY_LOG_FORMAT", "json")
        .env("PARLEY_LOG", "info")
        .env_remove("PARLEY_DATABASE_URL")
        .env_remove("PARLEY_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn parley");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("parley listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    // Serving (and so listening for SIGTERM) once /healthz answers.
    let healthy = || {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&addr).ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.starts_with("HTTP/1.0 200").then_some(())
    };
    let deadline = std::time::Instant::now() + common::WAIT;
    while healthy().is_none() {
        assert!(std::time::Instant::now() < deadline, "never healthy");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGTERM: a graceful stop, which logs too.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exits 0 on SIGTERM: {exit:?}\n{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    assert!(lines.len() >= 2, "{stderr}");
    for entry in &lines {
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{entry}"
        );
    }
    assert!(
        lines.iter().any(|e| e["message"] == "serving"),
        "the start is logged: {stderr}"
    );
}
