//! API tokens: `tnc_` + base64url(id ‖ 256-bit secret). Looked up by id, then compared by
//! SHA-256 in constant time. Only the hash is stored.

use pgrx::prelude::*;
use tenancy_tokens::api_token;
use uuid::Uuid;

use super::{check_standing, random_bytes, write_if_possible};
use crate::context::{Context, Source};
use crate::privileged;

const LOOKUP_SQL: &str = include_str!("../../sql/queries/api_token_lookup.sql");
const TOUCH_SQL: &str = include_str!("../../sql/queries/api_token_touch.sql");

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

struct Row {
    tenant: Uuid,
    created_by: Uuid,
    scopes: Vec<String>,
    hash: Vec<u8>,
    revoked: bool,
    expired: bool,
    stale: bool,
}

fn lookup(id: Uuid) -> Option<Row> {
    let arg: pgrx::Uuid = pgrx::Uuid::from_bytes(*id.as_bytes());
    privileged::query_one(LOOKUP_SQL, &[pg_sys::UUIDOID], &[arg.into()], |row| {
        let uuid = |i: usize| {
            row.get::<pgrx::Uuid>(i)
                .ok()
                .flatten()
                .map(|u| Uuid::from_bytes(*u.as_bytes()))
        };
        let flag = |i: usize| row.get::<bool>(i).ok().flatten().unwrap_or(true);
        Some(Row {
            tenant: uuid(1)?,
            created_by: uuid(2)?,
            scopes: row.get::<Vec<String>>(3).ok().flatten()?,
            hash: row.get::<Vec<u8>>(4).ok().flatten()?,
            revoked: flag(5),
            expired: flag(6),
            stale: row.get::<bool>(7).ok().flatten().unwrap_or(false),
        })
    })
    .flatten()
}

/// Verifies an API token and returns the context it opens, or why not.
pub fn verify(token: &str) -> Result<Context, (Option<Uuid>, Option<Uuid>, &'static str)> {
    let id = api_token::parse(token)
        .map(Uuid::from_bytes)
        .map_err(|r| (None, None, r.as_str()))?;
    let computed = api_token::hash(token);
    let Some(row) = lookup(id) else {
        // Same work as a known id, so that timing does not tell the two apart.
        let _ = tenancy_tokens::ct_eq(&computed, &[0u8; 32]);
        return Err((None, Some(id), "unknown_token"));
    };
    if !tenancy_tokens::ct_eq(&row.hash, &computed) {
        return Err((Some(row.tenant), Some(id), "bad_secret"));
    }
    if row.revoked {
        return Err((Some(row.tenant), Some(id), "revoked"));
    }
    if row.expired {
        return Err((Some(row.tenant), Some(id), "expired"));
    }
    let ctx = Context {
        tenant: row.tenant,
        user: None,
        token: Some(id),
        actor: Some(row.created_by),
        source: Source::ApiToken,
        scopes: Some(row.scopes),
    };
    check_standing(&ctx).map_err(|reason| (Some(row.tenant), Some(id), reason))?;
    if row.stale {
        write_if_possible(TOUCH_SQL, &[pgrx::Uuid::from_bytes(*id.as_bytes()).into()]);
    }
    Ok(ctx)
}
