//! Harness for the cluster tests: a private Redis on a free port, `parley
//! serve` nodes as real processes sharing a test database and that Redis,
//! every process stopped by its PID.
//!
//! Outside CI a missing `redis-server` or PostgreSQL skips the test with a
//! message; with `CI=true` it fails.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestDatabase, test_config};

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Skips (returns false) outside CI, panics in CI, when `what` is missing.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is not available, and CI=true");
    }
    eprintln!("skipping: {what} is not available");
    false
}

/// A private `redis-server` (no persistence) on a free port.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Whether `redis-server` can be run here.
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 16];
        stream.write_all(b"PING\r\n").is_ok()
            && stream
                .read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Stops it (by PID); its data is gone (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn start_again(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Base64 of 32 fixed bytes: the cluster's shared token key.
pub const TOKEN_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// One `parley serve` node of a test cluster.
pub struct Node {
    pub name: String,
    pub base: String,
    child: Child,
}

impl Node {
    /// Starts a node named `name` on a free port.
    pub fn spawn(name: &str, data_dir: &Path, database: &str, redis: &str) -> Node {
        Self::spawn_on(name, data_dir, database, redis, "127.0.0.1:0")
    }

    /// Starts a node listening on `listen`.
    pub fn spawn_on(
        name: &str,
        data_dir: &Path,
        database: &str,
        redis: &str,
        listen: &str,
    ) -> Node {
        Self::spawn_with(name, data_dir, database, redis, listen, &[])
    }

    /// Starts a node listening on `listen` with extra `PARLEY_*` settings.
    pub fn spawn_with(
        name: &str,
        data_dir: &Path,
        database: &str,
        redis: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Node {
        let config = test_config();
        let dir = data_dir.join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(&dir)
            .env(
                "PARLEY_ARGON2_MEMORY_KIB",
                config.argon2_memory_kib.to_string(),
            )
            .env(
                "PARLEY_ARGON2_ITERATIONS",
                config.argon2_iterations.to_string(),
            )
            .env("PARLEY_SEND_RATE_PER_SEC", "100000")
            .env("PARLEY_SEND_BURST", "100000")
            .env("PARLEY_DATABASE_URL", database)
            .env("PARLEY_REDIS_URL", redis)
            .env("PARLEY_TOKEN_KEY", TOKEN_KEY)
            .env("PARLEY_NODE_ID", name)
            .env("PARLEY_NODE_LEASE_MS", "2000")
            .env("PARLEY_PRESENCE_GRACE_MS", "500")
            .env("PARLEY_RECONNECT_JITTER_MS", "300")
            .env("PARLEY_SHUTDOWN_GRACE_MS", "3000")
            .env(
                "PARLEY_LOG",
                std::env::var("PARLEY_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn parley");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let addr = line
            .trim()
            .strip_prefix("parley listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Node {
            name: name.to_owned(),
            base: format!("http://{addr}"),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` → status code (0 when it does not answer).
    pub async fn status(&self, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://").to_owned();
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.ok()?;
            let text = String::from_utf8_lossy(&response);
            text.split_whitespace().nth(1)?.parse::<u16>().ok()
        };
        tokio::time::timeout(Duration::from_secs(5), ask)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Waits until `/readyz` is 200.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.status("/readyz").await != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {} not ready",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test database and a private Redis, or `None` (skipped) outside CI
/// when either is missing.
pub async fn dependencies() -> Option<(TestDatabase, RedisServer)> {
    if !require(RedisServer::available(), "redis-server") {
        return None;
    }
    let database = match TestDatabase::create().await {
        Ok(db) => db,
        Err(why) => {
            require(false, &format!("PostgreSQL ({why})"));
            return None;
        }
    };
    Some((database, RedisServer::start()))
}
