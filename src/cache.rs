//! Per-backend caches of pg_tenancy's authorisation data: tenant status, memberships, roles
//! and their grants, permission names, API-token rows and signing keys.
//!
//! Every `set_tenant()`, `authenticate()` and permission check needs some of these rows; read
//! with SPI each time they cost more than the query they guard. They change rarely, so each
//! backend keeps what it has read, and PostgreSQL's own invalidation machinery says when to
//! forget it:
//!
//! - triggers (`tenancy.cache_invalidate()`: per statement `ENABLE ALWAYS`, and per row
//!   `ENABLE REPLICA` for logical replication's apply, see sql/cache.sql) on each of the eight
//!   tables queue a relation-cache invalidation of that table, which PostgreSQL sends to every
//!   backend when (and only when) the writing transaction commits, after the change became
//!   visible; an aborted change sends nothing to others and is forgotten locally;
//! - a relcache callback registered here marks the caches of that table stale;
//! - the first look-up of every statement processes the pending invalidation messages, so a
//!   change committed before a statement starts is seen by that statement, as before the
//!   caches existed (also inside a long transaction);
//! - a miss is read with a fresh snapshot taken after the messages were processed (see
//!   [`privileged::query_rows`]), and is not stored when an invalidation arrived meanwhile.
//!
//! Nothing is cached unless these triggers exist in their modes (checked once, then again
//! after any invalidation of these tables): a library newer than the installed SQL
//! (before `ALTER EXTENSION pg_tenancy UPDATE`), or a superuser's `DISABLE TRIGGER`, turns the
//! caches off rather than letting them go stale. Sizes are bounded; what is looked up with
//! attacker-chosen keys (unknown tokens, unknown kids, unknown tenants) is never stored.

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::Hash;
use std::rc::Rc;

use pgrx::prelude::*;
use uuid::Uuid;

use crate::{privileged, statement};

/// pg_tenancy's tables whose rows are cached, in the order of the bits below.
const TABLES: [&str; 8] = [
    "tenants",
    "users",
    "memberships",
    "roles",
    "role_permissions",
    "permissions",
    "api_tokens",
    "signing_keys",
];
const TENANTS: u32 = 1 << 0;
const USERS: u32 = 1 << 1;
const MEMBERSHIPS: u32 = 1 << 2;
const ROLES: u32 = 1 << 3;
const ROLE_PERMISSIONS: u32 = 1 << 4;
const PERMISSIONS: u32 = 1 << 5;
const API_TOKENS: u32 = 1 << 6;
const SIGNING_KEYS: u32 = 1 << 7;
const ALL_TABLES: u32 = (1 << 8) - 1;
/// The triggers must be checked again.
const RECHECK: u32 = 1 << 31;

const TRIGGERS_SQL: &str = include_str!("../sql/queries/cache_triggers.sql");
const TENANT_SQL: &str = include_str!("../sql/queries/tenant_active.sql");
const TENANTS_LAYOUT_SQL: &str = include_str!("../sql/queries/tenants_layout.sql");
const MEMBER_SQL: &str = include_str!("../sql/queries/member.sql");
const ROLE_SQL: &str = include_str!("../sql/queries/role.sql");
const PERMISSION_SQL: &str = include_str!("../sql/queries/permission_exists.sql");
const TOKEN_SQL: &str = include_str!("../sql/queries/api_token_lookup.sql");
const KEY_SQL: &str = include_str!("../sql/queries/active_key.sql");

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
    /// `last_used_at` as this backend last knew it (PostgreSQL microseconds).
    pub last_used_us: Cell<Option<i64>>,
}

