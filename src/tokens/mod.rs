//! Tokens verified inside the database: signing keys, invitations, API tokens and HS256 JWTs.
//!
//! The formats live in the `tenancy_tokens` crate (pure Rust, fuzzed); this module stores and
//! looks them up. Every failure a caller can see is one `28000` with one message per action;
//! the reason goes to the server log only.

pub mod api_token;
pub mod invite;
pub mod jwt;
pub mod keys;
mod last_used;
mod verified;

use pgrx::prelude::*;
use uuid::Uuid;

use crate::context::{self, Context};
use crate::{cache, cluster, decision, entry, error, standing};

/// Message and hint of every failed `authenticate()`.
const AUTH_FAILED: &str = "tenancy: authentication failed";
const AUTH_HINT: &str = "the token is unknown, malformed, expired or revoked; obtain a new one";

/// Fills a buffer from PostgreSQL's strong random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SAFETY: the buffer is valid for N bytes.
    let ok = unsafe { pg_sys::pg_strong_random(buf.as_mut_ptr().cast(), N) };
    if !ok {
        error::internal("the server's strong random source failed");
    }
    buf
}

/// The token as text, or `None` when it is absent, too long or not UTF-8. The length is
/// checked before anything else is done with the bytes.
pub fn token_text(raw: Option<&[u8]>) -> Result<&str, &'static str> {
    let raw = raw.ok_or("null")?;
    if raw.is_empty() {
        return Err("empty");
    }
    if raw.len() > tenancy_tokens::MAX_TOKEN_LEN {
        return Err("too_long");
    }
    std::str::from_utf8(raw).map_err(|_| "not_utf8")
}

/// Logs why `authenticate()` failed and raises the one generic error.
fn auth_failed(tenant: Option<Uuid>, token: Option<Uuid>, reason: &str) -> ! {
    decision::record_always(tenant, None, token, "authenticate", None, false, reason);
    error::unauthenticated(AUTH_FAILED, AUTH_HINT)
}

/// Accepts an API token (`tnc_…`) or an HS256 JWT and sets the context of the transaction.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION @extschema@.authenticate(token text) RETURNS void \
           LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'authenticate_wrapper';"
)]
fn authenticate(token: Option<&[u8]>) {
    entry::warn_if_bypassing_rls();
    cache::sync_now();
    let token = token_text(token).unwrap_or_else(|reason| auth_failed(None, None, reason));
    let ctx = if token.starts_with(tenancy_tokens::api_token::PREFIX) {
        api_token::verify(token)
            .unwrap_or_else(|(tenant, id, reason)| auth_failed(tenant, id, reason))
    } else {
        jwt::verify(token).unwrap_or_else(|(tenant, reason)| auth_failed(tenant, None, reason))
    };
    if context::enter(&ctx) {
        cluster::hand_over();
    }
}

/// Checks shared by both kinds of token once the credential itself verified: the context it
/// would open stands now (`standing::verify`: tenant active, token chain or key valid, actor a
/// member or a platform admin).
fn check_standing(ctx: &Context) -> Result<(), &'static str> {
    // SAFETY: plain read of the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    standing::verify(ctx, now)?;
    if let Some(actor) = ctx.actor {
        let membership = cache::membership(ctx.tenant, actor);
        if membership.role.is_none() && membership.platform_admin {
            decision::record_always(
                Some(ctx.tenant),
                Some(actor),
                ctx.token,
                "authenticate",
                None,
                true,
                "platform_admin",
            );
        }
    }
    Ok(())
}
