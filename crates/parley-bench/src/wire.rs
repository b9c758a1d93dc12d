//! The bench's own lean WebSocket path.
//!
//! `parley-client`'s [`parley_client::Socket`] connects from whatever source
//! address the kernel picks, parses every frame into an owned
//! [`ServerFrame`] (copying the text) and flushes after every send. The bench
//! needs more than 28,000 sockets to one port (so it binds each socket to a
//! chosen 127.0.0.x and port before connecting), and it reads a few hundred
//! thousand frames a second on the same two cores as the server, so:
//! - [`open`] binds, connects and upgrades with small per-socket buffers;
//! - [`decode`] reads frames with `parley-proto`; `--lean-parse` switches
//!   the two hot frames (`sent`, `message`) to [`scan`], which pulls out
//!   the few fields the bench needs without building a frame (it saves
//!   bench CPU in `group`, see BENCHMARKS.md);
//! - callers `feed` many [`send_frame`]s (encoded by `parley-proto`)
//!   before one `flush`, instead of a flush per frame.
//!
//! HTTP (users, logins, conversations) goes through `parley-client`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use parley_proto::{ClientFrame, ConversationId, MessageKind, ServerFrame};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// An open bench socket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Where sockets go and which source addresses they use.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// The server's address (always 127.0.0.x).
    pub(crate) addr: SocketAddr,
    /// `ws://host:port/v1/ws`.
    pub(crate) url: String,
}

impl Dial {
    /// Parses `http://127.0.0.1:PORT`; refuses anything outside 127.0.0.0/8.
    pub(crate) fn new(base: &str) -> anyhow::Result<Dial> {
        let host = base
            .trim_end_matches('/')
            .strip_prefix("http://")
            .context("the URL must be http://127.0.0.x:PORT")?;
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("{host:?} is not IP:PORT"))?;
        match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_loopback() => {}
            _ => bail!("the bench only sends traffic to 127.0.0.0/8, not {addr}"),
        }
        Ok(Dial {
            addr,
            url: format!("ws://{host}/v1/ws"),
        })
    }
}

/// First source port the bench picks itself.
const FIRST_PORT: usize = 20_000;

/// The source address and port for socket number `i` when each address
/// carries at most `per_ip` sockets, starting at 127.0.0.`first`.
///
/// The bench picks the port itself: `bind(ip, 0)` makes the kernel search
/// for a free port, which with tens of thousands of bound sockets costs
/// more CPU than the rest of the connection.
pub(crate) fn source_addr(i: usize, per_ip: usize, first: u8) -> SocketAddrV4 {
    let per_ip = per_ip.clamp(1, 30_000);
    let offset = (i / per_ip) % (255 - first as usize);
    let port = FIRST_PORT + i % per_ip;
    SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, first + offset as u8), port as u16)
}

/// Connects from `source` (if given) and upgrades; does not authenticate.
pub(crate) async fn open(
    dial: &Dial,
    source: Option<SocketAddrV4>,
    read_buffer: usize,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    // Close with RST: tens of thousands of closed bench sockets would
    // otherwise sit in TIME_WAIT for a minute, and ports bound with
    // bind() stay unavailable to every connect() on the machine
    // meanwhile (the next run's HTTP setup then fails with EADDRNOTAVAIL).
    socket.set_zero_linger()?;
    socket.set_reuseaddr(true)?;
    // Taken (another program, or a socket not yet gone): let the kernel
    // pick a port on the same address.
    if let Some(source) = source
        && socket.bind(source.into()).is_err()
    {
        socket
            .bind(SocketAddr::new((*source.ip()).into(), 0))
            .with_context(|| format!("bind {}", source.ip()))?;
    }
    let stream = socket.connect(dial.addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(dial.url.as_str(), stream, Some(config))
            .await?;
    Ok(ws)
}

/// What `ready` said.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    /// The inbox head.
    pub(crate) cursor: u64,
    /// How often to ping.
    pub(crate) heartbeat_ms: u64,
}

/// Sends `auth` and waits for `ready` (within 30 s).
pub(crate) async fn auth(ws: &mut Ws, token: &str, since: Option<u64>) -> anyhow::Result<Ready> {
    let frame = ClientFrame::Auth {
        token: token.to_owned(),
        since,
    };
    ws.send(WsMessage::Text(serde_json::to_string(&frame)?.into()))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let item = tokio::time::timeout_at(deadline, ws.next())
            .await
            .context("no ready within 30 s")?;
        match item {
            Some(Ok(WsMessage::Text(text))) => match ServerFrame::parse(text.as_str())? {
                ServerFrame::Ready {
                    cursor,
                    heartbeat_ms,
                    ..
                } => {
                    return Ok(Ready {
                        cursor,
                        heartbeat_ms,
                    });
                }
                ServerFrame::Error { code, message, .. } => bail!("{code}: {message}"),
                other => bail!("expected ready, got {other:?}"),
            },
            Some(Ok(WsMessage::Close(frame))) => bail!("closed before ready: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("connection ended before ready"),
        }
    }
}