/// A map of bounded size that keeps recently used entries: two generations, the older one
/// dropped when the newer fills up (an approximation of LRU without per-entry bookkeeping).
struct Bounded<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    fn clear(&mut self) {
        self.young = HashMap::new();
        self.old = HashMap::new();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[derive(Clone, Copy)]
struct TenantProbe {
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    id_column: i16,
    status_column: i16,
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
            TENANT_PROBE.with(|p| p.set(None));
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
    /// Oids of the eight tables (index as in `TABLES`), known once the triggers were checked.
    static OIDS: Cell<[pg_sys::Oid; 8]> = const { Cell::new([pg_sys::InvalidOid; 8]) };
    /// Tables invalidated since the caches last looked (bits as above). Written by the
    /// callback, which must not touch `CACHES` (it may run in the middle of a look-up).
    static STALE: Cell<u32> = const { Cell::new(0) };
    /// Counts every relation-cache invalidation this backend processed: a look-up that saw it
    /// move does not store its answer.
    static INVALIDATIONS: Cell<u64> = const { Cell::new(0) };
    /// How to probe `tenancy.tenants` directly: (table, primary key index, id and status
    /// columns), found with the triggers; `None` when unknown (a query is used instead).
    static TENANT_PROBE: Cell<Option<TenantProbe>> = const { Cell::new(None) };
    /// The statement that last processed invalidation messages.
    static SYNCED: Cell<(u32, u64, u32)> = const { Cell::new((0, 0, 0)) };
    /// Whether this transaction wrote one of the cached tables (the trigger ran here): until it
    /// ends nothing is stored (an answer may include its uncommitted rows), and at its end, or
    /// at the abort of a subtransaction, everything is forgotten.
    static WROTE: Cell<bool> = const { Cell::new(false) };
    /// API tokens whose `last_used_at` this transaction wrote: (subtransaction, token, time).
    static TOUCHED: RefCell<Vec<(pg_sys::SubTransactionId, Uuid, i64)>> =
        const { RefCell::new(Vec::new()) };
}

pub fn init() {
    // SAFETY: called once from _PG_init; the callbacks live as long as the library.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0));
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    INVALIDATIONS.with(|n| n.set(n.get().wrapping_add(1)));
    let bits = if relid == pg_sys::InvalidOid {
        ALL_TABLES | RECHECK
    } else {
        match OIDS.with(|o| o.get()).iter().position(|o| *o == relid) {
            Some(i) => (1 << i) | RECHECK,
            None => 0,
        }
    };
    if bits != 0 {
        STALE.with(|s| s.set(s.get() | bits));
    }
}

unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE
    ) && WROTE.with(|w| w.replace(false))
    {
        STALE.with(|s| s.set(s.get() | ALL_TABLES | RECHECK));
    }
    match event {
        XACT_EVENT_COMMIT => {
            let touched = TOUCHED.with(|t| std::mem::take(&mut *t.borrow_mut()));
            if !touched.is_empty() {
                CACHES.with(|c| {
                    if let Ok(mut caches) = c.try_borrow_mut() {
                        for (_, id, at) in touched {
                            if let Some(row) = caches.tokens.get(&id) {
                                row.last_used_us.set(Some(at));
                            }
                        }
                    }
                });
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PREPARE => TOUCHED.with(|t| t.borrow_mut().clear()),
        _ => {}
    }
}

unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        TOUCHED.with(|t| t.borrow_mut().retain(|(subid, _, _)| *subid < my_subid));
        if WROTE.with(|w| w.get()) {
            STALE.with(|s| s.set(s.get() | ALL_TABLES));
        }
    }
}

/// The trigger on each cached table: queues an invalidation of the table's relation-cache
/// entry, which PostgreSQL delivers to every backend when the transaction commits (and to this
/// one at its next command). Internal: installed by the extension script (sql/cache.sql), per
/// statement and, for logical replication's apply worker, per row.
#[pg_trigger]
fn cache_invalidate<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
    WROTE.with(|w| w.set(true));
    // SAFETY: relid is the oid of the table the trigger fired on.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(None)
}

/// Once per statement, processes pending invalidation messages (PostgreSQL does so at
/// transaction start and when it takes a new lock; a long transaction needs it here too).
fn sync() {
    let now = statement::position();
    if SYNCED.with(|s| s.get()) != now {
        sync_now();
        SYNCED.with(|s| s.set(now));
    }
}

/// Processes pending invalidation messages now, whatever the statement: `set_tenant()` and
/// `authenticate()` call it, so that entering a context never relies on an answer older than
/// the last commit (cheap when nothing is pending).
pub fn sync_now() {
    // SAFETY: processing invalidations is allowed wherever a lock may be taken.
    unsafe { pg_sys::AcceptInvalidationMessages() };
}

/// Applies the invalidations noted by the callback.
fn apply_stale(caches: &mut Caches) {
    let stale = STALE.with(|s| s.replace(0));
    if stale != 0 {
        caches.forget(stale);
    }
}

