//! Push notifications for devices without a live socket (protocol §12,
//! docs/push.md).
//!
//! # Layout
//! - [`Push`]: the service in `AppState`: the VAPID identity, the
//!   providers, and the trigger's queue.
//! - [`trigger`]: after commit, off the send path: which devices a durable
//!   message wakes; queues one coalescing pending push per device in the
//!   store.
//! - [`worker`]: claims due pushes from the store and delivers them with
//!   bounded concurrency, retries with backoff (honouring `Retry-After`),
//!   deletes registrations the push service says are gone; metrics.
//! - [`provider`]: the [`provider::PushProvider`] boundary and outcomes;
//!   [`webpush`] (RFC 8291/8292, also UnifiedPush), [`fcm`] and [`apns`]
//!   behind it.
//! - [`guard`]: endpoints must be https and public (SSRF).
//! - [`jwt`]: ES256 / RS256 compact JWTs.
//!
//! Pending pushes live in the store, not in memory: they survive a
//! restart, and in a cluster any node's worker may deliver them.

pub mod apns;
pub mod fcm;
pub mod guard;
pub mod jwt;
pub mod provider;
pub mod trigger;
pub mod webpush;
pub mod worker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parley_proto::push::{self as wire, PushRegistration};
use parley_proto::{DeviceId, Message, MessageKind, UserId};
use parley_store::{PushTarget, Store};
use tokio::sync::{Notify, mpsc};

use crate::config::Config;
use provider::PushProvider;
use webpush::{Vapid, WebPushProvider};

/// The store's name for the VAPID key (PKCS#8).
const VAPID_SECRET: &str = "vapid_p256_pkcs8";

/// A committed message the trigger looks at.
pub struct TriggerJob {
    /// The message.
    pub message: Arc<Message>,
    /// Its recipients that may have a registration (the sender excluded).
    pub recipients: Vec<UserId>,
    /// The recipients' devices that had a socket on this node when the
    /// message was dispatched: they got it there, so they are not woken.
    pub live: HashSet<DeviceId>,
}

/// The push service.
pub struct Push {
    /// The server's VAPID identity.
    pub vapid: Arc<Vapid>,
    webpush: WebPushProvider,
    fcm: Option<fcm::FcmProvider>,
    apns: Option<apns::ApnsProvider>,
    trigger_tx: mpsc::Sender<TriggerJob>,
    trigger_rx: std::sync::Mutex<Option<mpsc::Receiver<TriggerJob>>>,
    /// Users with a push registration, so a message to anyone else costs
    /// the dispatcher one lookup and the trigger nothing. Refreshed from
    /// the store every `push_registry_refresh_ms` (registrations made on
    /// other nodes), added to at once by this node's registrations. A std
    /// lock: held only to read or replace, never across an await.
    registered: std::sync::RwLock<HashSet<UserId>>,
    /// Tells the worker a push was queued (it re-reads the next due time).
    pub(crate) wake: Notify,
}

impl Push {
    /// Loads or creates the VAPID key (shared through the store) and builds
    /// the providers.
    pub async fn open(config: &Config, store: &Arc<dyn Store>) -> Result<Push, String> {
        let candidate = Vapid::generate_pkcs8()?;
        let pkcs8 = store
            .server_secret(VAPID_SECRET, candidate, parley_proto::now_ms())
            .await
            .map_err(|e| format!("could not load the VAPID key: {e}"))?;
        let vapid = Arc::new(Vapid::from_pkcs8(
            &pkcs8,
            config.push_vapid_subject.clone(),
        )?);
        let registered = store
            .push_users()
            .await
            .map_err(|e| format!("could not load push registrations: {e}"))?;
        let http = http_client(config, false)?;
        let (trigger_tx, trigger_rx) = mpsc::channel(config.push_trigger_queue);
        Ok(Push {
            webpush: WebPushProvider::new(
                http.clone(),
                vapid.clone(),
                config.push_allow_insecure_endpoints,
            ),
            fcm: fcm::FcmProvider::from_config(config, http)?,
            // APNs speaks HTTP/2 only.
            apns: apns::ApnsProvider::from_config(config, http_client(config, true)?)?,
            vapid,
            trigger_tx,
            trigger_rx: std::sync::Mutex::new(Some(trigger_rx)),
            registered: std::sync::RwLock::new(registered.into_iter().collect()),
            wake: Notify::new(),
        })
    }

