//! The per-transaction tenant context: its storage and the accessors that read it.
//!
//! The context lives in the setting `tenancy.context`, defined here. It is `SUSET`, and its
//! check hook refuses every value that pg_tenancy itself did not write, so no role (not even a
//! superuser) can plant a context with `SET`, `set_config()`, `PGOPTIONS`, `ALTER ROLE/DATABASE
//! SET` or a placeholder created before the library loaded. It is a setting for two reasons
//! only: PostgreSQL's GUC stack reverts it at COMMIT, ROLLBACK and ROLLBACK TO SAVEPOINT, and it
//! is copied into parallel workers. Its decoded form is kept here, refreshed by the assign hook,
//! so that `current_tenant()` is a memory read.
//!
//! This module stores and reads; entering a tenant (which checks the tenant and the user) is
//! `entry.rs` and `tokens/`.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void, CStr, CString};
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use uuid::Uuid;

use crate::{error, privileged, statement, unguarded};

mod value;
pub use value::{Context, GrantedActor, Remote, Source};

const SETTING_NAME: &CStr = c"tenancy.context";

/// Backing storage of `tenancy.context`; owned by the GUC machinery.
static mut SETTING_VALUE: *mut c_char = std::ptr::null_mut();

thread_local! {
    /// True only while pg_tenancy itself writes `tenancy.context`.
    static WRITING: Cell<bool> = const { Cell::new(false) };
    /// The top-level statement that last read the context (see `statement.rs`).
    static READ_IN: Cell<u64> = const { Cell::new(0) };
    /// The context pg_tenancy set in this backend (`tenancy.context`).
    static LOCAL: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
    /// The context a Citus coordinator handed over (`tenancy.signed_context`, see `cluster.rs`).
    static REMOTE: RefCell<Option<Rc<Remote>>> = const { RefCell::new(None) };
    /// The context in effect: the local one, else the remote one.
    static CURRENT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
    static TENANT: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// The last value of `tenancy.context` decoded, and what it decodes to: a context is
    /// written once and installed again at every revert to it, and decoding is the dear part.
    static DECODED: RefCell<Option<(String, Option<Rc<Context>>)>> = const { RefCell::new(None) };
    /// Bumped on every change, so caches keyed on the actor can tell contexts apart.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Called by the assign hook of `tenancy.context` with its new raw value.
fn install(raw: &str) {
    let decoded = if raw.is_empty() {
        None
    } else {
        DECODED.with(|d| {
            let mut last = d.borrow_mut();
            match &*last {
                Some((text, ctx)) if text == raw => ctx.clone(),
                _ => {
                    let ctx = Context::decode(raw).map(Rc::new);
                    *last = Some((raw.to_owned(), ctx.clone()));
                    ctx
                }
            }
        })
    };
    LOCAL.with(|c| *c.borrow_mut() = decoded);
    refresh_effective();
}

/// Called by the assign hook of `tenancy.signed_context` with what a verified value carries.
pub fn install_remote(remote: Option<Remote>) {
    REMOTE.with(|r| *r.borrow_mut() = remote.map(Rc::new));
    refresh_effective();
}

/// The syscache hash value that plans holding the context's tenant name as an invalidation
/// item (see `routing.rs`), in the cache of functions: a change of tenant fires it in this
/// backend. Not the hash of any function pg_tenancy knows; another function sharing it would
/// only see some plans made again.
pub const ROUTED_PLANS_HASH: u32 = 0x7e4a_4e17;

thread_local! {
    /// Whether a plan of this backend holds a tenant (only then are plans invalidated).
    static ROUTED_PLANS: Cell<bool> = const { Cell::new(false) };
}

/// Notes that a plan holds the context's tenant; returns the hash its invalidation item names.
pub fn routed_plans_hash() -> Option<u32> {
    ROUTED_PLANS.with(|r| r.set(true));
    Some(ROUTED_PLANS_HASH)
}

fn refresh_effective() {
    let effective = LOCAL
        .with(|l| l.borrow().clone())
        .or_else(|| REMOTE.with(|r| r.borrow().as_ref().map(|r| Rc::new(r.ctx.clone()))));
    if CURRENT.with(|c| *c.borrow() == effective) {
        return;
    }
    let tenant = effective.as_ref().map(|c| *c.tenant.as_bytes());
    if TENANT.with(|t| t.get()) != tenant && ROUTED_PLANS.with(|r| r.get()) {
        // SAFETY: only marks cached plans that name this item as invalid (no catalog access,
        // safe also while a transaction aborts).
        unsafe {
            pg_sys::CallSyscacheCallbacks(
                pg_sys::SysCacheIdentifier::PROCOID as i32,
                ROUTED_PLANS_HASH,
            )
        };
    }
    TENANT.with(|t| t.set(tenant));
    CURRENT.with(|c| *c.borrow_mut() = effective);
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

/// The handed-over context, when it is the one in effect (no local context).
pub fn remote() -> Option<Rc<Remote>> {
    if LOCAL.with(|l| l.borrow().is_some()) {
        return None;
    }
    REMOTE.with(|r| r.borrow().clone())
}

/// The handed-over context, in effect or not (a coordinator compares it with its own).
pub fn remote_any() -> Option<Rc<Remote>> {
    REMOTE.with(|r| r.borrow().clone())
}

/// The context pg_tenancy set in this backend, if any.
pub fn local() -> Option<Rc<Context>> {
    LOCAL.with(|l| l.borrow().clone())
}

/// Whether the transaction has a tenant context (a memory read).
pub fn has_tenant() -> bool {
    TENANT.with(|t| t.get().is_some())
}

/// The current context, if any.
pub fn current() -> Option<Rc<Context>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The current context, read on behalf of a statement: the statement may then no longer change
/// the context (so that no statement ever sees two tenants).
pub fn read() -> Option<Rc<Context>> {
    READ_IN.with(|r| r.set(statement::current()));
    current()
}

/// Raises `42501` unless the context may change now: the running statement has not read it,
/// and no open cursor may still return rows read under it.
pub fn check_change_allowed() {
    if READ_IN.with(|r| r.get()) == statement::current() {
        error::forbidden(
            "tenancy: the context cannot change within a statement that has already used it",
            "change the context with set_tenant(), authenticate() or clear_context() in a statement of its own",
        );
    }
    if privileged::open_cursors() > 0 {
        error::forbidden(
            "tenancy: the context cannot change while cursors are open",
            "close the transaction's cursors (CLOSE ALL) before changing the context",
        );
    }
}

/// A number that changes whenever the context changes.
pub fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

/// Enters `ctx` for the rest of the transaction, enforcing one tenant per transaction.
/// Returns false when the very same context is already set (a no-op).
pub fn enter(ctx: &Context) -> bool {
    if !ctx.representable() {
        error::unauthenticated(
            "tenancy: the context cannot be represented",
            "scopes must be permission names such as 'orders:read'",
        );
    }
    if let Some(existing) = current() {
        if *existing == *ctx {
            return false;
        }
        error::forbidden(
            format!(
                "tenancy: this transaction already has a context for tenant {} (source {})",
                existing.tenant,
                existing.source.as_str()
            ),
            "call tenancy.clear_context() before entering another tenant or actor",
        );
    }
    if !unguarded::in_transaction_block() {
        pgrx::warning!(
            "tenancy: no transaction block is open, so the context lasts for this statement only"
        );
    }
    let encoded = ctx.encode();
    // The assign hook finds the context already decoded.
    DECODED.with(|d| *d.borrow_mut() = Some((encoded.clone(), Some(Rc::new(ctx.clone())))));
    write(&encoded);
    true
}

/// Clears the context of the current transaction (`42501` when it may not change now).
pub fn leave() {
    if local().is_some() {
        check_change_allowed();
        write("");
    }
}

pub fn to_pg(u: Uuid) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*u.as_bytes())
}

