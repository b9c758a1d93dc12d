//! Test harness: a real server on 127.0.0.1:0 with its own data dir, and
//! helpers to make users and read frames.
//!
//! `PARLEY_TEST_BACKEND=postgres` runs every server on a fresh PostgreSQL
//! database (created here, dropped when the server is dropped) instead of
//! SQLite, so the whole suite runs on either backend.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

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

/// A direct conversation between two logged-in users.
pub async fn direct(a: &Client, b: &Client) -> ConversationId {
    a.direct(uid(b)).await.expect("direct").0.conversation_id
}

/// A PostgreSQL database for one test server, dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    async fn for_backend() -> Option<TestDatabase> {
        match std::env::var("PARLEY_TEST_BACKEND").as_deref() {
            Ok("postgres") => {}
            _ => return None,
        }
        let admin_url = std::env::var("PARLEY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!(
            "parley_it_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("PARLEY_TEST_BACKEND=postgres but {admin_url} is unreachable: {e}")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        Some(TestDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside async context guarantees; use a private thread
        // with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}
