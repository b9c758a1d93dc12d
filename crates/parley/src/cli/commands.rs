//! The one-shot client commands: `login`, `logout`, `whoami`, `send`,
//! `history`, `conversations` and `groups`. Each prints JSON lines on stdout
//! (the `parley-proto` types as on the wire), or a table with `--pretty`.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use parley_client::Client;
use parley_proto::api::{ConversationKind, ConversationSummary, MeResponse};
use parley_proto::{DeviceId, ErrorCode, Message, MessageKind, UserId};
use serde::Serialize;

use super::error::{CliError, CliResult};
use super::json;
use super::session::{Profile, Session};
use super::target;
use parley_client::reconnect::Backoff;

/// `parley login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// The server's base URL, e.g. `http://127.0.0.1:8080` (env PARLEY_SERVER).
    #[arg(long, env = "PARLEY_SERVER")]
    pub server: String,
    /// The username.
    pub username: String,
    /// Read the password from the first line of stdin (else the
    /// PARLEY_PASSWORD environment variable, else a prompt on the terminal).
    #[arg(long)]
    pub password_stdin: bool,
    /// The name of the device this login makes.
    #[arg(long, default_value = "parley-cli")]
    pub device_name: String,
}

/// What `login` prints.
#[derive(Serialize)]
struct LoggedIn<'a> {
    server: &'a str,
    username: &'a str,
    user_id: UserId,
    device_id: DeviceId,
    expires_at_ms: i64,
}

/// Runs `parley login`.
pub async fn login(profile: &Profile, args: LoginArgs) -> CliResult<()> {
    let server = server_url(&args.server)?;
    let password = read_password(args.password_stdin)?;
    let client = Client::new(server.clone())
        .login_device(&args.username, &password, &args.device_name)
        .await?;
    let login = client.session.clone().expect("login keeps the session");
    // A new login replaces the profile's old one: end that device's
    // session so tokens do not pile up (best effort: it may be gone).
    if let Ok(Some(old)) = profile.session() {
        let _ = old.client().logout().await;
        profile.forget()?;
    }
    let session = Session {
        server,
        username: args.username.clone(),
        user_id: login.user_id,
        device_id: login.device_id,
        token: login.token,
        expires_at_ms: login.expires_at_ms,
    };
    profile.save_session(&session)?;
    json::print(&LoggedIn {
        server: &session.server,
        username: &session.username,
        user_id: session.user_id,
        device_id: session.device_id,
        expires_at_ms: session.expires_at_ms,
    })
}

/// `http://host:port` without a trailing slash; anything else is a usage
/// error.
fn server_url(url: &str) -> CliResult<String> {
    let url = url.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match host {
        Some(host) if !host.is_empty() => Ok(url.to_owned()),
        _ => Err(CliError::usage(format!(
            "bad server URL {url:?}: expected http://HOST:PORT or https://HOST"
        ))),
    }
}

pub(crate) fn read_password(from_stdin: bool) -> CliResult<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::local(format!("cannot read the password from stdin: {e}")))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    if let Ok(password) = std::env::var("PARLEY_PASSWORD") {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::local(format!("cannot read the password: {e}")));
    }
    Err(CliError::usage(
        "no password: use --password-stdin, set PARLEY_PASSWORD, or run on a terminal",
    ))
}

/// Runs `parley logout`: ends the session on the server and forgets it.
pub async fn logout(profile: &Profile) -> CliResult<()> {
    let session = profile.require_session()?;
    let outcome = session.client().logout().await;
    match outcome {
        // A token the server no longer knows is logged out already.
        Ok(()) => {}
        Err(err) if err.code() == Some(ErrorCode::Unauthorized) => {}
        Err(err) => return Err(err.into()),
    }
    profile.forget()
}

/// What `whoami` prints: `GET /v1/me` and the server.
#[derive(Serialize)]
struct WhoAmI<'a> {
    server: &'a str,
    #[serde(flatten)]
    me: &'a MeResponse,
}

/// Runs `parley whoami`.
pub async fn whoami(profile: &Profile) -> CliResult<()> {
    let session = profile.require_session()?;
    let me = session.client().me().await?;
    json::print(&WhoAmI {
        server: &session.server,
        me: &me,
    })
}

/// `parley send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// `@user`, a username, a conversation id (`c12`) or a group name.
    pub target: String,
    /// The text (or use --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from this file (`-`: stdin); one final newline is
    /// dropped.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The idempotency key (default: a new random one); a repeat with the
    /// same key returns the original message and stores nothing new.
    #[arg(long)]
    pub client_msg_id: Option<String>,
}

