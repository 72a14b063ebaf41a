//! Per-backend caches of pg_tenancy's authorisation data: tenant status, memberships, roles
//! and their grants, permission names, API-token rows and signing keys.
//!
//! Every `set_tenant()`, `authenticate()` and permission check needs some of these rows; read
//! with SPI each time they cost more than the query they guard. They change rarely, so each
//! backend keeps what it has read, and PostgreSQL's own invalidation machinery says when to
//! forget it (`invalidation.rs`). A miss is read with a fresh snapshot taken after pending
//! invalidations were processed (see [`privileged::query_rows`]), and is not stored when an
//! invalidation arrived meanwhile.
//!
//! Nothing is cached unless the invalidation triggers exist in their modes (checked once, then
//! again after any invalidation of these tables): a library newer than the installed SQL
//! (before `ALTER EXTENSION pg_tenancy UPDATE`), or a superuser's `DISABLE TRIGGER`, turns the
//! caches off rather than letting them go stale. Sizes are bounded (`bounded.rs`); what is
//! looked up with attacker-chosen keys (unknown tokens, unknown kids, unknown tenants) is never
//! stored.
//!
//! Files: `bounded.rs` the map, `invalidation.rs` when to forget, `tenant_probe.rs` the direct
//! index probe of `tenancy.tenants`; the look-ups are here.

mod bounded;
pub mod invalidation;
mod tenant_probe;

use std::borrow::Borrow;
use std::cell::RefCell;
use std::hash::Hash;
use std::rc::Rc;

use pgrx::prelude::*;
use uuid::Uuid;

use crate::{privileged, unguarded};
use bounded::Bounded;
use invalidation::{
    ALL_TABLES, API_TOKENS, MEMBERSHIPS, PERMISSIONS, RECHECK, ROLES, ROLE_PERMISSIONS,
    SIGNING_KEYS, TENANTS, USERS,
};

pub use invalidation::{count as invalidations, sync, sync_now};

const TENANT_SQL: &str = include_str!("../../sql/queries/tenant_active.sql");
const MEMBER_SQL: &str = include_str!("../../sql/queries/member.sql");
const ROLE_SQL: &str = include_str!("../../sql/queries/role.sql");
const PERMISSION_SQL: &str = include_str!("../../sql/queries/permission_exists.sql");
const TOKEN_SQL: &str = include_str!("../../sql/queries/api_token_lookup.sql");
const KEY_SQL: &str = include_str!("../../sql/queries/active_key.sql");

/// A user's standing in a tenant: platform admin flag and membership role.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Membership {
    pub platform_admin: bool,
    pub role: Option<String>,
}

/// A role: its rank and the permissions it grants (`*`, `resource:*` or exact names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub rank: i32,
    pub grants: Vec<String>,
}

/// An API token's row, as `authenticate()` decides on it.
#[derive(Debug)]
pub struct TokenRow {
    pub tenant: Uuid,
    pub created_by: Uuid,
    pub scopes: Vec<String>,
    pub hash: Vec<u8>,
    pub revoked: bool,
    /// `expires_at` in PostgreSQL microseconds, `None` when it never expires.
    pub expires_us: Option<i64>,
    /// `last_used_at` when the row was read (PostgreSQL microseconds).
    pub last_used_us: Option<i64>,
    /// The token whose context created this one, if any: this one dies with it.
    pub parent: Option<Uuid>,
}

struct Caches {
    /// Whether the invalidation triggers are in place: `None` until checked.
    triggers_ok: Option<bool>,
    tenants: Bounded<Uuid, bool>,
    members: Bounded<(Uuid, Uuid), Rc<Membership>>,
    roles: Bounded<String, Option<Rc<RoleInfo>>>,
    permissions: Bounded<String, bool>,
    tokens: Bounded<Uuid, Rc<TokenRow>>,
    keys: Bounded<String, Rc<Vec<u8>>>,
}

impl Caches {
    fn new() -> Self {
        Caches {
            triggers_ok: None,
            tenants: Bounded::new(131_072),
            members: Bounded::new(65_536),
            roles: Bounded::new(1_024),
            permissions: Bounded::new(4_096),
            tokens: Bounded::new(16_384),
            keys: Bounded::new(256),
        }
    }

