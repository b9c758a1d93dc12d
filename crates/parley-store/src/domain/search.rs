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
//!
//! Windows: an engine does not ask its index for every match and sort
//! them first (a common word matches half the store, and a short query
//! scans everything the viewer may see): it searches newest first in
//! [`SearchWindows`], ranges of message ids (of seqs, within one
//! conversation), and stops as soon as a page (plus the one row that says
//! there is more) is full. The first [`PREFIX_WINDOWS`] windows are small
//! ([`FIRST_WINDOW`] keys below the newest, growing [`WINDOW_GROWTH`]
//! times each step, 5,376 keys in all), so a common word, a two-letter
//! query or a frequent phrase fills its page after reading a few hundred
//! rows; the last window is everything older, one query as without
//! windows, so a rare word costs what it did plus the prefix. (More,
//! larger windows would cost PostgreSQL one GIN scan each: its trigram
//! index cannot be read by id range.) The results are the same as one
//! query over everything: windows are disjoint, visited newest first, and
//! each is read newest first.

use crate::error::{StoreError, StoreResult};
use crate::model::SearchQuery;
use parley_proto::limits::{
    SEARCH_MAX_LIMIT as MAX_LIMIT, SEARCH_MAX_QUERY_CHARS as MAX_QUERY_CHARS,
};

/// Shortest query the trigram index can answer.
pub(crate) const INDEXED_MIN_CHARS: usize = 3;

/// Keys (message ids, or seqs within one conversation) in the first
/// search window: small enough that a scan of it is a fraction of a
/// millisecond, large enough that a common word fills a page in it.
pub(crate) const FIRST_WINDOW: i64 = 256;

/// How many times larger each search window is than the one before.
pub(crate) const WINDOW_GROWTH: i64 = 4;

/// Small windows before the last one, which takes everything older.
pub(crate) const PREFIX_WINDOWS: usize = 3;

/// Message kinds whose text is searched: text messages and the captions
/// of media messages (§8, §9). Engines write this list into their SQL
/// (and PostgreSQL's partial index predicate is the same list, so that
/// the planner can use the index).
pub(crate) const SEARCHED_KINDS_SQL: &str = "'text','image','video','audio','file'";

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
    /// Windows run over seqs (a search within one conversation) rather
    /// than over message ids.
    pub(crate) by_seq: bool,
}

/// One search window: keys in `from..to` (message ids, or seqs within
/// one conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Lowest key in the window.
    pub(crate) from: i64,
    /// Keys are below this.
    pub(crate) to: i64,
}

impl Window {
    /// No bound.
    pub(crate) const ALL: Window = Window {
        from: i64::MIN,
        to: i64::MAX,
    };
}

/// The windows of one search, newest first (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct SearchWindows {
    /// The next window's upper bound (exclusive).
    to: i64,
    /// The next window's size.
    size: i64,
    /// Small windows given out so far.
    given: usize,
}

impl Iterator for SearchWindows {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        // Keys start at 1 (ids and seqs alike).
        if self.to <= 1 {
            return None;
        }
        let from = if self.given < PREFIX_WINDOWS {
            self.to.saturating_sub(self.size).max(1)
        } else {
            1
        };
        let window = Window { from, to: self.to };
        self.to = from;
        self.size = self.size.saturating_mul(WINDOW_GROWTH);
        self.given += 1;
        Some(window)
    }
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
            by_seq: query.conversation.is_some(),
        })
    }

    /// The windows to search, newest first, given the newest key there
    /// is: the newest message id, or within one conversation its newest
    /// seq (0 when there is none).
    pub(crate) fn windows(&self, newest: i64) -> SearchWindows {
        let bound = if self.by_seq {
            self.before_seq
        } else {
            self.before_id
        };
        SearchWindows {
            to: bound.min(newest.saturating_add(1)),
            size: FIRST_WINDOW,
            given: 0,
        }
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
    fn windows_cover_every_key_once_newest_first() {
        let plan = SearchPlan::of(&query("abc")).unwrap();
        let windows: Vec<Window> = plan.windows(100_000).collect();
        assert_eq!(
            windows[0],
            Window {
                from: 100_001 - FIRST_WINDOW,
                to: 100_001
            }
        );
        assert_eq!(windows.len(), PREFIX_WINDOWS + 1);
        assert_eq!(windows.last().unwrap().from, 1, "the last takes the rest");
        for pair in windows.windows(2) {
            assert_eq!(pair[1].to, pair[0].from, "adjacent, newest first");
            assert!(pair[1].to - pair[1].from > pair[0].to - pair[0].from);
        }
        assert_eq!(plan.windows(0).count(), 0, "an empty store");
        // Paging starts below the last result; within a conversation
        // windows run over seqs.
        let mut q = query("abc");
        q.before_id = Some(10);
        assert_eq!(
            SearchPlan::of(&q)
                .unwrap()
                .windows(100_000)
                .collect::<Vec<_>>(),
            [Window { from: 1, to: 10 }]
        );
        q.conversation = Some(ConversationId(1));
        q.before_seq = Some(500);
        let plan = SearchPlan::of(&q).unwrap();
        assert!(plan.by_seq);
        assert_eq!(plan.windows(1_000).next().unwrap().to, 500);
        assert_eq!(plan.windows(7).next().unwrap(), Window { from: 1, to: 8 });
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
