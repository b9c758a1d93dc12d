//! Limits fixed by the protocol itself (§2, §4, §5), shared by the server's
//! validation and by clients that want to check input before sending it.
//! Limits an operator may change are fields of the server's `Config`.

/// Shortest username, in characters (`[a-z0-9_.]`).
pub const USERNAME_MIN_CHARS: usize = 3;
/// Longest username, in characters.
pub const USERNAME_MAX_CHARS: usize = 32;
/// Shortest password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password, in characters.
pub const PASSWORD_MAX_CHARS: usize = 256;
/// History page size when the request gives none.
pub const HISTORY_DEFAULT_LIMIT: usize = 50;
/// Largest history page.
pub const HISTORY_MAX_LIMIT: usize = 100;
/// Search results per page when the request gives none (§10).
pub const SEARCH_DEFAULT_LIMIT: usize = 20;
/// Most search results per page.
pub const SEARCH_MAX_LIMIT: usize = 50;
/// Longest search query, in characters.
pub const SEARCH_MAX_QUERY_CHARS: usize = 256;
/// Longest display name, in characters (§11).
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
