//! Store fixtures every test binary shares: where a test's data lives
//! (SQLite in a temp dir, or a fresh PostgreSQL database), and the users,
//! devices and groups most tests start from.

use parley_proto::{ConversationId, DeviceId, UserId};
use parley_store::{NewGroup, NewUser, Store, StoreConfig, sqlite};

use super::TestDatabase;

/// SQLite in `dir`, with default options.
pub(crate) fn sqlite_config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig::Sqlite {
        path: dir.join("parley.db"),
        options: sqlite::SqliteOptions::default(),
    }
}

impl TestDatabase {
    /// This database, with default options.
    pub(crate) fn config(&self) -> StoreConfig {
        StoreConfig::Postgres {
            url: self.url.clone(),
            options: Default::default(),
        }
    }
}

/// Creates a user named `name` (shown as `NAME`); panics on failure.
pub(crate) async fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(NewUser {
            username: name.into(),
            display_name: name.to_uppercase(),
            password_hash: "$argon2id$fake".into(),
            now_ms: 1_000,
            is_admin: false,
        })
        .await
        .expect("create user")
        .id
}

/// Logs `user` in on a new device; panics on failure.
pub(crate) async fn device(store: &dyn Store, user: UserId) -> DeviceId {
    store
        .create_device(user, "phone".into(), 2_000)
        .await
        .expect("create device")
        .id
}

/// `count` users named `{prefix}{i}`, each with one device.
pub(crate) async fn users_with_devices(
    store: &dyn Store,
    prefix: &str,
    count: usize,
) -> Vec<(UserId, DeviceId)> {
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        let id = user(store, &format!("{prefix}{i}")).await;
        users.push((id, device(store, id).await));
    }
    users
}

/// A group of `users` named `name`, the first one its admin.
pub(crate) async fn group_of(
    store: &dyn Store,
    name: &str,
    users: &[(UserId, DeviceId)],
) -> ConversationId {
    let ids: Vec<UserId> = users.iter().map(|u| u.0).collect();
    store
        .create_group(NewGroup {
            creator: ids[0],
            name: name.into(),
            member_ids: ids[1..].to_vec(),
            max_members: 1024,
            now_ms: 1,
        })
        .await
        .expect("create group")
        .id
}
