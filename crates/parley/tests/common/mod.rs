//! Test harness, shared by every test binary of the `parley` crate:
//! [`TestServer`], a real server in the test's own process on 127.0.0.1:0
//! with its own data dir; [`ServerProcess`], the `parley` binary as a
//! process, for tests that kill it; [`TestDatabase`], the one way to get a
//! PostgreSQL database; and helpers to make users and read frames.
//!
//! `PARLEY_TEST_BACKEND=postgres` runs every [`TestServer`] on a fresh
//! PostgreSQL database (created here, dropped when the server is dropped)
//! instead of SQLite, so the whole suite runs on either backend.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parley_client::{Client, ClientError, Socket};
use parley_proto::{ConversationId, ServerFrame, UserId};
use parley_server::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery";
/// Long enough for a loaded CI machine, short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(20);

/// A config suitable for tests: cheap password hashing.
pub fn test_config() -> Config {
    Config {
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        ..Config::default()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    database: Option<TestDatabase>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(test_config()).await
    }

    pub async fn start_with(mut config: Config) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        config.data_dir = dir.path().to_owned();
        let database = TestDatabase::for_backend().await;
        if let Some(db) = &database {
            config.database = Some(db.url.clone());
        }
        let mut server = TestServer::start_in(config).await;
        server._dir = Some(dir);
        server.database = database;
        server
    }

    /// Starts on an existing data dir / database (for restarts).
    pub async fn start_in(mut config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        config.listen = addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let run_config = config.clone();
        let task = tokio::spawn(async move {
            parley_server::run(listener, run_config, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        let client = Client::new(format!("http://{addr}"));
        // Wait until it answers.
        for _ in 0..200 {
            if client
                .raw(parley_client::Method::GET, "/healthz", None)
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        TestServer {
            addr,
            client,
            config,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
            database: None,
        }
    }

    /// Stops gracefully and starts again on the same storage.
    pub async fn restart(mut self) -> TestServer {
        self.shutdown().await;
        let mut next = TestServer::start_in(self.config.clone()).await;
        next._dir = self._dir.take();
        next.database = self.database.take();
        next
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server stops within 30 s")
                .expect("server task ends cleanly");
        }
    }

    /// Registers and logs in a fresh user.
    pub async fn user(&self, name: &str) -> Client {
        self.client
            .register(name, PASSWORD)
            .await
            .expect("register");
        self.client.login(name, PASSWORD).await.expect("login")
    }

    /// A second device of an existing user.
    pub async fn device(&self, name: &str) -> Client {
        self.client.login(name, PASSWORD).await.expect("login")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn uid(client: &Client) -> UserId {
    client.user_id().expect("logged in")
}

/// Reads frames until one matches, skipping others (presence, receipts...).
pub async fn expect_frame<F>(socket: &mut Socket, what: &str, mut pick: F) -> ServerFrame
where
    F: FnMut(&ServerFrame) -> bool,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match socket.recv_within(left).await {
            Ok(frame) if pick(&frame) => return frame,
            Ok(_) => continue,
            Err(err) => panic!("waiting for {what}: {err}"),
        }
    }
}

/// Asserts that no frame matching `pick` arrives within `window`.
pub async fn expect_no_frame<F>(socket: &mut Socket, window: Duration, mut pick: F)
where
    F: FnMut(&ServerFrame) -> bool,
{
    let deadline = tokio::time::Instant::now() + window;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match socket.recv_within(left).await {
            Ok(frame) if pick(&frame) => panic!("unexpected frame {frame:?}"),
            Ok(_) => continue,
            Err(ClientError::Timeout) => return,
            Err(err) => panic!("socket failed: {err}"),
        }
    }
}

pub async fn expect_message(socket: &mut Socket) -> (u64, parley_proto::Message) {
    match expect_frame(socket, "message", |f| {
        matches!(f, ServerFrame::Message { .. })
    })
    .await
    {
        ServerFrame::Message { cursor, message } => (cursor, message),
        _ => unreachable!(),
    }
}

pub async fn expect_sent(
    socket: &mut Socket,
    client_msg_id: &str,
) -> (u64, parley_proto::MessageId) {
    let frame = expect_frame(socket, "sent", |f| match f {
        ServerFrame::Sent {
            client_msg_id: id, ..
        } => id == client_msg_id,
        ServerFrame::Error { reference, .. } => reference.as_deref() == Some(client_msg_id),
        _ => false,
    })
    .await;
    match frame {
        ServerFrame::Sent {
            seq, message_id, ..
        } => (seq, message_id),
        other => panic!("send {client_msg_id} failed: {other:?}"),
    }
}

pub async fn expect_error(
    socket: &mut Socket,
    reference: &str,
) -> (parley_proto::ErrorCode, Option<u64>) {
    match expect_frame(socket, "error", |f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error {
            code,
            reference: got,
            retry_after_ms,
            ..
        } => {
            assert_eq!(got.as_deref(), Some(reference), "error ref");
            (code, retry_after_ms)
        }
        _ => unreachable!(),
    }
}

/// Expects the server to close the socket with `code`.
pub async fn expect_close(socket: &mut Socket, code: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match socket.recv_within(left).await {
            Ok(_) => continue,
            Err(ClientError::Closed { code: got, .. }) => {
                assert_eq!(got, code, "close code");
                return;
            }
            Err(err) => panic!("expected close {code}, got {err}"),
        }
    }
}

