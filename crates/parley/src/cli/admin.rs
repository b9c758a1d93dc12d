//! `parley admin ...`: server administration (protocol §14).
//!
//! Two kinds of subcommand:
//! - on the server host, against the configured store and data dir
//!   directly (no login, no running server needed): `create-user`, which
//!   makes the first administrator, and `backup`. They read the server's
//!   configuration like `parley serve` (`--config`, `PARLEY_*`,
//!   `--data-dir`, `--database`).
//! - over the HTTP API with the profile's stored login, which must be an
//!   administrator's: `users`, `disable`, `enable`, `reset-password`,
//!   `delete`, `stats`.
//!
//! Output and exit codes are the client commands' (`docs/cli.md`).

use std::path::PathBuf;

use parley_proto::{ErrorCode, UserId};
use parley_server::accounts::{NewAccount, admin_view};
use parley_server::{Config, ServerError};
use serde::Serialize;

use super::commands::read_password;
use super::error::{CliError, CliResult};
use super::json;
use super::session::Profile;
use super::target;

/// Where the server's configuration comes from (as for `parley serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfigArgs {
    /// TOML configuration file; its keys are the Config fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (env PARLEY_DATA_DIR; default ./parley-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL instead of embedded SQLite (env PARLEY_DATABASE_URL).
    #[arg(long)]
    pub database: Option<String>,
}

impl ServerConfigArgs {
    fn load(&self) -> CliResult<Config> {
        let mut config = Config::load(self.config.as_deref())
            .map_err(|e| CliError::usage(format!("bad configuration: {e}")))?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database {
            config.database = Some(url.clone());
        }
        config
            .check()
            .map_err(|e| CliError::usage(format!("bad configuration: {e}")))
    }
}

/// `parley admin ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Make an account in the configured store (on the server host; makes
    /// the first administrator before anyone can log in).
    CreateUser {
        /// The username.
        username: String,
        /// Make it a server administrator.
        #[arg(long)]
        admin: bool,
        /// The name to show (default: the username).
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of stdin (else
        /// PARLEY_PASSWORD, else a prompt on the terminal).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        server: ServerConfigArgs,
    },
    /// Copy the data dir consistently while the server runs: the SQLite
    /// database (VACUUM INTO), the keys and the media directory.
    Backup {
        /// A new (or empty) directory for the copy.
        dir: PathBuf,
        #[command(flatten)]
        server: ServerConfigArgs,
    },
    /// List users as JSON lines, by id (every page).
    Users {
        /// Only users whose username or display name contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Disable a user: its sockets close, its logins and tokens are refused.
    Disable {
        /// Username or user id.
        user: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Username or user id.
        user: String,
    },
    /// Set a user's password (every device of the user is logged out).
    ResetPassword {
        /// Username or user id.
        user: String,
        /// Read the new password from the first line of stdin (else
        /// PARLEY_PASSWORD, else a prompt on the terminal).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Erase a user's account (protocol §14); cannot be undone.
    Delete {
        /// Username or user id.
        user: String,
        /// Confirm the erasure.
        #[arg(long)]
        yes: bool,
    },
    /// Counts: users, devices, conversations, messages, sockets, media.
    Stats,
}

/// Runs `parley admin ...`.
pub async fn run(profile: &Profile, command: AdminCommand) -> CliResult<()> {
    match command {
        AdminCommand::CreateUser {
            username,
            admin,
            display_name,
            password_stdin,
            server,
        } => {
            let config = server.load()?;
            let password = read_password(password_stdin)?;
            let account = NewAccount {
                username,
                password,
                display_name,
                is_admin: admin,
            };
            let record = parley_server::admin::create_user(config, account)
                .await
                .map_err(server_error)?;
            json::print(&admin_view(&record))
        }
        AdminCommand::Backup { dir, server } => backup(server.load()?, dir).await,
        AdminCommand::Users { search } => {
            let client = profile.require_session()?.client();
            let mut after = None;
            loop {
                let page = client
                    .admin_users(search.as_deref(), after, Some(200))
                    .await?;
                for user in &page.users {
                    json::print(user)?;
                }
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => return Ok(()),
                }
            }
        }
        AdminCommand::Disable { user } => {
            let client = profile.require_session()?.client();
            let user = admin_target(&client, &user).await?;
            json::print(&client.admin_disable(user).await?)
        }
        AdminCommand::Enable { user } => {
            let client = profile.require_session()?.client();
            let user = admin_target(&client, &user).await?;
            json::print(&client.admin_enable(user).await?)
        }
        AdminCommand::ResetPassword {
            user,
            password_stdin,
        } => {
            let client = profile.require_session()?.client();
            let user = admin_target(&client, &user).await?;
            let password = read_password(password_stdin)?;
            Ok(client.admin_reset_password(user, &password).await?)
        }
        AdminCommand::Delete { user, yes } => {
            if !yes {
                return Err(CliError::usage(
                    "erasing an account cannot be undone; add --yes to confirm",
                ));
            }
            let client = profile.require_session()?.client();
            let user = admin_target(&client, &user).await?;
            Ok(client.admin_delete(user).await?)
        }
        AdminCommand::Stats => {
            let client = profile.require_session()?.client();
            json::print(&client.admin_stats().await?)
        }
    }
}

/// The user an admin command names. The lookup needs a login, so an
/// anonymous or non-admin caller learns that first (exit 3 or 5).
async fn admin_target(client: &parley_client::Client, user: &str) -> CliResult<UserId> {
    // Asking for one user's page checks the caller is an administrator
    // before any name is looked up.
    client.admin_users(None, None, Some(1)).await?;
    target::user(client, user).await
}

/// What `backup` prints.
#[derive(Serialize)]
struct BackedUp {
    dir: String,
    /// `parley.db` in `dir`, or `null` when the store is PostgreSQL.
    database: Option<String>,
    database_bytes: u64,
    files: Vec<String>,
    media_files: u64,
}

async fn backup(config: Config, dir: PathBuf) -> CliResult<()> {
    let postgres = config.database.is_some();
    let dest = dir.clone();
    // File copies and SQLite's VACUUM INTO block: off the async workers.
    let report = tokio::task::spawn_blocking(move || parley_server::admin::backup(&config, &dest))
        .await
        .map_err(|e| CliError::local(format!("the backup task failed: {e}")))?
        .map_err(server_error)?;
    if postgres {
        eprintln!(
            "parley: note: the store is PostgreSQL; back the database up with pg_dump (docs/operations.md)"
        );
    }
    json::print(&BackedUp {
        dir: dir.display().to_string(),
        database: report.database.map(|p| p.display().to_string()),
        database_bytes: report.database_bytes,
        files: report.files,
        media_files: report.media_files,
    })
}

/// A failure of the store-side commands, with the exit code a script
/// expects: a refusal keeps its protocol code; the store being away is
/// `unavailable`; anything else is a local error.
fn server_error(err: ServerError) -> CliError {
    match err {
        ServerError::Refused(api) => CliError::with_code(api.code, api.message),
        ServerError::Store(store) if store.code() == ErrorCode::Unavailable => {
            CliError::with_code(ErrorCode::Unavailable, store.to_string())
        }
        other => CliError::local(other.to_string()),
    }
}
