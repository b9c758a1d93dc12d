//! A TCP proxy in front of Redis that can wedge subscriber connections:
//! the connection stays open, Redis keeps writing into it, but nothing
//! reaches the node any more, as when a subscriber stalls behind a broken
//! network path. Redis itself cannot be made to do this to one client.
//!
//! Only connections that subscribed before [`WedgeProxy::wedge`] are
//! wedged; the node's next subscriber connection passes again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; dropping it ends every connection.
pub struct WedgeProxy {
    pub port: u16,
    /// Connections accepted so far get numbers below this.
    accepted: Arc<AtomicU64>,
    /// Subscriber connections numbered below this are wedged.
    wedge_below: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl WedgeProxy {
    /// Proxies 127.0.0.1:`port` (free) to Redis on `redis_port`.
    pub async fn start(redis_port: u16) -> WedgeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let accepted = Arc::new(AtomicU64::new(0));
        let wedge_below = Arc::new(AtomicU64::new(0));
        let (counter, limit) = (accepted.clone(), wedge_below.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                let limit = limit.clone();
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", redis_port)).await {
                        relay(client, server, number, limit).await;
                    }
                });
            }
        });
        WedgeProxy {
            port,
            accepted,
            wedge_below,
            task,
        }
    }

    /// `redis://127.0.0.1:PORT/` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Wedges every subscriber connection open now.
    pub fn wedge(&self) {
        self.wedge_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for WedgeProxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every
        // relay.
        self.task.abort();
    }
}

/// Copies both ways until either side closes; once the connection has
/// subscribed and is wedged, bytes from Redis are no longer passed on.
async fn relay(mut client: TcpStream, mut server: TcpStream, number: u64, limit: Arc<AtomicU64>) {
    let subscribed = AtomicBool::new(false);
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let wedged = subscribed.load(Ordering::Relaxed) && number < limit.load(Ordering::SeqCst);
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                if up[..n].windows(9).any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE")) {
                    subscribed.store(true, Ordering::Relaxed);
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down), if !wedged => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
            // Re-check the wedge now and then while idle.
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
        }
    }
}
