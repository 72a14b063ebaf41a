//! API tokens: `tnc_` + base64url(id ‖ 256-bit secret). Looked up by id, then compared by
//! SHA-256 in constant time. Only the hash is stored.

use pgrx::prelude::*;
use tenancy_tokens::api_token;
use uuid::Uuid;

use super::{check_standing, last_used, random_bytes, verified};
use crate::cache;
use crate::context::{Context, Source};

/// A new token for the given id, from 256 bits of PostgreSQL's strong random source.
/// Internal: called by `create_api_token()`, which stores only its hash.
#[pg_extern(volatile, parallel_unsafe)]
fn new_api_token(id: Option<pgrx::Uuid>) -> String {
    let Some(id) = id else {
        crate::error::bad_argument(
            "tenancy: token id must not be null",
            "new_api_token() is called by create_api_token()",
        );
    };
    api_token::format(id.as_bytes(), &random_bytes::<32>())
}

/// Verifies an API token and returns the context it opens, or why not.
pub fn verify(token: &str) -> Result<Context, (Option<Uuid>, Option<Uuid>, &'static str)> {
    // A token this connection verified before skips the decoding and the hashing, as long as
    // its row still holds the same hash (see `verified.rs`).
    let known = verified::api_token(token);
    let (id, computed) = match known {
        Some(known) => known,
        None => {
            let id = api_token::parse(token)
                .map(Uuid::from_bytes)
                .map_err(|r| (None, None, r.as_str()))?;
            (id, api_token::hash(token))
        }
    };
    let Some(row) = cache::api_token(id) else {
        // The same comparison as for a known id. Timing can still tell an id this connection
        // has cached from one it has not; ids are 122 random bits, so that reveals nothing an
        // attacker could use to find a token.
        let _ = tenancy_tokens::ct_eq(&computed, &[0u8; 32]);
        return Err((None, Some(id), "unknown_token"));
    };
    if !tenancy_tokens::ct_eq(&row.hash, &computed) {
        // A kept hash no longer matching means the row changed: decide afresh.
        let fresh = known.map(|_| api_token::hash(token));
        match fresh {
            Some(fresh) if tenancy_tokens::ct_eq(&row.hash, &fresh) => {
                verified::remember_api_token(token, (id, fresh));
            }
            _ => return Err((Some(row.tenant), Some(id), "bad_secret")),
        }
    } else if known.is_none() {
        verified::remember_api_token(token, (id, computed));
    }
    // Revocation and expiry (its own and its parents') are checked with the rest of its
    // standing.
    // SAFETY: plain read of transaction state.
    let xact_start = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let ctx = Context {
        tenant: row.tenant,
        user: None,
        token: Some(id),
        actor: Some(row.created_by),
        source: Source::ApiToken,
        scopes: Some(row.scopes.clone()),
        kid: None,
        exp: None,
    };
    check_standing(&ctx).map_err(|reason| (Some(row.tenant), Some(id), reason))?;
    last_used::note_use(id, row.last_used_us, xact_start);
    Ok(ctx)
}
