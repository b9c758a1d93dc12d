//! [`Client`]: the HTTP API, one method per endpoint, typed by
//! `parley_proto::api`; and the way into an authenticated [`Socket`].

use std::time::Duration;

use parley_proto::api::*;
use parley_proto::{ConversationId, Message, Role, UserId};
use reqwest::{Method, StatusCode};
use serde::de::IgnoredAny;
use tokio::net::TcpStream;

use crate::error::{ClientError, ClientResult};
use crate::socket::{Socket, WebSocketConfig};

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

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The underlying HTTP client.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `path` with the bearer token, if any.
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
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
        self.call::<(), IgnoredAny>(Method::DELETE, "/v1/sessions/current", None)
            .await
            .map(|_| ())
    }

    /// `GET /v1/me`.
    pub async fn me(&self) -> ClientResult<MeResponse> {
        Ok(self.call::<(), _>(Method::GET, "/v1/me", None).await?.1)
    }

    /// `DELETE /v1/me/devices/{id}`.
    pub async fn revoke_device(&self, device: parley_proto::DeviceId) -> ClientResult<()> {
        self.call::<(), IgnoredAny>(Method::DELETE, &format!("/v1/me/devices/{device}"), None)
            .await
            .map(|_| ())
    }

    /// `PUT /v1/me/settings`; returns the settings now in force.
    pub async fn set_presence_visibility(
        &self,
        visibility: PresenceVisibility,
    ) -> ClientResult<SettingsResponse> {
        self.update_settings(&SettingsRequest {
            presence_visibility: Some(visibility),
            ..SettingsRequest::default()
        })
        .await
    }

    /// `PUT /v1/me/settings` with any of its fields (presence visibility,
    /// read receipts, push previews); returns the settings now in force.
    pub async fn update_settings(&self, body: &SettingsRequest) -> ClientResult<SettingsResponse> {
        Ok(self
            .call(Method::PUT, "/v1/me/settings", Some(body))
            .await?
            .1)
    }

    /// `PATCH /v1/me`: display name and/or avatar; returns the user.
    pub async fn update_me(&self, body: &ProfileRequest) -> ClientResult<UserView> {
        Ok(self.call(Method::PATCH, "/v1/me", Some(body)).await?.1)
    }

    /// `GET /v1/push/vapid`: the server's VAPID public key (§12).
    pub async fn vapid_key(&self) -> ClientResult<parley_proto::push::VapidKey> {
        Ok(self
            .call::<(), _>(Method::GET, "/v1/push/vapid", None)
            .await?
            .1)
    }

    /// `PUT /v1/me/devices/current/push`: where this device's pushes go
    /// (replaces any earlier registration).
    pub async fn register_push(
        &self,
        registration: &parley_proto::push::PushRegistration,
    ) -> ClientResult<()> {
        self.call::<_, IgnoredAny>(
            Method::PUT,
            "/v1/me/devices/current/push",
            Some(registration),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /v1/me/devices/current/push`.
    pub async fn unregister_push(&self) -> ClientResult<()> {
        self.call::<(), IgnoredAny>(Method::DELETE, "/v1/me/devices/current/push", None)
            .await
            .map(|_| ())
    }

    /// `PUT /v1/me/blocks/{user}`.
    pub async fn block(&self, user: UserId) -> ClientResult<()> {
        self.call::<(), IgnoredAny>(Method::PUT, &format!("/v1/me/blocks/{user}"), None)
            .await
            .map(|_| ())
    }

    /// `DELETE /v1/me/blocks/{user}`.
    pub async fn unblock(&self, user: UserId) -> ClientResult<()> {
        self.call::<(), IgnoredAny>(Method::DELETE, &format!("/v1/me/blocks/{user}"), None)
            .await
            .map(|_| ())
    }

    /// `GET /v1/me/blocks`.
    pub async fn blocks(&self) -> ClientResult<BlockList> {
        Ok(self
            .call::<(), _>(Method::GET, "/v1/me/blocks", None)
            .await?
            .1)
    }

    /// `PUT /v1/conversations/{id}/settings`: mute, pin, archive.
    pub async fn set_conversation_settings(
        &self,
        id: ConversationId,
        body: &ConversationSettingsRequest,
    ) -> ClientResult<ConversationSettings> {
        Ok(self
            .call(
                Method::PUT,
                &format!("/v1/conversations/{id}/settings"),
                Some(body),
            )
            .await?
            .1)
    }

    /// `GET /v1/search`: `q` in the caller's history, newest first.
    pub async fn search(&self, query: &SearchRequest<'_>) -> ClientResult<SearchResults> {
        let mut params = vec![format!("q={}", percent_encode(query.q))];
        if let Some(v) = query.conversation_id {
            params.push(format!("conversation_id={v}"));
        }
        if let Some(v) = query.before_seq {
            params.push(format!("before_seq={v}"));
        }
        if let Some(v) = query.before_id {
            params.push(format!("before_id={v}"));
        }
        if let Some(v) = query.limit {
            params.push(format!("limit={v}"));
        }
        let path = format!("/v1/search?{}", params.join("&"));
        Ok(self.call::<(), _>(Method::GET, &path, None).await?.1)
    }

    /// `GET /v1/users?username=`.
    pub async fn find_user(&self, username: &str) -> ClientResult<UserView> {
        Ok(self
            .call::<(), _>(Method::GET, &format!("/v1/users?username={username}"), None)
            .await?
            .1)
    }

    /// `GET /v1/users/{id}`.
    pub async fn user(&self, user: UserId) -> ClientResult<UserView> {
        Ok(self
            .call::<(), _>(Method::GET, &format!("/v1/users/{user}"), None)
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
        self.call::<(), IgnoredAny>(
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
        self.update_group(
            group,
            &RenameRequest {
                name: Some(name.into()),
                avatar_media_id: None,
            },
        )
        .await
    }

    /// `PATCH /v1/groups/{id}` with a name and/or an avatar.
    pub async fn update_group(
        &self,
        group: ConversationId,
        body: &RenameRequest,
    ) -> ClientResult<ConversationCreated> {
        Ok(self
            .call(Method::PATCH, &format!("/v1/groups/{group}"), Some(body))
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
        self.send_request(id, &SendRequest::text(client_msg_id, text))
            .await
    }

    /// `POST /v1/conversations/{id}/messages` with any body: a reply, a
    /// forward, an `edit`, `delete` or `reaction` (see [`SendRequest`]'s
    /// constructors); the flag is false on a repeat.
    pub async fn send_request(
        &self,
        id: ConversationId,
        body: &SendRequest,
    ) -> ClientResult<(Message, bool)> {
        let (status, body): (_, SendResponse) = self
            .call(
                Method::POST,
                &format!("/v1/conversations/{id}/messages"),
                Some(body),
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
        let token = self.token.clone().ok_or_else(not_logged_in)?;
        let mut socket = Socket::open(&self.ws_url()).await?;
        socket.authenticate(token, since).await?;
        Ok(socket)
    }

    /// Like [`Client::connect`], over a TCP stream the caller connected to
    /// this server itself (to pick the source address or set socket
    /// options), with tungstenite's buffer settings.
    pub async fn connect_over(
        &self,
        stream: TcpStream,
        config: Option<WebSocketConfig>,
        since: Option<u64>,
    ) -> ClientResult<Socket> {
        let token = self.token.clone().ok_or_else(not_logged_in)?;
        let mut socket = Socket::open_over(&self.ws_url(), stream, config).await?;
        socket.authenticate(token, since).await?;
        Ok(socket)
    }
}

/// The administrators' API (protocol §14); the caller must be a server
/// administrator (`forbidden` otherwise).
impl Client {
    /// `GET /v1/admin/users?q=&after=&limit=`.
    pub async fn admin_users(
        &self,
        q: Option<&str>,
        after: Option<UserId>,
        limit: Option<u32>,
    ) -> ClientResult<AdminUserList> {
        let mut params = Vec::new();
        if let Some(q) = q {
            params.push(format!("q={}", percent_encode(q)));
        }
        if let Some(after) = after {
            params.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            params.push(format!("limit={limit}"));
        }
        let path = format!("/v1/admin/users?{}", params.join("&"));
        Ok(self.call::<(), _>(Method::GET, &path, None).await?.1)
    }

    /// `POST /v1/admin/users`.
    pub async fn admin_create_user(
        &self,
        body: &AdminCreateUserRequest,
    ) -> ClientResult<AdminUserView> {
        Ok(self
            .call(Method::POST, "/v1/admin/users", Some(body))
            .await?
            .1)
    }

    /// `POST /v1/admin/users/{id}/disable`.
    pub async fn admin_disable(&self, user: UserId) -> ClientResult<AdminUserView> {
        let path = format!("/v1/admin/users/{user}/disable");
        Ok(self.call::<(), _>(Method::POST, &path, None).await?.1)
    }

    /// `POST /v1/admin/users/{id}/enable`.
    pub async fn admin_enable(&self, user: UserId) -> ClientResult<AdminUserView> {
        let path = format!("/v1/admin/users/{user}/enable");
        Ok(self.call::<(), _>(Method::POST, &path, None).await?.1)
    }

    /// `POST /v1/admin/users/{id}/password`.
    pub async fn admin_reset_password(&self, user: UserId, password: &str) -> ClientResult<()> {
        let body = PasswordResetRequest {
            password: password.into(),
        };
        let path = format!("/v1/admin/users/{user}/password");
        self.call::<_, IgnoredAny>(Method::POST, &path, Some(&body))
            .await
            .map(|_| ())
    }

    /// `DELETE /v1/admin/users/{id}`: erases the account.
    pub async fn admin_delete(&self, user: UserId) -> ClientResult<()> {
        let path = format!("/v1/admin/users/{user}");
        self.call::<(), IgnoredAny>(Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// `GET /v1/admin/stats`.
    pub async fn admin_stats(&self) -> ClientResult<AdminStats> {
        Ok(self
            .call::<(), _>(Method::GET, "/v1/admin/stats", None)
            .await?
            .1)
    }
}

/// The parameters of [`Client::search`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchRequest<'a> {
    /// The text to find (1–256 characters).
    pub q: &'a str,
    /// Only this conversation.
    pub conversation_id: Option<ConversationId>,
    /// Within `conversation_id`: only seqs below this.
    pub before_seq: Option<u64>,
    /// Only messages older than this one (the next page).
    pub before_id: Option<parley_proto::MessageId>,
    /// 1–50, default 20.
    pub limit: Option<u32>,
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Connecting needs a token.
fn not_logged_in() -> ClientError {
    ClientError::Protocol("log in before connecting".into())
}
