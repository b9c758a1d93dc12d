//! The live delivery path of a socket: queued items go through the
//! stitcher (cursor order, exactly once) into the socket's buffer, and a
//! gap or a position check is filled from the store, the record.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use parley_proto::ServerFrame;
use parley_store::StoreError;

use super::{GAP_WAIT, REPLAY_PAGE, Session};
use crate::hub::Outbound;

impl Session {
    /// Hands one queued item to the socket's buffer (written when the buffer
    /// fills or at the next flush).
    pub(super) async fn feed_item(&mut self, item: Outbound) -> Result<(), axum::Error> {
        let text: Utf8Bytes = match item {
            Outbound::Frame(text) => text,
            Outbound::Message {
                encoded,
                cursor,
                sender_device,
            } => {
                if cursor <= self.stitch.written() {
                    return Ok(());
                }
                let own = sender_device == Some(self.identity.device);
                let text = (!own).then(|| Utf8Bytes::from(encoded.frame(cursor)));
                if self.stitch.take_next(cursor) {
                    // The usual case: the next cursor, nothing held.
                    self.written_cursor = cursor;
                    return match text {
                        Some(text) => self.feed(text).await,
                        None => Ok(()),
                    };
                }
                let mut ready = Vec::new();
                self.stitch.offer(cursor, text, &mut ready);
                return self.feed_ready(ready).await;
            }
            Outbound::Resync => {
                self.resync_pending = true;
                return Ok(());
            }
        };
        self.feed(text).await
    }

    /// Feeds the message frames the stitcher released, in cursor order.
    pub(super) async fn feed_ready(
        &mut self,
        ready: Vec<(u64, Option<Utf8Bytes>)>,
    ) -> Result<(), axum::Error> {
        for (cursor, text) in ready {
            self.written_cursor = cursor;
            if let Some(text) = text {
                self.feed(text).await?;
            }
        }
        Ok(())
    }

    /// After a write: a requested position check or a full reorder buffer
    /// reads the store now; a new gap waits a moment for the missing
    /// frames (another node's envelope may simply be later than a local
    /// commit) before reading the store.
    pub(super) async fn after_write(&mut self) -> bool {
        if self.resync_pending || self.stitch.is_full() {
            let cause = if self.resync_pending {
                "check"
            } else {
                "gap_full"
            };
            return Box::pin(self.fill_from_store(cause)).await;
        }
        if !self.stitch.has_gap() {
            self.gap_deadline = None;
        } else if self.gap_deadline.is_none() {
            self.gap_deadline = Some(tokio::time::Instant::now() + GAP_WAIT);
        }
        true
    }

    /// Reads the store after the last written cursor and writes what the
    /// socket missed (the store is the record; live frames are hints).
    pub(super) async fn fill_from_store(&mut self, cause: &'static str) -> bool {
        self.gap_deadline = None;
        self.resync_pending = false;
        let state = self.state.clone();
        let _permit = match &state.cluster {
            Some(cluster) => Some(cluster.resync_permit().await),
            None => None,
        };
        let user = self.identity.user;
        let device = self.identity.device;
        let mut found = 0usize;
        loop {
            let after = self.stitch.written();
            let (entries, complete) = match state.store.inbox_since(user, after, REPLAY_PAGE).await
            {
                Ok(entries) => {
                    let complete = entries.len() < REPLAY_PAGE;
                    (entries, complete)
                }
                // Older than retention: nothing below the held cursors
                // exists any more.
                Err(StoreError::ResyncRequired) => (Vec::new(), true),
                Err(err) => {
                    tracing::debug!(%err, "cursor check failed; retrying");
                    self.gap_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    return true;
                }
            };
            found += entries.len();
            let entries = entries.into_iter().map(|entry| {
                let own = entry.message.sender_device_id == Some(device);
                let text = (!own).then(|| {
                    Utf8Bytes::from(
                        ServerFrame::Message {
                            cursor: entry.cursor,
                            message: entry.message,
                        }
                        .to_json(),
                    )
                });
                (entry.cursor, text)
            });
            let mut ready = Vec::new();
            self.stitch.fill(entries, complete, &mut ready);
            let timeout = self.write_timeout;
            let fed = self.feed_ready(ready);
            if !matches!(tokio::time::timeout(timeout, fed).await, Ok(Ok(())))
                || !self.flush().await
            {
                return false;
            }
            if complete {
                break;
            }
        }
        metrics::counter!("parley_cursor_checks_total", "cause" => cause).increment(1);
        if found > 0 {
            metrics::counter!("parley_cursor_check_healed_total", "cause" => cause)
                .increment(found as u64);
        }
        true
    }
}
