//! The server under test: one the bench spawns (`--spawn`) or one already
//! running (`--url`).
//!
//! A spawned server is this same binary (`current_exe() serve`) on
//! 127.0.0.1:0 with its own temporary data dir, per-user send limits raised
//! and argon2 cost lowered (see [`SPAWN_ENV`]); its log goes to a file in
//! that dir. Dropping a [`Spawned`] kills it, so a failing run leaves
//! nothing behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use super::wire::Dial;

/// Environment a spawned server gets, on top of the bench's own: send
/// limits out of the way, argon2 cheap (user creation is setup, not the
/// thing measured), and only warnings in its log.
pub(crate) const SPAWN_ENV: &[(&str, &str)] = &[
    ("PARLEY_SEND_RATE_PER_SEC", "1000000"),
    ("PARLEY_SEND_BURST", "1000000"),
    ("PARLEY_ARGON2_MEMORY_KIB", "64"),
    ("PARLEY_ARGON2_ITERATIONS", "1"),
    ("PARLEY_LOG", "warn"),
];

/// A server process the bench started.
pub(crate) struct Spawned {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
}

impl Spawned {
    /// Starts `parley serve` on `data_dir` and waits for its listen line.
    pub(crate) fn start(data_dir: &Path) -> anyhow::Result<Spawned> {
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let exe = std::env::current_exe().context("cannot find the parley binary")?;
        let mut command = Command::new(exe);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (key, value) in SPAWN_ENV {
            command.env(key, value);
        }
        let mut child = command.spawn().context("cannot spawn parley serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("parley listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the spawned server did not start (first line {line:?}); see {}",
                log.display()
            );
        };
        let base = format!("http://{addr}");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Ok(Spawned { child, base, log })
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`: no shutdown code runs at all.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The server a scenario drives.
pub(crate) struct Target {
    /// `http://127.0.0.x:PORT`.
    pub(crate) base: String,
    /// Where sockets connect.
    pub(crate) dial: Dial,
    /// The server process's id, when it is local and known.
    pub(crate) pid: Option<u32>,
    /// Set when the bench spawned the server.
    pub(crate) spawned: Option<Spawned>,
    /// The spawned server's data dir (removed on drop).
    pub(crate) data_dir: Option<tempfile::TempDir>,
    /// Per-user sends per second the server allows (raised when spawned).
    pub(crate) user_rate: f64,
}

impl Target {
    /// Spawns a server with its own temporary data dir under `parent`.
    pub(crate) fn spawn(parent: Option<&Path>) -> anyhow::Result<Target> {
        let dir = match parent {
            Some(parent) => tempfile::Builder::new()
                .prefix("parley-bench-")
                .tempdir_in(parent)?,
            None => tempfile::Builder::new().prefix("parley-bench-").tempdir()?,
        };
        let spawned = Spawned::start(&dir.path().join("data"))?;
        Ok(Target {
            dial: Dial::new(&spawned.base)?,
            base: spawned.base.clone(),
            pid: Some(spawned.pid()),
            spawned: Some(spawned),
            data_dir: Some(dir),
            user_rate: f64::INFINITY,
        })
    }

    /// A server already running at `url`.
    pub(crate) fn remote(url: &str, pid: Option<u32>, user_rate: f64) -> anyhow::Result<Target> {
        Ok(Target {
            dial: Dial::new(url)?,
            base: url.trim_end_matches('/').to_owned(),
            pid,
            spawned: None,
            data_dir: None,
            user_rate,
        })
    }

    /// What the bench changed about the server, for the output.
    pub(crate) fn describe(&self) -> String {
        match &self.spawned {
            Some(spawned) => format!(
                "spawned {} (pid {}) with {} — per-user send limits raised, argon2 cost lowered for fast user creation; log {}",
                self.base,
                spawned.pid(),
                SPAWN_ENV
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                spawned.log.display()
            ),
            None => format!(
                "server at {} (assumed per-user send limit {}/s; load spread over enough users to stay under it)",
                self.base, self.user_rate
            ),
        }
    }
}

/// Resident memory of a process: (VmRSS, RssAnon) in KiB, from
/// `/proc/PID/status`.
pub(crate) fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&status)
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu(&stat)
}

fn parse_cpu(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU use of the server and of the bench itself over a stretch of time.
pub(crate) struct CpuMeter {
    server: Option<(u32, f64)>,
    bench: Option<f64>,
    started: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring.
    pub(crate) fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server: server_pid.and_then(|pid| Some((pid, cpu_secs(pid)?))),
            bench: cpu_secs(std::process::id()),
            started: std::time::Instant::now(),
        }
    }

    /// Cores used since the start: (server, bench).
    pub(crate) fn cores(&self) -> (Option<f64>, Option<f64>) {
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let server = self
            .server
            .and_then(|(pid, before)| Some((cpu_secs(pid)? - before) / wall));
        let bench = self
            .bench
            .and_then(|before| Some((cpu_secs(std::process::id())? - before) / wall));
        (server, bench)
    }
}

fn parse_rss(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("RssAnon:").unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_from_proc_status() {
        let status =
            "Name:\tparley\nVmPeak:\t  999 kB\nVmRSS:\t   51200 kB\nRssAnon:\t   40960 kB\n";
        assert_eq!(parse_rss(status), Some((51200, 40960)));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|(rss, _)| rss > 0));
    }

    #[test]
    fn reads_cpu_time_from_proc_stat() {
        let stat = "42 (parley serve) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert_eq!(parse_cpu("garbage"), None);
        assert!(cpu_secs(std::process::id()).is_some());
    }
}