/// How often `send` tries when the server cannot be reached.
const SEND_ATTEMPTS: u32 = 4;

/// Runs `parley send`: prints the stored message.
pub async fn send(profile: &Profile, args: SendArgs) -> CliResult<()> {
    let session = profile.require_session()?;
    let text = match (&args.text, &args.file) {
        (Some(text), None) => text.clone(),
        (None, Some(path)) => read_text(path)?,
        _ => return Err(CliError::usage("give either TEXT or --file")),
    };
    let client = session.client();
    let conversation = target::conversation(&client, &args.target).await?;
    // One key per invocation: a retry after a lost answer is the same send.
    let client_msg_id = args.client_msg_id.unwrap_or_else(new_client_msg_id);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut attempt = 1;
    let message = loop {
        match client.send(conversation, &client_msg_id, &text).await {
            Ok((message, _created)) => break message,
            Err(err) => {
                let err = CliError::from(err);
                if !err.is_unavailable() || attempt >= SEND_ATTEMPTS {
                    return Err(err);
                }
                attempt += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    json::print(&message)
}

/// A fresh idempotency key: `cli-` and 128 random bits.
pub fn new_client_msg_id() -> String {
    format!("cli-{:032x}", rand::random::<u128>())
}

fn read_text(path: &std::path::Path) -> CliResult<String> {
    let mut text = String::new();
    let outcome = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    outcome.map_err(|e| CliError::local(format!("cannot read {}: {e}", path.display())))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// `parley history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// `@user`, a username, a conversation id (`c12`) or a group name.
    pub conversation: String,
    /// How many messages (1–100; default 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Only messages with a seq below this one.
    #[arg(long)]
    pub before: Option<u64>,
    /// Only messages with a seq above this one.
    #[arg(long, conflicts_with = "before")]
    pub after: Option<u64>,
    /// A table for people instead of JSON lines.
    #[arg(long)]
    pub pretty: bool,
}

/// Runs `parley history`: messages in ascending seq.
pub async fn history(profile: &Profile, args: HistoryArgs) -> CliResult<()> {
    let session = profile.require_session()?;
    let client = session.client();
    let conversation = target::conversation(&client, &args.conversation).await?;
    let page = client
        .history(conversation, args.before, args.after, args.limit)
        .await?;
    if !args.pretty {
        for message in &page.messages {
            json::print(message)?;
        }
        return Ok(());
    }
    let mut names = Names::new(&client);
    let mut rows = vec![[
        "SEQ".to_owned(),
        "TIME (UTC)".to_owned(),
        "FROM".to_owned(),
        "TEXT".to_owned(),
    ]];
    for message in &page.messages {
        rows.push([
            message.seq.to_string(),
            format_time(message.sent_at_ms),
            names.name(message.sender_id).await,
            message_text(message),
        ]);
    }
    print_table(&rows)
}

/// A message as one line of text for people.
pub fn message_text(message: &Message) -> String {
    match message.kind {
        MessageKind::Text => message
            .text
            .clone()
            .unwrap_or_default()
            .replace(['\n', '\r'], " "),
        MessageKind::System => {
            let what = message.event.map(|e| e.as_str()).unwrap_or("change");
            match &message.name {
                Some(name) => format!("* {what} {name:?}"),
                None => format!("* {what}"),
            }
        }
        #[allow(unreachable_patterns)]
        _ => format!("[{}]", message.kind.as_str()),
    }
}

/// `parley conversations`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConversationsArgs {
    /// A table for people instead of JSON lines.
    #[arg(long)]
    pub pretty: bool,
}

/// Runs `parley conversations`: most recent activity first.
pub async fn conversations(profile: &Profile, args: ConversationsArgs) -> CliResult<()> {
    let session = profile.require_session()?;
    let client = session.client();
    let list = client.conversations().await?;
    print_conversations(&client, &session, &list.conversations, args.pretty).await
}

async fn print_conversations(
    client: &Client,
    session: &Session,
    conversations: &[ConversationSummary],
    pretty: bool,
) -> CliResult<()> {
    if !pretty {
        for conversation in conversations {
            json::print(conversation)?;
        }
        return Ok(());
    }
    let mut names = Names::new(client);
    let mut rows = vec![[
        "ID".to_owned(),
        "NAME".to_owned(),
        "UNREAD".to_owned(),
        "LAST MESSAGE".to_owned(),
    ]];
    for conversation in conversations {
        let title = match conversation.kind {
            ConversationKind::Group => conversation.name.clone().unwrap_or_default(),
            ConversationKind::Direct => {
                let other = conversation
                    .members
                    .iter()
                    .copied()
                    .find(|m| *m != session.user_id)
                    .unwrap_or(session.user_id);
                format!("@{}", names.name(other).await)
            }
        };
        rows.push([
            conversation.conversation_id.to_string(),
            title,
            conversation.unread_count.to_string(),
            conversation
                .last_message
                .as_ref()
                .map(message_text)
                .unwrap_or_default(),
        ]);
    }
    print_table(&rows)
}

/// `parley groups ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupsCommand {
    /// The groups you are in, as JSON lines (or a table with --pretty).
    List {
        /// A table for people instead of JSON lines.
        #[arg(long)]
        pretty: bool,
    },
    /// Make a group with you as admin; MEMBERS are usernames or user ids.
    Create {
        /// The group's name.
        name: String,
        /// The other members.
        members: Vec<String>,
    },
    /// Add members (admins only).
    Add {
        /// Group id or name.
        group: String,
        /// Usernames or user ids.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove a member (admins only).
    Remove {
        /// Group id or name.
        group: String,
        /// Username or user id.
        user: String,
    },
    /// Leave a group.
    Leave {
        /// Group id or name.
        group: String,
    },
    /// Rename a group (admins only).
    Rename {
        /// Group id or name.
        group: String,
        /// The new name.
        name: String,
    },
}

/// Runs `parley groups ...`.
pub async fn groups(profile: &Profile, command: GroupsCommand) -> CliResult<()> {
    let session = profile.require_session()?;
    let client = session.client();
    match command {
        GroupsCommand::List { pretty } => {
            let list = client.conversations().await?;
            let groups: Vec<ConversationSummary> = list
                .conversations
                .into_iter()
                .filter(|c| c.kind == ConversationKind::Group)
                .collect();
            print_conversations(&client, &session, &groups, pretty).await
        }
        GroupsCommand::Create { name, members } => {
            let members = users(&client, &members).await?;
            json::print(&client.create_group(&name, &members).await?)
        }
        GroupsCommand::Add {
            group,
            users: names,
        } => {
            let group = target::group(&client, &group).await?;
            let members = users(&client, &names).await?;
            json::print(&client.add_members(group, &members).await?)
        }
        GroupsCommand::Remove { group, user } => {
            let group = target::group(&client, &group).await?;
            let user = target::user(&client, &user).await?;
            Ok(client.remove_member(group, user).await?)
        }
        GroupsCommand::Leave { group } => {
            let group = target::group(&client, &group).await?;
            Ok(client.remove_member(group, session.user_id).await?)
        }
        GroupsCommand::Rename { group, name } => {
            let group = target::group(&client, &group).await?;
            json::print(&client.rename_group(group, &name).await?)
        }
    }
}

async fn users(client: &Client, names: &[String]) -> CliResult<Vec<UserId>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        ids.push(target::user(client, name).await?);
    }
    Ok(ids)
}

/// Usernames by id, looked up once each.
pub struct Names<'a> {
    client: &'a Client,
    known: HashMap<UserId, String>,
}

impl<'a> Names<'a> {
    /// An empty cache over `client`.
    pub fn new(client: &'a Client) -> Names<'a> {
        Names {
            client,
            known: HashMap::new(),
        }
    }

    /// The username of `user`, or its id when it cannot be looked up.
    pub async fn name(&mut self, user: UserId) -> String {
        if let Some(name) = self.known.get(&user) {
            return name.clone();
        }
        let name = match self.client.user(user).await {
            Ok(view) => view.username,
            Err(_) => user.to_string(),
        };
        self.known.insert(user, name.clone());
        name
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn format_time(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        of_day / 3600,
        (of_day % 3600) / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn print_table<const N: usize>(rows: &[[String; N]]) -> CliResult<()> {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .map_err(|e| CliError::local(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(format_time(1_780_000_000_000), "2026-05-28 20:26");
    }

    #[test]
    fn server_urls_need_a_scheme() {
        assert_eq!(server_url("http://h:1/").unwrap(), "http://h:1");
        assert!(server_url("h:1").is_err());
        assert!(server_url("http://").is_err());
    }
}
