//! `parley listen`: prints the server's events for the logged-in user as
//! JSON lines (the wire frames, one per line) until stopped. Reconnects with
//! full-jitter backoff, honours `reconnect` frames, and catches up from the
//! cursor it keeps in the config directory, so every message is printed
//! once: in one run never twice, and across runs unless the process dies
//! between printing a line and storing its cursor.

use std::time::Duration;

use parley_client::{ClientError, SocketReader, SocketWriter};
use parley_proto::{ClientFrame, ErrorCode, ServerFrame};
use tokio::time::Instant;

use super::error::{CliError, CliResult, exit};
use super::json;
use super::session::{Profile, Session};
use parley_client::reconnect::Backoff;

/// First reconnect delay ceiling.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Largest reconnect delay.
const BACKOFF_CAP: Duration = Duration::from_secs(15);

/// What `parley listen` prints and where it starts.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Print only `message` frames (no receipts, typing or presence).
    #[arg(long)]
    pub messages_only: bool,
    /// Start after this inbox cursor instead of the stored one (0: every
    /// message the server still keeps).
    #[arg(long)]
    pub since: Option<u64>,
    /// Exit after printing this many messages.
    #[arg(long)]
    pub count: Option<u64>,
}

/// Why one connection ended without an error.
enum Ended {
    /// The server asked for a reconnect after this long.
    Reconnect(Duration),
    /// `--count` messages were printed.
    Done,
}

/// Runs `parley listen`.
pub async fn run(profile: &Profile, args: ListenArgs) -> CliResult<()> {
    let session = profile.require_session()?;
    let mut listener = Listener {
        profile: profile.clone(),
        client_cursor: match args.since {
            Some(since) => Some(since),
            None => profile.cursor(&session)?,
        },
        session,
        printed: 0,
        args,
    };
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    loop {
        match listener.connect_once(&mut backoff).await {
            Ok(Ended::Done) => return Ok(()),
            Ok(Ended::Reconnect(after)) => {
                eprintln!("parley: reconnect: the server asked to reconnect in {after:?}");
                tokio::time::sleep(after).await;
            }
            Err(err) if err.exit == exit::UNAUTHORIZED || err.exit == exit::FORBIDDEN => {
                return Err(err);
            }
            Err(err) => {
                let delay = backoff.next_delay();
                eprintln!("{} (reconnecting in {delay:?})", err.line());
                tokio::time::sleep(delay).await;
            }
        }
    }
}

struct Listener {
    profile: Profile,
    session: Session,
    /// The last inbox cursor printed (or skipped as not for printing); the
    /// next connection replays from here.
    client_cursor: Option<u64>,
    printed: u64,
    args: ListenArgs,
}

impl Listener {
    /// One connection: connect, replay, then live frames until it breaks.
    async fn connect_once(&mut self, backoff: &mut Backoff) -> CliResult<Ended> {
        let client = self.session.client();
        let socket = client.connect(self.client_cursor).await?;
        let ready = socket.ready.expect("connect returns once ready");
        backoff.reset();
        if self.client_cursor.is_some_and(|seen| seen > ready.cursor) {
            // The server's inbox is behind what we printed: it is not the
            // store we listened to (restored from an older backup, or
            // reset). Follow it from its head rather than wait forever.
            eprintln!(
                "parley: resync_required: the server's inbox head {} is behind the stored \
                 cursor; continuing from the head",
                ready.cursor
            );
            self.store_cursor(ready.cursor)?;
        }
        if self.client_cursor.is_none() {
            // The first run starts at the head: what came before is history.
            self.store_cursor(ready.cursor)?;
        }
        let heartbeat = Duration::from_millis(ready.heartbeat_ms.max(1000));
        let (mut writer, mut reader) = socket.split();
        let outcome = self.pump(&mut writer, &mut reader, heartbeat).await;
        writer.close().await;
        outcome
    }

    async fn pump(
        &mut self,
        writer: &mut SocketWriter,
        reader: &mut SocketReader,
        heartbeat: Duration,
    ) -> CliResult<Ended> {
        // The server drops a socket silent for two heartbeats: ping at half
        // a heartbeat, and give up on a server silent for two.
        let mut pings = tokio::time::interval(heartbeat / 2);
        pings.tick().await;
        let mut deadline = Instant::now() + heartbeat * 2;
        loop {
            tokio::select! {
                frame = reader.recv() => {
                    deadline = Instant::now() + heartbeat * 2;
                    if let Some(ended) = self.handle(frame?)? {
                        return Ok(ended);
                    }
                }
                _ = pings.tick() => {
                    writer.send(&ClientFrame::Ping { nonce: None }).await?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ClientError::Timeout.into());
                }
            }
        }
    }

    fn handle(&mut self, frame: ServerFrame) -> CliResult<Option<Ended>> {
        match &frame {
            ServerFrame::Message { cursor, message } => {
                if self.client_cursor.is_some_and(|seen| *cursor <= seen) {
                    // Already printed (a replay overlapping live delivery).
                    return Ok(None);
                }
                // Messages this same login sent (`parley send`) are not
                // pushed to it live; skip their replays too, so what is
                // printed does not depend on when the socket was open.
                let own = message.sender_device_id == Some(self.session.device_id);
                if !own {
                    json::print_raw(&frame.to_json())?;
                    self.printed += 1;
                }
                self.store_cursor(*cursor)?;
                if !own && self.args.count.is_some_and(|count| self.printed >= count) {
                    return Ok(Some(Ended::Done));
                }
            }
            ServerFrame::Reconnect { after_ms } => {
                return Ok(Some(Ended::Reconnect(Duration::from_millis(*after_ms))));
            }
            ServerFrame::Error { code, message, .. } => match code {
                ErrorCode::ResyncRequired => {
                    // Older messages are gone from the inbox; the server
                    // continues from its head.
                    eprintln!(
                        "parley: resync_required: {message}; messages before now may be \
                         missing here, read them with `parley history`"
                    );
                }
                ErrorCode::Unauthorized => {
                    return Err(CliError::with_code(*code, message.clone()));
                }
                _ => eprintln!("parley: {code}: {message}"),
            },
            ServerFrame::Synced { cursor } => {
                // Nothing above `cursor` was missed; after a resync this is
                // where the inbox continues.
                if self.client_cursor.is_none_or(|seen| seen < *cursor) {
                    self.store_cursor(*cursor)?;
                }
            }
            ServerFrame::Ready { .. } | ServerFrame::Pong { .. } | ServerFrame::Sent { .. } => {}
            _ => {
                if !self.args.messages_only {
                    json::print_raw(&frame.to_json())?;
                }
            }
        }
        Ok(None)
    }

    fn store_cursor(&mut self, cursor: u64) -> CliResult<()> {
        self.client_cursor = Some(cursor);
        self.profile.save_cursor(&self.session, cursor)
    }
}