fn in_parallel_mode() -> bool {
    // SAFETY: plain read of transaction state.
    unsafe { pg_sys::IsInParallelMode() }
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
    let before = INVALIDATIONS.with(|n| n.get());
    let mut oids = [pg_sys::InvalidOid; 8];
    let mut ok = true;
    let names: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    let mut seen = 0;
    privileged::query_rows(
        TRIGGERS_SQL,
        true,
        &[pg_sys::TEXTARRAYOID],
        &[names.into()],
        |row| {
            let name = row.get::<String>(1).unwrap_or_default();
            let oid = row.get::<pg_sys::Oid>(2).unwrap_or(pg_sys::InvalidOid);
            let has_trigger = row.get::<bool>(3).unwrap_or(false);
            if let Some(i) = TABLES.iter().position(|t| *t == name) {
                oids[i] = oid;
                seen += 1;
                ok &= has_trigger;
            }
        },
    );
    ok &= seen == TABLES.len();
    OIDS.with(|o| o.set(oids));
    let mut probe = None;
    if ok {
        let table = oids[0];
        privileged::query_rows(
            TENANTS_LAYOUT_SQL,
            true,
            &[pg_sys::OIDOID],
            &[table.into()],
            |row| {
                if let (Some(index), Some(id_column), Some(status_column)) = (
                    row.get::<pg_sys::Oid>(1),
                    row.get::<i16>(2),
                    row.get::<i16>(3),
                ) {
                    probe = Some(TenantProbe {
                        table,
                        index,
                        id_column,
                        status_column,
                    });
                }
            },
        );
    }
    TENANT_PROBE.with(|p| p.set(probe));
    CACHES.with(|c| {
        let mut caches = c.borrow_mut();
        apply_stale(&mut caches);
        // An invalidation during the check (say, a trigger being disabled) makes it moot.
        if INVALIDATIONS.with(|n| n.get()) == before {
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
    sync();
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
    let before = INVALIDATIONS.with(|n| n.get());
    let value = load(fresh);
    if use_cache && fresh {
        if let Some(value) = &value {
            CACHES.with(|c| {
                let mut caches = c.borrow_mut();
                apply_stale(&mut caches);
                if caches.triggers_ok == Some(true)
                    && INVALIDATIONS.with(|n| n.get()) == before
                    && !WROTE.with(|w| w.get())
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
            let probe = TENANT_PROBE.with(|p| p.get()).filter(|_| fresh);
            // SAFETY: the probe was resolved from the catalogs after the last invalidation of
            // tenancy.tenants (any change to the table or its indexes clears it), and is checked
            // again against the table once it is locked.
            match probe.and_then(|p| unsafe { probe_tenant(p, tenant) }) {
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

/// The tenant's status read straight from the primary key index of `tenancy.tenants` with a
/// fresh snapshot: what the query in `tenant_active.sql` answers, without the executor. Every
/// connection's first `set_tenant()` of a tenant pays this, so with many tenants (each seen
/// rarely by one connection) it is most of what a cache miss costs.
///
/// `None` when the table, once locked, is not as the probe expects (DDL committed while this
/// backend waited for the lock): the caller then asks with a query.
unsafe fn probe_tenant(probe: TenantProbe, tenant: Uuid) -> Option<Option<bool>> {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: the oids and column numbers come from the catalogs (see TENANT_PROBE); the key's
    // argument points to a palloc'd uuid that outlives the scan; every resource acquired here
    // is released here, or by the transaction's abort on error.
    unsafe {
        let before = INVALIDATIONS.with(|n| n.get());
        let rel = pg_sys::table_open(probe.table, lock);
        // Taking the lock may have processed invalidations (an ALTER TABLE that committed
        // while we waited): then the layout may have changed under the probe.
        if INVALIDATIONS.with(|n| n.get()) != before
            || !column_is(rel, probe.id_column, pg_sys::UUIDOID)
            || !column_is(rel, probe.status_column, pg_sys::TEXTOID)
        {
            pg_sys::table_close(rel, lock);
            return None;
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let id = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_bytes().as_ptr(), id, 16);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            probe.id_column,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::Oid::from(pg_sys::F_UUID_EQ),
            pg_sys::Datum::from(id),
        );
        let scan = pg_sys::systable_beginscan(rel, probe.index, true, snapshot, 1, &mut key);
        let tuple = pg_sys::systable_getnext(scan);
        let status = if tuple.is_null() {
            None
        } else {
            let column = std::num::NonZeroUsize::new(probe.status_column as usize);
            Some(
                column
                    .and_then(|c| pgrx::htup::heap_getattr_raw(tuple, c, (*rel).rd_att))
                    .and_then(|d| String::from_datum(d, false))
                    .is_some_and(|s| s == "active"),
            )
        };
        pg_sys::systable_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, lock);
        pg_sys::pfree(id.cast());
        Some(status)
    }
}

/// Whether column `column` of the open relation exists with type `type_oid`.
unsafe fn column_is(rel: pg_sys::Relation, column: i16, type_oid: pg_sys::Oid) -> bool {
    // SAFETY: rel is open and locked; its descriptor outlives this borrow.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att) };
    column >= 1
        && desc
            .get(column as usize - 1)
            .is_some_and(|att| att.atttypid == type_oid && !att.attisdropped)
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
                        last_used_us: Cell::new(row.timestamp_us(7)),
                    })
                },
            )
            .flatten()
            .map(Rc::new)
        },
    )
}

/// Whether this transaction already wrote the token's `last_used_at`.
pub fn token_touched_now(id: Uuid) -> bool {
    TOUCHED.with(|t| t.borrow().iter().any(|(_, touched, _)| *touched == id))
}

/// Notes that this transaction wrote the token's `last_used_at`; the cached row learns it
/// when the transaction commits.
pub fn token_touched(id: Uuid, at: i64) {
    // SAFETY: plain read of transaction state.
    let subid = unsafe { pg_sys::GetCurrentSubTransactionId() };
    TOUCHED.with(|t| t.borrow_mut().push((subid, id, at)));
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

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn bounded_map_keeps_recent_entries_within_capacity() {
        let mut m: Bounded<u32, u32> = Bounded::new(4);
        for i in 0..10 {
            m.insert(i, i * 10);
            assert!(m.len() <= 4, "len {} after {i}", m.len());
        }
        assert_eq!(m.get(&9), Some(90));
        assert_eq!(m.get(&0), None);
        // A hit in the older generation survives the next rotation.
        m.insert(100, 1);
        assert_eq!(m.get(&9), Some(90));
        m.insert(101, 2);
        m.insert(102, 3);
        assert_eq!(m.get(&9), Some(90));
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(&9), None);
    }
}
