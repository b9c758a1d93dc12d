//! Who blocks whom (protocol §11), cached per user for the paths that
//! cannot afford a store read each time: presence (both directions: a
//! blocked pair never sees each other online or last seen) and typing.
//! Sends are checked by the store itself, inside the send's transaction.
//!
//! A user's list is loaded on first use and replaced whenever that user
//! blocks or unblocks someone through this node. (Several nodes sharing a
//! database would each need to hear of the change; cluster mode will.)

use std::collections::HashSet;
use std::sync::Arc;

use dashmap::DashMap;
use parley_proto::UserId;
use parley_store::{Store, StoreError};

/// Users each user blocks.
#[derive(Default)]
pub struct BlockCache {
    lists: DashMap<UserId, Arc<HashSet<UserId>>>,
}

impl BlockCache {
    /// The users `user` blocks.
    pub async fn blocked_by(
        &self,
        store: &dyn Store,
        user: UserId,
    ) -> Result<Arc<HashSet<UserId>>, StoreError> {
        if let Some(list) = self.lists.get(&user) {
            return Ok(list.clone());
        }
        let list: Arc<HashSet<UserId>> = Arc::new(store.blocks(user).await?.into_iter().collect());
        self.lists.insert(user, list.clone());
        Ok(list)
    }

    /// Whether either of `a` and `b` blocks the other.
    pub async fn between(
        &self,
        store: &dyn Store,
        a: UserId,
        b: UserId,
    ) -> Result<bool, StoreError> {
        if a == b {
            return Ok(false);
        }
        Ok(self.blocked_by(store, a).await?.contains(&b)
            || self.blocked_by(store, b).await?.contains(&a))
    }

    /// `user` blocked or unblocked someone: read its list afresh.
    pub async fn reload(&self, store: &dyn Store, user: UserId) -> Result<(), StoreError> {
        let list: Arc<HashSet<UserId>> = Arc::new(store.blocks(user).await?.into_iter().collect());
        self.lists.insert(user, list);
        Ok(())
    }
}
