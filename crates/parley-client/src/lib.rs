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
//!
//! # Layout
//! - [`error`]: [`ClientError`], what went wrong talking to the server.
//! - `http`: [`Client`], one method per HTTP endpoint, typed by
//!   `parley_proto::api`.
//! - `transport`: the HTTP request/response plumbing, the one place this
//!   crate turns bodies into JSON and back (through serde and the
//!   `parley-proto` types).
//! - [`media`]: uploads (slot, `PUT`, `complete`) and downloads
//!   (bearer, thumbnails, capability URLs).
//! - [`reconnect`]: full-jitter backoff, `reconnect` frames and 1013.
//! - [`socket`]: [`Socket`], the WebSocket session: open (by URL, or over a
//!   TCP stream the caller connected), authenticate, send and receive
//!   frames encoded and decoded by `parley-proto`.

pub mod error;
mod http;
pub mod media;
pub mod reconnect;
pub mod socket;
mod transport;

pub use error::{ClientError, ClientResult};
pub use http::{Client, SearchRequest};
pub use media::{Download, sha256_base64};
pub use reqwest::Method;
pub use socket::{Ready, Socket, SocketReader, SocketWriter, WebSocketConfig, WsMessage, WsStream};
