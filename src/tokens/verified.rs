//! Tokens this connection has already verified. A session presents the same token with every
//! request, and on a pooled connection the same few tokens come back again and again, so what
//! depends only on a token's text is kept: an API token's id and the SHA-256 it matched, a
//! JWT's claims and the key whose HMAC it matched. A token presented again skips the hashing,
//! the decoding and the parsing.
//!
//! Nothing else is skipped. A kept answer is used only when the token's text is the same (all
//! of it, compared in constant time) and the stored hash, or the signing key, is still the one
//! it matched; revocation, expiry, the key's retirement, the tenant's status and the actor's
//! membership are checked at every use, as for a token never seen before. Entries are found by
//! a SipHash of the text under a key of this process (the text itself is not a map key, so no
//! comparison of it can leak timing), and at most `CAPACITY` of each kind are kept.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use tenancy_tokens::jwt::Claims;
use uuid::Uuid;

/// How many tokens of each kind a connection keeps (each entry holds the token's text).
const CAPACITY: usize = 256;

struct Seen<T> {
    keys: RandomState,
    entries: HashMap<u64, (Box<str>, T), foldhash::fast::RandomState>,
}

impl<T: Clone> Seen<T> {
    fn new() -> Self {
        Seen {
            keys: RandomState::new(),
            entries: HashMap::default(),
        }
    }

    fn get(&self, token: &str) -> Option<T> {
        let (text, value) = self.entries.get(&self.keys.hash_one(token))?;
        tenancy_tokens::ct_eq(text.as_bytes(), token.as_bytes()).then(|| value.clone())
    }

    fn put(&mut self, token: &str, value: T) {
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        self.entries
            .insert(self.keys.hash_one(token), (token.into(), value));
    }
}

/// An API token: its id, and the SHA-256 of its text.
pub type ApiToken = (Uuid, [u8; 32]);

/// A JWT: the HMAC key it verified with, and its claims.
pub type Jwt = (Rc<Vec<u8>>, Rc<Claims>);

thread_local! {
    static API_TOKENS: RefCell<Seen<ApiToken>> = RefCell::new(Seen::new());
    static JWTS: RefCell<Seen<Jwt>> = RefCell::new(Seen::new());
}

/// What `token` verified to before, if this connection verified it.
pub fn api_token(token: &str) -> Option<ApiToken> {
    API_TOKENS.with(|s| s.borrow().get(token))
}

pub fn remember_api_token(token: &str, verified: ApiToken) {
    API_TOKENS.with(|s| s.borrow_mut().put(token, verified));
}

/// What `token` verified to before, if this connection verified it.
pub fn jwt(token: &str) -> Option<Jwt> {
    JWTS.with(|s| s.borrow().get(token))
}

pub fn remember_jwt(token: &str, verified: Jwt) {
    JWTS.with(|s| s.borrow_mut().put(token, verified));
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn only_the_same_text_finds_an_entry_and_the_size_is_bounded() {
        let mut seen: Seen<u32> = Seen::new();
        seen.put("tnc_abc", 1);
        assert_eq!(seen.get("tnc_abc"), Some(1));
        assert_eq!(seen.get("tnc_abd"), None);
        assert_eq!(seen.get("tnc_ab"), None);
        assert_eq!(seen.get(""), None);
        for i in 0..(super::CAPACITY * 3) {
            seen.put(&format!("t{i}"), 0);
            assert!(seen.entries.len() <= super::CAPACITY);
        }
    }
}
