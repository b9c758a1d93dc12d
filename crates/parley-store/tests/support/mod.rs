//! Test support shared by the store's test binaries: the one test-database
//! helper (a fresh PostgreSQL database on the machine's server per test),
//! a private server the outage tests may stop, and the store fixtures in
//! [`fixtures`].
//!
//! Each test binary uses only part of this module, hence the `dead_code`
//! allowance.
#![allow(dead_code)]

pub(crate) mod fixtures;

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

/// Where the shared PostgreSQL for tests lives; `PARLEY_TEST_POSTGRES_URL`
/// overrides it.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Longest a PostgreSQL tool (initdb, pg_ctl) may run before the test fails.
const TOOL_DEADLINE: Duration = Duration::from_secs(120);

/// Whether a missing PostgreSQL must fail the run instead of skipping.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (prints why) outside CI, fails loudly in CI.
pub(crate) fn skip_or_fail(why: &str) {
    if in_ci() {
        panic!("PostgreSQL tests cannot run in CI: {why}");
    }
    eprintln!("skipping PostgreSQL test: {why}");
}

/// `url` with its database name replaced by `name`.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A database created for one test and dropped when this is dropped, even
/// when the test panics.
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
    /// Connection string of the new database.
    pub(crate) url: String,
}

impl TestDatabase {
    /// Creates a fresh database, or says why it cannot.
    pub(crate) async fn create() -> Result<TestDatabase, String> {
        let admin_url =
            std::env::var("PARLEY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let mut admin_url = admin_url;
        let client = match admin_client(&admin_url).await {
            Ok(client) => client,
            // The named database need not exist: any database on the server
            // can create ours.
            Err(err)
                if err.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
            {
                // Cleanup must use the same database.
                admin_url = with_database(&admin_url, "postgres");
                admin_client(&admin_url)
                    .await
                    .map_err(|e| format!("cannot connect to {admin_url}: {e}"))?
            }
            Err(err) => return Err(format!("cannot connect to {admin_url}: {err}")),
        };
        let name = unique_name("parley_test");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create a test database on {admin_url}: {e}"))?;
        let url = with_database(&admin_url, &name);
        Ok(TestDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself:
        // a thread with its own small runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(async move {
                match admin_client(&admin_url).await {
                    Ok(client) => {
                        // FORCE ends the store's pooled connections, which
                        // may outlive the test body.
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        if let Err(err) = client.batch_execute(&sql).await {
                            eprintln!("could not drop test database {name}: {err}");
                        }
                    }
                    Err(err) => eprintln!("could not drop test database {name}: {err}"),
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A throwaway PostgreSQL server on a free port and a temp directory, which
/// a test may stop and start without touching the machine's own server.
pub(crate) struct PrivateServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    as_postgres_user: bool,
}

impl PrivateServer {
    /// Creates and starts a new cluster, or says why it cannot.
    pub(crate) fn start() -> Result<PrivateServer, String> {
        let bin =
            find_bin_dir().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let dir = tempfile::Builder::new()
            .prefix("parley-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        // initdb refuses to run as root: hand the directory to `postgres`.
        let as_postgres_user = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if as_postgres_user {
            let output = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .map_err(|e| format!("id: {e}"))?;
            let uid: u32 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .map_err(|_| "no `postgres` user to run the server as".to_owned())?;
            let output = Command::new("id")
                .args(["-g", "postgres"])
                .output()
                .map_err(|e| format!("id: {e}"))?;
            let gid: u32 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown: {e}"))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let server = PrivateServer {
            bin,
            dir,
            port,
            as_postgres_user,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        server.start_again()?;
        Ok(server)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Connection string of its `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub(crate) fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
    }

    /// Stops the server: `fast` disconnects everyone cleanly, `immediate`
    /// is a crash (recovery from WAL on the next start).
    pub(crate) fn stop(&self, mode: &str) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode, "-w", "-t", "30", "stop"],
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        // Output goes to a file, not a pipe, and the tool gets a deadline: a
        // PostgreSQL tool that hangs (as initdb once did here, on a machine
        // whose /dev/null was a link to stdin) fails the test with its
        // output instead of hanging the whole run.
        let log_path = self.dir.path().join(format!("{tool}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{tool}: {e}"))?;
        let err_log = log.try_clone().map_err(|e| format!("{tool}: {e}"))?;
        let mut child = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("{tool}: {e}"))?;
        let deadline = std::time::Instant::now() + TOOL_DEADLINE;
        let status = loop {
            match child.try_wait().map_err(|e| format!("{tool}: {e}"))? {
                Some(status) => break status,
                None if std::time::Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                    return Err(format!(
                        "{tool} did not finish within {TOOL_DEADLINE:?}: {output}"
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        if !status.success() {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("{tool} failed: {output}"));
        }
        Ok(())
    }
}

impl PrivateServer {
    /// Freezes (`STOP`) or thaws (`CONT`) the server and all its backends:
    /// a database that hangs instead of refusing, as behind a partition.
    pub(crate) fn signal_all(&self, signal: &str) -> Result<(), String> {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let postmaster: u32 = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("{}: {e}", pid_file.display()))?
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or("no pid in postmaster.pid")?;
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))? {
            let Ok(entry) = entry else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The parent pid is the second field after the `(name)`.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if parent == Some(postmaster)
                && let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>()
            {
                pids.push(pid);
            }
        }
        for pid in pids {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .stderr(std::process::Stdio::null())
                .status()
                .map_err(|e| format!("kill: {e}"))?;
            // A backend may have exited since the scan; the postmaster may not.
            if !status.success() && pid == postmaster {
                return Err(format!("kill -{signal} {pid} failed"));
            }
        }
        Ok(())
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        // A frozen server cannot stop.
        let _ = self.signal_all("CONT");
        let _ = self.stop("immediate");
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            Path::new(&bin)
                .join("initdb")
                .exists()
                .then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}
