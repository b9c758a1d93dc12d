//! The client commands of the `parley` binary at the boundary: the built
//! binary against a real server on port 0, each command's output and exit
//! code, the session file's permissions, and `listen` across server
//! restarts without loss or duplicates.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use parley_client::Client;
use parley_proto::api::{ConversationCreated, ConversationSummary};
use parley_proto::{Message, ServerFrame};

/// The binary with its config directory in `config`.
fn parley(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command
        .env("XDG_CONFIG_HOME", config)
        .env("HOME", config)
        .env_remove("PARLEY_PASSWORD")
        .env_remove("PARLEY_PROFILE")
        .env_remove("PARLEY_SERVER")
        .stdin(Stdio::null());
    command
}

/// Runs a command (off the async runtime: the binary talks to a server in
/// this process) and returns its output.
async fn run(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = parley(config);
    command.args(args);
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn parley");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait for parley")
    })
    .await
    .expect("runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing stderr when it differs.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stdout {:?}, stderr {:?}",
        stdout(output),
        stderr(output)
    );
}

/// Asserts a failure: the exit code, and one stderr line with the code.
fn assert_failure(output: &Output, exit: i32, code: &str) {
    assert_exit(output, exit);
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err:?}");
    assert!(
        lines[0].starts_with(&format!("parley: {code}: ")),
        "stderr names {code}: {err:?}"
    );
}

fn json_lines<T: serde::de::DeserializeOwned>(output: &Output) -> Vec<T> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Registers `name` and logs in through the CLI in `config`.
async fn cli_login(server: &str, config: &Path, name: &str, profile: Option<&str>) {
    let mut args = vec!["login", "--server", server, name, "--password-stdin"];
    if let Some(profile) = profile {
        args.extend(["--profile", profile]);
    }
    let output = run(config, &args, Some(&format!("{PASSWORD}\n"))).await;
    assert_exit(&output, 0);
}

fn base(server: &TestServer) -> String {
    format!("http://{}", server.addr)
}

#[tokio::test]
async fn login_keeps_a_private_session_and_commands_use_it() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    server.client.register("alice", PASSWORD).await.unwrap();
    let config = tempfile::tempdir().unwrap();
    cli_login(&base(&server), config.path(), "alice", None).await;

    let dir = config.path().join("parley");
    let session = dir.join("session.json");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "config dir is private");
    assert_eq!(mode(&session), 0o600, "session file is private");

    let whoami = run(config.path(), &["whoami"], None).await;
    assert_exit(&whoami, 0);
    assert!(
        stdout(&whoami).contains(r#""username":"alice""#),
        "{}",
        stdout(&whoami)
    );

    // send: @user makes the direct conversation; the message comes back.
    let sent = run(config.path(), &["send", "@bob", "hello bob"], None).await;
    assert_exit(&sent, 0);
    let sent: Vec<Message> = json_lines(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text.as_deref(), Some("hello bob"));
    let conversation = sent[0].conversation_id;
    let page = bob.history(conversation, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 1, "bob has it");

    // A bare username, a conversation id, --file and stdin all work.
    let file = config.path().join("note.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    assert_exit(
        &run(config.path(), &["send", "bob", "by name"], None).await,
        0,
    );
    let by_id = conversation.to_string();
    assert_exit(
        &run(config.path(), &["send", &by_id, "by id"], None).await,
        0,
    );
    let file_arg = file.to_str().unwrap();
    assert_exit(
        &run(config.path(), &["send", "bob", "--file", file_arg], None).await,
        0,
    );
    let piped = run(
        config.path(),
        &["send", "bob", "--file", "-"],
        Some("from stdin\n"),
    )
    .await;
    assert_exit(&piped, 0);

    let history = run(config.path(), &["history", "@bob"], None).await;
    assert_exit(&history, 0);
    let texts: Vec<String> = json_lines::<Message>(&history)
        .into_iter()
        .map(|m| m.text.unwrap_or_default())
        .collect();
    assert_eq!(
        texts,
        ["hello bob", "by name", "by id", "from a file", "from stdin"]
    );
    let limited = run(
        config.path(),
        &["history", "bob", "--limit", "2", "--before", "5"],
        None,
    )
    .await;
    let seqs: Vec<u64> = json_lines::<Message>(&limited)
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [3, 4]);
    let pretty = run(config.path(), &["history", "bob", "--pretty"], None).await;
    assert_exit(&pretty, 0);
    assert!(stdout(&pretty).starts_with("SEQ"), "{}", stdout(&pretty));
    assert!(
        stdout(&pretty).contains("alice  from stdin"),
        "{}",
        stdout(&pretty)
    );

    let conversations = run(config.path(), &["conversations"], None).await;
    assert_exit(&conversations, 0);
    let list: Vec<ConversationSummary> = json_lines(&conversations);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_seq, 5);
    let pretty = run(config.path(), &["conversations", "--pretty"], None).await;
    assert!(stdout(&pretty).contains("@bob"), "{}", stdout(&pretty));

    // logout ends the token on the server and forgets it here.
    let token = std::fs::read_to_string(&session).unwrap();
    assert_exit(&run(config.path(), &["logout"], None).await, 0);
    assert!(!session.exists(), "session forgotten");
    let token = token
        .split("\"token\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("token in the session file")
        .to_owned();
    let err = server.client.with_token(token).me().await.unwrap_err();
    assert_eq!(err.code(), Some(parley_proto::ErrorCode::Unauthorized));
    assert_failure(
        &run(config.path(), &["whoami"], None).await,
        3,
        "unauthorized",
    );
}

