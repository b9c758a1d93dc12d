//! The server's one configuration struct.
//!
//! Values come from, in increasing precedence: the defaults below, a TOML
//! file (`--config`), environment variables `PARLEY_<KEY>` (for example
//! `PARLEY_SEND_RATE_PER_SEC`; the database is `PARLEY_DATABASE_URL`), and
//! command-line flags. [`Config::check`] validates the result in one place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Every setting and limit of a Parley server. Each field's default is the
/// value in [`Config::default`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Pending connections the kernel queues before they are accepted
    /// (capped by `net.core.somaxconn`). Default 4,096, for reconnect storms.
    pub listen_backlog: u32,
    /// Most TCP connections (HTTP and WebSocket) served at once; one over
    /// it is answered `503 unavailable` and closed. Keep it below the
    /// process's open-file limit (`ulimit -n`), leaving room for storage
    /// and for those answers. Default 19,500 (for a 20,000 limit).
    pub max_connections: usize,
    /// Most HTTP connections one source address may hold open before they
    /// are upgraded to a WebSocket; one over it is answered `503
    /// unavailable` and closed at once, before anything is read. 0 turns
    /// the cap off (do so behind a reverse proxy, where every connection
    /// comes from the proxy, and cap per client there). Default 256.
    pub max_connections_per_ip: usize,
    /// Whether the per-address limits (`max_connections_per_ip`,
    /// `signups_per_ip_per_hour`) apply to loopback peers too. Off by
    /// default: a loopback peer is a reverse proxy on this host (or a local
    /// tool), whose address says nothing of the client behind it, so
    /// capping it would cap everyone at once. Default false.
    pub per_ip_limits_on_loopback: bool,
    /// A request's headers must arrive within this many ms of the moment
    /// the server starts waiting for them (also the idle limit between
    /// keep-alive requests); the connection is closed otherwise.
    /// Default 10,000.
    pub http_header_timeout_ms: u64,
    /// A request's body must arrive within this many ms of its headers;
    /// the request then fails `bad_request` and the connection is closed.
    /// Default 30,000.
    pub http_body_timeout_ms: u64,
    /// Directory for the embedded database and the token signing key.
    /// Default `./parley-data`.
    pub data_dir: PathBuf,
    /// `postgres://...` to store in PostgreSQL; empty for embedded SQLite
    /// in the data dir. Env `PARLEY_DATABASE_URL`.
    pub database: Option<String>,

    /// Sustained sends per second per user (token bucket rate). Default 20.
    pub send_rate_per_sec: f64,
    /// Sends a user may burst above the rate. Default 100.
    pub send_burst: u32,
    /// Largest message text in bytes. Default 65,536.
    pub max_text_bytes: usize,
    /// Largest WebSocket frame in bytes; larger closes with 1009. Default 131,072.
    pub max_frame_bytes: usize,
    /// Largest HTTP request body in bytes. Default 262,144.
    pub max_body_bytes: usize,
    /// Most members of a group, creator included. Default 1,024.
    pub max_group_members: usize,
    /// Clients ping at least this often; silent sockets close after twice
    /// this. Default 25,000.
    pub heartbeat_ms: u64,
    /// A socket must authenticate within this long. Default 10,000.
    pub auth_timeout_ms: u64,
    /// Inbox entries are kept at least this many days. Default 30.
    pub inbox_retention_days: u64,
    /// A sender may edit its text this long after sending it (§8).
    /// Default 900.
    pub edit_window_secs: u64,
    /// A sender may delete its message for everyone this long after
    /// sending it; group admins at any time (§8). Default 172,800.
    pub delete_window_secs: u64,
    /// How long a token is valid. Default 30 days.
    pub token_ttl_secs: u64,
    /// Whether anyone may create an account. Default true.
    pub registration_open: bool,
    /// Failed-or-not login attempts per username per minute. Default 10.
    pub login_attempts_per_minute: u32,
    /// Sign-up attempts (`POST /v1/users`) per source address per hour
    /// (burst the same). 0 turns the limit off: do so behind a reverse
    /// proxy, where every sign-up comes from the proxy, and limit there.
    /// Default 30.
    pub signups_per_ip_per_hour: u32,
    /// Groups one user may create per hour (burst the same). Default 60.
    pub group_creations_per_user_per_hour: u32,
    /// Member-addition requests (`POST /v1/groups/{id}/members`) per user
    /// per minute (burst the same). Default 60.
    pub member_additions_per_user_per_minute: u32,
    /// Media upload slots (`POST /v1/media`) one user may ask for per hour
    /// (burst the same). Default 120.
    pub media_uploads_per_user_per_hour: u32,
    /// Searches (`GET /v1/search`) one user may run per minute (burst the
    /// same). Default 60.
    pub searches_per_user_per_minute: u32,
    /// Authenticated HTTP requests per token (device) per second; bursts of
    /// ten seconds' worth. Default 50.
    pub http_requests_per_token_per_sec: f64,
    /// `presence_subscribe` frames per second per socket (burst 2x).
    /// Default 5.
    pub presence_subscribe_rate_per_sec: f64,
    /// Frames a socket may have queued before it is closed as too slow;
    /// it catches up from its cursor on reconnect. Default 1,024.
    pub socket_queue_frames: usize,
    /// Sends one socket may have in flight before its reads pause. Default 256.
    pub max_pending_sends: usize,
    /// Presence subscriptions per socket. Default 256.
    pub max_presence_subscriptions: usize,
    /// A user whose last device reconnects within this long never appears
    /// offline to subscribers. Default 3,000.
    pub presence_grace_ms: u64,
    /// Typing frames per second per socket (burst 2x). Default 5.
    pub typing_rate_per_sec: f64,
    /// argon2id memory cost in KiB. Default 19,456 (OWASP minimum).
    pub argon2_memory_kib: u32,
    /// argon2id passes. Default 2.
    pub argon2_iterations: u32,
    /// SQLite `synchronous=FULL` (fsync per commit). Default true.
    pub sqlite_synchronous_full: bool,
    /// Most writes per group commit. Default 1,024.
    pub commit_max_batch: usize,
    /// SQLite: the search index lives in `parley.db.search`, kept by a
    /// thread of its own; it indexes at most this many messages (and
    /// applies at most this many edits and deletes) per transaction.
    /// Default 2,048.
    pub search_index_batch: usize,
    /// SQLite: after a commit the search indexer waits this long before
    /// catching up, so sends gather into fewer, larger index segments (a
    /// search never waits for it: it has the index catch up first).
    /// Default 200.
    pub search_index_delay_ms: u64,
    /// SQLite: a thread beside the writer copies the WAL into the database
    /// file at most once per this long, so commits never do. Default 100.
    pub sqlite_checkpoint_interval_ms: u64,
    /// SQLite: above this many WAL pages (4 KiB each) the writer copies
    /// the remainder itself after a commit, so the WAL starts over.
    /// Default 4,096.
    pub sqlite_wal_restart_pages: u32,
    /// SQLite: each connection's page cache, per database file, in KiB
    /// (SQLite's `cache_size`). The caches fill as the store grows and then
    /// stay full: the writer, the checkpoint thread, the search indexer
    /// (two files) and up to 8 readers (two files each), so at most 20
    /// times this. Default 2,000 (SQLite's own default).
    pub sqlite_cache_kib: u32,
    /// PostgreSQL connections per process, the writer's included. Default 16.
    pub database_pool_size: usize,
    /// PostgreSQL: a read, or a whole group commit, taking longer than this
    /// fails as `unavailable` (never a false ack). Default 10,000.
    pub database_timeout_ms: u64,
    /// On SIGTERM, clients are told to reconnect after a delay spread
    /// uniformly over this many ms. Default 5,000.
    pub reconnect_jitter_ms: u64,
    /// How long shutdown waits for sockets to finish. Default 5,000.
    pub shutdown_grace_ms: u64,
    /// WebSocket read buffer per socket in bytes: how much one read takes,
    /// and what an idle socket keeps (a larger frame grows it for that
    /// frame). Small because idle sockets are the common case; a typical
    /// chat frame still fits one read. Default 256.
    pub ws_read_buffer_bytes: usize,
    /// WebSocket write buffer per socket in bytes. Default 4,096.
    pub ws_write_buffer_bytes: usize,

    /// `redis://...` turns cluster mode on: several nodes share one
    /// PostgreSQL `database` and this Redis (protocol §13, docs/cluster.md).
    /// Requires `database` and `token_key`. Env `PARLEY_REDIS_URL`.
    pub redis_url: Option<String>,
    /// The token signing key, base64 of at least 32 bytes, shared by every
    /// node of a cluster (required in cluster mode). When unset on a single
    /// node, a key is created in the data dir. Env `PARLEY_TOKEN_KEY`.
    pub token_key: Option<String>,
    /// This node's name in a cluster. Default: the address it listens on.
    /// Env `PARLEY_NODE_ID`.
    pub node_id: Option<String>,
    /// Cluster: a node that has not renewed its lease for this long is
    /// taken for dead (its users are reaped, every node re-checks its
    /// sockets). Renewed every third of it. Default 10,000.
    pub node_lease_ms: u64,
    /// How log lines on stderr look: `text` (for people) or `json` (one
    /// JSON object per line, for journald and log shippers). The level
    /// filter is `PARLEY_LOG`. Env `PARLEY_LOG_FORMAT`. Default `text`.
    pub log_format: LogFormat,

    /// Push (§12): the VAPID `sub` claim, a contact for push services
    /// (`mailto:` or `https:`). Default `mailto:admin@localhost`; set a
    /// real one in production.
    pub push_vapid_subject: String,
    /// Push: a message's push waits this long so a burst coalesces into
    /// one push per device (the first message's time counts). Default 2,000.
    pub push_delay_ms: u64,
    /// Push: accept `http` endpoints and loopback or private addresses
    /// (tests, a push service on the local network). Off by default: an
    /// endpoint must be https and resolve to public addresses only, so the
    /// server cannot be used to reach internal hosts. Default false.
    pub push_allow_insecure_endpoints: bool,
    /// Push: the `TTL` header, and how long a push that keeps failing is
    /// retried before it is dropped. Default 86,400 (24 h).
    pub push_ttl_secs: u64,
    /// Push: deliveries in flight at once per node; 0 runs no delivery
    /// worker on this node (it still queues pushes for other nodes).
    /// Default 32.
    pub push_concurrency: usize,
    /// Push: one request to a push service (connect included) fails as
    /// retryable after this long. Default 10,000.
    pub push_request_timeout_ms: u64,
    /// Push: the first retry waits this long, doubling up to
    /// `push_retry_max_ms`; a longer `Retry-After` wins. Default 1,000.
    pub push_retry_initial_ms: u64,
    /// Push: the longest wait between retries. Default 3,600,000 (1 h).
    pub push_retry_max_ms: u64,
    /// Push: a node that claimed a push and did not finish it within this
    /// long (it died) leaves it to another node. Default 60,000.
    pub push_lease_ms: u64,
    /// Push: how often the worker looks for due pushes it was not told
    /// about (queued by another node, or before a restart). Default 1,000.
    pub push_poll_ms: u64,
    /// Push: committed messages waiting for the push trigger; past this
    /// the trigger is behind and new ones are dropped (counted in
    /// `parley_push_trigger_dropped_total`), never slowing delivery.
    /// Default 65,536.
    pub push_trigger_queue: usize,
    /// Push: how often a node reloads which users have push registrations
    /// (it learns of its own at once; registrations made on other nodes of
    /// a cluster count from the next reload). Default 10,000.
    pub push_registry_refresh_ms: u64,
    /// Push: the most characters of message text in a preview (users who
    /// opted into previews). Default 200.
    pub push_preview_chars: usize,
    /// Push, FCM: the Firebase project id; FCM registrations are refused
    /// while unset. Env `PARLEY_PUSH_FCM_PROJECT`.
    pub push_fcm_project: Option<String>,
    /// Push, FCM: the service account's email (the OAuth assertion's `iss`).
    pub push_fcm_client_email: Option<String>,
    /// Push, FCM: a PEM file with the service account's RSA private key.
    pub push_fcm_key_file: Option<PathBuf>,
    /// Push, FCM: the API's base URL. Default `https://fcm.googleapis.com`.
    pub push_fcm_base_url: String,
    /// Push, FCM: the OAuth 2 token URL. Default
    /// `https://oauth2.googleapis.com/token`.
    pub push_fcm_token_url: String,
    /// Push, APNs: the team id; APNs registrations are refused while unset.
    pub push_apns_team_id: Option<String>,
    /// Push, APNs: the signing key's id.
    pub push_apns_key_id: Option<String>,
    /// Push, APNs: a PEM (PKCS#8) file with the P-256 signing key (`.p8`).
    pub push_apns_key_file: Option<PathBuf>,
    /// Push, APNs: the production base URL. Default
    /// `https://api.push.apple.com`.
    pub push_apns_base_url: String,
    /// Push, APNs: the sandbox base URL (tokens registered with
    /// `sandbox: true`). Default `https://api.sandbox.push.apple.com`.
    pub push_apns_sandbox_url: String,
    /// PEM certificate chain: with `tls_key`, the server speaks HTTPS and
    /// WSS itself (rustls); reloaded on SIGHUP. Unset (the default): plain
    /// HTTP, for a reverse proxy in front. Env `PARLEY_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Env
    /// `PARLEY_TLS_KEY`.
    pub tls_key: Option<PathBuf>,

    /// Where media bytes live (§9, docs/media.md): `local` (a directory,
    /// `media_dir`) or `s3` (an S3-compatible bucket, the `s3_*` fields).
    /// Default `local`.
    pub media_backend: MediaBackend,
    /// The `local` backend's directory. Default: `media` in the data dir.
    pub media_dir: Option<PathBuf>,
    /// Largest upload in bytes; a bigger slot request is 413. Default
    /// 104,857,600 (100 MiB).
    pub max_upload_bytes: u64,
    /// Content types an upload may declare (415 `unsupported_media_type`
    /// otherwise). Images among them get thumbnails. Default: JPEG, PNG,
    /// GIF, WebP; MP4, WebM, QuickTime video; MPEG, Ogg, WebM, MP4, WAV
    /// audio; PDF, ZIP, plain text and `application/octet-stream`.
    pub media_allowed_types: Vec<String>,
    /// Media no message references (and uploads never completed) are
    /// deleted this long after they became unreferenced (or their upload
    /// URL expired). Default 86,400.
    pub media_orphan_grace_secs: u64,
    /// How often the media garbage collector runs. Default 3,600.
    pub media_gc_interval_secs: u64,
    /// Bytes of media one user may hold (uploads not yet collected count).
    /// Default 1,073,741,824 (1 GiB).
    pub media_quota_bytes: u64,
    /// How long an upload URL works. Default 600.
    pub media_upload_url_secs: u64,
    /// How long a capability URL (`GET /v1/media/{id}/url`) works; at most
    /// 600. Default 600.
    pub media_url_secs: u64,
    /// `s3`: how long the presigned GET a download redirects to works; at
    /// most 120. Default 120.
    pub media_redirect_secs: u64,
    /// Images larger than this many bytes are stored without thumbnails
    /// (decoding needs the whole file in memory). Default 33,554,432.
    pub media_max_image_bytes: u64,
    /// Images with a side longer than this many pixels are refused at
    /// `complete` (decompression bombs). Default 12,000.
    pub media_max_image_side: u32,
    /// Most memory one image decode may allocate, in bytes; a bomb that
    /// claims more is refused before it is decoded. Default 268,435,456.
    pub media_max_decode_bytes: u64,
    /// Images decoded at once (on the blocking pool, off the async
    /// workers). Default 2.
    pub media_thumbnail_workers: usize,
    /// `s3`: the endpoint URL, e.g. `http://127.0.0.1:9000`. Env
    /// `PARLEY_S3_ENDPOINT`.
    pub s3_endpoint: Option<String>,
    /// `s3`: the region. Default `us-east-1`.
    pub s3_region: String,
    /// `s3`: the bucket.
    pub s3_bucket: Option<String>,
    /// `s3`: the access key id. Env `PARLEY_S3_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// `s3`: the secret key. Env `PARLEY_S3_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<String>,
}

