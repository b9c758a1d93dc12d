//! `parley chat`: its state and rendering on ratatui's `TestBackend`
//! (events in, the drawn screen asserted as text), and once end to end: the
//! binary in a pseudo-terminal against a real server, a message typed on
//! the keyboard and received by another user.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use parley::chat::state::{Action, ChatState, Event, Key, Tick};
use parley::chat::view;
use parley_proto::api::{ConversationSummary, HistoryPage};
use parley_proto::{ConversationId, ReceiptStatus, ServerFrame, UserId};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

const ME: UserId = UserId(1);
const BOB: UserId = UserId(2);
const DIRECT: ConversationId = ConversationId(7);
const GROUP: ConversationId = ConversationId(8);

/// Proto values from JSON text, so these tests do not depend on every
/// field of the types (other fields may be added with defaults).
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn message_json(conversation: ConversationId, seq: u64, sender: UserId, text: &str) -> String {
    format!(
        r#"{{"conversation_id":"{conversation}","seq":{seq},"message_id":"m{seq}","sender_id":"{sender}",
            "sender_device_id":"d{}","client_msg_id":"k{seq}","sent_at_ms":1780000000000,
            "kind":"text","text":"{text}","reply_to_seq":null}}"#,
        sender.0
    )
}

fn summary(
    conversation: ConversationId,
    kind: &str,
    name: Option<&str>,
    last_seq: u64,
    unread: u64,
) -> ConversationSummary {
    let name = name
        .map(|n| format!(r#""name":"{n}","#))
        .unwrap_or_default();
    from_json(&format!(
        r#"{{"conversation_id":"{conversation}","kind":"{kind}",{name}"members":["{ME}","{BOB}"],
            "last_seq":{last_seq},"last_message":null,"unread_count":{unread},"read_up_to":0,
            "delivered_up_to":0,"delivered_all_up_to":0,"read_all_up_to":0}}"#
    ))
}

fn page(
    conversation: ConversationId,
    messages: &[(u64, UserId, &str)],
    has_more: bool,
) -> HistoryPage {
    let messages: Vec<String> = messages
        .iter()
        .map(|(seq, sender, text)| message_json(conversation, *seq, *sender, text))
        .collect();
    from_json(&format!(
        r#"{{"messages":[{}],"has_more":{has_more}}}"#,
        messages.join(",")
    ))
}

fn frame(text: &str) -> Event {
    Event::Frame(ServerFrame::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")))
}

/// A chat with a direct conversation with bob (3 messages, 2 unread) and
/// a group below it.
fn chat() -> ChatState {
    let mut state = ChatState::new(ME, "me", "t", 1_780_000_000_000);
    state.update(Event::Connected);
    state.update(Event::Names(vec![(BOB, "bob".into())]));
    let actions = state.update(Event::Conversations(vec![
        summary(DIRECT, "direct", None, 3, 2),
        summary(GROUP, "group", Some("team"), 0, 0),
    ]));
    assert!(
        actions.contains(&Action::LoadHistory {
            conversation: DIRECT,
            before: None
        }),
        "the first conversation opens: {actions:?}"
    );
    assert!(actions.contains(&Action::WatchPresence(vec![BOB])));
    state.update(Event::History {
        conversation: DIRECT,
        before: None,
        page: page(
            DIRECT,
            &[
                (1, ME, "hi bob"),
                (2, BOB, "hello"),
                (3, BOB, "how are you"),
            ],
            true,
        ),
    });
    state
}

/// The screen as text, one string per row.
fn screen(state: &ChatState) -> (Vec<String>, ratatui::buffer::Buffer) {
    let mut terminal = Terminal::new(TestBackend::new(80, 16)).unwrap();
    terminal.draw(|frame| view::render(frame, state)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let rows = (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_owned())
                .collect::<String>()
        })
        .collect();
    (rows, buffer)
}

fn row_with<'a>(rows: &'a [String], needle: &str) -> &'a str {
    rows.iter()
        .find(|row| row.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?} in\n{}", rows.join("\n")))
}

#[test]
fn the_list_shows_conversations_with_unread_counts() {
    let mut state = ChatState::new(ME, "me", "t", 0);
    state.update(Event::Names(vec![(BOB, "bob".into())]));
    state.update(Event::Conversations(vec![
        summary(DIRECT, "direct", None, 3, 2),
        summary(GROUP, "group", Some("team"), 5, 0),
    ]));
    // Opening the first conversation reads it; the group keeps its count.
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "Conversations").contains("Conversations"));
    assert!(!row_with(&rows, "@bob").contains("(2)"), "read once open");
    let mut state = ChatState::new(ME, "me", "t", 0);
    state.update(Event::Names(vec![(BOB, "bob".into())]));
    state.update(Event::Conversations(vec![
        summary(GROUP, "group", Some("team"), 5, 0),
        summary(DIRECT, "direct", None, 3, 2),
    ]));
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "@bob").contains("(2)"), "{rows:#?}");
    assert!(row_with(&rows, "team").contains("team"));
}

