//! [`Socket`]: a WebSocket session with a Parley server. Frames go out
//! encoded by [`ClientFrame::to_json`] and come in decoded by
//! [`ServerFrame::parse`]; this module only moves text frames.
//!
//! A socket opens by URL ([`Socket::open`]) or over a TCP stream the caller
//! connected itself ([`Socket::open_over`]: the bench binds each of tens of
//! thousands of sockets to a chosen source address and sets
//! `SO_LINGER`), then [`Socket::authenticate`]s. Callers that need the raw
//! stream (the bench batches sends before one flush) take it with
//! [`Socket::into_stream`].

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parley_proto::api::SendRequest;
use parley_proto::{ClientFrame, ConversationId, MessageKind, ServerFrame, UserId};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
pub use tokio_tungstenite::tungstenite::Message as WsMessage;
pub use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{ABNORMAL, ClientError, ClientResult, NO_STATUS};

/// How long [`Socket::authenticate`] waits for `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What `ready` said.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// The user.
    pub user_id: UserId,
    /// The device.
    pub device_id: parley_proto::DeviceId,
    /// The inbox head at connect time.
    pub cursor: u64,
    /// How often to ping.
    pub heartbeat_ms: u64,
}

/// The WebSocket stream under a [`Socket`]: plain TCP, or TLS for `wss://`.
pub type WsStream = tokio_tungstenite::WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open WebSocket session.
pub struct Socket {
    stream: WsStream,
    /// Set once authenticated.
    pub ready: Option<Ready>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// Opens an unauthenticated socket (tests use this to send bad frames).
    pub async fn open(url: &str) -> ClientResult<Socket> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Socket {
            stream,
            ready: None,
        })
    }

    /// Upgrades a TCP stream already connected to the server at `url`
    /// (`ws://host:port/v1/ws`); `config` sets tungstenite's buffer sizes.
    /// Does not authenticate.
    pub async fn open_over(
        url: &str,
        stream: TcpStream,
        config: Option<WebSocketConfig>,
    ) -> ClientResult<Socket> {
        let (stream, _) =
            tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), config)
                .await?;
        Ok(Socket {
            stream,
            ready: None,
        })
    }

    /// Sends `auth` and waits (30 s at most) for `ready`, which it also
    /// keeps in [`Socket::ready`]. An `error` frame instead becomes
    /// [`ClientError::Api`] with status 0.
    pub async fn authenticate(&mut self, token: String, since: Option<u64>) -> ClientResult<Ready> {
        self.send(&ClientFrame::Auth { token, since }).await?;
        match self.recv_within(READY_TIMEOUT).await? {
            ServerFrame::Ready {
                user_id,
                device_id,
                cursor,
                heartbeat_ms,
                ..
            } => {
                let ready = Ready {
                    user_id,
                    device_id,
                    cursor,
                    heartbeat_ms,
                };
                self.ready = Some(ready);
                Ok(ready)
            }
            ServerFrame::Error { code, message, .. } => Err(ClientError::Api {
                status: 0,
                code,
                message,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected ready, got {other:?}"
            ))),
        }
    }

    /// The WebSocket stream itself, for callers that batch writes
    /// (`feed` many, `flush` once) or read frames their own way.
    pub fn into_stream(self) -> WsStream {
        self.stream
    }

    /// Sends a typed frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> ClientResult<()> {
        self.send_raw(frame.to_json()).await
    }

    /// Sends any text frame.
    pub async fn send_raw(&mut self, text: String) -> ClientResult<()> {
        self.stream.send(WsMessage::Text(text.into())).await?;
        Ok(())
    }

    /// Sends a text message.
    pub async fn send_text(
        &mut self,
        conversation: ConversationId,
        client_msg_id: &str,
        text: &str,
    ) -> ClientResult<()> {
        self.send_message(conversation, SendRequest::text(client_msg_id, text))
            .await
    }

    /// Sends any message or event (see [`SendRequest`]'s constructors:
    /// replies, forwards, `edit`, `delete`, `reaction`) as a `send` frame.
    pub async fn send_message(
        &mut self,
        conversation: ConversationId,
        body: SendRequest,
    ) -> ClientResult<()> {
        self.send(&ClientFrame::Send {
            client_msg_id: body.client_msg_id,
            conversation_id: conversation,
            kind: body.kind,
            text: body.text,
            reply_to_seq: body.reply_to_seq,
            target_seq: body.target_seq,
            emoji: body.emoji,
            forwarded: body.forwarded,
            media: body.media,
        })
        .await
    }

    /// The next server frame; `Closed` when the server closed.
    pub async fn recv(&mut self) -> ClientResult<ServerFrame> {
        recv_frame(&mut self.stream).await
    }

    /// The next frame within `timeout`, else `Timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> ClientResult<ServerFrame> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Splits into a writer and a reader that can live in separate tasks.
    pub fn split(self) -> (SocketWriter, SocketReader) {
        let (sink, stream) = self.stream.split();
        (SocketWriter { sink }, SocketReader { stream })
    }
}

/// The sending half of a [`Socket`].
pub struct SocketWriter {
    sink: SplitSink<WsStream, WsMessage>,
}

impl SocketWriter {
    /// Sends a typed frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> ClientResult<()> {
        self.sink
            .send(WsMessage::Text(frame.to_json().into()))
            .await?;
        Ok(())
    }

    /// Sends a text message.
    pub async fn send_text(
        &mut self,
        conversation: ConversationId,
        client_msg_id: &str,
        text: &str,
    ) -> ClientResult<()> {
        self.send(&ClientFrame::Send {
            client_msg_id: client_msg_id.into(),
            conversation_id: conversation,
            kind: MessageKind::Text,
            text: text.into(),
            reply_to_seq: None,
            target_seq: None,
            emoji: None,
            forwarded: false,
            media: Vec::new(),
        })
        .await
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The receiving half of a [`Socket`].
pub struct SocketReader {
    stream: SplitStream<WsStream>,
}

impl SocketReader {
    /// The next server frame.
    pub async fn recv(&mut self) -> ClientResult<ServerFrame> {
        recv_frame(&mut self.stream).await
    }
}

async fn recv_frame<S>(stream: &mut S) -> ClientResult<ServerFrame>
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        match stream.next().await {
            None => {
                return Err(ClientError::Closed {
                    code: ABNORMAL,
                    reason: "connection ended".into(),
                });
            }
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(WsMessage::Text(text))) => {
                return ServerFrame::parse(text.as_str())
                    .map_err(|e| ClientError::Protocol(format!("bad frame {text}: {e}")));
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return Err(ClientError::Closed {
                    code: frame
                        .as_ref()
                        .map(|f| u16::from(f.code))
                        .unwrap_or(NO_STATUS),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                });
            }
            Some(Ok(_)) => continue,
        }
    }
}
