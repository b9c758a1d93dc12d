//! The scriptable client commands of the `parley` binary (`login`,
//! `logout`, `whoami`, `send`, `listen`, `history`, `conversations`,
//! `groups`, `admin`), built on `parley-client`. Output is JSON lines on stdout;
//! errors are one line on stderr, `parley: CODE: MESSAGE`, with the exit
//! codes in [`error::exit`] (documented in `docs/cli.md`).
//!
//! # Layout
//! - [`error`]: [`CliError`], exit codes.
//! - [`session`]: the config directory, the session and cursor files.
//! - [`json`]: the one module here that writes and reads JSON.
//! - [`target`]: `@alice`, `c12`, a group name → ids.
//! - [`commands`]: the one-shot commands.
//! - [`admin`]: `parley admin` (server administration; two of its
//!   subcommands work on the server host without a login).
//! - [`listen`]: `parley listen` (reconnect delays from
//!   `parley_client::reconnect::Backoff`).

pub mod admin;
pub mod commands;
pub mod error;
pub mod json;
pub mod listen;
pub mod session;
pub mod target;

pub use error::{CliError, CliResult};

use session::Profile;

/// The client subcommands, flattened into the binary's command line.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Log in and keep the session in the config directory.
    Login(commands::LoginArgs),
    /// End the session on the server and forget it.
    Logout,
    /// Who is logged in (`GET /v1/me`, plus the server).
    Whoami,
    /// Send a text message; prints the stored message.
    Send(commands::SendArgs),
    /// Print incoming events as JSON lines until stopped.
    Listen(listen::ListenArgs),
    /// Print a conversation's messages.
    History(commands::HistoryArgs),
    /// List your conversations, most recent activity first.
    Conversations(commands::ConversationsArgs),
    /// Groups: list, create, add, remove, leave, rename.
    Groups {
        /// What to do.
        #[command(subcommand)]
        command: commands::GroupsCommand,
    },
    /// Server administration: accounts, stats, backups.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

/// Runs a client command for `profile` (None: the default profile).
pub async fn run(command: ClientCommand, profile: Option<&str>) -> CliResult<()> {
    let profile = Profile::open(profile)?;
    match command {
        ClientCommand::Login(args) => commands::login(&profile, args).await,
        ClientCommand::Logout => commands::logout(&profile).await,
        ClientCommand::Whoami => commands::whoami(&profile).await,
        ClientCommand::Send(args) => commands::send(&profile, args).await,
        ClientCommand::Listen(args) => listen::run(&profile, args).await,
        ClientCommand::History(args) => commands::history(&profile, args).await,
        ClientCommand::Conversations(args) => commands::conversations(&profile, args).await,
        ClientCommand::Groups { command } => commands::groups(&profile, command).await,
        ClientCommand::Admin { command } => admin::run(&profile, command).await,
    }
}
