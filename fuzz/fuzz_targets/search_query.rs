//! Fuzzes search planning through `parley_store::plan_query` (what
//! `GET /v1/search?q=` runs before any SQL): no input panics, a query is
//! refused exactly when it breaks the documented bounds, and the plan means
//! what the query says. Differential check against a substring model: the
//! plan's `LIKE` pattern, read by the small `LIKE` matcher below, matches a
//! text exactly when the text contains the query (case-sensitively: case
//! folding is the engines' collation, not the plan's), and its FTS5 phrase
//! unquotes to the query.
//!
//! Input: `query` or `query \x1f text`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::limits::SEARCH_MAX_QUERY_CHARS;
use parley_store::plan_query;

/// A `LIKE` pattern token (escape character `\`).
enum Token {
    /// `%`: any run of characters.
    Any,
    /// `_`: one character.
    One,
    /// Anything else, or an escaped `%`, `_`, `\`.
    Literal(char),
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Literal(chars.next().expect("an escape is followed by a character")),
            c => Token::Literal(c),
        });
    }
    out
}

/// Whether `text` matches the `LIKE` `pattern` (dynamic programming over
/// the pattern's tokens: `reach[i]` says the first `i` characters match).
fn like(pattern: &str, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for token in tokens(pattern) {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Any => {
                let mut any = false;
                for i in 0..=text.len() {
                    any |= reach[i];
                    next[i] = any;
                }
            }
            Token::One => {
                for i in 1..=text.len() {
                    next[i] = reach[i - 1];
                }
            }
            Token::Literal(c) => {
                for i in 1..=text.len() {
                    next[i] = reach[i - 1] && text[i - 1] == c;
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

/// The text of an FTS5 phrase: `"..."` with inner quotes doubled.
fn unquote(phrase: &str) -> Option<String> {
    let inner = phrase.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' && chars.next()? != '"' {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (query, text) = input.split_once('\u{1f}').unwrap_or((input, ""));
    let chars = query.chars().count();
    let valid = (1..=SEARCH_MAX_QUERY_CHARS).contains(&chars) && !query.contains('\0');
    match plan_query(query) {
        Err(_) => assert!(!valid, "{query:?} refused"),
        Ok(plan) => {
            assert!(valid, "{query:?} accepted");
            assert_eq!(plan.uses_index(), chars >= 3);
            assert_eq!(unquote(plan.fts_phrase()).as_deref(), Some(query));
            assert!(like(plan.like_pattern(), query));
            assert_eq!(
                like(plan.like_pattern(), text),
                text.contains(query),
                "{query:?} in {text:?}"
            );
        }
    }
});
