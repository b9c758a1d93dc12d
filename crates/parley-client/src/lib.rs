//! An async client for a Parley server.
//!
//! [`Client`] covers the HTTP API; [`Client::connect`] opens an
//! authenticated WebSocket [`Socket`]. Frames are the typed
//! [`parley_proto::ClientFrame`] / [`parley_proto::ServerFrame`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_client::ClientError> {
//! let client = parley_client::Client::new("http://127.0.0.1:8080");
//! client.register("alice", "correct horse").await?;
//! let alice = client.login("alice", "correct horse").await?;
//! let mut socket = alice.connect(None).await?;
//! let frame = socket.recv().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parley_proto::api::*;
use parley_proto::{
    ClientFrame, ConversationId, ErrorBody, ErrorCode, Message, MessageKind, Role, ServerFrame,
    UserId,
};
pub use reqwest::Method;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a protocol error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status (0 for WebSocket errors).
        status: u16,
        /// Protocol code.
        code: ErrorCode,
        /// Human message.
        message: String,
    },
    /// The HTTP request failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server closed the socket.
    #[error("socket closed ({code}): {reason}")]
    Closed {
        /// Close code (1005 when none was given).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The server sent something that is not protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The protocol code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;

/// An HTTP client for one server, optionally logged in.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Set after [`Client::login`].
    pub session: Option<LoginResponse>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("user_id", &self.user_id())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base` (`http://host:port`).
    pub fn new(base: impl Into<String>) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build()
            .expect("a plain HTTP client always builds");
        Client {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
            session: None,
        }
    }

    /// The same server with a bearer token.
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        Client {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The bearer token, if logged in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The logged-in user.
    pub fn user_id(&self) -> Option<UserId> {
        self.session.as_ref().map(|s| s.user_id)
    }

    /// Any request; returns the status and the JSON body (Null if empty).
    /// For tests of bad input.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> ClientResult<(u16, serde_json::Value)> {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Ok((status, value))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<(StatusCode, T)> {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => ClientError::Api {
                    status: status.as_u16(),
                    code: body.error.code,
                    message: body.error.message,
                },
                Err(_) => {
                    ClientError::Protocol(format!("{status}: {}", String::from_utf8_lossy(&bytes)))
                }
            });
        }
        let body = if bytes.is_empty() {
            b"null".as_slice()
        } else {
            &bytes
        };
        let value = serde_json::from_slice(body)
            .map_err(|e| ClientError::Protocol(format!("bad response body: {e}")))?;
        Ok((status, value))
    }

    /// `POST /v1/users`.
    pub async fn register(&self, username: &str, password: &str) -> ClientResult<UserView> {
        let body = RegisterRequest {
            username: username.into(),
            password: password.into(),
            display_name: None,
        };
        Ok(self.call(Method::POST, "/v1/users", Some(&body)).await?.1)
    }

    /// `POST /v1/sessions`; returns a client carrying the new token.
    pub async fn login(&self, username: &str, password: &str) -> ClientResult<Client> {
        self.login_device(username, password, "parley-client").await
    }

    /// `POST /v1/sessions` with a device name.
    pub async fn login_device(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> ClientResult<Client> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
            device_name: Some(device_name.into()),
        };
        let (_, session): (_, LoginResponse) =
            self.call(Method::POST, "/v1/sessions", Some(&body)).await?;
        let mut client = self.with_token(session.token.clone());
        client.session = Some(session);
        Ok(client)
    }

    /// `DELETE /v1/sessions/current`.
    pub async fn logout(&self) -> ClientResult<()> {
        self.call::<(), serde_json::Value>(Method::DELETE, "/v1/sessions/current", None)
            .await
            .map(|_| ())
    }

    /// `GET /v1/me`.
    pub async fn me(&self) -> ClientResult<MeResponse> {
        Ok(self.call::<(), _>(Method::GET, "/v1/me", None).await?.1)
    }

    /// `DELETE /v1/me/devices/{id}`.
    pub async fn revoke_device(&self, device: parley_proto::DeviceId) -> ClientResult<()> {
        self.call::<(), serde_json::Value>(
            Method::DELETE,
            &format!("/v1/me/devices/{device}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `PUT /v1/me/settings`.
    pub async fn set_presence_visibility(
        &self,
        visibility: PresenceVisibility,
    ) -> ClientResult<()> {
        let body = SettingsRequest {
            presence_visibility: Some(visibility),
        };
        self.call::<_, serde_json::Value>(Method::PUT, "/v1/me/settings", Some(&body))
            .await
            .map(|_| ())
    }

    /// `GET /v1/users?username=`.
    pub async fn find_user(&self, username: &str) -> ClientResult<UserView> {
        Ok(self
            .call::<(), _>(Method::GET, &format!("/v1/users?username={username}"), None)
            .await?
            .1)
    }

    /// `GET /v1/users/{id}/presence`.
    pub async fn presence(&self, user: UserId) -> ClientResult<PresenceView> {
        Ok(self
            .call::<(), _>(Method::GET, &format!("/v1/users/{user}/presence"), None)
            .await?
            .1)
    }

    /// `POST /v1/conversations/direct`; the flag says whether it was created.
    pub async fn direct(&self, other: UserId) -> ClientResult<(ConversationCreated, bool)> {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/conversations/direct",
                Some(&DirectRequest { user_id: other }),
            )
            .await?;
        Ok((body, status == StatusCode::CREATED))
    }

    /// `POST /v1/groups`.
    pub async fn create_group(
        &self,
        name: &str,
        members: &[UserId],
    ) -> ClientResult<ConversationCreated> {
        let body = CreateGroupRequest {
            name: name.into(),
            member_ids: members.to_vec(),
        };
        Ok(self.call(Method::POST, "/v1/groups", Some(&body)).await?.1)
    }

    /// `POST /v1/groups/{id}/members`.
    pub async fn add_members(
        &self,
        group: ConversationId,
        users: &[UserId],
    ) -> ClientResult<ConversationCreated> {
        let body = AddMembersRequest {
            user_ids: users.to_vec(),
        };
        Ok(self
            .call(
                Method::POST,
                &format!("/v1/groups/{group}/members"),
                Some(&body),
            )
            .await?
            .1)
    }

    /// `DELETE /v1/groups/{id}/members/{user}` (leave when `user` is you).
    pub async fn remove_member(&self, group: ConversationId, user: UserId) -> ClientResult<()> {
        self.call::<(), serde_json::Value>(
            Method::DELETE,
            &format!("/v1/groups/{group}/members/{user}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `PATCH /v1/groups/{id}`.
    pub async fn rename_group(
        &self,
        group: ConversationId,
        name: &str,
    ) -> ClientResult<ConversationCreated> {
        let body = RenameRequest { name: name.into() };
        Ok(self
            .call(Method::PATCH, &format!("/v1/groups/{group}"), Some(&body))
            .await?
            .1)
    }

    /// `PUT /v1/groups/{id}/members/{user}/role`.
    pub async fn set_role(
        &self,
        group: ConversationId,
        user: UserId,
        role: Role,
    ) -> ClientResult<ConversationCreated> {
        Ok(self
            .call(
                Method::PUT,
                &format!("/v1/groups/{group}/members/{user}/role"),
                Some(&RoleRequest { role }),
            )
            .await?
            .1)
    }

    /// `GET /v1/conversations`.
    pub async fn conversations(&self) -> ClientResult<ConversationList> {
        Ok(self
            .call::<(), _>(Method::GET, "/v1/conversations", None)
            .await?
            .1)
    }

    /// `GET /v1/conversations/{id}`.
    pub async fn conversation(&self, id: ConversationId) -> ClientResult<ConversationDetails> {
        Ok(self
            .call::<(), _>(Method::GET, &format!("/v1/conversations/{id}"), None)
            .await?
            .1)
    }

    /// `GET /v1/conversations/{id}/messages`.
    pub async fn history(
        &self,
        id: ConversationId,
        before_seq: Option<u64>,
        after_seq: Option<u64>,
        limit: Option<u32>,
    ) -> ClientResult<HistoryPage> {
        let mut query = Vec::new();
        if let Some(v) = before_seq {
            query.push(format!("before_seq={v}"));
        }
        if let Some(v) = after_seq {
            query.push(format!("after_seq={v}"));
        }
        if let Some(v) = limit {
            query.push(format!("limit={v}"));
        }
        let path = format!("/v1/conversations/{id}/messages?{}", query.join("&"));
        Ok(self.call::<(), _>(Method::GET, &path, None).await?.1)
    }

    /// `POST /v1/conversations/{id}/messages`; the flag is false on a repeat.
    pub async fn send(
        &self,
        id: ConversationId,
        client_msg_id: &str,
        text: &str,
    ) -> ClientResult<(Message, bool)> {
        let body = SendRequest {
            client_msg_id: client_msg_id.into(),
            kind: MessageKind::Text,
            text: text.into(),
            reply_to_seq: None,
        };
        let (status, body): (_, SendResponse) = self
            .call(
                Method::POST,
                &format!("/v1/conversations/{id}/messages"),
                Some(&body),
            )
            .await?;
        Ok((body.message, status == StatusCode::CREATED))
    }

    /// The WebSocket URL of this server.
    pub fn ws_url(&self) -> String {
        let base = self
            .base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        format!("{base}/v1/ws")
    }

    /// Opens a socket and authenticates; returns once `ready` arrived.
    pub async fn connect(&self, since: Option<u64>) -> ClientResult<Socket> {
        let token = self
            .token
            .clone()
            .ok_or_else(|| ClientError::Protocol("log in before connecting".into()))?;
        let mut socket = Socket::open(&self.ws_url()).await?;
        socket.send(&ClientFrame::Auth { token, since }).await?;
        match socket.recv_within(Duration::from_secs(30)).await? {
            ServerFrame::Ready {
                user_id,
                device_id,
                cursor,
                heartbeat_ms,
            } => {
                socket.ready = Some(Ready {
                    user_id,
                    device_id,
                    cursor,
                    heartbeat_ms,
                });
                Ok(socket)
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
}

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

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open WebSocket session.
pub struct Socket {
    stream: Stream,
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
        self.send(&ClientFrame::Send {
            client_msg_id: client_msg_id.into(),
            conversation_id: conversation,
            kind: MessageKind::Text,
            text: text.into(),
            reply_to_seq: None,
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
    sink: SplitSink<Stream, WsMessage>,
}

impl SocketWriter {
    /// Sends a typed frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> ClientResult<()> {
        self.sink
            .send(WsMessage::Text(frame.to_json().into()))
            .await?;
        Ok(())
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The receiving half of a [`Socket`].
pub struct SocketReader {
    stream: SplitStream<Stream>,
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
                    code: 1006,
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
                    code: frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                });
            }
            Some(Ok(_)) => continue,
        }
    }
}
