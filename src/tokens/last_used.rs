//! `last_used_at` of API tokens, kept at most a minute stale.
//!
//! `authenticate()` writes nothing: a use is handed to the log writer (`journal`), which brings
//! `last_used_at` up to date in a transaction of its own. So the caller's transaction holds no
//! lock on the token's row (a stolen token held in an open transaction cannot make the owner's
//! `revoke_api_token()` wait, and workers sharing a token do not queue behind each other), and a
//! use is recorded whether the caller's transaction commits or not. Each connection hands over
//! a token's use at most once a minute; `last_used_at` is not part of what the caches
//! invalidate. Without the preloaded library (no log writer) `last_used_at` is not kept.

use std::cell::RefCell;
use std::collections::HashMap;

use uuid::Uuid;

use crate::{clock, journal};

/// How stale `last_used_at` may get: one minute.
const INTERVAL_US: i64 = 60_000_000;
/// Tokens remembered per connection before the memory starts over.
const REMEMBERED: usize = 16_384;

thread_local! {
    /// When this connection last handed over a use of each token (PostgreSQL microseconds).
    static HANDED_OVER: RefCell<HashMap<Uuid, i64>> = RefCell::new(HashMap::new());
}

/// Notes a use of token `id` at `now` (PostgreSQL microseconds); `stored` is its
/// `last_used_at` as last read. Hands the use to the log writer when both are over a minute old.
pub fn note_use(id: Uuid, stored: Option<i64>, now: i64) {
    let handed = HANDED_OVER.with(|h| h.borrow().get(&id).copied());
    if stored
        .max(handed)
        .is_some_and(|at| at >= now.saturating_sub(INTERVAL_US))
    {
        return;
    }
    if journal::token_used(id, clock::pg_to_unix_us(now)) {
        HANDED_OVER.with(|h| {
            let mut h = h.borrow_mut();
            if h.len() >= REMEMBERED {
                h.clear();
            }
            h.insert(id, now);
        });
    }
}
