//! Signing keys: HMAC-SHA256 secrets for invitation tokens and HS256 JWTs, by `kid`.
//!
//! Several keys may be active at once (rotation); a retired key verifies nothing. Secrets are
//! readable by superusers only; `create_signing_key()` returns one once, for the application
//! that mints JWTs.
//!
//! The HMAC key is the ASCII text of the base64url secret (43 characters carrying 256 random
//! bits), exactly the string `create_signing_key()` returns: JWT libraries take a string secret
//! as its UTF-8 bytes, so the application passes the string as it is.

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::random_bytes;
use crate::{cache, error, privileged};

const NEWEST_KEY_SQL: &str = include_str!("../../sql/queries/newest_key.sql");
const INSERT_KEY_SQL: &str = include_str!("../../sql/queries/insert_key.sql");
const RETIRE_KEY_SQL: &str = include_str!("../../sql/queries/retire_key.sql");

/// The HMAC key made from a stored secret: the ASCII of its base64url text.
fn hmac_key(secret: &[u8]) -> Vec<u8> {
    tenancy_tokens::b64url_encode(secret).into_bytes()
}

/// The HMAC key of an active key, or `None` for an unknown or retired kid.
pub fn active_secret(kid: &str) -> Option<Vec<u8>> {
    if kid.is_empty() || kid.len() > 64 {
        return None;
    }
    cache::signing_secret(kid).map(|secret| hmac_key(&secret))
}

fn insert_key(client: &mut SpiClient<'_>) -> (String, Vec<u8>) {
    let kid = tenancy_tokens::b64url_encode(&random_bytes::<9>());
    let secret = random_bytes::<32>().to_vec();
    if client
        .update(
            INSERT_KEY_SQL,
            None,
            &[kid.clone().into(), secret.clone().into()],
        )
        .is_err()
    {
        error::internal("a new signing key does not insert");
    }
    (kid, secret)
}

/// The kid and HMAC key of the newest active key, created when there is none (so invitations
/// work out of the box).
pub fn signing_key() -> (String, Vec<u8>) {
    let (kid, secret) = privileged::as_superuser(|| {
        Spi::connect_mut(|client| {
            let Ok(mut table) = client.select(NEWEST_KEY_SQL, Some(1), &[]) else {
                error::internal("the newest signing key cannot be read");
            };
            let newest = table.next().map(|row| {
                (
                    row.get::<String>(1).ok().flatten().unwrap_or_default(),
                    row.get::<Vec<u8>>(2).ok().flatten().unwrap_or_default(),
                )
            });
            match newest {
                Some(key) if !key.0.is_empty() && key.1.len() >= 32 => key,
                _ => insert_key(client),
            }
        })
    });
    (kid, hmac_key(&secret))
}

/// Creates a new active signing key and returns its kid and base64url secret, once.
/// Superusers only (no EXECUTE is granted).
#[pg_extern(volatile, parallel_unsafe)]
fn create_signing_key() -> TableIterator<'static, (name!(kid, String), name!(secret, String))> {
    let (kid, secret) = privileged::as_superuser(|| Spi::connect_mut(insert_key));
    TableIterator::once((kid, tenancy_tokens::b64url_encode(&secret)))
}

/// Retires a key: tokens and invitations signed with it stop verifying. Superusers only.
#[pg_extern(volatile, parallel_unsafe)]
fn retire_signing_key(kid: Option<&str>) {
    let Some(kid) = kid else {
        error::bad_argument(
            "tenancy: kid must not be null",
            "pass the kid create_signing_key() returned",
        );
    };
    let retired = privileged::as_superuser(|| {
        Spi::connect_mut(|client| {
            client
                .update(RETIRE_KEY_SQL, None, &[kid.into()])
                .map(|t| t.len())
                .unwrap_or(0)
        })
    });
    if retired == 0 {
        error::bad_argument(
            format!(
                "tenancy: unknown or already retired signing key {}",
                error::echo(kid)
            ),
            "SELECT kid, created_at, retired_at FROM tenancy.signing_keys lists the keys",
        );
    }
}