/// Opens and authenticates.
pub(crate) async fn connect(
    dial: &Dial,
    source: Option<SocketAddrV4>,
    read_buffer: usize,
    token: &str,
    since: Option<u64>,
) -> anyhow::Result<(Ws, Ready)> {
    let mut ws = open(dial, source, read_buffer).await?;
    let ready = auth(&mut ws, token, since).await?;
    Ok((ws, ready))
}

/// A `send` frame, encoded by `parley-proto`.
pub(crate) fn send_frame(client_msg_id: String, conversation: i64, text: &str) -> WsMessage {
    let frame = ClientFrame::Send {
        client_msg_id,
        conversation_id: ConversationId(conversation),
        kind: MessageKind::Text,
        text: text.to_owned(),
        reply_to_seq: None,
    };
    WsMessage::Text(
        serde_json::to_string(&frame)
            .expect("client frames always serialize")
            .into(),
    )
}

/// A `ping` frame.
pub(crate) fn ping_frame() -> WsMessage {
    WsMessage::Text(r#"{"type":"ping"}"#.into())
}

/// The bench's idempotency key: `{n}.{intended send time in µs since the
/// run's start}`, so acks and deliveries carry their own send time.
pub(crate) fn client_msg_id(n: u64, intended_us: u64) -> String {
    format!("{n}.{intended_us}")
}

/// The (n, intended µs) of a bench key.
pub(crate) fn parse_client_msg_id(key: &str) -> Option<(u64, u64)> {
    let (n, t) = key.split_once('.')?;
    Some((n.parse().ok()?, t.parse().ok()?))
}

/// The fields of a hot frame the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hot {
    /// `sent`.
    Sent {
        /// The bench key echoed back: (n, intended µs).
        key: Option<(u64, u64)>,
        /// The seq assigned.
        seq: u64,
    },
    /// `message`.
    Message {
        /// The recipient's inbox cursor.
        cursor: u64,
        /// Numeric conversation id.
        conversation: i64,
        /// The seq.
        seq: u64,
        /// Numeric sender id.
        sender: i64,
        /// The sender's bench key, if it is one.
        key: Option<(u64, u64)>,
    },
    /// Anything else: parse it fully.
    Other,
}

/// Decodes the hot fields of a server frame through [`ServerFrame::parse`]
/// (as `parley-client` does), or with [`scan`] when `lean` (`--lean-parse`).
/// The default speaks through `parley-proto` like everything else; the
/// scanner only matters where the bench receives hundreds of thousands of
/// frames a second on the server's cores (`group`; see BENCHMARKS.md).
pub(crate) fn decode(text: &str, lean: bool) -> Hot {
    if lean {
        return scan(text);
    }
    match ServerFrame::parse(text) {
        Ok(ServerFrame::Sent {
            client_msg_id, seq, ..
        }) => Hot::Sent {
            key: parse_client_msg_id(&client_msg_id),
            seq,
        },
        Ok(ServerFrame::Message { cursor, message }) => Hot::Message {
            cursor,
            conversation: message.conversation_id.0,
            seq: message.seq,
            sender: message.sender_id.0,
            key: message
                .client_msg_id
                .as_deref()
                .and_then(parse_client_msg_id),
        },
        _ => Hot::Other,
    }
}

/// Reads the hot fields of `text` without building a frame.
///
/// Looking for `"key":` is safe in a server frame: inside a JSON string a
/// quote is always escaped, so the pattern only matches a real key, and the
/// fields used are unique in the frame (the only nested value is the
/// `user_ids` array of system messages). This knows a little of the wire
/// shape outside `parley-proto`, deliberately, for speed; the tests below
/// check it against `parley-proto`'s own encoding.
pub(crate) fn scan(text: &str) -> Hot {
    if text.starts_with(r#"{"type":"sent""#) {
        match number_field(text, "seq") {
            Some(seq) => Hot::Sent {
                key: string_field(text, "client_msg_id").and_then(parse_client_msg_id),
                seq,
            },
            None => Hot::Other,
        }
    } else if text.starts_with(r#"{"type":"message""#) {
        let id = |key: &str, prefix: char| {
            string_field(text, key)
                .and_then(|s| s.strip_prefix(prefix))
                .and_then(|s| s.parse::<i64>().ok())
        };
        match (
            number_field(text, "cursor"),
            id("conversation_id", 'c'),
            number_field(text, "seq"),
            id("sender_id", 'u'),
        ) {
            (Some(cursor), Some(conversation), Some(seq), Some(sender)) => Hot::Message {
                cursor,
                conversation,
                seq,
                sender,
                key: string_field(text, "client_msg_id").and_then(parse_client_msg_id),
            },
            _ => Hot::Other,
        }
    } else {
        Hot::Other
    }
}

