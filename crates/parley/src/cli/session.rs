//! What the client commands keep between runs, in the user's config
//! directory (`$XDG_CONFIG_HOME/parley`, else `~/.config/parley`; the
//! directory is mode 0700, the files 0600): the session (server, user,
//! token) and the `listen` cursor, one pair of files per profile.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use parley_client::Client;
use parley_proto::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

use super::error::{CliError, CliResult};
use super::json;

/// A logged-in session, as stored in `session.json`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// The server's base URL (`http://host:port`).
    pub server: String,
    /// Who is logged in.
    pub username: String,
    /// Their id.
    pub user_id: UserId,
    /// The device this login made.
    pub device_id: DeviceId,
    /// The bearer token.
    pub token: String,
    /// When the token stops working.
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A client for the session's server carrying its token.
    pub fn client(&self) -> Client {
        Client::new(self.server.clone()).with_token(self.token.clone())
    }
}

/// Where `listen` got to, as stored in `listen-cursor.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenCursor {
    /// The server the cursor belongs to.
    pub server: String,
    /// The user whose inbox it is.
    pub user_id: UserId,
    /// The last inbox position printed.
    pub cursor: u64,
}

/// The files of one profile.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
    name: Option<String>,
}

impl Profile {
    /// The profile `name` (None: the default one) in the user's config
    /// directory.
    pub fn open(name: Option<&str>) -> CliResult<Profile> {
        if let Some(name) = name {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
                && !name.starts_with('.');
            if !valid {
                return Err(CliError::usage(format!(
                    "bad profile name {name:?}: use letters, digits, '_', '-' and '.'"
                )));
            }
        }
        Ok(Profile {
            dir: config_dir()?,
            name: name.map(str::to_owned),
        })
    }

    /// The directory holding every profile's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, stem: &str) -> PathBuf {
        match &self.name {
            None => self.dir.join(format!("{stem}.json")),
            Some(name) => self.dir.join(format!("{stem}.{name}.json")),
        }
    }

    /// The session file's path.
    pub fn session_path(&self) -> PathBuf {
        self.file("session")
    }

    /// The `listen` cursor file's path.
    pub fn cursor_path(&self) -> PathBuf {
        self.file("listen-cursor")
    }

    /// The stored session, if any.
    pub fn session(&self) -> CliResult<Option<Session>> {
        read(&self.session_path())
    }

    /// The stored session, or "not logged in".
    pub fn require_session(&self) -> CliResult<Session> {
        self.session()?.ok_or_else(CliError::not_logged_in)
    }

    /// Stores the session (mode 0600).
    pub fn save_session(&self, session: &Session) -> CliResult<()> {
        write_private(&self.dir, &self.session_path(), &json::to_pretty(session))
    }

    /// Forgets the session and the `listen` cursor.
    pub fn forget(&self) -> CliResult<()> {
        for path in [self.session_path(), self.cursor_path()] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CliError::local(format!(
                        "cannot remove {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The stored `listen` cursor for this server and user, if any.
    pub fn cursor(&self, session: &Session) -> CliResult<Option<u64>> {
        let stored: Option<ListenCursor> = read(&self.cursor_path())?;
        Ok(stored
            .filter(|c| c.server == session.server && c.user_id == session.user_id)
            .map(|c| c.cursor))
    }

    /// Stores the `listen` cursor (written to a new file and renamed, so a
    /// crash leaves either the old or the new cursor).
    pub fn save_cursor(&self, session: &Session, cursor: u64) -> CliResult<()> {
        let stored = ListenCursor {
            server: session.server.clone(),
            user_id: session.user_id,
            cursor,
        };
        write_private(&self.dir, &self.cursor_path(), &json::to_line(&stored))
    }
}

/// `$XDG_CONFIG_HOME/parley`, else `$HOME/.config/parley`.
pub fn config_dir() -> CliResult<PathBuf> {
    // The XDG spec says a relative XDG_CONFIG_HOME is invalid and ignored.
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("parley"));
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".config").join("parley")),
        _ => Err(CliError::local(
            "cannot find the config directory: set XDG_CONFIG_HOME or HOME",
        )),
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> CliResult<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => json::parse(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::local(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes `text` to `path` readable by the owner only: into a temporary
/// file created 0600 (never a moment with wider rights), then renamed.
fn write_private(dir: &Path, path: &Path, text: &str) -> CliResult<()> {
    let fail = |e: std::io::Error| CliError::local(format!("cannot write {}: {e}", path.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    // The directory may predate us with wider rights; it holds tokens.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)
}
