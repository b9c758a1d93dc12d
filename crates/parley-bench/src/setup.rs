//! Users, logins and conversations, over HTTP with `parley-client`.
//!
//! Every run makes fresh users named `b<run>_<i>` (a random run tag), so
//! runs against a long-lived `--url` server never collide. Requests go
//! through a fixed pool of workers, one request in flight each, so each
//! worker's keep-alive connection is reused instead of churning ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use indicatif::ProgressBar;
use parley_client::Client;
use parley_proto::{ConversationId, UserId};
use rand::Rng;

/// Every bench user's password.
pub(crate) const PASSWORD: &str = "bench-password-1";

/// A logged-in bench user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// Its id.
    pub(crate) id: UserId,
    /// Its bearer token (one device).
    pub(crate) token: String,
}

/// A fresh run tag for usernames.
pub(crate) fn run_tag() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Runs `job(client, i)` for i in 0..n on `workers` workers, each with its
/// own HTTP client; results in index order.
pub(crate) async fn for_each<T, F, Fut>(
    base: &str,
    n: usize,
    workers: usize,
    progress: &ProgressBar,
    job: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut handles = Vec::new();
    for _ in 0..workers.clamp(1, n.max(1)) {
        let (next, job, progress) = (next.clone(), job.clone(), progress.clone());
        let client = Client::new(base);
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(done);
                }
                done.push((i, job(client.clone(), i).await?));
                progress.inc(1);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for handle in handles {
        all.extend(handle.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

/// Registers and logs in `n` users named `b<tag>_<i>`.
pub(crate) async fn users(
    base: &str,
    tag: &str,
    n: usize,
    workers: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<User>> {
    let tag = tag.to_owned();
    for_each(base, n, workers, progress, move |client, i| {
        let username = format!("b{tag}_{i}");
        async move {
            client
                .register(&username, PASSWORD)
                .await
                .with_context(|| format!("register {username}"))?;
            let session = client
                .login_device(&username, PASSWORD, "bench")
                .await
                .with_context(|| format!("login {username}"))?;
            let user = User {
                id: session.user_id().context("login without a user")?,
                token: session.token().context("login without a token")?.to_owned(),
            };
            Ok(user)
        }
    })
    .await
}

/// `2 × n` fresh users and the direct conversation of each pair (users
/// `2i` and `2i + 1`), as [`users`] and [`directs`].
pub(crate) async fn pairs(
    base: &str,
    tag: &str,
    n: usize,
    workers: usize,
    progress: &ProgressBar,
) -> anyhow::Result<(Vec<User>, Vec<(ConversationId, u64)>)> {
    let users = users(base, tag, 2 * n, workers, progress).await?;
    let pair_list = (0..n)
        .map(|i| (users[2 * i].clone(), users[2 * i + 1].clone()))
        .collect();
    let conversations = directs(base, pair_list, workers, progress).await?;
    Ok((users, conversations))
}

/// Opens the direct conversation of each pair; returns (conversation,
/// last seq before the run).
pub(crate) async fn directs(
    base: &str,
    pairs: Vec<(User, User)>,
    workers: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<(ConversationId, u64)>> {
    let pairs = Arc::new(pairs);
    let n = pairs.len();
    for_each(base, n, workers, progress, move |client, i| {
        let pairs = pairs.clone();
        async move {
            let (a, b) = &pairs[i];
            let a = client.with_token(a.token.clone());
            let (created, _) = a.direct(b.id).await.context("open direct conversation")?;
            let id = created.conversation_id;
            let last_seq = a.conversation(id).await?.last_seq;
            Ok((id, last_seq))
        }
    })
    .await
}

/// Creates one group per entry: (admin, other members); returns
/// (conversation, last seq before the run).
pub(crate) async fn groups(
    base: &str,
    groups: Vec<(User, Vec<UserId>)>,
    workers: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<(ConversationId, u64)>> {
    let groups = Arc::new(groups);
    let n = groups.len();
    for_each(base, n, workers, progress, move |client, i| {
        let groups = groups.clone();
        async move {
            let (admin, members) = &groups[i];
            let admin = client.with_token(admin.token.clone());
            let created = admin
                .create_group(&format!("bench {i}"), members)
                .await
                .context("create group")?;
            let id = created.conversation_id;
            let last_seq = admin.conversation(id).await?.last_seq;
            Ok((id, last_seq))
        }
    })
    .await
}
