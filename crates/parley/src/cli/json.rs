//! The one place in the client commands that writes and reads JSON: the
//! JSON lines they print (the `parley-proto` types, serialized as they are
//! on the wire) and the session and cursor files they keep in the config
//! directory.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{CliError, CliResult};

/// `value` as one line of JSON (no newline).
pub fn to_line<T: Serialize>(value: &T) -> String {
    // The proto types and the files' structs have string keys only, so
    // serializing cannot fail.
    serde_json::to_string(value).expect("plain structs always serialize")
}

/// `value` as indented JSON, for files a person may read.
pub fn to_pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("plain structs always serialize")
}

/// Parses a file's contents; `what` names the file in the error.
pub fn parse<T: DeserializeOwned>(text: &str, what: &str) -> CliResult<T> {
    serde_json::from_str(text).map_err(|e| CliError::local(format!("cannot read {what}: {e}")))
}

/// Prints one JSON line on stdout and flushes, so a reader of a pipe sees
/// each event as it happens.
pub fn print<T: Serialize>(value: &T) -> CliResult<()> {
    print_raw(&to_line(value))
}

/// Prints an already encoded JSON line (a server frame) and flushes.
pub fn print_raw(line: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| CliError::local(format!("cannot write to stdout: {e}")))
}
