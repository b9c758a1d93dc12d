//! Turning what a person types into ids: `@alice` or `alice` → the direct
//! conversation with that user (made when missing), `c12` → that
//! conversation, a group name → that group; `alice`, `@alice` or `u7` → a
//! user.

use parley_client::Client;
use parley_proto::api::{ConversationKind, ConversationSummary};
use parley_proto::limits;
use parley_proto::{ConversationId, ErrorCode, UserId};

use super::error::{CliError, CliResult};

/// The conversation `target` names. Order: `@name` is always a user;
/// a conversation id (`c12`) is that conversation; otherwise a group of
/// the caller with that exact name; otherwise a user with that username.
/// A user resolves to the direct conversation with them, made when missing.
pub async fn conversation(client: &Client, target: &str) -> CliResult<ConversationId> {
    if let Some(username) = target.strip_prefix('@') {
        let user = user_by_name(client, username).await?;
        return direct_with(client, user).await;
    }
    if let Ok(id) = target.parse::<ConversationId>() {
        return Ok(id);
    }
    if let Some(group) = group_by_name(client, target).await? {
        return Ok(group);
    }
    match user_by_name(client, target).await {
        Ok(user) => direct_with(client, user).await,
        Err(err) if err.code == ErrorCode::NotFound.as_str() => Err(CliError::not_found(format!(
            "no conversation, group or user named {target:?}"
        ))),
        Err(err) => Err(err),
    }
}

/// The group `target` names: a conversation id, or the name of a group the
/// caller is in.
pub async fn group(client: &Client, target: &str) -> CliResult<ConversationId> {
    if let Ok(id) = target.parse::<ConversationId>() {
        return Ok(id);
    }
    group_by_name(client, target)
        .await?
        .ok_or_else(|| CliError::not_found(format!("no group named {target:?}")))
}

/// The user `target` names: `u7`, `@alice` or `alice`.
pub async fn user(client: &Client, target: &str) -> CliResult<UserId> {
    if let Ok(id) = target.parse::<UserId>() {
        return Ok(id);
    }
    user_by_name(client, target.strip_prefix('@').unwrap_or(target)).await
}

async fn user_by_name(client: &Client, username: &str) -> CliResult<UserId> {
    // The lookup goes into a query string: anything that cannot be a
    // username names nobody, and must not reach the URL unescaped.
    let plausible = !username.is_empty()
        && username.len() <= limits::USERNAME_MAX_CHARS
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if !plausible {
        return Err(CliError::not_found(format!("no user named {username:?}")));
    }
    match client.find_user(username).await {
        Ok(user) => Ok(user.user_id),
        Err(err) if err.code() == Some(ErrorCode::NotFound) => {
            Err(CliError::not_found(format!("no user named {username:?}")))
        }
        Err(err) => Err(err.into()),
    }
}

async fn direct_with(client: &Client, user: UserId) -> CliResult<ConversationId> {
    Ok(client.direct(user).await?.0.conversation_id)
}

/// The caller's group named exactly `name`; more than one is an error
/// naming their ids, so the caller can pick one.
async fn group_by_name(client: &Client, name: &str) -> CliResult<Option<ConversationId>> {
    let list = client.conversations().await?;
    let matching: Vec<&ConversationSummary> = list
        .conversations
        .iter()
        .filter(|c| c.kind == ConversationKind::Group && c.name.as_deref() == Some(name))
        .collect();
    match matching.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.conversation_id)),
        many => Err(CliError::with_code(
            ErrorCode::BadRequest,
            format!(
                "{} groups are named {name:?}: use an id ({})",
                many.len(),
                many.iter()
                    .map(|c| c.conversation_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