#[tokio::test]
async fn a_repeated_client_msg_id_sends_once() {
    let server = TestServer::start().await;
    server.user("bob").await;
    server.client.register("alice", PASSWORD).await.unwrap();
    let config = tempfile::tempdir().unwrap();
    cli_login(&base(&server), config.path(), "alice", None).await;
    let args = ["send", "bob", "once", "--client-msg-id", "job-42"];
    let first: Vec<Message> = json_lines(&run(config.path(), &args, None).await);
    let again: Vec<Message> = json_lines(&run(config.path(), &args, None).await);
    assert_eq!(first[0].seq, again[0].seq);
    assert_eq!(first[0].message_id, again[0].message_id);
    // Without a key, each invocation is a new message.
    let one: Vec<Message> = json_lines(&run(config.path(), &["send", "bob", "x"], None).await);
    let two: Vec<Message> = json_lines(&run(config.path(), &["send", "bob", "x"], None).await);
    assert_eq!(two[0].seq, one[0].seq + 1);
}

#[tokio::test]
async fn groups_commands_administer_a_group() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    server.client.register("alice", PASSWORD).await.unwrap();
    let config = tempfile::tempdir().unwrap();
    cli_login(&base(&server), config.path(), "alice", None).await;

    let created = run(
        config.path(),
        &["groups", "create", "team", "bob", "@carol"],
        None,
    )
    .await;
    assert_exit(&created, 0);
    let created: Vec<ConversationCreated> = json_lines(&created);
    let group = created[0].conversation_id;
    assert_eq!(created[0].members.len(), 3);

    let list: Vec<ConversationSummary> =
        json_lines(&run(config.path(), &["groups", "list"], None).await);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name.as_deref(), Some("team"));

    // By name: remove, add back, rename; then send by the new name.
    assert_exit(
        &run(config.path(), &["groups", "remove", "team", "carol"], None).await,
        0,
    );
    let after: Vec<ConversationCreated> =
        json_lines(&run(config.path(), &["groups", "add", "team", "carol"], None).await);
    assert_eq!(after[0].members.len(), 3);
    let renamed: Vec<ConversationCreated> =
        json_lines(&run(config.path(), &["groups", "rename", "team", "crew"], None).await);
    assert_eq!(renamed[0].name.as_deref(), Some("crew"));
    let sent: Vec<Message> =
        json_lines(&run(config.path(), &["send", "crew", "hi all"], None).await);
    assert_eq!(sent[0].conversation_id, group);
    let seen = bob.history(group, None, None, None).await.unwrap();
    assert!(
        seen.messages
            .iter()
            .any(|m| m.text.as_deref() == Some("hi all"))
    );

    assert_exit(
        &run(config.path(), &["groups", "leave", "crew"], None).await,
        0,
    );
    let alice_id = bob.find_user("alice").await.unwrap().user_id;
    let details = bob.conversation(group).await.unwrap();
    assert!(
        details.members.iter().all(|m| m.user_id != alice_id),
        "alice left"
    );
}