/// The format of log lines (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where media bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaBackend {
    /// A directory on this machine (`media_dir`).
    Local,
    /// An S3-compatible bucket; uploads and downloads go to it directly
    /// through presigned URLs.
    S3,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            listen_backlog: 4096,
            max_connections: 19_500,
            max_connections_per_ip: 256,
            per_ip_limits_on_loopback: false,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            data_dir: PathBuf::from("./parley-data"),
            database: None,
            send_rate_per_sec: 20.0,
            send_burst: 100,
            max_text_bytes: 65_536,
            max_frame_bytes: 131_072,
            max_body_bytes: 262_144,
            max_group_members: 1024,
            heartbeat_ms: 25_000,
            auth_timeout_ms: 10_000,
            inbox_retention_days: 30,
            edit_window_secs: 900,
            delete_window_secs: 172_800,
            token_ttl_secs: 30 * 24 * 3600,
            registration_open: true,
            login_attempts_per_minute: 10,
            signups_per_ip_per_hour: 30,
            group_creations_per_user_per_hour: 60,
            member_additions_per_user_per_minute: 60,
            media_uploads_per_user_per_hour: 120,
            searches_per_user_per_minute: 60,
            http_requests_per_token_per_sec: 50.0,
            presence_subscribe_rate_per_sec: 5.0,
            socket_queue_frames: 1024,
            max_pending_sends: 256,
            max_presence_subscriptions: 256,
            presence_grace_ms: 3_000,
            typing_rate_per_sec: 5.0,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            sqlite_synchronous_full: true,
            commit_max_batch: 1024,
            search_index_batch: 2048,
            search_index_delay_ms: 200,
            sqlite_checkpoint_interval_ms: 100,
            sqlite_wal_restart_pages: 4096,
            sqlite_cache_kib: 2000,
            database_pool_size: 16,
            database_timeout_ms: 10_000,
            reconnect_jitter_ms: 5_000,
            shutdown_grace_ms: 5_000,
            ws_read_buffer_bytes: 256,
            ws_write_buffer_bytes: 4096,
            redis_url: None,
            token_key: None,
            node_id: None,
            node_lease_ms: 10_000,
            log_format: LogFormat::Text,
            push_vapid_subject: "mailto:admin@localhost".into(),
            push_delay_ms: 2_000,
            push_allow_insecure_endpoints: false,
            push_ttl_secs: 86_400,
            push_concurrency: 32,
            push_request_timeout_ms: 10_000,
            push_retry_initial_ms: 1_000,
            push_retry_max_ms: 3_600_000,
            push_lease_ms: 60_000,
            push_poll_ms: 1_000,
            push_trigger_queue: 65_536,
            push_registry_refresh_ms: 10_000,
            push_preview_chars: 200,
            push_fcm_project: None,
            push_fcm_client_email: None,
            push_fcm_key_file: None,
            push_fcm_base_url: "https://fcm.googleapis.com".into(),
            push_fcm_token_url: "https://oauth2.googleapis.com/token".into(),
            push_apns_team_id: None,
            push_apns_key_id: None,
            push_apns_key_file: None,
            push_apns_base_url: "https://api.push.apple.com".into(),
            push_apns_sandbox_url: "https://api.sandbox.push.apple.com".into(),
            tls_cert: None,
            tls_key: None,
            media_backend: MediaBackend::Local,
            media_dir: None,
            max_upload_bytes: 104_857_600,
            media_allowed_types: [
                "image/jpeg",
                "image/png",
                "image/gif",
                "image/webp",
                "video/mp4",
                "video/webm",
                "video/quicktime",
                "audio/mpeg",
                "audio/ogg",
                "audio/webm",
                "audio/mp4",
                "audio/wav",
                "application/pdf",
                "application/zip",
                "text/plain",
                "application/octet-stream",
            ]
            .map(String::from)
            .to_vec(),
            media_orphan_grace_secs: 86_400,
            media_gc_interval_secs: 3_600,
            media_quota_bytes: 1 << 30,
            media_upload_url_secs: 600,
            media_url_secs: 600,
            media_redirect_secs: 120,
            media_max_image_bytes: 32 << 20,
            media_max_image_side: 12_000,
            media_max_decode_bytes: 256 << 20,
            media_thumbnail_workers: 2,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_bucket: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then `file` (if any), then `PARLEY_*` variables.
    /// Flags are applied by the caller afterwards, then [`Config::check`].
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only our own keys: tools and tests set other PARLEY_* variables.
        let known = Self::keys();
        figment = figment.merge(Env::prefixed("PARLEY_").filter_map(move |key| {
            let key = key.as_str().to_ascii_lowercase();
            let key = if key == "database_url" {
                "database".to_owned()
            } else {
                key
            };
            known.contains(&key).then(|| key.into())
        }));
        let config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.check()
    }

    /// Every field name, as used in the file and (upper-cased) in env.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Validates every field in one place.
    pub fn check(mut self) -> Result<Config, ConfigError> {
        if self
            .database
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            self.database = None;
        }
        if !(self.push_vapid_subject.starts_with("mailto:")
            || self.push_vapid_subject.starts_with("https:"))
        {
            return Err(ConfigError(
                "push_vapid_subject must be a mailto: or https: URL".into(),
            ));
        }
        if self.push_lease_ms <= self.push_request_timeout_ms {
            // A push still being sent must not be claimed again elsewhere.
            return Err(ConfigError(
                "push_lease_ms must be longer than push_request_timeout_ms".into(),
            ));
        }
        if self.push_ttl_secs > 86_400 {
            // A VAPID JWT may not outlive 24 h (RFC 8292), and neither
            // should a wake-up.
            return Err(ConfigError("push_ttl_secs is at most 86,400".into()));
        }
        for field in [
            &mut self.push_fcm_project,
            &mut self.push_fcm_client_email,
            &mut self.push_apns_team_id,
            &mut self.push_apns_key_id,
        ] {
            if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *field = None;
            }
        }
        for field in [
            &mut self.redis_url,
            &mut self.token_key,
            &mut self.node_id,
            &mut self.s3_endpoint,
            &mut self.s3_bucket,
            &mut self.s3_access_key_id,
            &mut self.s3_secret_access_key,
        ] {
            if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *field = None;
            }
        }
        let positive = [
            ("send_burst", self.send_burst as u64),
            ("listen_backlog", self.listen_backlog as u64),
            ("max_connections", self.max_connections as u64),
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("max_text_bytes", self.max_text_bytes as u64),
            ("max_frame_bytes", self.max_frame_bytes as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_group_members", self.max_group_members as u64),
            ("heartbeat_ms", self.heartbeat_ms),
            ("auth_timeout_ms", self.auth_timeout_ms),
            ("inbox_retention_days", self.inbox_retention_days),
            ("token_ttl_secs", self.token_ttl_secs),
            (
                "login_attempts_per_minute",
                self.login_attempts_per_minute as u64,
            ),
            ("socket_queue_frames", self.socket_queue_frames as u64),
            (
                "group_creations_per_user_per_hour",
                self.group_creations_per_user_per_hour as u64,
            ),
            (
                "member_additions_per_user_per_minute",
                self.member_additions_per_user_per_minute as u64,
            ),
            (
                "media_uploads_per_user_per_hour",
                self.media_uploads_per_user_per_hour as u64,
            ),
            (
                "searches_per_user_per_minute",
                self.searches_per_user_per_minute as u64,
            ),
            ("max_pending_sends", self.max_pending_sends as u64),
            ("commit_max_batch", self.commit_max_batch as u64),
            ("search_index_batch", self.search_index_batch as u64),
            ("search_index_delay_ms", self.search_index_delay_ms),
            (
                "sqlite_checkpoint_interval_ms",
                self.sqlite_checkpoint_interval_ms,
            ),
            (
                "sqlite_wal_restart_pages",
                u64::from(self.sqlite_wal_restart_pages),
            ),
            ("sqlite_cache_kib", u64::from(self.sqlite_cache_kib)),
            ("database_pool_size", self.database_pool_size as u64),
            ("database_timeout_ms", self.database_timeout_ms),
            ("argon2_memory_kib", self.argon2_memory_kib as u64),
            ("argon2_iterations", self.argon2_iterations as u64),
            ("node_lease_ms", self.node_lease_ms),
            ("push_ttl_secs", self.push_ttl_secs),
            ("push_request_timeout_ms", self.push_request_timeout_ms),
            ("push_retry_initial_ms", self.push_retry_initial_ms),
            ("push_retry_max_ms", self.push_retry_max_ms),
            ("push_lease_ms", self.push_lease_ms),
            ("push_poll_ms", self.push_poll_ms),
            ("push_trigger_queue", self.push_trigger_queue as u64),
            ("push_registry_refresh_ms", self.push_registry_refresh_ms),
            ("max_upload_bytes", self.max_upload_bytes),
            ("media_gc_interval_secs", self.media_gc_interval_secs),
            ("media_upload_url_secs", self.media_upload_url_secs),
            ("media_url_secs", self.media_url_secs),
            ("media_redirect_secs", self.media_redirect_secs),
            ("media_max_image_side", self.media_max_image_side as u64),
            ("media_max_decode_bytes", self.media_max_decode_bytes),
            (
                "media_thumbnail_workers",
                self.media_thumbnail_workers as u64,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be greater than 0")));
            }
        }
        if !(self.send_rate_per_sec > 0.0 && self.send_rate_per_sec.is_finite()) {
            return Err(ConfigError(
                "send_rate_per_sec must be a positive number".into(),
            ));
        }
        for (name, rate) in [
            ("typing_rate_per_sec", self.typing_rate_per_sec),
            (
                "http_requests_per_token_per_sec",
                self.http_requests_per_token_per_sec,
            ),
            (
                "presence_subscribe_rate_per_sec",
                self.presence_subscribe_rate_per_sec,
            ),
        ] {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(ConfigError(format!("{name} must be a positive number")));
            }
        }
        if self.max_frame_bytes < 1024 {
            return Err(ConfigError("max_frame_bytes must be at least 1024".into()));
        }
        if self.argon2_memory_kib < 8 * self.argon2_iterations.max(1) {
            return Err(ConfigError(
                "argon2_memory_kib is too small for argon2".into(),
            ));
        }
        if let Some(url) = &self.database
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError(format!(
                "database must be a postgres:// URL (or empty for embedded SQLite), got {url:?}"
            )));
        }
        if let Some(key) = &self.token_key {
            self.token_key_bytes_of(key)?;
        }
        for field in [&mut self.tls_cert, &mut self.tls_key] {
            if field.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *field = None;
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError(
                "tls_cert and tls_key (PARLEY_TLS_CERT, PARLEY_TLS_KEY) go together: set both \
                 for HTTPS, or neither for plain HTTP"
                    .into(),
            ));
        }
        self.check_media()?;
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError(format!(
                    "redis_url must be a redis:// URL, got {url:?}"
                )));
            }
            if self.database.is_none() {
                return Err(ConfigError(
                    "cluster mode (redis_url / PARLEY_REDIS_URL) needs PostgreSQL: set database \
                     (PARLEY_DATABASE_URL) to the postgres:// URL every node shares"
                        .into(),
                ));
            }
            if self.token_key.is_none() {
                return Err(ConfigError(
                    "cluster mode (redis_url / PARLEY_REDIS_URL) needs token_key \
                     (PARLEY_TOKEN_KEY): base64 of at least 32 random bytes, the same on every \
                     node, e.g. from `head -c 32 /dev/urandom | base64`"
                        .into(),
                ));
            }
            if self.node_lease_ms < 1_000 {
                return Err(ConfigError("node_lease_ms must be at least 1000".into()));
            }
        }
        Ok(self)
    }

    /// The media fields (§9): URL lifetimes within the protocol's bounds,
    /// well-formed types, and everything `s3` needs.
    fn check_media(&mut self) -> Result<(), ConfigError> {
        if self.media_url_secs > 600 {
            return Err(ConfigError("media_url_secs must be at most 600".into()));
        }
        if self.media_redirect_secs > 120 {
            return Err(ConfigError(
                "media_redirect_secs must be at most 120".into(),
            ));
        }
        for kind in self.media_allowed_types.iter_mut() {
            *kind = kind.trim().to_ascii_lowercase();
            if kind.split('/').count() != 2 || kind.contains(';') {
                return Err(ConfigError(format!(
                    "media_allowed_types: {kind:?} is not a type/subtype"
                )));
            }
        }
        if self.media_backend == MediaBackend::S3 {
            for (name, value) in [
                ("s3_endpoint", &self.s3_endpoint),
                ("s3_bucket", &self.s3_bucket),
                ("s3_access_key_id", &self.s3_access_key_id),
                ("s3_secret_access_key", &self.s3_secret_access_key),
            ] {
                if value.is_none() {
                    return Err(ConfigError(format!(
                        "media_backend = \"s3\" needs {name} (env PARLEY_{})",
                        name.to_ascii_uppercase()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The `local` backend's directory.
    pub fn media_dir(&self) -> PathBuf {
        self.media_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    /// The edit and delete windows, as the store applies them.
    pub fn event_windows(&self) -> parley_store::EventWindows {
        let ms = |secs: u64| (secs.min(i64::MAX as u64 / 1000) as i64) * 1000;
        parley_store::EventWindows {
            edit_ms: ms(self.edit_window_secs),
            delete_ms: ms(self.delete_window_secs),
        }
    }

    /// Whether this node is part of a cluster (a Redis URL is set).
    pub fn cluster_mode(&self) -> bool {
        self.redis_url.is_some()
    }

    /// The decoded `token_key`, if set.
    pub fn token_key_bytes(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        self.token_key
            .as_deref()
            .map(|key| self.token_key_bytes_of(key))
            .transpose()
    }

    fn token_key_bytes_of(&self, key: &str) -> Result<Vec<u8>, ConfigError> {
        use base64::Engine;
        let key = key.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(key))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(key))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key))
            .map_err(|_| {
                ConfigError(
                    "token_key (PARLEY_TOKEN_KEY) is not valid base64; generate one with \
                     `head -c 32 /dev/urandom | base64`"
                        .into(),
                )
            })?;
        if bytes.len() < 32 {
            return Err(ConfigError(format!(
                "token_key (PARLEY_TOKEN_KEY) decodes to {} bytes; it must be at least 32 \
                 (e.g. `head -c 32 /dev/urandom | base64`)",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// How long the inbox is kept, in milliseconds.
    pub fn inbox_retention_ms(&self) -> i64 {
        (self.inbox_retention_days as i64).saturating_mul(24 * 3600 * 1000)
    }
}
