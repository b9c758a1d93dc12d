//! The WebSocket gateway: one task per socket.
//!
//! The task reads frames, writes its queue, and keeps the socket's in-flight
//! sends in a `FuturesOrdered`: appends are enqueued in the order the client
//! sent them (so `seq`s follow that order), many can share one group commit,
//! and `sent` acks go out in order as they become durable.
//!
//! Writes are coalesced per wakeup: whatever a wakeup produces (an ack, an
//! error, queued deliveries) is fed to the socket's buffer, and before the
//! task sleeps again it also feeds the acks that became durable and the
//! frames queued meanwhile, then flushes once. Under load a socket thus
//! costs one write syscall per wakeup, not one per frame.
//!
//! A `send` frame goes through the send service ([`crate::send`]), the same
//! one HTTP uses; this module only keeps the socket's side: its in-flight
//! queue, its acks, its typing budget and presence subscriptions.
//!
//! Submodules: `delivery` (queued frames through the stitcher, gaps filled
//! from the store) and `presence` (typing and presence frames).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use parley_proto::{ClientFrame, ConversationId, ErrorCode, ServerFrame, UserId, now_ms};
use parley_store::{Appended, StoreError};

/// What a `sent` frame needs of a durable send (not the whole message:
/// in-flight sends stay small).
struct Ack {
    conversation_id: ConversationId,
    seq: u64,
    message_id: parley_proto::MessageId,
    sent_at_ms: i64,
}

impl Ack {
    fn of(appended: Appended) -> Ack {
        let message = appended.message;
        Ack {
            conversation_id: message.conversation_id,
            seq: message.seq,
            message_id: message.message_id,
            sent_at_ms: message.sent_at_ms,
        }
    }
}

mod delivery;
mod presence;

use crate::auth::Identity;
use crate::cluster::stitch::Stitcher;
use crate::connections::ConnectionSlot;
use crate::error::ApiError;
use crate::hub::{SocketHandle, SocketShared, Wake, close_code};
use crate::ratelimit::TokenBucket;
use crate::send::{self, Outgoing};
use crate::sessions::SessionGuard;
use crate::state::AppState;

/// Inbox entries replayed per store read.
const REPLAY_PAGE: usize = 500;

/// How long a gap in a socket's cursors may wait for the missing frames
/// before the store is read (frames from other nodes arrive in publish
/// order, not commit order, so small reorders are normal).
const GAP_WAIT: Duration = Duration::from_millis(50);

/// Most queued frames written with one flush.
const WRITE_BATCH: usize = 64;

/// `GET /v1/ws`.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "websocket",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol (§5); the `auth` frame carries the token."),
        (status = 400, description = "Not a WebSocket upgrade.", body = parley_proto::ErrorBody),
        (status = 503, description = "The server is shutting down.", body = parley_proto::ErrorBody),
    ),
)]
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(slot): ConnectInfo<ConnectionSlot>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::bad_request(format!("expected a WebSocket upgrade: {rejection}"))
                .into_response();
        }
    };
    if state.draining.load(Ordering::Acquire) {
        return ApiError::unavailable("server is shutting down; reconnect shortly").into_response();
    }
    let config = &state.config;
    ws.read_buffer_size(config.ws_read_buffer_bytes)
        .write_buffer_size(config.ws_write_buffer_bytes)
        .max_write_buffer_size(config.ws_write_buffer_bytes.max(config.max_frame_bytes) * 2)
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            // The session counts this connection from now on (for shutdown
            // and for the connection limit); only then is the slot given
            // back, so the connection is never counted nowhere.
            let guard = state.sessions.enter();
            drop(slot);
            // A task of its own: axum's upgrade task also holds the
            // handshake's state, which would otherwise live as long as the
            // socket (2 KB per idle socket, measured).
            // Split here, not in the task: an async fn keeps its arguments
            // for its whole life, and the unsplit socket is 368 bytes.
            let (sink, stream) = socket.split();
            let session = Session::run(Box::new(Opening {
                state,
                sink,
                stream,
                guard,
            }));
            tracing::trace!(bytes = std::mem::size_of_val(&session), "socket task state");
            tokio::spawn(session);
        })
}

type Sink = SplitSink<WebSocket, WsMessage>;

/// What a socket's task starts from (boxed, so the task keeps a pointer,
/// not the parts, for its whole life).
struct Opening {
    state: Arc<AppState>,
    sink: Sink,
    stream: SplitStream<WebSocket>,
    guard: SessionGuard,
}

