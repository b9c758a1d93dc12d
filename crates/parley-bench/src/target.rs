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
/// thing measured), the per-source caps and abuse limits off (every bench
/// client comes from this machine, and setup is not abuse), and only
/// warnings in its log.
pub(crate) const SPAWN_ENV: &[(&str, &str)] = &[
    ("PARLEY_SEND_RATE_PER_SEC", "1000000"),
    ("PARLEY_SEND_BURST", "1000000"),
    ("PARLEY_ARGON2_MEMORY_KIB", "64"),
    ("PARLEY_ARGON2_ITERATIONS", "1"),
    ("PARLEY_MAX_CONNECTIONS_PER_IP", "0"),
    ("PARLEY_SIGNUPS_PER_IP_PER_HOUR", "0"),
    ("PARLEY_GROUP_CREATIONS_PER_USER_PER_HOUR", "1000000"),
    ("PARLEY_MEMBER_ADDITIONS_PER_USER_PER_MINUTE", "1000000"),
    ("PARLEY_MEDIA_UPLOADS_PER_USER_PER_HOUR", "1000000"),
    ("PARLEY_SEARCHES_PER_USER_PER_MINUTE", "1000000"),
    ("PARLEY_HTTP_REQUESTS_PER_TOKEN_PER_SEC", "1000000"),
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
        Spawned::start_with(data_dir, &[])
    }

    /// Like [`Spawned::start`], with more environment on top of
    /// [`SPAWN_ENV`] (a cluster node's database, Redis and token key).
    pub(crate) fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Spawned> {
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
        for (key, value) in SPAWN_ENV.iter().chain(env) {
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

/// Open descriptors of a process, from `/proc/PID/fd`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Fds {
    /// Every open descriptor.
    pub(crate) all: u64,
    /// Those that are sockets (the rest are files, pipes, eventfds...).
    pub(crate) sockets: u64,
}

/// A process's open descriptors, and how many are sockets.
pub(crate) fn open_fds(pid: u32) -> Option<Fds> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut fds = Fds::default();
    for entry in entries.flatten() {
        fds.all += 1;
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        fds.sockets += u64::from(is_socket);
    }
    Some(fds)
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

/// CPU use over a stretch of time: the server, its SQLite writer thread,
/// the bench itself, and the whole machine (so what else ran shows).
pub(crate) struct CpuMeter {
    server: Option<(u32, f64)>,
    writer: Option<(u32, u32, f64)>,
    bench: Option<f64>,
    machine: Option<(f64, f64)>,
    started: std::time::Instant,
}

/// Cores used over the measured stretch (of the machine's 2).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct CpuUse {
    /// The server process, all threads.
    pub(crate) server: Option<f64>,
    /// The server's SQLite writer thread alone.
    pub(crate) writer_thread: Option<f64>,
    /// The bench process (worker processes not included).
    pub(crate) bench: Option<f64>,
    /// Everything else on the machine (other engineers' builds, ...).
    pub(crate) others: Option<f64>,
}

impl CpuUse {
    /// One line for the table.
    pub(crate) fn line(&self) -> String {
        let cores = |c: Option<f64>| c.map_or("?".to_owned(), |c| format!("{c:.2}"));
        match self.server {
            Some(_) => format!(
                "server {} cores (SQLite writer thread {}), bench {}, everything else {} — of 2",
                cores(self.server),
                cores(self.writer_thread),
                cores(self.bench),
                cores(self.others)
            ),
            None => format!(
                "bench {} cores, everything else (the server too: pass --server-pid) {} — of 2",
                cores(self.bench),
                cores(self.others)
            ),
        }
    }
}

/// The server's SQLite writer thread (named `parley-sqlite-writer`, which
/// the kernel truncates to 15 characters; its neighbour
/// `parley-sqlite-checkpoint` is not it).
fn writer_thread(pid: u32) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).is_ok_and(|comm| {
                let comm = comm.trim_end();
                comm.len() >= "parley-sqlite-w".len() && "parley-sqlite-writer".starts_with(comm)
            })
        })
}

fn thread_cpu_secs(pid: u32, tid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    parse_cpu(&stat)
}

/// (busy, total) CPU seconds of the whole machine, from `/proc/stat`.
fn machine_cpu_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine(&stat)
}

fn parse_machine(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user).
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0.0);
    Some(((total - idle) / 100.0, total / 100.0))
}

impl CpuMeter {
    /// Starts measuring.
    pub(crate) fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server: server_pid.and_then(|pid| Some((pid, cpu_secs(pid)?))),
            writer: server_pid.and_then(|pid| {
                let tid = writer_thread(pid)?;
                Some((pid, tid, thread_cpu_secs(pid, tid)?))
            }),
            bench: cpu_secs(std::process::id()),
            machine: machine_cpu_secs(),
            started: std::time::Instant::now(),
        }
    }

    /// Cores used since the start.
    pub(crate) fn cores(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let server = self
            .server
            .and_then(|(pid, before)| Some((cpu_secs(pid)? - before) / wall));
        let writer_thread = self
            .writer
            .and_then(|(pid, tid, before)| Some((thread_cpu_secs(pid, tid)? - before) / wall));
        let bench = self
            .bench
            .and_then(|before| Some((cpu_secs(std::process::id())? - before) / wall));
        // /proc/stat counts every CPU, so busy / wall is already in cores.
        let machine = self.machine.and_then(|(busy0, _)| {
            let (busy1, _) = machine_cpu_secs()?;
            Some((busy1 - busy0) / wall)
        });
        let others = match (machine, server, bench) {
            (Some(m), Some(s), Some(b)) => Some((m - s - b).max(0.0)),
            (Some(m), None, Some(b)) => Some((m - b).max(0.0)),
            _ => None,
        };
        CpuUse {
            server,
            writer_thread,
            bench,
            others,
        }
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
        assert!(open_fds(std::process::id()).is_some_and(|fds| fds.all >= 3));
    }

    #[test]
    fn reads_cpu_time_from_proc_stat() {
        let stat = "42 (parley serve) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert_eq!(parse_cpu("garbage"), None);
        let machine = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n";
        assert_eq!(parse_machine(machine), Some((1.5, 10.0)));
        assert!(machine_cpu_secs().is_some());
        assert!(cpu_secs(std::process::id()).is_some());
    }
}
