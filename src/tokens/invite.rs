//! Invitation tokens: HMAC-SHA256 over (invitation id, issue time, key id), base64url.
//!
//! The table logic (who may invite, binding the email, single use) is in `sql/tokens.sql`;
//! these internal functions sign and verify, and are executable by pg_tenancy's own
//! SECURITY DEFINER functions only.

use pgrx::prelude::*;
use tenancy_tokens::invite::{self, Invitation};

use super::{keys, token_text};
use crate::{decision, error, privileged};

const INVITATION_HASH_SQL: &str = include_str!("../../sql/queries/invitation_hash.sql");

/// The one error of every invitation that does not verify; the reason goes to the log.
fn failed(reason: &str) -> ! {
    decision::denial("accept_invitation", None, reason);
    error::unauthenticated(
        "tenancy: invalid invitation",
        "the invitation is unknown, malformed, expired, revoked or already used; ask for a new one",
    )
}

/// Signs a token for the invitation with the newest active key.
#[pg_extern(volatile, parallel_unsafe)]
fn sign_invitation(
    id: Option<pgrx::Uuid>,
    issued_at: Option<pgrx::datum::TimestampWithTimeZone>,
) -> String {
    let (Some(id), Some(issued_at)) = (id, issued_at) else {
        error::bad_argument(
            "tenancy: invitation id and issue time must not be null",
            "sign_invitation() is called by invite() and resend_invitation()",
        );
    };
    let (kid, secret) = keys::signing_key();
    let pg_us: i64 = issued_at.into();
    let inv = Invitation {
        id: *id.as_bytes(),
        issued_at_us: crate::clock::pg_to_unix_us(pg_us),
        kid,
    };
    invite::sign(&inv, &secret)
}

/// Verifies an invitation token (length, strict encoding, signature with an active key, and
/// that it is the invitation's current token) and returns the invitation id; raises the
/// generic `28000` otherwise. Expiry, revocation and single use are checked by the caller under
/// the row lock.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION @extschema@.verify_invitation(token text) RETURNS uuid \
           LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'verify_invitation_wrapper';"
)]
fn verify_invitation(token: Option<&[u8]>) -> pgrx::Uuid {
    let token = token_text(token).unwrap_or_else(|reason| failed(reason));
    let inv = invite::verify(token, keys::active_secret).unwrap_or_else(|r| failed(r.as_str()));
    let id = pgrx::Uuid::from_bytes(inv.id);
    let stored: Option<Vec<u8>> = privileged::query_one(
        INVITATION_HASH_SQL,
        &[pg_sys::UUIDOID],
        &[id.into()],
        |row| row.get::<Vec<u8>>(1).ok().flatten(),
    )
    .flatten();
    let computed = tenancy_tokens::sha256(token.as_bytes());
    match stored {
        Some(hash) if tenancy_tokens::ct_eq(&hash, &computed) => id,
        Some(_) => failed("superseded"),
        None => failed("unknown_invitation"),
    }
}

/// Raises the generic invitation error, logging `reason` (for checks made in SQL).
#[pg_extern(volatile, parallel_unsafe)]
fn invitation_failed(reason: Option<&str>) {
    failed(reason.unwrap_or("unknown"))
}