    /// Forgets what depends on the tables in `stale`.
    fn forget(&mut self, stale: u32) {
        if stale & TENANTS != 0 {
            self.tenants.clear();
            tenant_probe::forget();
        }
        if stale & (USERS | MEMBERSHIPS) != 0 {
            self.members.clear();
        }
        if stale & (ROLES | ROLE_PERMISSIONS) != 0 {
            self.roles.clear();
        }
        if stale & PERMISSIONS != 0 {
            self.permissions.clear();
        }
        if stale & API_TOKENS != 0 {
            self.tokens.clear();
        }
        if stale & SIGNING_KEYS != 0 {
            self.keys.clear();
        }
        if stale & RECHECK != 0 {
            self.triggers_ok = None;
        }
    }
}

thread_local! {
    static CACHES: RefCell<Caches> = RefCell::new(Caches::new());
}

pub fn init() {
    invalidation::init();
}

/// Applies the invalidations noted by the callback.
fn apply_stale(caches: &mut Caches) {
    let stale = invalidation::take_stale();
    if stale != 0 {
        caches.forget(stale);
    }
}

fn in_parallel_mode() -> bool {
    unguarded::in_parallel_mode()
}

/// Whether the invalidation triggers are in place (so caching is safe), checking when needed.
fn triggers_ok() -> bool {
    let known = CACHES.with(|c| {
        let mut caches = c.borrow_mut();
        apply_stale(&mut caches);
        caches.triggers_ok
    });
    if let Some(ok) = known {
        return ok;
    }
    if in_parallel_mode() {
        return false;
    }
    let before = invalidation::count();
    let ok = invalidation::check_triggers();
    CACHES.with(|c| {
        let mut caches = c.borrow_mut();
        apply_stale(&mut caches);
        // An invalidation during the check (say, a trigger being disabled) makes it moot.
        if invalidation::count() == before {
            caches.triggers_ok = Some(ok);
        } else {
            caches.forget(ALL_TABLES);
        }
    });
    ok
}

/// The cached answer for `key`, else `load()`'s, stored when it is `Some` and storing is safe.
/// The key is borrowed: a hit allocates nothing.
fn cached<K, Q, V>(
    map: fn(&mut Caches) -> &mut Bounded<K, V>,
    key: &Q,
    load: impl FnOnce(bool) -> Option<V>,
) -> Option<V>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    V: Clone,
{
    invalidation::sync();
    let use_cache = triggers_ok();
    if use_cache {
        let hit = CACHES.with(|c| {
            let mut caches = c.borrow_mut();
            apply_stale(&mut caches);
            map(&mut caches).get(key)
        });
        if hit.is_some() {
            return hit;
        }
    }
    let fresh = !in_parallel_mode();
    let before = invalidation::count();
    let value = load(fresh);
    if use_cache && fresh {
        if let Some(value) = &value {
            CACHES.with(|c| {
                let mut caches = c.borrow_mut();
                apply_stale(&mut caches);
                if caches.triggers_ok == Some(true)
                    && invalidation::count() == before
                    && !invalidation::wrote()
                {
                    map(&mut caches).insert(key.to_owned(), value.clone());
                }
            });
        }
    }
    value
}

/// Runs a fixed query for its first row: with a fresh snapshot when `fresh` (answers that may
/// be cached), else with the statement's (parallel mode).
fn first_row<R>(
    fresh: bool,
    sql: &'static str,
    arg_types: &[pg_sys::Oid],
    args: &[pgrx::datum::DatumWithOid],
    map: impl Fn(&privileged::Row) -> R,
) -> Option<R> {
    let mut out = None;
    privileged::query_rows(sql, fresh, arg_types, args, |row| {
        if out.is_none() {
            out = Some(map(row));
        }
    });
    out
}

fn uuid_arg(u: Uuid) -> pgrx::datum::DatumWithOid<'static> {
    pgrx::Uuid::from_bytes(*u.as_bytes()).into()
}

