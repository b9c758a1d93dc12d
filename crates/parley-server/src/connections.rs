//! The connection limit (`max_connections`): open TCP connections, HTTP
//! and WebSocket alike, are counted, and a connection accepted over the
//! limit is answered `503 unavailable` (with `Connection: close`) on its
//! first request instead of being served.
//!
//! Refusing by answering rather than by not accepting keeps the refusal
//! clean: the client gets the protocol's JSON error instead of a hang in
//! the kernel's backlog or a reset. The limit sits below the process's
//! file-descriptor limit so that storage and these answers still have
//! descriptors when it is reached.
//!
//! An open connection is counted in one of two places, so that an idle
//! WebSocket carries no byte for it: until it is upgraded, by its
//! [`ConnectionSlot`] (which rides with the connection as axum's
//! `ConnectInfo`); once upgraded, by the [`SessionTracker`], which counts
//! socket tasks anyway. The WebSocket gateway enters the session before it
//! lets go of the slot, so a connection is never counted in neither.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;
use crate::sessions::SessionTracker;

/// A listener that counts its connections and marks those over the limit.
pub struct LimitedListener {
    listener: TcpListener,
    max: usize,
    /// Connections not (or not yet) handed to a socket task.
    unupgraded: Arc<AtomicUsize>,
    sessions: Arc<SessionTracker>,
}

impl LimitedListener {
    /// Serves at most `max` connections of `listener` at once, counting
    /// the socket tasks of `sessions` among them.
    pub fn new(
        listener: TcpListener,
        max: usize,
        sessions: Arc<SessionTracker>,
    ) -> LimitedListener {
        LimitedListener {
            listener,
            max,
            unupgraded: Arc::new(AtomicUsize::new(0)),
            sessions,
        }
    }

    /// Counts a new connection and decides whether it is served.
    fn admit(&self) -> ConnectionSlot {
        let open = self.unupgraded.load(Ordering::Acquire) + self.sessions.live();
        let served = open < self.max;
        if !served {
            metrics::counter!("parley_refused_connections_total").increment(1);
        }
        // Refused connections are counted too: they hold a descriptor
        // until their answer is written.
        self.unupgraded.fetch_add(1, Ordering::AcqRel);
        ConnectionSlot(Arc::new(Slot {
            unupgraded: self.unupgraded.clone(),
            served,
        }))
    }
}

/// The peer of an accepted connection, and its place in the count.
#[derive(Debug)]
pub struct Accepted {
    /// The peer's address.
    pub remote: SocketAddr,
    slot: ConnectionSlot,
}

impl Listener for LimitedListener {
    type Io = TcpStream;
    type Addr = Accepted;

    async fn accept(&mut self) -> (TcpStream, Accepted) {
        let (stream, remote) = Listener::accept(&mut self.listener).await;
        // Frames are whole messages and the socket task already batches its
        // writes: Nagle's algorithm only added a delayed-ACK wait to small
        // frames (p50 21 ms -> 3.7 ms at 50 msg/s per socket, measured).
        let _ = stream.set_nodelay(true);
        // Only the accept loop admits, so two admissions cannot both take
        // the last place; closes only make room.
        let slot = self.admit();
        (stream, Accepted { remote, slot })
    }

    fn local_addr(&self) -> io::Result<Accepted> {
        Err(io::Error::other(
            "a LimitedListener has no Accepted address of its own",
        ))
    }
}

struct Slot {
    unupgraded: Arc<AtomicUsize>,
    served: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.unupgraded.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection's place in the count, shared by the connection and its
/// requests; the place is given back when the last clone drops.
#[derive(Clone)]
pub struct ConnectionSlot(Arc<Slot>);

impl ConnectionSlot {
    /// Whether the connection is within the limit.
    pub fn served(&self) -> bool {
        self.0.served
    }
}

impl fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSlot")
            .field("served", &self.0.served)
            .finish()
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for ConnectionSlot {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        stream.remote_addr().slot.clone()
    }
}

/// Middleware: answers every request of a connection over the limit with
/// `503 unavailable` and closes it.
pub async fn refuse_over_limit(
    ConnectInfo(slot): ConnectInfo<ConnectionSlot>,
    request: Request,
    next: Next,
) -> Response {
    if slot.served() {
        return next.run(request).await;
    }
    let mut response =
        ApiError::unavailable("the server is at its connection limit; retry later").into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_and_sessions_share_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sessions = Arc::new(SessionTracker::default());
        let limited = LimitedListener::new(listener, 2, sessions.clone());
        let first = limited.admit();
        // Upgraded: the session counts it, then the slot is let go.
        let session = sessions.enter();
        drop(first);
        let second = limited.admit();
        assert!(second.served());
        let third = limited.admit();
        assert!(!third.served(), "one session and one connection fill 2");
        drop(third);
        drop(session);
        assert!(limited.admit().served(), "a closed session makes room");
        drop(second);
    }
}