impl Opening {
    // Taking the box by value is the point: it is freed when this returns.
    #[allow(clippy::boxed_local)]
    fn unbox(opening: Box<Opening>) -> Opening {
        *opening
    }
}
type PendingOp = Pin<Box<dyn Future<Output = OpDone> + Send>>;

/// A finished in-flight operation.
enum OpDone {
    Sent {
        client_msg_id: String,
        result: Result<Ack, StoreError>,
    },
    Receipt(Result<(), StoreError>),
}

/// A socket's in-flight operations, finished in the order they were
/// started. The `FuturesOrdered` (two allocations of its own) exists only
/// while something is in flight: most sockets are idle most of the time.
#[derive(Default)]
struct InFlight(Option<FuturesOrdered<PendingOp>>);

impl InFlight {
    fn push(&mut self, op: PendingOp) {
        self.0.get_or_insert_with(FuturesOrdered::new).push_back(op);
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next finished operation; `None` when nothing is in flight.
    async fn next(&mut self) -> Option<OpDone> {
        let ops = self.0.as_mut()?;
        let done = ops.next().await;
        if ops.is_empty() {
            self.0 = None;
        }
        done
    }
}

/// What reading the socket produced.
enum Incoming {
    Frame(Utf8Bytes),
    Binary,
    Control,
    TooBig,
    /// The client broke the WebSocket protocol: close with this code
    /// (1007 for invalid UTF-8 in a text frame, 1002 otherwise).
    Violation(u16, &'static str),
    Gone,
}

fn classify(item: Option<Result<WsMessage, axum::Error>>) -> Incoming {
    match item {
        Some(Ok(WsMessage::Text(text))) => Incoming::Frame(text),
        Some(Ok(WsMessage::Binary(_))) => Incoming::Binary,
        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Incoming::Control,
        Some(Ok(WsMessage::Close(_))) | None => Incoming::Gone,
        Some(Err(err)) => {
            // tungstenite tells what went wrong by type (an oversized frame
            // or message is a capacity error); axum passes its error
            // through boxed.
            match err.into_inner().downcast_ref::<tungstenite::Error>() {
                Some(tungstenite::Error::Capacity(_)) => Incoming::TooBig,
                Some(tungstenite::Error::Utf8(_)) => Incoming::Violation(
                    close_code::INVALID_PAYLOAD,
                    "text frame is not valid UTF-8",
                ),
                Some(tungstenite::Error::Protocol(_)) => {
                    Incoming::Violation(close_code::PROTOCOL_ERROR, "WebSocket protocol violation")
                }
                _ => Incoming::Gone,
            }
        }
    }
}

/// Writes one frame and flushes (before the session exists: auth errors).
async fn write_text(sink: &mut Sink, text: impl Into<Utf8Bytes>, timeout: Duration) -> bool {
    metrics::counter!("parley_frames_out_total").increment(1);
    matches!(
        tokio::time::timeout(timeout, sink.send(WsMessage::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        sink.send(WsMessage::Close(Some(frame))),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
}

struct Session {
    state: Arc<AppState>,
    identity: Identity,
    socket: SocketHandle,
    sink: Sink,
    /// Message frames at or below this cursor were already written (ready
    /// head or replay); the queue may still hold them.
    written_cursor: u64,
    /// Cursor order and exactly-once for message frames after `ready`
    /// (see [`crate::cluster::stitch`]); `None` stands for the socket's own
    /// send, whose cursor is passed without writing.
    stitch: Stitcher<Option<Utf8Bytes>>,
    /// A gap in the cursors is filled from the store when this passes.
    gap_deadline: Option<tokio::time::Instant>,
    /// A position check was asked for ([`Outbound::Resync`]).
    resync_pending: bool,
    pending: InFlight,
    subscriptions: HashSet<UserId>,
    typing: TokenBucket,
    /// Made at the first `presence_subscribe`: most sockets never send
    /// one, and an idle socket's state stays small.
    presence_budget: Option<Box<TokenBucket>>,
    write_timeout: Duration,
    /// Frames were fed to the sink since its last flush.
    unflushed: bool,
}

impl Session {
    /// Runs the socket to its end; the opening's guard keeps it counted
    /// meanwhile. Everything but the serving loop is boxed: an async fn
    /// keeps its arguments and every local that lives across an await for
    /// its whole life, and this one lives as long as an idle socket.
    async fn run(opening: Box<Opening>) {
        // Unboxed by a call, so the box is freed now rather than when this
        // function ends.
        let Opening {
            state,
            sink,
            mut stream,
            guard: _guard,
        } = Opening::unbox(opening);
        let Some((mut session, since)) = Box::pin(Self::open(state, sink, &mut stream)).await
        else {
            return;
        };
        session.serve(stream, since).await;
        let state = &session.state;
        state.presence.unsubscribe(
            session.socket.id,
            &session.subscriptions.iter().copied().collect::<Vec<_>>(),
        );
        let user = session.identity.user;
        if state.hub.unregister(user, session.socket.id) {
            match &state.cluster {
                Some(cluster) => cluster.socket_closed(user),
                None => state.presence.disconnected(user),
            }
        }
    }

    /// Authenticates the socket and registers it; `None` when the socket
    /// was answered and closed instead.
    async fn open(
        state: Arc<AppState>,
        mut sink: Sink,
        stream: &mut SplitStream<WebSocket>,
    ) -> Option<(Session, Option<u64>)> {
        let write_timeout = Duration::from_millis(state.config.heartbeat_ms.max(1000));
        let (token, since) = Self::read_auth(&state, &mut sink, stream, write_timeout).await?;
        let identity = match state.auth.verify(&token, now_ms()) {
            Ok(identity) => identity,
            Err(err) => {
                write_text(
                    &mut sink,
                    ApiError::from(err).to_frame(Some("auth".into())).to_json(),
                    write_timeout,
                )
                .await;
                close(&mut sink, close_code::UNAUTHORIZED, "unauthorized").await;
                return None;
            }
        };
        // Register before reading the head: anything committed after the
        // head was read is then certainly in the queue.
        let (socket, first) = state.hub.register(identity.user, identity.device);
        match &state.cluster {
            // Cluster: the Redis registry entry is acknowledged before the
            // head is read, so a message committed on another node is
            // either routed here or in the replay.
            Some(cluster) => cluster.socket_opened(identity.user, first).await,
            None => state.presence.connected(identity.user, first).await,
        }
        let typing_burst = (state.config.typing_rate_per_sec * 2.0).max(1.0);
        let session = Session {
            typing: TokenBucket::new(typing_burst, Instant::now()),
            presence_budget: None,
            state,
            identity,
            socket,
            sink,
            written_cursor: 0,
            stitch: Stitcher::new(0),
            gap_deadline: None,
            resync_pending: false,
            pending: InFlight::default(),
            subscriptions: HashSet::new(),
            write_timeout,
            unflushed: false,
        };
        Some((session, since))
    }

    /// Waits for the `auth` frame; answers anything else with `unauthorized`
    /// and closes.
    async fn read_auth(
        state: &AppState,
        sink: &mut Sink,
        stream: &mut SplitStream<WebSocket>,
        write_timeout: Duration,
    ) -> Option<(String, Option<u64>)> {
        let auth_timeout = Duration::from_millis(state.config.auth_timeout_ms);
        let auth = match tokio::time::timeout(auth_timeout, stream.next()).await {
            Err(_) => {
                let frame =
                    ApiError::unauthorized("no auth frame in time").to_frame(Some("auth".into()));
                write_text(sink, frame.to_json(), write_timeout).await;
                close(sink, close_code::UNAUTHORIZED, "auth timeout").await;
                return None;
            }
            Ok(item) => match classify(item) {
                Incoming::Frame(text) => match ClientFrame::parse(text.as_str()) {
                    Ok(ClientFrame::Auth { token, since }) => (token, since),
                    Ok(other) => {
                        let frame = ApiError::unauthorized("the first frame must be auth")
                            .to_frame(Some(other.type_name().into()));
                        write_text(sink, frame.to_json(), write_timeout).await;
                        close(sink, close_code::UNAUTHORIZED, "unauthorized").await;
                        return None;
                    }
                    Err(err) => {
                        let frame = ApiError::unauthorized(format!(
                            "the first frame must be auth ({})",
                            err.message
                        ))
                        .to_frame(err.reference);
                        write_text(sink, frame.to_json(), write_timeout).await;
                        close(sink, close_code::UNAUTHORIZED, "unauthorized").await;
                        return None;
                    }
                },
                Incoming::TooBig => {
                    close(sink, close_code::TOO_BIG, "frame too large").await;
                    return None;
                }
                Incoming::Violation(code, reason) => {
                    close(sink, code, reason).await;
                    return None;
                }
                Incoming::Gone => return None,
                Incoming::Binary | Incoming::Control => {
                    let frame = ApiError::unauthorized("the first frame must be auth")
                        .to_frame(Some("auth".into()));
                    write_text(sink, frame.to_json(), write_timeout).await;
                    close(sink, close_code::UNAUTHORIZED, "unauthorized").await;
                    return None;
                }
            },
        };
        Some(auth)
    }

    async fn serve(&mut self, mut stream: SplitStream<WebSocket>, since: Option<u64>) {
        // Rarely-taken paths are boxed so that the state machine every idle
        // socket keeps allocated stays small.
        if !Box::pin(self.start(since)).await {
            return Box::pin(close(&mut self.sink, 1011, "storage unavailable")).await;
        }
        let silence_limit = Duration::from_millis(self.state.config.heartbeat_ms.saturating_mul(2));
        let max_pending = self.state.config.max_pending_sends;
        let shared = self.socket.shared.clone();
        // One timer for the socket's life, for both the silence limit and
        // the gap wait: re-armed when it fires or when a gap wait begins,
        // not at every frame (a frame only moves `last_heard`), so a busy
        // socket does not touch the timer wheel at every wakeup.
        let mut last_heard = tokio::time::Instant::now();
        let timer = tokio::time::sleep_until(last_heard + silence_limit);
        let mut timer = std::pin::pin!(timer);
        loop {
            let wake_at = self.next_wake(last_heard + silence_limit);
            if wake_at < timer.deadline() {
                timer.as_mut().reset(wake_at);
            }
            tokio::select! {
                biased;
                wake = shared.woken() => {
                    // Queued frames are fed and written below.
                    if let Wake::Close(code) = wake {
                        if code == close_code::GOING_AWAY {
                            Box::pin(self.finish_pending()).await;
                            while Box::pin(self.write_out(&shared)).await && !shared.is_empty() {}
                        }
                        let reason = match code {
                            close_code::UNAUTHORIZED => "logged out",
                            close_code::TOO_SLOW => "too far behind; reconnect with your cursor",
                            close_code::GOING_AWAY => "server shutting down",
                            _ => "closed",
                        };
                        return Box::pin(close(&mut self.sink, code, reason)).await;
                    }
                }
                Some(done) = self.pending.next(), if !self.pending.is_empty() => {
                    if !Box::pin(self.complete(done)).await { return; }
                }
                () = timer.as_mut() => {
                    let now = tokio::time::Instant::now();
                    if self.gap_deadline.is_some_and(|gap| gap <= now)
                        && !Box::pin(self.fill_from_store("gap")).await
                    {
                        return;
                    }
                    if last_heard + silence_limit <= now {
                        Box::pin(self.finish_pending()).await;
                        return Box::pin(close(&mut self.sink, close_code::TIMEOUT, "no frames for two heartbeat intervals")).await;
                    }
                    timer.as_mut().reset(self.next_wake(last_heard + silence_limit));
                }
                item = stream.next(), if self.pending.len() < max_pending => {
                    last_heard = tokio::time::Instant::now();
                    match classify(item) {
                        Incoming::Frame(text) => {
                            self.state.hot.frames_in.increment(1);
                            if !Box::pin(self.handle_text(text.as_str())).await { return; }
                        }
                        Incoming::Binary => {
                            let err = ApiError::bad_request("binary frames are not supported; send JSON text frames");
                            if !Box::pin(self.send_frame(err.to_frame(None))).await { return; }
                        }
                        Incoming::Control => {}
                        Incoming::TooBig => {
                            Box::pin(self.finish_pending()).await;
                            return Box::pin(close(&mut self.sink, close_code::TOO_BIG, "frame too large")).await;
                        }
                        Incoming::Violation(code, reason) => {
                            Box::pin(self.finish_pending()).await;
                            return Box::pin(close(&mut self.sink, code, reason)).await;
                        }
                        Incoming::Gone => {
                            // In-flight sends still complete (they are
                            // enqueued); the client learns of them by cursor.
                            return;
                        }
                    }
                }
            }
            // One write for this wakeup. A client that stops reading
            // blocks it; a close request (too slow, logged out) must not
            // wait for it: the frames are in the socket's buffer, so
            // leaving the write loses nothing the close path would still
            // flush. Biased: a write that can finish does.
            // Boxed, like every path that is not the wait itself: what the
            // task keeps across its idle wait is then only that wait.
            let written = Box::pin(async {
                tokio::select! {
                    biased;
                    ok = self.write_out(&shared) => Some(ok),
                    _ = shared.closed() => None,
                }
            })
            .await;
            if written == Some(false) {
                return;
            }
            if !Box::pin(self.after_write()).await {
                return;
            }
        }
    }

    /// When the socket's one timer must fire: at the end of a gap wait or
    /// at the silence limit, whichever comes first.
    fn next_wake(&self, silence_deadline: tokio::time::Instant) -> tokio::time::Instant {
        self.gap_deadline
            .map_or(silence_deadline, |gap| gap.min(silence_deadline))
    }

    /// Sends `ready`, replays from `since`, sends `synced`.
    async fn start(&mut self, since: Option<u64>) -> bool {
        let state = self.state.clone();
        let user = self.identity.user;
        // The head and the first replay page in one trip to the store: in
        // a reconnect storm every client does this at once.
        let opening = match state.store.inbox_opening(user, since, REPLAY_PAGE).await {
            Ok(opening) => opening,
            Err(err) => {
                let err = ApiError::from(err);
                self.send_frame(err.to_frame(Some("auth".into()))).await;
                return false;
            }
        };
        let head = opening.head;
        let mut first_page = opening.first_page;
        let ready = ServerFrame::Ready {
            user_id: user,
            device_id: self.identity.device,
            cursor: head,
            heartbeat_ms: state.config.heartbeat_ms,
            max_text_bytes: Some(state.config.max_text_bytes as u64),
            edit_window_secs: Some(state.config.edit_window_secs),
            delete_window_secs: Some(state.config.delete_window_secs),
        };
        if !self.send_frame(ready).await {
            return false;
        }
        self.written_cursor = head;
        let Some(since) = since else {
            // Without `since` the socket starts at the head: a live frame at
            // or below it (committed between registration and the head
            // read) was never asked for, and one above it is the next.
            self.stitch = Stitcher::new(head);
            return self.flush().await;
        };
        let mut cursor = since;
        loop {
            let page = match first_page.take() {
                Some(page) => page,
                None => state.store.inbox_since(user, cursor, REPLAY_PAGE).await,
            };
            match page {
                Ok(entries) => {
                    let done = entries.len() < REPLAY_PAGE;
                    for entry in entries {
                        cursor = entry.cursor;
                        let frame = ServerFrame::Message {
                            cursor: entry.cursor,
                            message: entry.message,
                        };
                        if !self.send_frame(frame).await {
                            return false;
                        }
                    }
                    if done {
                        break;
                    }
                }
                Err(err) => {
                    let err = ApiError::from(err);
                    if !self.send_frame(err.to_frame(Some("auth".into()))).await {
                        return false;
                    }
                    if err.code != ErrorCode::ResyncRequired {
                        return false;
                    }
                    cursor = head;
                    break;
                }
            }
        }
        self.written_cursor = self.written_cursor.max(cursor);
        self.stitch = Stitcher::new(self.written_cursor);
        self.send_frame(ServerFrame::Synced {
            cursor: self.written_cursor,
        })
        .await
            && self.flush().await
    }

    /// Feeds `frame` to the socket's buffer; it is written at the end of
    /// this wakeup ([`Self::write_out`]) or when the buffer fills.
    async fn send_frame(&mut self, frame: ServerFrame) -> bool {
        let timeout = self.write_timeout;
        let fed = self.feed(frame.to_json().into());
        matches!(tokio::time::timeout(timeout, fed).await, Ok(Ok(())))
    }

    /// Hands one frame to the socket's buffer, counted.
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), axum::Error> {
        self.state.hot.frames_out.increment(1);
        self.unflushed = true;
        self.sink.feed(WsMessage::Text(text)).await
    }

    /// Writes what the socket's buffer holds.
    async fn flush(&mut self) -> bool {
        if !self.unflushed {
            return true;
        }
        self.unflushed = false;
        let timeout = self.write_timeout;
        matches!(
            tokio::time::timeout(timeout, self.sink.flush()).await,
            Ok(Ok(()))
        )
    }

    /// The end of a wakeup: feeds the acks that are durable by now and
    /// what is queued (up to [`WRITE_BATCH`] frames), then writes it all
    /// with one flush. Returns false when the socket is gone or stuck.
    async fn write_out(&mut self, shared: &SocketShared) -> bool {
        let timeout = self.write_timeout;
        let batch = async {
            // Polling with a no-op waker is safe here: the loop's `select!`
            // polls `pending` again (with the task's waker) before sleeping.
            while !self.pending.is_empty() {
                match self.pending.next().now_or_never() {
                    Some(Some(done)) => self.feed_done(done).await?,
                    _ => break,
                }
            }
            for _ in 0..WRITE_BATCH {
                match shared.try_pop() {
                    Some(item) => self.feed_item(item).await?,
                    None => break,
                }
            }
            if self.unflushed {
                self.unflushed = false;
                self.sink.flush().await?;
            }
            Ok::<(), axum::Error>(())
        };
        matches!(tokio::time::timeout(timeout, batch).await, Ok(Ok(())))
    }

    async fn finish_pending(&mut self) {
        while let Some(done) = self.pending.next().await {
            if !self.complete(done).await {
                return;
            }
        }
        self.flush().await;
    }

    /// Feeds the frame a finished operation answers with (within the write
    /// timeout); false when the socket is gone or stuck.
    async fn complete(&mut self, done: OpDone) -> bool {
        let timeout = self.write_timeout;
        matches!(
            tokio::time::timeout(timeout, self.feed_done(done)).await,
            Ok(Ok(()))
        )
    }

    /// Feeds the frame a finished operation answers with, if any.
    async fn feed_done(&mut self, done: OpDone) -> Result<(), axum::Error> {
        let frame = match done {
            OpDone::Sent {
                client_msg_id,
                result,
            } => match result {
                Ok(message) => ServerFrame::Sent {
                    client_msg_id,
                    conversation_id: message.conversation_id,
                    seq: message.seq,
                    message_id: message.message_id,
                    sent_at_ms: message.sent_at_ms,
                },
                Err(err) => ApiError::from(err).to_frame(Some(client_msg_id)),
            },
            OpDone::Receipt(Ok(())) => return Ok(()),
            OpDone::Receipt(Err(err)) => ApiError::from(err).to_frame(Some("receipt".into())),
        };
        self.feed(frame.to_json().into()).await
    }

    async fn handle_text(&mut self, text: &str) -> bool {
        let frame = match ClientFrame::parse(text) {
            Ok(frame) => frame,
            Err(err) => {
                let frame = ApiError::bad_request(err.message).to_frame(err.reference);
                return self.send_frame(frame).await;
            }
        };
        let reference = frame.type_name().to_owned();
        let result = match frame {
            ClientFrame::Auth { .. } => Err(ApiError::bad_request("already authenticated")),
            frame @ ClientFrame::Send { .. } => {
                let Some(outgoing) = Outgoing::from_frame(frame) else {
                    unreachable!("a send frame is a send")
                };
                let client_msg_id = outgoing.client_msg_id.clone();
                return match send::start(&self.state, self.identity, outgoing) {
                    Ok(pending) => {
                        self.pending.push(Box::pin(async move {
                            OpDone::Sent {
                                client_msg_id,
                                result: pending.await.map(Ack::of),
                            }
                        }));
                        true
                    }
                    Err(err) => self.send_frame(err.to_frame(Some(client_msg_id))).await,
                };
            }
            ClientFrame::Receipt {
                conversation_id,
                status,
                up_to_seq,
            } => {
                let store = self.state.store.clone();
                let (user, device) = (self.identity.user, self.identity.device);
                self.pending.push(Box::pin(async move {
                    let result = store
                        .advance_receipt(conversation_id, user, Some(device), status, up_to_seq)
                        .await
                        .map(|_| ());
                    OpDone::Receipt(result)
                }));
                Ok(())
            }
            ClientFrame::Typing {
                conversation_id,
                active,
            } => self.typing(conversation_id, active).await,
            ClientFrame::PresenceSubscribe { user_ids } => self.subscribe(user_ids).await,
            ClientFrame::PresenceUnsubscribe { user_ids } => {
                for user in &user_ids {
                    self.subscriptions.remove(user);
                }
                self.state.presence.unsubscribe(self.socket.id, &user_ids);
                Ok(())
            }
            ClientFrame::Ping { nonce } => {
                return self.send_frame(ServerFrame::Pong { nonce }).await;
            }
        };
        match result {
            Ok(()) => true,
            Err(err) => self.send_frame(err.to_frame(Some(reference))).await,
        }
    }
}
