//! The bench's WebSocket path: sockets opened with `parley-client`, plus
//! what the bench must do itself.
//!
//! `parley-client` does the WebSocket handshake, `auth` and `ready`
//! ([`parley_client::Socket::open_over`], [`parley_client::Socket::authenticate`])
//! and every frame is encoded by `parley-proto`. The bench adds only what a
//! load generator needs on the same two cores as the server:
//! - [`open`] binds each socket to a chosen 127.0.0.x and port before
//!   connecting (more than 28,000 sockets to one port), closes with RST
//!   (`SO_LINGER` 0) and asks for small per-socket buffers;
//! - callers take the raw stream and `feed` many [`send_frame`]s before one
//!   `flush`, instead of a flush per frame;
//! - [`decode`] reads the hot frames (`sent`, `message`) with
//!   `parley-proto`, or with the lean scanner in [`crate::lean`] under
//!   `--lean-parse` (it saves bench CPU in `group`, see BENCHMARKS.md).
//!
//! HTTP (users, logins, conversations) goes through `parley-client` too
//! (see [`crate::setup`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{Context, bail};
use parley_client::{Ready, Socket, WebSocketConfig, WsMessage, WsStream};
use parley_proto::{ClientFrame, ConversationId, MessageKind, ReceiptStatus, ServerFrame};
use tokio::net::TcpSocket;

use crate::lean;

/// An open bench socket.
pub(crate) type Ws = WsStream;

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

/// Connects from `source` (if given) and upgrades with `parley-client`;
/// does not authenticate.
pub(crate) async fn open(
    dial: &Dial,
    source: Option<SocketAddrV4>,
    read_buffer: usize,
) -> anyhow::Result<Socket> {
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
    Ok(Socket::open_over(&dial.url, stream, Some(config)).await?)
}

/// Opens and authenticates (`auth`, then `ready` within 30 s); returns the
/// raw stream for the bench's batched writes.
pub(crate) async fn connect(
    dial: &Dial,
    source: Option<SocketAddrV4>,
    read_buffer: usize,
    token: &str,
    since: Option<u64>,
) -> anyhow::Result<(Ws, Ready)> {
    let mut socket = open(dial, source, read_buffer).await?;
    let ready = socket.authenticate(token.to_owned(), since).await?;
    Ok((socket.into_stream(), ready))
}

/// A `send` frame, encoded by `parley-proto`.
pub(crate) fn send_frame(client_msg_id: String, conversation: i64, text: &str) -> WsMessage {
    let frame = ClientFrame::Send {
        client_msg_id,
        conversation_id: ConversationId(conversation),
        kind: MessageKind::Text,
        text: text.to_owned(),
        reply_to_seq: None,
        target_seq: None,
        emoji: None,
        forwarded: false,
        media: Vec::new(),
    };
    WsMessage::Text(frame.to_json().into())
}

/// A `ping` frame (no nonce), encoded by `parley-proto`.
pub(crate) fn ping_frame() -> WsMessage {
    WsMessage::Text(ClientFrame::Ping { nonce: None }.to_json().into())
}

/// A `receipt` frame marking everything up to `seq` read, encoded by
/// `parley-proto`.
pub(crate) fn read_receipt_frame(conversation: i64, seq: u64) -> WsMessage {
    let frame = ClientFrame::Receipt {
        conversation_id: ConversationId(conversation),
        status: ReceiptStatus::Read,
        up_to_seq: seq,
    };
    WsMessage::Text(frame.to_json().into())
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
/// (as `parley-client` does), or with [`lean::scan`] when `lean`
/// (`--lean-parse`).
/// The default speaks through `parley-proto` like everything else; the
/// scanner only matters where the bench receives hundreds of thousands of
/// frames a second on the server's cores (`group`; see BENCHMARKS.md).
pub(crate) fn decode(text: &str, lean: bool) -> Hot {
    if lean {
        return lean::scan(text);
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

#[cfg(test)]
mod tests {
    use super::*;

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
                target_seq: None,
                emoji: None,
                forwarded: false,
                media: Vec::new(),
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