#[test]
fn opening_a_conversation_marks_it_read_and_shows_its_messages() {
    let mut state = ChatState::new(ME, "me", "t", 0);
    state.update(Event::Connected);
    let actions = state.update(Event::Conversations(vec![summary(
        DIRECT, "direct", None, 3, 2,
    )]));
    assert!(actions.contains(&Action::Receipt {
        conversation: DIRECT,
        status: ReceiptStatus::Read,
        up_to_seq: 3
    }));
    assert!(actions.contains(&Action::Receipt {
        conversation: DIRECT,
        status: ReceiptStatus::Delivered,
        up_to_seq: 3
    }));
    let state = chat();
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "bob: hello").contains("bob: hello"));
    assert!(row_with(&rows, "you: hi bob").contains("✓"));
    assert!(row_with(&rows, "PgUp for older").contains("older"));
}

#[test]
fn ticks_follow_sent_and_the_receipts() {
    let mut state = chat();
    for c in "see you".chars() {
        state.update(Event::Key(Key::Char(c)));
    }
    let actions = state.update(Event::Key(Key::Enter));
    assert!(
        actions.contains(&Action::Send {
            conversation: DIRECT,
            client_msg_id: "t-1".into(),
            text: "see you".into()
        }),
        "{actions:?}"
    );
    assert!(actions.contains(&Action::Typing {
        conversation: DIRECT,
        active: false
    }));
    let (rows, _) = screen(&state);
    assert!(
        row_with(&rows, "you: see you").ends_with("…")
            || row_with(&rows, "you: see you").contains("see you …")
    );
    assert_eq!(state.open().unwrap().tick(None), Tick::Pending);

    state.update(frame(
        r#"{"type":"sent","client_msg_id":"t-1","conversation_id":"c7","seq":4,"message_id":"m4","sent_at_ms":1780000000000}"#,
    ));
    assert_eq!(state.open().unwrap().tick(Some(4)), Tick::Sent);
    let (rows, _) = screen(&state);
    assert!(
        row_with(&rows, "you: see you").contains("see you ✓"),
        "{rows:#?}"
    );

    state.update(frame(
        r#"{"type":"receipt","conversation_id":"c7","user_id":"u2","status":"delivered","up_to_seq":4}"#,
    ));
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "you: see you").contains("see you ✓✓"));

    state.update(frame(
        r#"{"type":"receipt","conversation_id":"c7","user_id":"u2","status":"read","up_to_seq":4}"#,
    ));
    assert_eq!(state.open().unwrap().tick(Some(4)), Tick::Read);
    let (rows, buffer) = screen(&state);
    let y = rows
        .iter()
        .position(|r| r.contains("you: see you"))
        .unwrap();
    let x = rows[y].chars().position(|c| c == '✓').unwrap();
    let cell = &buffer[(u16::try_from(x).unwrap(), u16::try_from(y).unwrap())];
    assert_eq!(cell.fg, Color::Blue, "read ticks are blue");
}

#[test]
fn the_header_shows_presence_and_typing() {
    let mut state = chat();
    state.update(frame(r#"{"type":"presence","user_id":"u2","online":true}"#));
    state.update(frame(
        r#"{"type":"typing","conversation_id":"c7","user_id":"u2","active":true}"#,
    ));
    let (rows, _) = screen(&state);
    let header = row_with(&rows, "@bob · online");
    assert!(header.contains("bob typing…"), "{header}");
    // Typing expires; presence changes.
    state.update(Event::Tick(1_780_000_000_000 + 60_000));
    state.update(frame(
        r#"{"type":"presence","user_id":"u2","online":false,"last_seen_ms":1780000000000}"#,
    ));
    let (rows, _) = screen(&state);
    let header = row_with(&rows, "@bob · last seen");
    assert!(!header.contains("typing"), "{header}");
}

#[test]
fn incoming_messages_count_as_unread_elsewhere_and_read_here() {
    let mut state = chat();
    let group_message = format!(
        r#"{{"type":"message","cursor":9,{}"#,
        &message_json(GROUP, 1, BOB, "to the team")[1..]
    );
    let actions = state.update(frame(&group_message));
    assert!(actions.contains(&Action::Receipt {
        conversation: GROUP,
        status: ReceiptStatus::Delivered,
        up_to_seq: 1
    }));
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "team").contains("(1)"), "{rows:#?}");
    // Most recent activity first.
    assert_eq!(state.conversations[0].id, GROUP);

    let direct_message = format!(
        r#"{{"type":"message","cursor":10,{}"#,
        &message_json(DIRECT, 4, BOB, "are you there")[1..]
    );
    let actions = state.update(frame(&direct_message));
    assert!(actions.contains(&Action::Receipt {
        conversation: DIRECT,
        status: ReceiptStatus::Read,
        up_to_seq: 4
    }));
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "bob: are you there").contains("there"));
    assert!(!row_with(&rows, "@bob").contains("("), "no unread count");
}