fn raw_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut pattern = String::with_capacity(key.len() + 3);
    pattern.push('"');
    pattern.push_str(key);
    pattern.push_str("\":");
    let start = text.find(&pattern)? + pattern.len();
    Some(&text[start..])
}

fn number_field(text: &str, key: &str) -> Option<u64> {
    let rest = raw_field(text, key)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = raw_field(text, key)?.strip_prefix('"')?;
    // Ids and bench keys never contain escapes.
    let end = rest.find(['"', '\\'])?;
    if rest[end..].starts_with('\\') {
        return None;
    }
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use parley_proto::{
        ConversationId, DeviceId, EncodedMessage, Message, MessageId, MessageKind, SystemEvent,
        UserId,
    };

    use super::*;

    fn message(text: &str, client_msg_id: Option<&str>) -> Message {
        Message {
            conversation_id: ConversationId(17),
            seq: 42,
            message_id: MessageId(9),
            sender_id: UserId(5),
            sender_device_id: Some(DeviceId(1)),
            client_msg_id: client_msg_id.map(Into::into),
            sent_at_ms: 1_780_000_000_000,
            kind: MessageKind::Text,
            text: Some(text.into()),
            reply_to_seq: None,
            event: None,
            user_ids: None,
            name: None,
            role: None,
        }
    }

    #[test]
    fn scans_what_the_server_sends() {
        // A text that tries to look like the keys must not fool the scanner.
        let tricky = r#"x","seq":1,"cursor":2,"client_msg_id":"no"#;
        let frame = EncodedMessage::new(&message(tricky, Some("7.1234"))).frame(99);
        let want = Hot::Message {
            cursor: 99,
            conversation: 17,
            seq: 42,
            sender: 5,
            key: Some((7, 1234)),
        };
        assert_eq!(scan(&frame), want);
        assert_eq!(decode(&frame, false), want);
        let sent = ServerFrame::Sent {
            client_msg_id: "3.55".into(),
            conversation_id: ConversationId(1),
            seq: 12,
            message_id: MessageId(4),
            sent_at_ms: 1,
        }
        .to_json();
        let want = Hot::Sent {
            key: Some((3, 55)),
            seq: 12,
        };
        assert_eq!(scan(&sent), want);
        assert_eq!(decode(&sent, false), want);
        let mut system = message("", None);
        system.kind = MessageKind::System;
        system.text = None;
        system.event = Some(SystemEvent::Created);
        system.user_ids = Some(vec![UserId(1), UserId(2)]);
        let frame = ServerFrame::Message {
            cursor: 3,
            message: system,
        }
        .to_json();
        assert!(matches!(
            scan(&frame),
            Hot::Message {
                cursor: 3,
                key: None,
                ..
            }
        ));
        assert_eq!(scan(r#"{"type":"pong"}"#), Hot::Other);
        assert_eq!(
            scan(r#"{"type":"sent","seq":1}"#),
            Hot::Sent { key: None, seq: 1 }
        );
        assert_eq!(scan(r#"{"type":"message","seq":1}"#), Hot::Other);
    }

    #[test]
    fn send_frames_parse_as_protocol() {
        let WsMessage::Text(text) = send_frame("1.2".into(), 7, "hello") else {
            panic!("text frame")
        };
        let frame = ClientFrame::parse(text.as_str()).unwrap();
        assert_eq!(
            frame,
            ClientFrame::Send {
                client_msg_id: "1.2".into(),
                conversation_id: ConversationId(7),
                kind: MessageKind::Text,
                text: "hello".into(),
                reply_to_seq: None,
            }
        );
        assert_eq!(
            parse_client_msg_id(&client_msg_id(5, 1_000)),
            Some((5, 1000))
        );
        assert_eq!(parse_client_msg_id("x"), None);
    }

    #[test]
    fn loopback_only() {
        assert!(Dial::new("http://127.0.0.1:8080").is_ok());
        assert!(Dial::new("http://127.3.0.1:8080/").is_ok());
        assert!(Dial::new("http://10.0.0.1:8080").is_err());
        assert!(Dial::new("http://example.com:80").is_err());
        assert_eq!(source_addr(0, 100, 2).to_string(), "127.0.0.2:20000");
        assert_eq!(source_addr(250, 100, 2).to_string(), "127.0.0.4:20050");
    }
}
