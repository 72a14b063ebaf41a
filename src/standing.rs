//! Whether the context still stands: its tenant is active, its credential (an API token and
//! every token it was made from, a JWT's signing key and expiry) is still valid, and its actor
//! is still a member (or a platform admin). Checked when the context is entered, and again at
//! the first use in every statement, so that a revocation, a suspension, a retired key or a
//! removed member committed by another session is honoured by the next statement of an open
//! transaction, not only by the next transaction.
//!
//! The answers come from the caches, and the last verdict is kept until one of three things
//! moves: the context, the number of invalidations this connection has processed (any change to
//! the rows the caches hold), or the clock passing the earliest expiry of the credential.

use std::cell::Cell;

use uuid::Uuid;

use crate::context::{self, Context, Remote, Source};
use crate::{cache, citus, decision, error, privileged, unguarded};

/// Tokens made from tokens are followed this far up; deeper chains do not verify.
const MAX_TOKEN_CHAIN: usize = 16;

/// The last verdict: (context generation, invalidations processed, valid until (PostgreSQL
/// microseconds)).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Verdict {
    generation: u64,
    invalidations: u64,
    valid_until: i64,
}

thread_local! {
    static LAST: Cell<Option<Verdict>> = const { Cell::new(None) };
    /// Set while a check runs: the look-ups it makes run queries, whose executor start would
    /// otherwise check again.
    static CHECKING: Cell<bool> = const { Cell::new(false) };
}

fn now_pg_us() -> i64 {
    unguarded::statement_start()
}

/// Why the transaction's context no longer stands, or `Ok` (also without a context). Cheap
/// when nothing changed since the last look.
pub fn verdict() -> Result<(), &'static str> {
    if !context::has_tenant() || CHECKING.with(|c| c.get()) {
        return Ok(());
    }
    cache::sync();
    let now = now_pg_us();
    let generation = context::generation();
    let invalidations = cache::invalidations();
    if LAST.with(|l| l.get()).is_some_and(|v| {
        v.generation == generation && v.invalidations == invalidations && now < v.valid_until
    }) {
        return Ok(());
    }
    let remote = context::remote();
    let Some(ctx) = context::current() else {
        return Ok(());
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CHECKING.with(|c| c.set(false));
        }
    }
    CHECKING.with(|c| c.set(true));
    let verdict = {
        let _reset = Reset;
        match &remote {
            Some(remote) => verify_remote(remote, now),
            None => verify(&ctx, now),
        }
    };
    match verdict {
        Ok(valid_until) => {
            LAST.with(|l| {
                l.set(Some(Verdict {
                    generation,
                    invalidations,
                    valid_until,
                }))
            });
            Ok(())
        }
        Err(reason) => {
            LAST.with(|l| l.set(None));
            Err(reason)
        }
    }
}

/// Raises (and records the denial) when the transaction's context no longer stands: `42501`
/// when the user a trusted backend named is no longer a member (as `set_tenant()` would say),
/// `28000` otherwise (the tenant, or the credential of `authenticate()`).
pub fn check(action: &str) {
    let Err(reason) = verdict() else {
        return;
    };
    decision::denial(action, None, reason);
    let set_tenant = context::current().is_some_and(|c| c.source == Source::SetTenant);
    if set_tenant && reason == "not_a_member" {
        error::forbidden(
            "tenancy: the acting user of this transaction is no longer a member of its tenant",
            "the user was removed (or lost platform admin) since the context was set; end the transaction",
        );
    }
    error::unauthenticated(
        "tenancy: the context of this transaction is no longer valid",
        "its tenant was suspended, or its credential revoked, retired or expired (or its user \
         removed) since it was set; end the transaction and authenticate again",
    );
}

/// Whether `ctx` stands at `now` (PostgreSQL microseconds): `Ok` with the time until which
/// the answer holds (barring invalidations), or why not.
pub fn verify(ctx: &Context, now: i64) -> Result<i64, &'static str> {
    if !cache::tenant_active(ctx.tenant).unwrap_or(false) {
        return Err("tenant_unknown_or_suspended");
    }
    let mut valid_until = i64::MAX;
    match ctx.source {
        Source::SetTenant => {}
        Source::ApiToken => {
            let Some(token) = ctx.token else {
                return Err("unknown_token");
            };
            valid_until = token_chain(token, ctx.tenant, now)?;
        }
        Source::Jwt => {
            if !ctx.kid.as_deref().is_some_and(key_active) {
                return Err("key_retired");
            }
            let exp_us = ctx.exp.map_or(i64::MIN, |s| {
                crate::clock::unix_to_pg_us(s.saturating_mul(1_000_000))
            });
            if exp_us <= now {
                return Err("expired");
            }
            valid_until = exp_us;
        }
    }
    if let Some(actor) = ctx.actor {
        let standing = cache::membership(ctx.tenant, actor);
        if standing.role.is_none() && !standing.platform_admin {
            return Err("not_a_member");
        }
    }
    Ok(valid_until)
}

/// Whether a context handed over by a Citus coordinator stands for this backend now. Its seal
/// was verified when it was set (`cluster.rs`); here its binding: the distributed transaction
/// this backend serves, not ended on this node; the role; the expiry. The tenant, token and
/// membership were checked by the coordinator, which holds those rows.
fn verify_remote(remote: &Remote, now: i64) -> Result<i64, &'static str> {
    if remote.not_after <= now {
        return Err("signed_context_expired");
    }
    if privileged::connecting_role_name() != remote.role {
        return Err("signed_context_for_another_role");
    }
    let txn = citus::DistributedTxn {
        initiator: remote.txn.0,
        number: remote.txn.1,
        timestamp: remote.txn.2,
    };
    if citus::current_transaction() != Some(txn) {
        return Err("signed_context_for_another_transaction");
    }
    if citus::has_ended(txn) {
        return Err("signed_context_of_ended_transaction");
    }
    citus::serving(txn);
    Ok(remote.not_after)
}

/// Whether API token `id` of `tenant`, and every token it was made from, is known, not revoked
/// and not expired at `now`: the earliest expiry of the chain, or why not.
pub fn token_chain(id: Uuid, tenant: Uuid, now: i64) -> Result<i64, &'static str> {
    let mut valid_until = i64::MAX;
    let mut next = Some(id);
    for _ in 0..MAX_TOKEN_CHAIN {
        let Some(id) = next else {
            return Ok(valid_until);
        };
        let Some(row) = cache::api_token(id) else {
            return Err("unknown_token");
        };
        if row.tenant != tenant {
            return Err("unknown_token");
        }
        if row.revoked {
            return Err("revoked");
        }
        if let Some(at) = row.expires_us {
            if at <= now {
                return Err("expired");
            }
            valid_until = valid_until.min(at);
        }
        next = row.parent;
    }
    Err("token_chain_too_long")
}

fn key_active(kid: &str) -> bool {
    cache::signing_secret(kid).is_some()
}