#[test]
fn page_up_scrolls_back_and_loads_older_history() {
    let mut state = chat();
    let actions = state.update(Event::Key(Key::PageUp));
    assert_eq!(
        actions,
        [Action::LoadHistory {
            conversation: DIRECT,
            before: Some(1)
        }]
    );
    // No second request while one is out.
    assert!(state.update(Event::Key(Key::PageUp)).is_empty());
    state.update(Event::History {
        conversation: DIRECT,
        before: Some(1),
        page: from_json(&format!(
            r#"{{"messages":[{}],"has_more":false}}"#,
            message_json(DIRECT, 0, BOB, "the very first")
        )),
    });
    for _ in 0..3 {
        state.update(Event::Key(Key::PageDown));
    }
    for _ in 0..3 {
        state.update(Event::Key(Key::PageUp));
    }
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "the very first").contains("bob:"));
    assert!(
        !rows.iter().any(|r| r.contains("PgUp for older")),
        "nothing older"
    );
}

#[test]
fn sends_typed_while_disconnected_go_out_on_reconnect() {
    let mut state = chat();
    state.update(Event::Disconnected("gone".into()));
    state.update(Event::Key(Key::Char('x')));
    assert!(state.update(Event::Key(Key::Enter)).is_empty());
    let (rows, _) = screen(&state);
    assert!(row_with(&rows, "reconnecting").contains("gone"));
    let actions = state.update(Event::Connected);
    assert!(actions.contains(&Action::Send {
        conversation: DIRECT,
        client_msg_id: "t-1".into(),
        text: "x".into()
    }));
    assert!(actions.contains(&Action::LoadConversations));
}

/// A pseudo-terminal: the master side for the test, the slave side for
/// the child's stdin, stdout and stderr.
struct Pty {
    master: std::fs::File,
    slave: std::fs::File,
}

fn open_pty(rows: u16, cols: u16) -> Pty {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("utf-8 pts name"))
        .expect("open the pty's slave side");
    rustix::termios::tcsetwinsize(
        &master,
        rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .expect("set the window size");
    Pty {
        master: std::fs::File::from(master),
        slave,
    }
}

/// Waits until the terminal output contains `needle`.
async fn wait_for_output(output: &Arc<Mutex<Vec<u8>>>, needle: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
        if text.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never appeared on the terminal; it showed {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cli_login(config: &Path, base: &str, name: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["login", "--server", base, name, "--password-stdin"])
        .env("XDG_CONFIG_HOME", config)
        .env("HOME", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn parley login");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_a_terminal_sends_what_is_typed() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    server.client.register("alice", PASSWORD).await.unwrap();
    let alice_id = bob.find_user("alice").await.unwrap().user_id;
    let conversation = bob.direct(alice_id).await.unwrap().0.conversation_id;
    // One word: the terminal is redrawn by differences, so text that
    // replaces blanks arrives split at its spaces.
    bob.send(conversation, "b1", "hi-alice").await.unwrap();
    let mut bob_socket = bob.connect(None).await.unwrap();

    let config = tempfile::tempdir().unwrap();
    let base = format!("http://{}", server.addr);
    let login_config = config.path().to_owned();
    tokio::task::spawn_blocking(move || cli_login(&login_config, &base, "alice"))
        .await
        .unwrap();

    let pty = open_pty(24, 100);
    // In a session of its own the chat has no controlling terminal but the
    // pty, so it reads the pty's size, not the one of whoever runs the test.
    let setsid = Path::new("/usr/bin/setsid").exists();
    let mut command = if setsid {
        let mut command = Command::new("/usr/bin/setsid");
        command.arg("--wait").arg(env!("CARGO_BIN_EXE_parley"));
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_parley"))
    };
    let mut child = command
        .arg("chat")
        .env("XDG_CONFIG_HOME", config.path())
        .env("HOME", config.path())
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .expect("spawn parley chat");
    drop(pty.slave);
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pty.master.try_clone().unwrap();
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // Ends when the child is gone and the pty closes.
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                return;
            }
            sink.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    });
    let mut keyboard = pty.master;

    // The conversation opened with bob's message in it.
    wait_for_output(&output, "hi-alice").await;
    keyboard.write_all(b"hello from the terminal").unwrap();
    keyboard.write_all(b"\r").unwrap();
    let (_, message) = expect_message(&mut bob_socket).await;
    assert_eq!(message.text.as_deref(), Some("hello from the terminal"));
    assert_eq!(message.sender_id, alice_id);
    assert_eq!(message.conversation_id, conversation);
    // The acknowledgement shows as a tick.
    wait_for_output(&output, "✓").await;

    // Ctrl-C quits cleanly.
    keyboard.write_all(&[0x03]).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("parley chat did not quit");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(status.success(), "parley chat exited with {status}");
}