    /// Hands a committed message to the trigger without waiting: only
    /// durable kinds wake devices (not typing, receipts, edits, reactions
    /// or system messages). A full queue drops it, counted.
    pub fn observe(
        &self,
        message: &Arc<Message>,
        recipients: &[parley_store::Recipient],
        hub: &crate::hub::Hub,
    ) {
        if !wakes_devices(message.kind) {
            return;
        }
        let users: Vec<UserId> = {
            let registered = self.registered.read().unwrap_or_else(|p| p.into_inner());
            if registered.is_empty() {
                return;
            }
            recipients
                .iter()
                .map(|r| r.user_id)
                .filter(|&u| u != message.sender_id && registered.contains(&u))
                .collect()
        };
        if users.is_empty() {
            return;
        }
        let mut live = HashSet::new();
        for &user in &users {
            hub.live_devices(user, &mut live);
        }
        let job = TriggerJob {
            message: message.clone(),
            recipients: users,
            live,
        };
        if self.trigger_tx.try_send(job).is_err() {
            metrics::counter!("parley_push_trigger_dropped_total").increment(1);
        }
    }

    /// A registration of `user` was just stored on this node.
    pub fn note_registered(&self, user: UserId) {
        self.registered
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user);
    }

    /// Reloads who has registrations (the trigger does, periodically).
    pub async fn refresh_registered(&self, store: &dyn Store) {
        match store.push_users().await {
            Ok(users) => {
                *self.registered.write().unwrap_or_else(|p| p.into_inner()) =
                    users.into_iter().collect();
            }
            Err(err) => tracing::warn!(%err, "could not reload push registrations"),
        }
    }

    pub(crate) fn take_trigger_rx(&self) -> Option<mpsc::Receiver<TriggerJob>> {
        self.trigger_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The provider for a registration, if this server has it configured.
    pub fn provider(&self, target: &PushTarget) -> Option<&dyn PushProvider> {
        match target {
            PushTarget::WebPush { .. } => Some(&self.webpush),
            PushTarget::Fcm { .. } => self.fcm.as_ref().map(|p| p as &dyn PushProvider),
            PushTarget::Apns { .. } => self.apns.as_ref().map(|p| p as &dyn PushProvider),
        }
    }

    /// Checks a registration body and turns it into what the store keeps;
    /// the error is the message of a `bad_request`.
    pub async fn check_registration(
        &self,
        config: &Config,
        registration: PushRegistration,
    ) -> Result<PushTarget, String> {
        let target = match registration {
            PushRegistration::WebPush { endpoint, keys } => {
                web_target(config, false, &endpoint, keys).await?
            }
            PushRegistration::UnifiedPush { endpoint, keys } => {
                web_target(config, true, &endpoint, keys).await?
            }
            PushRegistration::Fcm { token } => {
                check_token(&token)?;
                PushTarget::Fcm { token }
            }
            PushRegistration::Apns {
                token,
                topic,
                sandbox,
            } => {
                check_token(&token)?;
                if !token.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err("an APNs token is hex".into());
                }
                if topic.is_empty() || topic.len() > 255 {
                    return Err("topic must be the app's bundle id".into());
                }
                PushTarget::Apns {
                    token,
                    topic,
                    sandbox,
                }
            }
        };
        if self.provider(&target).is_none() {
            return Err("this kind of push is not configured on this server".into());
        }
        Ok(target)
    }
}

/// A Web Push or UnifiedPush registration: a safe endpoint and keys of
/// the right shape.
async fn web_target(
    config: &Config,
    unified: bool,
    endpoint: &str,
    keys: wire::PushKeys,
) -> Result<PushTarget, String> {
    guard::check_endpoint(
        endpoint,
        wire::ENDPOINT_MAX_BYTES,
        config.push_allow_insecure_endpoints,
        Duration::from_millis(config.push_request_timeout_ms),
    )
    .await?;
    webpush::decode_key(&keys.p256dh)
        .filter(|k| webpush::is_p256_point(k))
        .ok_or("keys.p256dh must be a base64url uncompressed P-256 point")?;
    webpush::decode_key(&keys.auth)
        .filter(|k| k.len() == 16)
        .ok_or("keys.auth must be 16 bytes, base64url")?;
    Ok(PushTarget::WebPush {
        unified,
        endpoint: endpoint.to_owned(),
        p256dh: keys.p256dh,
        auth: keys.auth,
    })
}

fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() || token.len() > wire::TOKEN_MAX_BYTES {
        return Err(format!(
            "token must be 1 to {} bytes",
            wire::TOKEN_MAX_BYTES
        ));
    }
    Ok(())
}

/// Durable message kinds wake devices (text and media); events and system
/// messages do not.
fn wakes_devices(kind: MessageKind) -> bool {
    kind == MessageKind::Text || kind.is_media()
}

/// What a push shows of `message` for a recipient with previews on, cut
/// to `max_chars` characters: a text's text; for media, a mark naming its
/// kind followed by the caption, or without one by what it is ("📷
/// Photo", "🎥 Video", "🎤 Voice message", "📎" and the file's name), so
/// a photo without words still says what arrived.
pub(crate) fn preview(message: &Message, max_chars: usize) -> Option<String> {
    let caption = message.text.as_deref().filter(|t| !t.trim().is_empty());
    let full = match message.kind {
        MessageKind::Text => caption?.to_owned(),
        MessageKind::Image => format!("📷 {}", caption.unwrap_or("Photo")),
        MessageKind::Video => format!("🎥 {}", caption.unwrap_or("Video")),
        MessageKind::Audio => format!("🎤 {}", caption.unwrap_or("Voice message")),
        MessageKind::File => {
            let name = message.media.first().and_then(|m| m.filename.as_deref());
            format!("📎 {}", caption.or(name).unwrap_or("File"))
        }
        _ => return None,
    };
    Some(full.chars().take(max_chars).collect())
}

/// The HTTP client for push services: no redirects (a redirect could point
/// inside), a timeout, and unless insecure endpoints are allowed, a
/// resolver that refuses internal addresses.
fn http_client(config: &Config, http2_only: bool) -> Result<reqwest::Client, String> {
    let timeout = Duration::from_millis(config.push_request_timeout_ms);
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")));
    if !config.push_allow_insecure_endpoints {
        builder = builder.dns_resolver(Arc::new(guard::PublicOnly));
    }
    if http2_only {
        builder = builder.http2_prior_knowledge();
    }
    builder
        .build()
        .map_err(|e| format!("could not build the push HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::{MediaId, MediaInfo};

    fn message(kind: MessageKind, text: Option<&str>, filename: Option<&str>) -> Message {
        let media = kind.is_media().then(|| MediaInfo {
            media_id: MediaId(1),
            content_type: "application/pdf".into(),
            size: 1,
            filename: filename.map(str::to_owned),
            width: None,
            height: None,
            duration_ms: None,
        });
        Message {
            kind,
            text: text.map(str::to_owned),
            media: media.into_iter().collect(),
            ..Message::default()
        }
    }

    #[test]
    fn media_wakes_devices_and_events_do_not() {
        for kind in [
            MessageKind::Text,
            MessageKind::Image,
            MessageKind::Video,
            MessageKind::Audio,
            MessageKind::File,
        ] {
            assert!(wakes_devices(kind), "{kind:?}");
        }
        for kind in [
            MessageKind::Edit,
            MessageKind::Delete,
            MessageKind::Reaction,
            MessageKind::System,
        ] {
            assert!(!wakes_devices(kind), "{kind:?}");
        }
    }

    #[test]
    fn previews_name_the_kind_or_show_the_caption() {
        let preview = |kind, text, name| preview(&message(kind, text, name), 100);
        assert_eq!(preview(MessageKind::Text, Some("hi"), None).unwrap(), "hi");
        assert_eq!(preview(MessageKind::Image, None, None).unwrap(), "📷 Photo");
        assert_eq!(
            preview(MessageKind::Image, Some("the beach"), None).unwrap(),
            "📷 the beach"
        );
        assert_eq!(
            preview(MessageKind::Video, Some(" "), None).unwrap(),
            "🎥 Video"
        );
        assert_eq!(
            preview(MessageKind::Audio, None, Some("note.webm")).unwrap(),
            "🎤 Voice message"
        );
        assert_eq!(
            preview(MessageKind::File, None, Some("report.pdf")).unwrap(),
            "📎 report.pdf"
        );
        assert_eq!(preview(MessageKind::File, None, None).unwrap(), "📎 File");
        assert_eq!(preview(MessageKind::Reaction, Some("👍"), None), None);
        // Cut by characters, never inside one.
        let long = message(MessageKind::Image, Some("ééééé"), None);
        assert_eq!(super::preview(&long, 4).unwrap(), "📷 éé");
    }
}
