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
//!
//! The per-source cap (`max_connections_per_ip`) counts connections not
//! (yet) upgraded, by source address: that is where a slow client can hold
//! a descriptor without authenticating. A connection over it is answered
//! a fixed 503 and closed at once, without reading anything, so holding
//! many connections from one address costs the server nothing. (An upgraded
//! socket must authenticate within `auth_timeout_ms`, and is then its
//! user's.)

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use dashmap::DashMap;
use tokio::io::AsyncWriteExt;
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
    sources: Arc<SourceCounts>,
}

/// Open, not yet upgraded connections per source address.
struct SourceCounts {
    max: usize,
    /// Whether loopback peers are capped too (see `per_ip_limits_on_loopback`).
    cap_loopback: bool,
    open: DashMap<IpAddr, usize>,
}

/// One connection's place in its source address's count.
struct SourceGuard {
    counts: Arc<SourceCounts>,
    ip: IpAddr,
}

impl SourceCounts {
    /// Whether connections from `ip` are capped at all.
    fn caps(&self, ip: IpAddr) -> bool {
        self.max > 0 && (self.cap_loopback || !is_loopback(ip))
    }

    /// Counts a connection from `ip`, unless `ip` is at its cap (callers
    /// skip this when there is no cap).
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<SourceGuard> {
        let mut open = self.open.entry(ip).or_insert(0);
        if *open >= self.max {
            return None;
        }
        *open += 1;
        Some(SourceGuard {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        // Entries at zero are removed so the map only holds live sources.
        self.counts.open.remove_if_mut(&self.ip, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
        });
    }
}

/// Whether `ip` is a loopback address, IPv4-mapped ones included.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The fixed answer to a connection over the per-source cap.
const OVER_SOURCE_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 83\r\n\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections from your address\"}}";

impl LimitedListener {
    /// Serves at most `max` connections of `listener` at once, counting
    /// the socket tasks of `sessions` among them.
    /// the socket tasks of `sessions` among them, and at most
    /// `max_per_source` not yet upgraded ones from one address (0: no
    /// cap; loopback addresses only if `cap_loopback`).
    pub fn new(
        listener: TcpListener,
        max: usize,
        max_per_source: usize,
        cap_loopback: bool,
        sessions: Arc<SessionTracker>,
    ) -> LimitedListener {
        LimitedListener {
            listener,
            max,
            unupgraded: Arc::new(AtomicUsize::new(0)),
            sessions,
            sources: Arc::new(SourceCounts {
                max: max_per_source,
                cap_loopback,
                open: DashMap::new(),
            }),
        }
    }

    /// Counts a new connection and decides whether it is served.
    fn admit(&self, remote: IpAddr, source: Option<SourceGuard>) -> ConnectionSlot {
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
            remote,
            _source: source,
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

impl Accepted {
    /// The connection's place in the count, which rides with its requests.
    pub fn into_slot(self) -> ConnectionSlot {
        self.slot
    }
}

impl Listener for LimitedListener {
    type Io = TcpStream;
    type Addr = Accepted;

    async fn accept(&mut self) -> (TcpStream, Accepted) {
        let (stream, remote, source) = loop {
            let (stream, remote) = Listener::accept(&mut self.listener).await;
            if !self.sources.caps(remote.ip()) {
                break (stream, remote, None);
            }
            match self.sources.enter(remote.ip()) {
                Some(source) => break (stream, remote, Some(source)),
                None => refuse_over_source_cap(stream),
            }
        };
        // Frames are whole messages and the socket task already batches its
        // writes: Nagle's algorithm only added a delayed-ACK wait to small
        // frames (p50 21 ms -> 3.7 ms at 50 msg/s per socket, measured).
        let _ = stream.set_nodelay(true);
        // Only the accept loop admits, so two admissions cannot both take
        // the last place; closes only make room.
        let slot = self.admit(remote.ip(), source);
        (stream, Accepted { remote, slot })
    }

    fn local_addr(&self) -> io::Result<Accepted> {
        Err(io::Error::other(
            "a LimitedListener has no Accepted address of its own",
        ))
    }
}

/// Answers a connection over the per-source cap with the fixed 503 and
/// closes it, in a task of its own bounded to one second, so a client that
/// does not read cannot hold it.
fn refuse_over_source_cap(mut stream: TcpStream) {
    metrics::counter!("parley_refused_connections_per_ip_total").increment(1);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            stream.write_all(OVER_SOURCE_CAP).await?;
            stream.shutdown().await
        })
        .await;
    });
}

struct Slot {
    unupgraded: Arc<AtomicUsize>,
    served: bool,
    remote: IpAddr,
    /// Held while the connection is not upgraded; `None` without a cap.
    _source: Option<SourceGuard>,
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

    /// The peer's address (for limits per source address).
    pub fn remote_ip(&self) -> IpAddr {
        self.0.remote
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

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn connections_and_sessions_share_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sessions = Arc::new(SessionTracker::default());
        let limited = LimitedListener::new(listener, 2, 0, false, sessions.clone());
        let first = limited.admit(LOCAL, None);
        // Upgraded: the session counts it, then the slot is let go.
        let session = sessions.enter();
        drop(first);
        let second = limited.admit(LOCAL, None);
        assert!(second.served());
        let third = limited.admit(LOCAL, None);
        assert!(!third.served(), "one session and one connection fill 2");
        drop(third);
        drop(session);
        assert!(
            limited.admit(LOCAL, None).served(),
            "a closed session makes room"
        );
        drop(second);
    }

    #[tokio::test]
    async fn a_source_is_capped_and_its_places_come_back() {
        let counts = Arc::new(SourceCounts {
            max: 2,
            cap_loopback: false,
            open: DashMap::new(),
        });
        assert!(!counts.caps(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
        assert!(!counts.caps("::ffff:127.0.0.1".parse().unwrap()));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = counts.enter(a).unwrap();
        let _second = counts.enter(a).unwrap();
        assert!(counts.enter(a).is_none(), "a third from one address");
        assert!(counts.enter(b).is_some(), "other addresses are apart");
        drop(first);
        assert!(counts.enter(a).is_some(), "a closed connection makes room");
    }

    #[test]
    fn the_fixed_refusal_is_well_formed() {
        let text = std::str::from_utf8(OVER_SOURCE_CAP).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let _: serde_json::Value = serde_json::from_str(body).unwrap();
    }
}
