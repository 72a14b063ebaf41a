//! When the caches must forget: PostgreSQL's relation-cache invalidations of pg_tenancy's tables.
//!
//! - A trigger (`tenancy.cache_invalidate()`: per statement `ENABLE ALWAYS`, and per row
//!   `ENABLE REPLICA` for logical replication's apply, see sql/cache.sql) on each of the eight
//!   tables queues a relation-cache invalidation of that table, which PostgreSQL sends to every
//!   backend when (and only when) the writing transaction commits, after the change became
//!   visible; an aborted change sends nothing to others and is forgotten locally.
//! - The relcache callback registered here notes which tables are stale; the caches apply the
//!   note at their next look-up (the callback may run in the middle of one).
//! - The first look-up of every statement processes pending messages (`sync`), so a change
//!   committed before a statement starts is seen by that statement.
//! - Nothing may be cached unless the triggers exist in their modes (`check_triggers`).

use std::cell::Cell;
use std::ffi::c_void;

use pgrx::prelude::*;

use super::tenant_probe;
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
pub const TENANTS: u32 = 1 << 0;
pub const USERS: u32 = 1 << 1;
pub const MEMBERSHIPS: u32 = 1 << 2;
pub const ROLES: u32 = 1 << 3;
pub const ROLE_PERMISSIONS: u32 = 1 << 4;
pub const PERMISSIONS: u32 = 1 << 5;
pub const API_TOKENS: u32 = 1 << 6;
pub const SIGNING_KEYS: u32 = 1 << 7;
pub const ALL_TABLES: u32 = (1 << 8) - 1;
/// The triggers must be checked again.
pub const RECHECK: u32 = 1 << 31;

const TRIGGERS_SQL: &str = include_str!("../../sql/queries/cache_triggers.sql");

thread_local! {
    /// Oids of the eight tables (index as in `TABLES`), known once the triggers were checked.
    static OIDS: Cell<[pg_sys::Oid; 8]> = const { Cell::new([pg_sys::InvalidOid; 8]) };
    /// Tables invalidated since the caches last looked (bits as above). Written by the
    /// callback, which must not touch the caches themselves.
    static STALE: Cell<u32> = const { Cell::new(0) };
    /// Counts every relation-cache invalidation this backend processed: a look-up that saw it
    /// move does not store its answer.
    static INVALIDATIONS: Cell<u64> = const { Cell::new(0) };
    /// The statement that last processed invalidation messages.
    static SYNCED: Cell<(u32, u64, u32)> = const { Cell::new((0, 0, 0)) };
    /// Whether this transaction wrote one of the cached tables (the trigger ran here): until it
    /// ends nothing is stored (an answer may include its uncommitted rows), and at its end, or
    /// at the abort of a subtransaction, everything is forgotten.
    static WROTE: Cell<bool> = const { Cell::new(false) };
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
}

unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB && WROTE.with(|w| w.get()) {
        STALE.with(|s| s.set(s.get() | ALL_TABLES));
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
pub fn sync() {
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

/// The tables noted stale since the last call (bits as above).
pub fn take_stale() -> u32 {
    STALE.with(|s| s.replace(0))
}

/// How many invalidations this backend has processed: an answer read while this moved may be
/// older than the last invalidation and must not be stored.
pub fn count() -> u64 {
    INVALIDATIONS.with(|n| n.get())
}

/// Whether this transaction wrote one of the cached tables (then nothing is stored).
pub fn wrote() -> bool {
    WROTE.with(|w| w.get())
}

/// Whether every table has its invalidation triggers in their modes; also learns the tables'
/// oids (for the callback) and how to probe `tenancy.tenants`. Not in parallel mode (the
/// caller checks).
pub fn check_triggers() -> bool {
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
    tenant_probe::resolve(ok.then_some(oids[0]));
    ok
}