/// Every message of a conversation as `client` sees it, paging the
/// history forward from the start.
pub async fn history_all(
    client: &Client,
    conversation: ConversationId,
) -> Vec<parley_proto::Message> {
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .history(conversation, None, Some(after), Some(100))
            .await
            .expect("history");
        after = page.messages.last().map(|m| m.seq).unwrap_or(after);
        stored.extend(page.messages);
        if !page.has_more {
            return stored;
        }
    }
}

/// `GET /metrics` of `server`, as text.
pub async fn scrape_metrics(server: &TestServer) -> String {
    let (status, body) = server
        .client
        .raw(parley_client::Method::GET, "/metrics", None)
        .await
        .expect("metrics");
    assert_eq!(status, 200);
    body.as_str().expect("text").to_owned()
}

/// A direct conversation between two logged-in users.
pub async fn direct(a: &Client, b: &Client) -> ConversationId {
    a.direct(uid(b)).await.expect("direct").0.conversation_id
}

/// Where the shared PostgreSQL for tests lives; `PARLEY_TEST_POSTGRES_URL`
/// overrides it. (Mirrors `parley-store/tests/support`, which the store's
/// own tests use; test crates cannot share a module across crates.)
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A PostgreSQL database for one test, dropped when this is dropped, even
/// when the test panics. The one way tests here get a database.
pub struct TestDatabase {
    /// Connection string of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh database, or says why it cannot.
    pub async fn create() -> Result<TestDatabase, String> {
        let mut admin_url = std::env::var("PARLEY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let client = match admin_client(&admin_url).await {
            Ok(client) => client,
            // The named database need not exist: any database on the server
            // can create ours.
            Err(err)
                if err.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
            {
                // Cleanup must use the same database.
                admin_url = with_database(&admin_url, "postgres");
                admin_client(&admin_url)
                    .await
                    .map_err(|e| format!("cannot connect to {admin_url}: {e}"))?
            }
            Err(err) => return Err(format!("cannot connect to {admin_url}: {err}")),
        };
        let name = unique_name("parley_it");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create a test database on {admin_url}: {e}"))?;
        let url = with_database(&admin_url, &name);
        Ok(TestDatabase {
            url,
            admin_url,
            name,
        })
    }

    /// A database when `PARLEY_TEST_BACKEND=postgres`, else none (SQLite).
    /// Panics when PostgreSQL was asked for but cannot be had.
    pub async fn for_backend() -> Option<TestDatabase> {
        match std::env::var("PARLEY_TEST_BACKEND").as_deref() {
            Ok("postgres") => Some(
                TestDatabase::create()
                    .await
                    .unwrap_or_else(|why| panic!("PARLEY_TEST_BACKEND=postgres but {why}")),
            ),
            _ => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself:
        // a thread with its own small runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(async move {
                match admin_client(&admin_url).await {
                    Ok(client) => {
                        // FORCE ends the server's pooled connections, which
                        // may outlive the test body.
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        if let Err(err) = client.batch_execute(&sql).await {
                            eprintln!("could not drop test database {name}: {err}");
                        }
                    }
                    Err(err) => eprintln!("could not drop test database {name}: {err}"),
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The `parley` binary running as its own process (`parley serve`), for
/// tests that must kill it (`kill -9`, SIGTERM). Same test settings as
/// [`test_config`], given as environment; dropping it kills the process.
pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServerProcess {
    /// Starts `parley serve` on `data_dir` (and on `database` when given,
    /// else SQLite) and waits for its listen line.
    pub fn spawn(data_dir: &Path, database: Option<&str>) -> ServerProcess {
        ServerProcess::spawn_with(data_dir, database, &[])
            .unwrap_or_else(|stderr| panic!("parley serve did not start: {stderr}"))
    }

    /// Like [`ServerProcess::spawn`], with more environment; `Err` with
    /// what it printed on stderr when it exits instead of listening.
    pub fn spawn_with(
        data_dir: &Path,
        database: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<ServerProcess, String> {
        let config = test_config();
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env(
                "PARLEY_ARGON2_MEMORY_KIB",
                config.argon2_memory_kib.to_string(),
            )
            .env(
                "PARLEY_ARGON2_ITERATIONS",
                config.argon2_iterations.to_string(),
            )
            // Tests that stream sends measure durability, not rate limits.
            .env("PARLEY_SEND_RATE_PER_SEC", "100000")
            .env("PARLEY_SEND_BURST", "100000")
            .env("PARLEY_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = database {
            command.env("PARLEY_DATABASE_URL", url);
        }
        let mut child = command.spawn().expect("spawn parley");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let Some(addr) = line.trim().strip_prefix("parley listening on ") else {
            let _ = child.wait();
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            return Err(format!("first line {line:?}; stderr: {text}"));
        };
        let addr = addr.to_owned();
        // Pass the server's log through, as before.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stderr, &mut std::io::stderr());
        });
        Ok(ServerProcess {
            child,
            base: format!("http://{addr}"),
        })
    }

    /// SIGKILL: no shutdown code runs at all.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failing test must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next `error` frame, whatever its `ref`: (code, retry_after_ms).
pub async fn expect_error_any(socket: &mut Socket) -> (parley_proto::ErrorCode, Option<u64>) {
    match expect_frame(socket, "error", |f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error {
            code,
            retry_after_ms,
            ..
        } => (code, retry_after_ms),
        _ => unreachable!(),
    }
}

/// A real PNG of `width` x `height` with a gradient (the server decodes
/// images at `complete`, so uploads in tests must be real images).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    }));
    let mut out = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}
