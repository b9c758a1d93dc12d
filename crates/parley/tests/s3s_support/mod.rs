//! A private s3s-fs (an S3-compatible server that checks SigV4 signatures,
//! presigned URLs included) on a free port with its own directory, for the
//! media suite's `s3` backend; stopped by its PID when dropped.
//!
//! The binary is looked for at `$PARLEY_S3S_FS`, then where
//! `scripts/s3s-fs` installs it (`$PARLEY_S3S_FS_ROOT/bin/s3s-fs`, default
//! `~/.cache/parley-s3s-fs/bin/s3s-fs`). Missing, the `s3` runs are
//! skipped with a message, except with `CI=true`, where they fail.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "parley-test-key";
/// Its secret.
pub const SECRET_KEY: &str = "parley-test-secret-0123456789";
/// The bucket made for each server.
pub const BUCKET: &str = "parley-media";

/// Where the s3s-fs binary should be.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("PARLEY_S3S_FS") {
        return PathBuf::from(path);
    }
    let root = std::env::var("PARLEY_S3S_FS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/parley-s3s-fs")
        });
    root.join("bin/s3s-fs")
}

/// A running s3s-fs.
pub struct S3sFs {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl S3sFs {
    /// Starts one, or `None` (after saying why) when the binary is missing
    /// outside CI.
    pub fn start() -> Option<S3sFs> {
        let binary = binary();
        if !binary.exists() {
            let why = format!(
                "s3s-fs is not installed at {} (scripts/s3s-fs installs it)",
                binary.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}, and CI=true");
            }
            eprintln!("skipping the s3 backend: {why}");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let server = S3sFs {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
