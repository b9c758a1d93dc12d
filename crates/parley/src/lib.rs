//! The client side of the `parley` binary, as a library so the
//! integration tests can reach it: [`cli`], the scriptable commands, and
//! (behind the default `chat` feature) `chat`, the terminal client.
//! `main.rs` parses the command line and calls into these.

#[cfg(feature = "chat")]
pub mod chat;
pub mod cli;
