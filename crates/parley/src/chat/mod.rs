//! `parley chat`: a terminal chat client on ratatui and crossterm.
//!
//! # Layout
//! - [`state`]: everything shown, changed only by [`state::ChatState::update`]
//!   (events in, actions out; no I/O).
//! - [`view`]: draws a state on a ratatui frame (a pure function).
//! - this module: the runtime. A thread reads the keyboard, a task keeps
//!   the WebSocket (reconnecting with full-jitter backoff and catching up by
//!   cursor), short tasks make HTTP calls, and one loop feeds their events
//!   to the state, carries out its actions and redraws.

pub mod state;
pub mod view;

use std::time::Duration;

use parley_client::{Client, ClientError, SocketReader, SocketWriter};
use parley_proto::{ClientFrame, ConversationId, ErrorCode, ServerFrame, close_code, now_ms};
use ratatui::crossterm::event::{self as term, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

use crate::cli::error::{CliError, CliResult, exit};
use crate::cli::session::Profile;
use parley_client::reconnect::Backoff;
use state::{Action, ChatState, Event, Key, PAGE};

/// `parley chat` takes no options besides the global `--profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {}

/// What reaches the main loop.
// Large only because `Event` is (see there).
#[allow(clippy::large_enum_variant)]
enum Input {
    Event(Event),
    /// The session is over (token revoked): leave with this error.
    Fatal(CliError),
}

/// What the main loop hands the socket task.
enum Outgoing {
    Text {
        conversation: ConversationId,
        client_msg_id: String,
        text: String,
    },
    Frame(ClientFrame),
}

/// Runs `parley chat` for `profile` until the user quits.
pub async fn run(_args: ChatArgs, profile: Option<&str>) -> CliResult<()> {
    let profile = Profile::open(profile)?;
    let session = profile.require_session()?;
    let client = session.client();
    // Check the login before taking over the terminal, so a script or a
    // person sees a plain error.
    let me = client.me().await?;
    let key_prefix = format!("chat-{:016x}", rand::random::<u64>());
    let mut state = ChatState::new(me.user_id, &me.username, &key_prefix, now_ms());

    let (inputs, mut incoming) = unbounded_channel::<Input>();
    let (outgoing, to_socket) = unbounded_channel::<Outgoing>();
    let mut terminal = ratatui::try_init()
        .map_err(|e| CliError::local(format!("cannot use the terminal: {e}")))?;
    spawn_keyboard(inputs.clone());
    spawn_clock(inputs.clone());
    tokio::spawn(socket_task(client.clone(), inputs.clone(), to_socket));

    let outcome = 'main: loop {
        if let Err(e) = terminal.draw(|frame| view::render(frame, &state)) {
            break Err(CliError::local(format!("cannot draw: {e}")));
        }
        let Some(first) = incoming.recv().await else {
            break Ok(());
        };
        // Apply everything that is waiting before drawing again.
        let mut batch = vec![first];
        while let Ok(more) = incoming.try_recv() {
            batch.push(more);
        }
        for input in batch {
            let event = match input {
                Input::Event(event) => event,
                Input::Fatal(err) => break 'main Err(err),
            };
            for action in state.update(event) {
                if matches!(action, Action::Quit) {
                    break 'main Ok(());
                }
                perform(action, &client, &inputs, &outgoing);
            }
        }
    };
    ratatui::restore();
    outcome
}

/// Carries out one action of the state.
fn perform(
    action: Action,
    client: &Client,
    inputs: &UnboundedSender<Input>,
    outgoing: &UnboundedSender<Outgoing>,
) {
    let frame = |frame: ClientFrame| {
        let _ = outgoing.send(Outgoing::Frame(frame));
    };
    match action {
        Action::Quit => {}
        Action::Send {
            conversation,
            client_msg_id,
            text,
        } => {
            let _ = outgoing.send(Outgoing::Text {
                conversation,
                client_msg_id,
                text,
            });
        }
        Action::Receipt {
            conversation,
            status,
            up_to_seq,
        } => frame(ClientFrame::Receipt {
            conversation_id: conversation,
            status,
            up_to_seq,
        }),
        Action::Typing {
            conversation,
            active,
        } => frame(ClientFrame::Typing {
            conversation_id: conversation,
            active,
        }),
        Action::WatchPresence(user_ids) => frame(ClientFrame::PresenceSubscribe { user_ids }),
        Action::LoadConversations => {
            let (client, inputs) = (client.clone(), inputs.clone());
            tokio::spawn(async move {
                let event = match client.conversations().await {
                    Ok(list) => Event::Conversations(list.conversations),
                    Err(err) => Event::Failed(CliError::from(err).line()),
                };
                let _ = inputs.send(Input::Event(event));
            });
        }
        Action::LoadHistory {
            conversation,
            before,
        } => {
            let (client, inputs) = (client.clone(), inputs.clone());
            tokio::spawn(async move {
                let event = match client.history(conversation, before, None, Some(PAGE)).await {
                    Ok(page) => Event::History {
                        conversation,
                        before,
                        page,
                    },
                    Err(err) => Event::Failed(CliError::from(err).line()),
                };
                let _ = inputs.send(Input::Event(event));
            });
        }
        Action::LookupNames(users) => {
            let (client, inputs) = (client.clone(), inputs.clone());
            tokio::spawn(async move {
                let mut names = Vec::new();
                for user in users {
                    if let Ok(view) = client.user(user).await {
                        names.push((user, view.username));
                    }
                }
                let _ = inputs.send(Input::Event(Event::Names(names)));
            });
        }
    }
}