#[tokio::test]
async fn exit_codes_tell_scripts_what_went_wrong() {
    let mut config_limits = test_config();
    config_limits.send_rate_per_sec = 0.001;
    config_limits.send_burst = 1;
    let server = TestServer::start_with(config_limits).await;
    let bob = server.user("bob").await;
    server.client.register("alice", PASSWORD).await.unwrap();
    let config = tempfile::tempdir().unwrap();

    // 3: not logged in; wrong password.
    assert_failure(
        &run(config.path(), &["send", "bob", "x"], None).await,
        3,
        "unauthorized",
    );
    let wrong = run(
        config.path(),
        &[
            "login",
            "--server",
            &base(&server),
            "alice",
            "--password-stdin",
        ],
        Some("not the password\n"),
    )
    .await;
    assert_failure(&wrong, 3, "unauthorized");
    // 2: usage.
    assert_failure(&run(config.path(), &["send"], None).await, 2, "usage");
    assert_failure(&run(config.path(), &["frobnicate"], None).await, 2, "usage");
    assert_failure(
        &run(
            config.path(),
            &["login", "--server", "nowhere", "alice", "--password-stdin"],
            Some("x\n"),
        )
        .await,
        2,
        "usage",
    );
    // 7: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let unreachable = run(
        config.path(),
        &[
            "login",
            "--server",
            &format!("http://{closed}"),
            "alice",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_failure(&unreachable, 7, "unavailable");

    cli_login(&base(&server), config.path(), "alice", None).await;
    // 4: nobody by that name.
    assert_failure(
        &run(config.path(), &["send", "@nobody", "x"], None).await,
        4,
        "not_found",
    );
    assert_failure(
        &run(config.path(), &["history", "c999"], None).await,
        4,
        "not_found",
    );
    // 5: bob's group, alice a member but not an admin.
    let alice_id = bob.find_user("alice").await.unwrap().user_id;
    let group = bob
        .create_group("bobs", &[alice_id])
        .await
        .unwrap()
        .conversation_id;
    assert_failure(
        &run(
            config.path(),
            &["groups", "rename", &group.to_string(), "mine"],
            None,
        )
        .await,
        5,
        "forbidden",
    );
    // 6: the burst is one send.
    assert_exit(
        &run(config.path(), &["send", "bob", "first"], None).await,
        0,
    );
    assert_failure(
        &run(config.path(), &["send", "bob", "second"], None).await,
        6,
        "rate_limited",
    );
    // A profile is a separate login.
    assert_failure(
        &run(config.path(), &["--profile", "work", "whoami"], None).await,
        3,
        "unauthorized",
    );
}

/// A child process killed when dropped, so a failing test leaves nothing
/// running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `parley serve` as a process on `listen` (`127.0.0.1:0` the first time,
/// the same address after), on `data_dir`.
fn spawn_server(data_dir: &Path, listen: &str) -> (Running, String) {
    let config = test_config();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env(
            "PARLEY_ARGON2_MEMORY_KIB",
            config.argon2_memory_kib.to_string(),
        )
        .env(
            "PARLEY_ARGON2_ITERATIONS",
            config.argon2_iterations.to_string(),
        )
        .env("PARLEY_LOG", "warn")
        // Draining asks clients to come back within this; keep it short.
        .env("PARLEY_RECONNECT_JITTER_MS", "200")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn parley serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("listen line");
    let addr = line
        .trim()
        .strip_prefix("parley listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Running(child), addr)
}

/// `parley listen --messages-only` with its lines arriving on a channel.
fn spawn_listen(config: &Path) -> (Running, mpsc::Receiver<String>) {
    let mut child = parley(config)
        .args(["listen", "--messages-only"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn parley listen");
    let (lines_tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    (Running(child), lines)
}

/// Waits for `count` lines (or fails after [`WAIT`]).
async fn take_lines(lines: &mpsc::Receiver<String>, count: usize) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < count {
        match lines.try_recv() {
            Ok(line) => got.push(line),
            Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("waiting for {count} lines, got {got:?}: {err}"),
        }
    }
    got
}

/// Waits until `listen` has stored `cursor` in its cursor file.
async fn wait_for_stored_cursor(cursor_file: &Path, cursor: u64) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let stored = std::fs::read_to_string(cursor_file)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["cursor"].as_u64());
        if stored == Some(cursor) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listen stored cursor {cursor}, found {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn message_of(line: &str) -> (u64, String) {
    match ServerFrame::parse(line).unwrap_or_else(|e| panic!("{line}: {e}")) {
        ServerFrame::Message { cursor, message } => (cursor, message.text.unwrap_or_default()),
        other => panic!("expected a message line, got {other:?}"),
    }
}

async fn send_all(alice: &Client, conversation: parley_proto::ConversationId, texts: &[String]) {
    for text in texts {
        // After a restart the first request may meet a pooled connection
        // the old server closed; the same key makes a retry safe.
        let mut attempts = 0;
        while let Err(err) = alice.send(conversation, &format!("k-{text}"), text).await {
            attempts += 1;
            assert!(attempts < 5, "send {text}: {err}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn listen_survives_server_restarts_without_loss_or_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, addr) = spawn_server(data.path(), "127.0.0.1:0");
    let base = format!("http://{addr}");
    let anon = Client::new(base.clone());
    anon.register("alice", PASSWORD).await.unwrap();
    anon.register("bob", PASSWORD).await.unwrap();
    let alice = anon.login("alice", PASSWORD).await.unwrap();
    let bob_id = alice.find_user("bob").await.unwrap().user_id;
    let conversation = alice.direct(bob_id).await.unwrap().0.conversation_id;
    let config = tempfile::tempdir().unwrap();
    cli_login(&base, config.path(), "bob", None).await;

    let (listen, lines) = spawn_listen(config.path());
    let texts = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("message {i}")).collect()
    };
    // The first connection starts at the head and stores it: wait for
    // that, so the first message is not history already.
    let cursor_file = config.path().join("parley").join("listen-cursor.json");
    let deadline = std::time::Instant::now() + WAIT;
    while !cursor_file.exists() {
        assert!(std::time::Instant::now() < deadline, "listen connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_all(&alice, conversation, &texts(0..5)).await;
    let mut printed = take_lines(&lines, 5).await;

    // kill -9: the socket just breaks.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let (next, _) = spawn_server(data.path(), &addr);
    server = next;
    send_all(&alice, conversation, &texts(5..10)).await;
    printed.extend(take_lines(&lines, 5).await);

    // SIGTERM: the server says `reconnect` and drains.
    let pid = server.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    server.0.wait().unwrap();
    let (next, _) = spawn_server(data.path(), &addr);
    server = next;
    send_all(&alice, conversation, &texts(10..15)).await;
    printed.extend(take_lines(&lines, 5).await);

    // A new `listen` starts from the stored cursor: nothing old again.
    // `listen` prints a line before it stores its cursor (at least once:
    // a kill between the two prints that line again next run), so stop it
    // only once the last printed cursor is stored.
    let last_printed = message_of(printed.last().unwrap()).0;
    wait_for_stored_cursor(&cursor_file, last_printed).await;
    drop(listen);
    let (listen, lines_again) = spawn_listen(config.path());
    send_all(&alice, conversation, &texts(15..16)).await;
    printed.extend(take_lines(&lines_again, 1).await);
    drop(listen);
    drop(server);
    // Whatever else either listener printed after its last expected line
    // would be a duplicate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let extra: Vec<String> = lines.try_iter().chain(lines_again.try_iter()).collect();
    assert!(extra.is_empty(), "printed twice: {extra:?}");

    let messages: Vec<(u64, String)> = printed.iter().map(|l| message_of(l)).collect();
    let got: Vec<&str> = messages.iter().map(|(_, t)| t.as_str()).collect();
    let want = texts(0..16);
    assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        messages.windows(2).all(|w| w[0].0 < w[1].0),
        "cursors increase: {messages:?}"
    );
}

/// `--data-dir` (and `--database` on PostgreSQL): where `parley admin
/// create-user` and `backup` find the test server's store.
fn store_args(server: &TestServer) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_owned(),
        server.config.data_dir.display().to_string(),
    ];
    if let Some(url) = &server.config.database {
        args.extend(["--database".to_owned(), url.clone()]);
    }
    args
}

#[tokio::test]
async fn admin_commands_manage_accounts() {
    let mut config = test_config();
    config.registration_open = false;
    let server = TestServer::start_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let admin_home = dir.path().join("admin");
    let alice_home = dir.path().join("alice");
    let store = store_args(&server);
    let create = |name: &'static str, admin: bool| {
        let mut args = vec!["admin", "create-user", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        args.extend(store.iter().map(String::as_str));
        args
    };

    // The first administrator, on the server host, while it runs.
    let made = run(
        &admin_home,
        &create("root", true),
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_exit(&made, 0);
    let made: Vec<parley_proto::api::AdminUserView> = json_lines(&made);
    assert!(made[0].is_admin && made[0].username == "root");
    let alice = run(
        &admin_home,
        &create("alice", false),
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_exit(&alice, 0);
    assert_failure(
        &run(
            &admin_home,
            &create("alice", false),
            Some(&format!("{PASSWORD}\n")),
        )
        .await,
        1,
        "conflict",
    );
    assert_failure(
        &run(&admin_home, &create("alice", false), Some("short\n")).await,
        1,
        "bad_request",
    );

    cli_login(&base(&server), &admin_home, "root", None).await;
    cli_login(&base(&server), &alice_home, "alice", None).await;

    let users = run(&admin_home, &["admin", "users"], None).await;
    assert_exit(&users, 0);
    let users: Vec<parley_proto::api::AdminUserView> = json_lines(&users);
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["root", "alice"]);
    let found = run(&admin_home, &["admin", "users", "--search", "LIC"], None).await;
    assert_exit(&found, 0);
    assert_eq!(
        json_lines::<parley_proto::api::AdminUserView>(&found).len(),
        1
    );

    // Not an administrator: 5; not logged in: 3; a wrong command line: 2.
    for args in [
        &["admin", "users"][..],
        &["admin", "stats"],
        &["admin", "disable", "root"],
        &["admin", "delete", "nobody", "--yes"],
    ] {
        assert_failure(&run(&alice_home, args, None).await, 5, "forbidden");
    }
    assert_failure(
        &run(&dir.path().join("nobody"), &["admin", "stats"], None).await,
        3,
        "unauthorized",
    );
    assert_failure(
        &run(&admin_home, &["admin", "delete", "alice"], None).await,
        2,
        "usage",
    );
    assert_failure(
        &run(&admin_home, &["admin", "disable", "nobody"], None).await,
        4,
        "not_found",
    );

    let disabled = run(&admin_home, &["admin", "disable", "alice"], None).await;
    assert_exit(&disabled, 0);
    assert!(json_lines::<parley_proto::api::AdminUserView>(&disabled)[0].disabled);
    assert_failure(
        &run(&alice_home, &["whoami"], None).await,
        3,
        "unauthorized",
    );
    assert_exit(
        &run(&admin_home, &["admin", "enable", "alice"], None).await,
        0,
    );
    let reset = run(
        &admin_home,
        &["admin", "reset-password", "alice", "--password-stdin"],
        Some("a new long password\n"),
    )
    .await;
    assert_exit(&reset, 0);
    server
        .client
        .login("alice", "a new long password")
        .await
        .expect("the new password works");

    let stats = run(&admin_home, &["admin", "stats"], None).await;
    assert_exit(&stats, 0);
    let stats: Vec<parley_proto::api::AdminStats> = json_lines(&stats);
    assert_eq!(stats[0].users, 2);

    assert_exit(
        &run(&admin_home, &["admin", "delete", "alice", "--yes"], None).await,
        0,
    );
    let users = run(&admin_home, &["admin", "users", "--search", "alice"], None).await;
    assert_exit(&users, 0);
    assert!(stdout(&users).is_empty(), "alice's name is gone");
}