fn uuid_col(row: &privileged::Row, column: i32) -> Option<Uuid> {
    row.get::<pgrx::Uuid>(column)
        .map(|u| Uuid::from_bytes(*u.as_bytes()))
}

/// Whether the tenant is active; `None` when it does not exist.
pub fn tenant_active(tenant: Uuid) -> Option<bool> {
    cached(
        |c| &mut c.tenants,
        &tenant,
        |fresh| {
            let probed = fresh.then(|| tenant_probe::tenant_status(tenant)).flatten();
            match probed {
                Some(status) => status,
                None => first_row(
                    fresh,
                    TENANT_SQL,
                    &[pg_sys::UUIDOID],
                    &[uuid_arg(tenant)],
                    |row| row.get::<bool>(1).unwrap_or(false),
                ),
            }
        },
    )
}

/// The user's standing in the tenant (default: not a member, not a platform admin).
pub fn membership(tenant: Uuid, user: Uuid) -> Rc<Membership> {
    cached(
        |c| &mut c.members,
        &(tenant, user),
        |fresh| {
            let found = first_row(
                fresh,
                MEMBER_SQL,
                &[pg_sys::UUIDOID, pg_sys::UUIDOID],
                &[uuid_arg(tenant), uuid_arg(user)],
                |row| Membership {
                    platform_admin: row.get::<bool>(1).unwrap_or(false),
                    role: row.get::<String>(2),
                },
            );
            Some(Rc::new(found.unwrap_or_default()))
        },
    )
    .unwrap_or_default()
}

/// A role's rank and grants; `None` for an unknown role.
pub fn role(name: &str) -> Option<Rc<RoleInfo>> {
    if name.len() > 63 {
        return None;
    }
    cached(
        |c| &mut c.roles,
        name,
        |fresh| {
            let found = first_row(fresh, ROLE_SQL, &[pg_sys::TEXTOID], &[name.into()], |row| {
                row.get::<i32>(1).map(|rank| RoleInfo {
                    rank,
                    grants: row.get::<Vec<String>>(2).unwrap_or_default(),
                })
            });
            Some(found.flatten().map(Rc::new))
        },
    )
    .flatten()
}

/// Whether `name` is a row of `tenancy.permissions`.
pub fn permission_exists(name: &str) -> bool {
    if name.len() > 127 {
        return false;
    }
    cached(
        |c| &mut c.permissions,
        name,
        |fresh| {
            Some(
                first_row(
                    fresh,
                    PERMISSION_SQL,
                    &[pg_sys::TEXTOID],
                    &[name.into()],
                    |_| true,
                )
                .unwrap_or(false),
            )
        },
    )
    .unwrap_or(false)
}

/// An API token's row by id; `None` for an unknown id (never cached).
pub fn api_token(id: Uuid) -> Option<Rc<TokenRow>> {
    cached(
        |c| &mut c.tokens,
        &id,
        |fresh| {
            first_row(
                fresh,
                TOKEN_SQL,
                &[pg_sys::UUIDOID],
                &[uuid_arg(id)],
                |row| {
                    Some(TokenRow {
                        tenant: uuid_col(row, 1)?,
                        created_by: uuid_col(row, 2)?,
                        scopes: row.get::<Vec<String>>(3)?,
                        hash: row.get::<Vec<u8>>(4)?,
                        revoked: row.get::<bool>(5).unwrap_or(true),
                        expires_us: row.timestamp_us(6),
                        last_used_us: row.timestamp_us(7),
                        parent: uuid_col(row, 8),
                    })
                },
            )
            .flatten()
            .map(Rc::new)
        },
    )
}

/// The stored secret of an active signing key; `None` for an unknown or retired kid (never
/// cached).
pub fn signing_secret(kid: &str) -> Option<Rc<Vec<u8>>> {
    cached(
        |c| &mut c.keys,
        kid,
        |fresh| {
            first_row(fresh, KEY_SQL, &[pg_sys::TEXTOID], &[kid.into()], |row| {
                row.get::<Vec<u8>>(1)
            })
            .flatten()
            .map(Rc::new)
        },
    )
}
