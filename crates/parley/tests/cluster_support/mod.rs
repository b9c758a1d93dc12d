//! Harness for the cluster tests: a private Redis on a free port, `parley
//! serve` nodes as real processes sharing a test database and that Redis,
//! a private PostgreSQL the tests may stop ([`PrivateServer`], the store
//! tests' own helper), haproxy in front ([`haproxy`]), a proxy that wedges a Redis subscriber
//! ([`wedge`]), and clients that
//! reconnect like real ones ([`load`]). Every process is stopped by its PID,
//! also when a test panics (each is owned by a value whose `Drop` stops it).
//!
//! Outside CI a missing `redis-server`, `haproxy` or PostgreSQL skips the
//! test with a message; with `CI=true` it fails.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestDatabase, test_config};

pub mod haproxy;
pub mod load;
pub mod wedge;

/// The store tests' support module, for its private PostgreSQL server
/// (initdb and pg_ctl on a free port): included, not copied.
#[path = "../../../parley-store/tests/support/mod.rs"]
mod store_support;
// Not every test crate that includes this module uses the private server.
#[allow(unused_imports)]
pub(crate) use store_support::PrivateServer;

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

    /// Runs one command (RESP over a fresh connection) and returns the
    /// reply's text: enough for `CONFIG SET`, `CLIENT KILL` and `INFO`.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).expect("send to redis");
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).expect("redis reply");
        match first.as_bytes().first() {
            // A bulk string: its length, then the bytes and CRLF.
            Some(b'$') => {
                let len: i64 = first[1..].trim().parse().expect("bulk length");
                if len < 0 {
                    return String::new();
                }
                let mut body = vec![0u8; len as usize + 2];
                reader.read_exact(&mut body).expect("bulk body");
                String::from_utf8_lossy(&body[..len as usize]).into_owned()
            }
            Some(b'-') => panic!("redis {args:?}: {}", first.trim()),
            _ => first[1..].trim().to_owned(),
        }
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
    /// How it was started, so [`Node::restart`] can start it again on the
    /// same address.
    dir: std::path::PathBuf,
    database: String,
    redis: String,
    env: Vec<(String, String)>,
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

    /// Starts a node listening on `listen`, with extra `PARLEY_*`
    /// settings (later ones win over the defaults below).
    pub fn spawn_with(
        name: &str,
        data_dir: &Path,
        database: &str,
        redis: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Node {
        let dir = data_dir.join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (child, base) = Self::start_process(name, &dir, database, redis, listen, &env);
        Node {
            name: name.to_owned(),
            base,
            child,
            dir,
            database: database.to_owned(),
            redis: redis.to_owned(),
            env,
        }
    }

    fn start_process(
        name: &str,
        dir: &Path,
        database: &str,
        redis: &str,
        listen: &str,
        env: &[(String, String)],
    ) -> (Child, String) {
        let config = test_config();
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(dir)
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
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
        (child, format!("http://{addr}"))
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Starts the (stopped) node again on the same address, data dir and
    /// settings: a new process, so a new epoch.
    pub fn restart(&mut self) {
        let listen = self.addr().to_owned();
        let (child, base) = Self::start_process(
            &self.name,
            &self.dir,
            &self.database,
            &self.redis,
            &listen,
            &self.env,
        );
        self.child = child;
        self.base = base;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` → status code (0 when it does not answer).
    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.map(|(code, _)| code).unwrap_or(0)
    }

    /// `GET path` → status code and body, or `None` when it does not answer
    /// within 5 s.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.addr().to_owned();
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.ok()?;
            let text = String::from_utf8_lossy(&response);
            let code = text.split_whitespace().nth(1)?.parse::<u16>().ok()?;
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            Some((code, body.to_owned()))
        };
        tokio::time::timeout(Duration::from_secs(5), ask)
            .await
            .ok()
            .flatten()
    }

    /// The sum of every sample of metric `name` whose labels contain
    /// `labels` (e.g. `cause="probe"`), from `/metrics`; 0 when absent.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let Some((_, body)) = self.get("/metrics").await else {
            return 0.0;
        };
        metric_sum(&body, name, labels)
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

/// Nodes `n1` and `n2` on `database` and `redis`, both ready.
pub async fn two_nodes(data_dir: &Path, database: &str, redis: &str) -> (Node, Node) {
    let n1 = Node::spawn("n1", data_dir, database, redis);
    let n2 = Node::spawn("n2", data_dir, database, redis);
    n1.wait_ready().await;
    n2.wait_ready().await;
    (n1, n2)
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

/// The sum of the samples of `name` in a Prometheus text `body` whose
/// labels contain `labels`.
pub fn metric_sum(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name && key.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
