//! Server administration (protocol §14): the user list's paging and
//! search, and what an erased account keeps.
//!
//! Erasure keeps the user row (messages, memberships and receipts point at
//! it) but nothing that identifies the person: the username is replaced by
//! one registration can never produce, so the name is free again; the
//! display name, password hash, avatar and settings are reset; devices
//! stay only as revoked ids (so their tokens stay refused after a
//! restart); blocks are dropped; and every message the user wrote loses
//! its text exactly as a delete (§8) does.

use parley_proto::UserId;

use super::search::contains_pattern;
use crate::error::{StoreError, StoreResult};
use crate::model::UserListQuery;

/// Largest page of the user list.
pub(crate) const MAX_USER_PAGE: usize = 200;

/// Longest search string, in characters.
const MAX_SEARCH_CHARS: usize = 64;

/// The display name an erased account shows.
pub(crate) const ERASED_DISPLAY_NAME: &str = "Deleted account";

/// A checked user-list query, ready for an engine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserListPlan {
    /// `LIKE` pattern over the lowercased username and display name, or
    /// `None` for every user.
    pub(crate) like: Option<String>,
    /// Only ids above this.
    pub(crate) after: i64,
    /// Page size.
    pub(crate) limit: usize,
}

impl UserListPlan {
    /// Checks `query`: limit 1–200, search at most 64 characters.
    pub(crate) fn of(query: &UserListQuery) -> StoreResult<UserListPlan> {
        if !(1..=MAX_USER_PAGE).contains(&query.limit) {
            return Err(StoreError::Invalid(format!(
                "limit must be 1 to {MAX_USER_PAGE}"
            )));
        }
        let search = query.search.as_deref().map(str::trim).unwrap_or("");
        if search.chars().count() > MAX_SEARCH_CHARS || search.contains('\0') {
            return Err(StoreError::Invalid(format!(
                "q must be at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(UserListPlan {
            like: (!search.is_empty()).then(|| contains_pattern(&search.to_lowercase())),
            after: query.after.map_or(0, |u| u.0),
            limit: query.limit,
        })
    }

    /// Rows to read: one more than the page, to learn whether there is more.
    pub(crate) fn fetch(&self) -> i64 {
        super::page_fetch(self.limit)
    }

    /// The page and whether more lie beyond it.
    pub(crate) fn finish<T>(&self, rows: Vec<T>) -> (Vec<T>, bool) {
        super::page_finish(rows, self.limit)
    }
}

/// Whether a user may get a new device (log in): `disabled` is the user's
/// `disabled_at_ms` as read, `None` when there is no such user. Checked in
/// the device's own transaction, so a login racing a disable cannot win.
pub(crate) fn check_may_log_in(disabled: Option<Option<i64>>) -> StoreResult<()> {
    match disabled {
        None => Err(StoreError::NotFound("user")),
        Some(Some(_)) => Err(StoreError::Forbidden("this account is disabled")),
        Some(None) => Ok(()),
    }
}

/// The username an erased account gets: unique, and impossible to
/// register (`#` is not allowed in usernames), so it never collides.
pub(crate) fn erased_username(user: UserId) -> String {
    format!("#erased-{}", user.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_bounded_and_escaped() {
        let query = |search: Option<&str>, limit| UserListQuery {
            search: search.map(str::to_owned),
            after: Some(UserId(7)),
            limit,
        };
        assert!(UserListPlan::of(&query(None, 0)).is_err());
        assert!(UserListPlan::of(&query(None, 201)).is_err());
        assert!(UserListPlan::of(&query(Some(&"x".repeat(65)), 10)).is_err());
        let plan = UserListPlan::of(&query(Some(" Al_%"), 10)).unwrap();
        assert_eq!(plan.like.as_deref(), Some("%al\\_\\%%"));
        assert_eq!(plan.after, 7);
        let plan = UserListPlan::of(&query(Some("  "), 2)).unwrap();
        assert_eq!(plan.like, None);
        assert_eq!(plan.finish(vec![1, 2, 3]), (vec![1, 2], true));
        assert!(!erased_username(UserId(3)).starts_with(|c: char| c.is_ascii_alphanumeric()));
    }
}