/// The keyboard, read on its own thread (crossterm's reads block).
fn spawn_keyboard(inputs: UnboundedSender<Input>) {
    std::thread::spawn(move || {
        loop {
            let event = match term::read() {
                Ok(event) => event,
                Err(_) => return,
            };
            let event = match event {
                term::Event::Key(key) if key.kind != KeyEventKind::Release => {
                    let control = key.modifiers.contains(KeyModifiers::CONTROL);
                    let key = match key.code {
                        KeyCode::Char('c' | 'd') if control => Key::Quit,
                        KeyCode::Esc => Key::Quit,
                        KeyCode::Char(c) if !control => Key::Char(c),
                        KeyCode::Enter => Key::Enter,
                        KeyCode::Backspace => Key::Backspace,
                        KeyCode::Up => Key::Up,
                        KeyCode::Down => Key::Down,
                        KeyCode::Tab => Key::Tab,
                        KeyCode::PageUp => Key::PageUp,
                        KeyCode::PageDown => Key::PageDown,
                        _ => continue,
                    };
                    Event::Key(key)
                }
                // A resize only needs a redraw: any event brings one.
                term::Event::Resize(..) => Event::Tick(now_ms()),
                term::Event::Paste(text) => {
                    for c in text.chars().filter(|c| !c.is_control()) {
                        if inputs.send(Input::Event(Event::Key(Key::Char(c)))).is_err() {
                            return;
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if inputs.send(Input::Event(event)).is_err() {
                return;
            }
        }
    });
}

/// A tick a second: typing indicators expire.
fn spawn_clock(inputs: UnboundedSender<Input>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            if inputs.send(Input::Event(Event::Tick(now_ms()))).is_err() {
                return;
            }
        }
    });
}

/// Keeps a socket open: connects (full-jitter backoff between attempts),
/// replays from the last cursor seen, passes frames on, sends what the
/// main loop hands it, pings.
async fn socket_task(
    client: Client,
    inputs: UnboundedSender<Input>,
    mut to_socket: UnboundedReceiver<Outgoing>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
    let mut since: Option<u64> = None;
    loop {
        let reason = match client.connect(since).await {
            Ok(socket) => {
                let ready = socket.ready.expect("connect returns once ready");
                backoff.reset();
                since = Some(since.unwrap_or(ready.cursor));
                // Frames queued while down are stale; `Connected` makes the
                // state send what still matters (its unacknowledged sends).
                while to_socket.try_recv().is_ok() {}
                if inputs.send(Input::Event(Event::Connected)).is_err() {
                    return;
                }
                let heartbeat = Duration::from_millis(ready.heartbeat_ms.max(1000));
                let (mut writer, mut reader) = socket.split();
                let ended = pump(
                    &mut writer,
                    &mut reader,
                    heartbeat,
                    &inputs,
                    &mut to_socket,
                    &mut since,
                )
                .await;
                writer.close().await;
                match ended {
                    Pumped::Lost(reason) => reason,
                    Pumped::Reconnect(after) => {
                        tokio::time::sleep(after).await;
                        "the server restarted".into()
                    }
                    Pumped::Fatal(err) => {
                        let _ = inputs.send(Input::Fatal(err));
                        return;
                    }
                    Pumped::Closed => return,
                }
            }
            Err(err) => {
                let err = CliError::from(err);
                if err.exit == exit::UNAUTHORIZED {
                    let _ = inputs.send(Input::Fatal(err));
                    return;
                }
                err.message
            }
        };
        if inputs
            .send(Input::Event(Event::Disconnected(reason)))
            .is_err()
        {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

enum Pumped {
    /// The connection broke.
    Lost(String),
    /// The server asked for a reconnect after this long.
    Reconnect(Duration),
    /// The session is over.
    Fatal(CliError),
    /// The main loop is gone.
    Closed,
}

async fn pump(
    writer: &mut SocketWriter,
    reader: &mut SocketReader,
    heartbeat: Duration,
    inputs: &UnboundedSender<Input>,
    to_socket: &mut UnboundedReceiver<Outgoing>,
    since: &mut Option<u64>,
) -> Pumped {
    let mut pings = tokio::time::interval(heartbeat / 2);
    pings.tick().await;
    let mut deadline = Instant::now() + heartbeat * 2;
    loop {
        tokio::select! {
            frame = reader.recv() => {
                deadline = Instant::now() + heartbeat * 2;
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(ClientError::Closed { code, reason }) if code == close_code::UNAUTHORIZED => {
                        return Pumped::Fatal(CliError::with_code(ErrorCode::Unauthorized, format!("logged out: {reason}")));
                    }
                    Err(err) => return Pumped::Lost(err.to_string()),
                };
                match &frame {
                    ServerFrame::Message { cursor, .. } => {
                        *since = Some(since.map_or(*cursor, |seen| seen.max(*cursor)));
                    }
                    ServerFrame::Reconnect { after_ms } => {
                        return Pumped::Reconnect(Duration::from_millis(*after_ms));
                    }
                    _ => {}
                }
                if inputs.send(Input::Event(Event::Frame(frame))).is_err() {
                    return Pumped::Closed;
                }
            }
            out = to_socket.recv() => {
                let sent = match out {
                    None => return Pumped::Closed,
                    Some(Outgoing::Text { conversation, client_msg_id, text }) => {
                        writer.send_text(conversation, &client_msg_id, &text).await
                    }
                    Some(Outgoing::Frame(frame)) => writer.send(&frame).await,
                };
                if let Err(err) = sent {
                    return Pumped::Lost(err.to_string());
                }
            }
            _ = pings.tick() => {
                if let Err(err) = writer.send(&ClientFrame::Ping { nonce: None }).await {
                    return Pumped::Lost(err.to_string());
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Pumped::Lost("the server stopped answering".into());
            }
        }
    }
}
