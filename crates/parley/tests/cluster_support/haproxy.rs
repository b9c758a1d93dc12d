//! haproxy in front of test nodes, configured as docs/cluster.md says
//! (least connections, `/healthz` checks) with faster checks, on a free
//! port, in the foreground, stopped by its PID.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A running haproxy.
pub struct Haproxy {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Whether `haproxy` can be run here.
    pub fn available() -> bool {
        Command::new("haproxy")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts haproxy balancing over `backends` (`host:port` each).
    pub fn start(backends: &[&str]) -> Haproxy {
        let port = free_port();
        let dir = tempfile::tempdir().expect("haproxy dir");
        let mut config = format!(
            "global\n\
             \x20   maxconn 2000\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 2s\n\
             \x20   timeout client 120s\n\
             \x20   timeout server 120s\n\
             \x20   timeout tunnel 120s\n\
             \x20   retries 3\n\
             \x20   option redispatch\n\
             frontend parley\n\
             \x20   bind 127.0.0.1:{port}\n\
             \x20   default_backend nodes\n\
             backend nodes\n\
             \x20   balance leastconn\n\
             \x20   option httpchk GET /healthz\n\
             \x20   default-server inter 200ms fall 1 rise 2\n"
        );
        for (i, backend) in backends.iter().enumerate() {
            config.push_str(&format!("    server n{i} {backend} check\n"));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let log_path = dir.path().join("haproxy.log");
        let log = std::fs::File::create(&log_path).expect("haproxy log");
        // -db: stay in the foreground, so the PID we hold is haproxy's.
        let mut child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("haproxy did not start: {output}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Haproxy {
            port,
            child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`: what clients connect to.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
