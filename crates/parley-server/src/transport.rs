//! The HTTP transport: the server's own accept loop, serving each
//! connection with hyper, so that what a client can hold is bounded.
//!
//! - Headers must arrive within `http_header_timeout_ms` (hyper's header
//!   read timeout, which also runs while a keep-alive connection waits for
//!   its next request), else the connection is closed.
//! - A body must arrive within `http_body_timeout_ms` of its headers
//!   ([`DeadlineBody`]): reading it then fails, the request is answered
//!   `bad_request`, and hyper closes the connection (its body was not read
//!   to the end).
//! - On shutdown the listener closes, every connection is asked to finish
//!   its request and close, and those still open after the grace period
//!   are closed whatever their client is doing
//!   ([`OpenConnections::close`]).
//!
//! - With TLS on ([`crate::tls`]), each connection's handshake runs in its
//!   own task, bounded by the header timeout, before hyper sees it.
//!
//! Connection counting and the per-source cap are in
//! [`crate::connections`]; WebSockets leave this module at the upgrade and
//! are [`crate::ws`]'s from then on.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::serve::Listener;
use http_body::{Frame, SizeHint};
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::connections::{ConnectionSlot, LimitedListener};
use crate::tls::Tls;

/// The transport's time limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request's headers (and between keep-alive requests); also for
    /// the TLS handshake when TLS is on.
    pub header: Duration,
    /// For a request's body, from its headers on.
    pub body: Duration,
}

/// The connections still open when accepting stopped.
pub struct OpenConnections {
    connections: JoinSet<()>,
    stop: watch::Sender<bool>,
}

/// Accepts and serves connections until `shutdown` resolves, then closes
/// the listener (new connections are refused by the kernel from then on)
/// and returns the connections still open.
pub async fn serve_until(
    mut listener: LimitedListener,
    app: Router,
    timeouts: Timeouts,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) -> OpenConnections {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // Reap finished connections so the set only holds open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            (stream, accepted) = Listener::accept(&mut listener) => {
                let slot = accepted.into_slot();
                let (app, http, stopping) = (app.clone(), http.clone(), stopping.clone());
                match &tls {
                    None => {
                        connections.spawn(serve_connection(
                            stream, slot, app, http, timeouts.body, stopping,
                        ));
                    }
                    Some(tls) => {
                        let acceptor = tls.acceptor();
                        connections.spawn(async move {
                            // A handshake is bounded like a request's headers.
                            let handshake =
                                tokio::time::timeout(timeouts.header, acceptor.accept(stream));
                            match handshake.await {
                                Ok(Ok(stream)) => {
                                    serve_connection(
                                        stream, slot, app, http, timeouts.body, stopping,
                                    )
                                    .await
                                }
                                Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    OpenConnections { connections, stop }
}

impl OpenConnections {
    /// Asks every connection to finish the request it is on and close,
    /// waits up to `grace` for them, then closes the rest (half-sent
    /// requests among them) without waiting on their clients.
    pub async fn close(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all_closed = async { while self.connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_closed).await.is_err() {
            tracing::warn!(
                open = self.connections.len(),
                "closing HTTP connections still open after the shutdown grace period"
            );
            // Aborting drops each connection (closing its socket) and
            // waits only for the tasks to unwind, never for a client.
            self.connections.shutdown().await;
        }
    }
}

/// Serves one connection until it closes, or until shutdown asks it to
/// finish (the caller bounds how long that may take).
async fn serve_connection<S>(
    stream: S,
    slot: ConnectionSlot,
    app: Router,
    http: http1::Builder,
    body_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // The slot rides with every request (as axum's `ConnectInfo`), for
        // the connection limit's middleware and the WebSocket upgrade.
        request.extensions_mut().insert(ConnectInfo(slot.clone()));
        let request = request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
        app.clone().oneshot(request)
    });
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // An error means the sender is gone: stopping as well.
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Reading a request body took longer than `http_body_timeout_ms`.
#[derive(Debug)]
pub struct BodyTimeout;

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive within http_body_timeout_ms")
    }
}

impl StdError for BodyTimeout {}

impl BodyTimeout {
    /// Whether `err`, or an error it wraps, is a [`BodyTimeout`].
    pub fn caused(err: &(dyn StdError + 'static)) -> bool {
        let mut next = Some(err);
        while let Some(err) = next {
            if err.is::<BodyTimeout>() {
                return true;
            }
            next = err.source();
        }
        false
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline has
/// passed. The timer is only made if the body is not already there when
/// first read, so bodiless requests cost nothing.
pub struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    /// `inner`, due within `timeout` from now.
    pub fn new(inner: Incoming, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Instant::now() + timeout,
            sleep: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
