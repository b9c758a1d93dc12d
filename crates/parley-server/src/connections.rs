//! The connection limit (`max_connections`): the listener counts open TCP
//! connections, HTTP and WebSocket alike, and a connection accepted over
//! the limit is answered `503 unavailable` (with `Connection: close`) on
//! its first request instead of being served.
//!
//! Refusing by answering rather than by not accepting keeps the refusal
//! clean: the client gets the protocol's JSON error instead of a hang in
//! the kernel's backlog or a reset. The limit sits below the process's
//! file-descriptor limit so that storage and these answers still have
//! descriptors when it is reached.
//!
//! Each connection carries one pointer to the counter it was counted in,
//! and nothing else: an idle WebSocket keeps its stream boxed, and a
//! 32-byte `TcpStream` and this pointer share one allocation size class.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;

/// Open connections of one kind (served or refused).
#[derive(Debug)]
struct Slots {
    open: AtomicUsize,
    /// Whether connections counted here are served.
    served: bool,
}

/// A listener that counts its connections and marks those over the limit.
pub struct LimitedListener {
    listener: TcpListener,
    max: usize,
    served: Arc<Slots>,
    refused: Arc<Slots>,
}

impl LimitedListener {
    /// Serves at most `max` connections of `listener` at once.
    pub fn new(listener: TcpListener, max: usize) -> LimitedListener {
        let slots = |served| {
            Arc::new(Slots {
                open: AtomicUsize::new(0),
                served,
            })
        };
        LimitedListener {
            listener,
            max,
            served: slots(true),
            refused: slots(false),
        }
    }
}

impl Listener for LimitedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        let (stream, addr) = Listener::accept(&mut self.listener).await;
        // Frames are whole messages and the socket task already batches its
        // writes: Nagle's algorithm only added a delayed-ACK wait to small
        // frames (p50 21 ms -> 3.7 ms at 50 msg/s per socket, measured).
        let _ = stream.set_nodelay(true);
        // Only this task adds to `served`, so the check and the add cannot
        // race past the limit; closes only make room.
        let slots = if self.served.open.load(Ordering::Acquire) < self.max {
            &self.served
        } else {
            metrics::counter!("parley_refused_connections_total").increment(1);
            &self.refused
        };
        slots.open.fetch_add(1, Ordering::AcqRel);
        let stream = CountedStream {
            stream,
            slots: slots.clone(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A TCP stream that leaves its count when dropped.
#[derive(Debug)]
pub struct CountedStream {
    stream: TcpStream,
    slots: Arc<Slots>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Whether a connection is within the limit, for every request on it.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    served: bool,
}

impl Connected<IncomingStream<'_, LimitedListener>> for Admission {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        Admission {
            served: stream.io().slots.served,
        }
    }
}

/// Middleware: answers every request of a connection over the limit with
/// `503 unavailable` and closes it.
pub async fn refuse_over_limit(
    ConnectInfo(admission): ConnectInfo<Admission>,
    request: Request,
    next: Next,
) -> Response {
    if admission.served {
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

    #[test]
    fn a_counted_stream_is_one_pointer_more() {
        assert_eq!(
            std::mem::size_of::<CountedStream>(),
            std::mem::size_of::<TcpStream>() + std::mem::size_of::<usize>()
        );
    }
}
