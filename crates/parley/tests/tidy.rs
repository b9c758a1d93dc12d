//! Tidy checks on the source tree: every Rust source file starts with a
//! `//!` line saying what it is for, and only `parley-proto` (plus the few
//! files in [`JSON_ALLOWED`], each with its reason) knows the JSON wire
//! format.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "node_modules")
            {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_has_a_module_doc() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    assert!(files.len() > 10, "found the sources");
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            !first.starts_with("//!")
        })
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}

/// Files (or folders, as path prefixes from the workspace root) outside
/// `crates/parley-proto/src` whose non-test code may use `serde_json`, and
/// why. Everything else builds and reads JSON only through the
/// `parley-proto` types (`ClientFrame::to_json`, `ServerFrame::parse`, the
/// `api` bodies).
///
/// Tests are not held to this: unit-test modules (`#[cfg(test)]` onwards)
/// and the `tests/` folders may write raw JSON, because hostile and
/// malformed frames are exactly what `parley-proto` cannot build.
const JSON_ALLOWED: &[(&str, &str)] = &[
    (
        "crates/parley-server/src/cluster/envelope.rs",
        "the node-to-node envelope through Redis: not the client wire format, \
         carries proto types (messages) through serde",
    ),
    (
        "crates/parley-client/src/transport.rs",
        "the client's HTTP transport: request and response bodies through serde \
         and the proto types, the error body, and `raw` (untyped, for tests of \
         bad input)",
    ),
    (
        "crates/parley-server/src/config.rs",
        "lists the `Config` keys from its serde form, to refuse unknown keys \
         in the config file; configuration, not the wire",
    ),
    (
        "crates/parley-store/src/sqlite",
        "SQLite stores a system message's user ids as a JSON array in a text \
         column; storage, not the wire",
    ),
    (
        "crates/parley/src/cli/json.rs",
        "the client commands' JSON lines (the proto types as they are, for \
         scripts) and their session and cursor files; output and local \
         state, not the wire",
    ),
    (
        "crates/parley-bench/src/report.rs",
        "the bench's own `--json` report; output, not the wire",
    ),
    (
        "crates/parley-bench/src/connections.rs",
        "lines between `bench connections` and its worker processes; \
         bench-internal, not the wire",
    ),
];

/// Files outside `crates/parley-proto/src` whose non-test code may spell
/// out wire JSON by hand (a `{"type":` literal), and why.
const WIRE_LITERAL_ALLOWED: &[(&str, &str)] = &[(
    "crates/parley-bench/src/lean.rs",
    "the bench's `--lean-parse` scanner matches the hot frames' prefixes \
     for speed; its tests check it against parley-proto's encoding",
)];

/// The workspace root and every `.rs` file under `crates/*/src`, as
/// (path relative to the root with `/` separators, non-test text).
fn source_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        rust_files(&krate.path().join("src"), &mut files);
    }
    assert!(files.len() > 10, "found the sources");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // Unit tests sit at the end of a file, from `#[cfg(test)]` on.
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            let relative = path
                .strip_prefix(&root)
                .expect("under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            (relative, code)
        })
        .collect()
}

fn allowed(path: &str, list: &[(&str, &str)]) -> bool {
    path.starts_with("crates/parley-proto/src/")
        || list.iter().any(|(prefix, _)| path.starts_with(prefix))
}

/// Fails on code that builds or parses JSON itself, and on allowlist
/// entries that no longer allow anything.
#[test]
fn only_proto_knows_the_wire_format() {
    let files = source_files();
    let json_outside: Vec<&str> = files
        .iter()
        .filter(|(path, code)| code.contains("serde_json") && !allowed(path, JSON_ALLOWED))
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        json_outside.is_empty(),
        "serde_json used outside parley-proto and the allowlist: {json_outside:?}; \
         go through the parley-proto types, or add the file to JSON_ALLOWED \
         with the reason"
    );
    let literals_outside: Vec<&str> = files
        .iter()
        .filter(|(path, code)| {
            (code.contains(r#"{"type":"#) || code.contains(r#"{\"type\":"#))
                && !allowed(path, WIRE_LITERAL_ALLOWED)
        })
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        literals_outside.is_empty(),
        "wire JSON written by hand outside parley-proto: {literals_outside:?}; \
         encode a ClientFrame/ServerFrame instead"
    );
    for (prefix, why) in JSON_ALLOWED {
        assert!(
            files
                .iter()
                .any(|(path, code)| path.starts_with(prefix) && code.contains("serde_json")),
            "JSON_ALLOWED entry {prefix:?} ({why}) no longer uses serde_json: remove it"
        );
    }
    for (prefix, why) in WIRE_LITERAL_ALLOWED {
        assert!(
            files
                .iter()
                .any(|(path, code)| path.starts_with(prefix) && code.contains(r#"{"type":"#)),
            "WIRE_LITERAL_ALLOWED entry {prefix:?} ({why}) is stale: remove it"
        );
    }
}
