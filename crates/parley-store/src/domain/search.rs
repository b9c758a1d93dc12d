//! Search (protocol §10): checking a query, how engines match it, and its
//! keyset paging.
//!
//! Both engines match a case-insensitive substring of the current text of
//! `text` messages that are not deleted, within the viewer's membership
//! periods (the same rule as history), newest first. Queries of 3 or more
//! characters use the trigram index (SQLite FTS5 `trigram`, PostgreSQL
//! `pg_trgm`); shorter ones cannot (a trigram needs 3 characters) and scan
//! the viewer's visible messages with `LIKE` instead.
//!
//! Paging: results are ordered by message id, descending. Ids are given
//! out in commit order, so within one conversation this is seq order. A
//! next page is asked for with `before_id` (the last result's id), or,
//! within one conversation, `before_seq`.

use crate::error::{StoreError, StoreResult};
use crate::model::SearchQuery;
use parley_proto::limits::{
    SEARCH_MAX_LIMIT as MAX_LIMIT, SEARCH_MAX_QUERY_CHARS as MAX_QUERY_CHARS,
};

/// Shortest query the trigram index can answer.
pub(crate) const INDEXED_MIN_CHARS: usize = 3;

/// A checked search, ready for an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPlan {
    /// Results per page.
    pub(crate) limit: usize,
    /// Use the trigram index (3+ characters), else a `LIKE` scan.
    pub(crate) indexed: bool,
    /// The query as a `LIKE` pattern with `\` escaping `%`, `_` and `\`.
    pub(crate) like: String,
    /// The query as an FTS5 phrase (for SQLite's trigram index).
    pub(crate) phrase: String,
    /// Only ids below this (`i64::MAX`: no bound).
    pub(crate) before_id: i64,
    /// Only seqs below this (`i64::MAX`: no bound).
    pub(crate) before_seq: i64,
}

/// A `LIKE` pattern matching any text that contains `text`, with `\`
/// escaping `%`, `_` and `\` (use `ESCAPE '\\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut like = String::with_capacity(text.len() + 2);
    like.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            like.push('\\');
        }
        like.push(c);
    }
    like.push('%');
    like
}

impl SearchPlan {
    /// Checks `query`: text of 1–256 characters, limit 1–50,
    /// `before_seq` only with a conversation.
    pub(crate) fn of(query: &SearchQuery) -> StoreResult<SearchPlan> {
        let chars = query.text.chars().count();
        if chars == 0 || chars > MAX_QUERY_CHARS {
            return Err(StoreError::Invalid(format!(
                "q must be 1 to {MAX_QUERY_CHARS} characters"
            )));
        }
        if query.text.contains('\0') {
            return Err(StoreError::Invalid("q must not contain NUL".into()));
        }
        if !(1..=MAX_LIMIT).contains(&query.limit) {
            return Err(StoreError::Invalid(format!(
                "limit must be 1 to {MAX_LIMIT}"
            )));
        }
        if query.before_seq.is_some() && query.conversation.is_none() {
            return Err(StoreError::Invalid(
                "before_seq needs conversation_id; page across conversations with before_id".into(),
            ));
        }
        Ok(SearchPlan {
            limit: query.limit,
            indexed: chars >= INDEXED_MIN_CHARS,
            like: contains_pattern(&query.text),
            phrase: format!("\"{}\"", query.text.replace('"', "\"\"")),
            before_id: query.before_id.unwrap_or(i64::MAX),
            before_seq: query
                .before_seq
                .map(|s| s.min(i64::MAX as u64) as i64)
                .unwrap_or(i64::MAX),
        })
    }

    /// Rows to read: one more than the page, to learn whether there is more.
    pub(crate) fn fetch(&self) -> i64 {
        super::page_fetch(self.limit)
    }

    /// The page (newest first) and whether more lie beyond it.
    pub(crate) fn finish<T>(&self, rows: Vec<T>) -> (Vec<T>, bool) {
        super::page_finish(rows, self.limit)
    }
}

/// Plans a search for the text a user typed, as `GET /v1/search?q=` does
/// with no other parameter: the public entry point of the fuzz target
/// `search_query` (fuzz/fuzz_targets/search_query.rs), which checks the
/// plan against a plain substring model.
pub fn plan_query(text: &str) -> StoreResult<SearchPlan> {
    SearchPlan::of(&SearchQuery {
        viewer: parley_proto::UserId(0),
        text: text.to_owned(),
        conversation: None,
        before_seq: None,
        before_id: None,
        limit: parley_proto::limits::SEARCH_DEFAULT_LIMIT,
    })
}

/// Read access for code outside the store (the fuzz target).
impl SearchPlan {
    /// Whether the trigram index answers it (else a `LIKE` scan).
    pub fn uses_index(&self) -> bool {
        self.indexed
    }

    /// The `LIKE` pattern (escape character `\`).
    pub fn like_pattern(&self) -> &str {
        &self.like
    }

    /// The FTS5 phrase.
    pub fn fts_phrase(&self) -> &str {
        &self.phrase
    }
}

#[cfg(test)]
mod tests {
    use parley_proto::{ConversationId, UserId};

    use super::*;

    fn query(text: &str) -> SearchQuery {
        SearchQuery {
            viewer: UserId(1),
            text: text.into(),
            conversation: None,
            before_seq: None,
            before_id: None,
            limit: parley_proto::limits::SEARCH_DEFAULT_LIMIT,
        }
    }

    #[test]
    fn queries_are_bounded() {
        assert!(SearchPlan::of(&query("")).is_err());
        assert!(SearchPlan::of(&query(&"咖".repeat(256))).is_ok());
        assert!(SearchPlan::of(&query(&"咖".repeat(257))).is_err());
        let mut q = query("abc");
        q.limit = 51;
        assert!(SearchPlan::of(&q).is_err());
        q.limit = 1;
        q.before_seq = Some(3);
        assert!(
            SearchPlan::of(&q).is_err(),
            "before_seq needs a conversation"
        );
        q.conversation = Some(ConversationId(1));
        assert_eq!(SearchPlan::of(&q).unwrap().before_seq, 3);
    }

    #[test]
    fn short_queries_scan_and_patterns_are_escaped() {
        let plan = SearchPlan::of(&query("咖啡")).unwrap();
        assert!(!plan.indexed);
        let plan = SearchPlan::of(&query("50%_\\\"x")).unwrap();
        assert!(plan.indexed);
        assert_eq!(plan.like, "%50\\%\\_\\\\\"x%");
        assert_eq!(plan.phrase, "\"50%_\\\"\"x\"");
    }

    #[test]
    fn pages_keep_one_extra_row_to_know_about_more() {
        let plan = SearchPlan::of(&SearchQuery {
            limit: 2,
            ..query("abc")
        })
        .unwrap();
        assert_eq!(plan.fetch(), 3);
        assert_eq!(plan.finish(vec![5, 4, 3]), (vec![5, 4], true));
        assert_eq!(plan.finish(vec![5]), (vec![5], false));
    }
}