pub fn from_pg(u: pgrx::Uuid) -> Uuid {
    Uuid::from_bytes(*u.as_bytes())
}

/// The context's tenant; `28000` when there is none (NULL while the planner estimates, see
/// `statement::planning`). SQL calls it through `current_tenant_fast`.
#[pg_extern(
    stable,
    parallel_safe,
    sql = "CREATE FUNCTION @extschema@.current_tenant() RETURNS uuid STRICT STABLE PARALLEL SAFE \
           LANGUAGE c AS 'MODULE_PATHNAME', 'current_tenant_fast';"
)]
fn current_tenant() -> Option<pgrx::Uuid> {
    READ_IN.with(|r| r.set(statement::current()));
    match TENANT.with(|t| t.get()) {
        Some(bytes) => Some(pgrx::Uuid::from_bytes(bytes)),
        None if statement::planning() => None,
        None => error::no_tenant_context(),
    }
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_current_tenant_fast() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The entry point of `tenancy.current_tenant()`. A policy calls it for every row a scan
/// filters (an index key computes it once per scan): with a context, the tenant is copied out
/// of the backend's memory with no error boundary and no conversion. Without one, pgrx's
/// wrapper of `current_tenant` decides (NULL while planning, else `28000`).
///
/// # Safety
/// Called by PostgreSQL's function manager with a valid call frame.
#[no_mangle]
#[doc(hidden)]
pub unsafe extern "C-unwind" fn current_tenant_fast(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let Some(bytes) = TENANT.with(|t| t.get()) else {
        // SAFETY: the same frame, passed on.
        return unsafe { current_tenant_wrapper(fcinfo) };
    };
    READ_IN.with(|r| r.set(statement::current()));
    // SAFETY: a uuid datum is a pointer to its 16 bytes, allocated in the caller's memory
    // context as any function result is; the frame is valid (see above).
    unsafe {
        let value = unguarded::palloc(bytes.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), value, bytes.len());
        (*fcinfo).isnull = false;
        pg_sys::Datum::from(value)
    }
}

/// The context's user, or NULL (no context, a token context, or a tenant-only context).
#[pg_extern(stable, parallel_safe)]
fn current_user_id() -> Option<pgrx::Uuid> {
    current().and_then(|c| c.user).map(to_pg)
}

/// The user whose membership bounds the context's permissions (the acting user, or an API
/// token's creator). Internal: recorded as `invited_by` / `created_by` by the SQL functions.
#[pg_extern(stable, parallel_restricted)]
fn actor_id() -> Option<pgrx::Uuid> {
    current().and_then(|c| c.actor).map(to_pg)
}

/// Defines `tenancy.context`. Called once from `_PG_init`, before the `tenancy.` prefix is
/// reserved (so that a placeholder planted before the library loaded meets the check hook).
pub fn init() {
    // SAFETY: called once from _PG_init; the pointers are 'static and the hooks are pg_guarded.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            SETTING_NAME.as_ptr(),
            c"Tenant context of the current transaction (written by pg_tenancy only).".as_ptr(),
            c"Set through tenancy.set_tenant() or tenancy.authenticate(); any other write is refused."
                .as_ptr(),
            &raw mut SETTING_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            (pg_sys::GUC_NO_SHOW_ALL
                | pg_sys::GUC_NOT_IN_SAMPLE
                | pg_sys::GUC_NO_RESET_ALL
                | pg_sys::GUC_DISALLOW_IN_FILE
                | pg_sys::GUC_DISALLOW_IN_AUTO_FILE) as i32,
            Some(check_context),
            Some(assign_context),
            None,
        );
    }
}

/// Writes `tenancy.context` for the current transaction (`SET LOCAL` semantics: reverted at
/// transaction end and by ROLLBACK TO SAVEPOINT).
fn write(value: &str) {
    let Ok(value) = CString::new(value) else {
        error::internal("an encoded context holds a NUL byte");
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            WRITING.with(|w| w.set(false));
        }
    }
    WRITING.with(|w| w.set(true));
    let _reset = Reset;
    // SAFETY: both strings are valid C strings for the duration of the call; errors are raised
    // through the pgrx FFI guard and the flag is reset by `_reset` while unwinding.
    unsafe {
        pg_sys::set_config_option(
            SETTING_NAME.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// Refuses every non-empty value that pg_tenancy did not write itself. Parallel workers restore
/// the leader's value while `InitializingParallelWorker` is set.
#[pg_guard]
unsafe extern "C-unwind" fn check_context(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to a (possibly NULL) C string.
    let empty = unsafe { (*newval).is_null() || **newval == 0 };
    // SAFETY: reading a PostgreSQL global.
    let restoring_worker = unsafe { pg_sys::InitializingParallelWorker };
    if empty || restoring_worker || WRITING.with(|w| w.get()) {
        return true;
    }
    // SAFETY: the GUC_check_* globals are consumed by the caller right after we return false;
    // pstrdup allocates in the current memory context as PostgreSQL's own hooks do.
    unsafe {
        pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(
            c"tenancy: the tenant context cannot be set through a setting".as_ptr(),
        );
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(
            c"call tenancy.set_tenant() or tenancy.authenticate() inside the transaction".as_ptr(),
        );
    }
    false
}

/// Keeps the decoded context in step with the setting, including when PostgreSQL reverts it at
/// transaction or savepoint end. Must not raise.
#[pg_guard]
unsafe extern "C-unwind" fn assign_context(newval: *const c_char, _extra: *mut c_void) {
    let raw = if newval.is_null() {
        ""
    } else {
        // SAFETY: PostgreSQL passes a valid NUL-terminated string.
        unsafe { CStr::from_ptr(newval) }.to_str().unwrap_or("")
    };
    install(raw);
}
