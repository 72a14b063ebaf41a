//! Settings of pg_tenancy, all in the reserved `tenancy.` prefix.
//!
//! * `tenancy.context` carries the per-transaction context. It is `SUSET` and its check hook
//!   refuses every value that pg_tenancy itself did not write, so no role (not even a superuser)
//!   can plant a context with `SET`, `set_config()`, `PGOPTIONS`, `ALTER ROLE/DATABASE SET` or a
//!   placeholder created before the library loaded. It exists as a setting for two reasons only:
//!   PostgreSQL's GUC stack reverts it at COMMIT, ROLLBACK and ROLLBACK TO SAVEPOINT, and it is
//!   copied into parallel workers.
//! * `tenancy.request_label` is free text anyone may set (an HTTP route, a job name); it is
//!   copied into every logged decision.
//! * `tenancy.log_allowed` (superuser only) also logs allowed decisions, not just denials.
//! * `tenancy.allow_explain_analyze` (superuser only) lets application roles run EXPLAIN
//!   ANALYZE, which is refused by default (see `utility.rs`).

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::{pg_guard, pg_sys, PgSqlErrorCode};

use crate::context;

pub const CONTEXT_NAME: &CStr = c"tenancy.context";

/// Backing storage of `tenancy.context`; owned by the GUC machinery.
static mut CONTEXT_VALUE: *mut c_char = std::ptr::null_mut();

static REQUEST_LABEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOG_ALLOWED: GucSetting<bool> = GucSetting::<bool>::new(false);
static ALLOW_EXPLAIN_ANALYZE: GucSetting<bool> = GucSetting::<bool>::new(false);

thread_local! {
    /// True only while pg_tenancy itself writes `tenancy.context`.
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

pub fn init() {
    // SAFETY: called once from _PG_init; the pointers are 'static and the hooks are pg_guarded.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            CONTEXT_NAME.as_ptr(),
            c"Tenant context of the current transaction (written by pg_tenancy only).".as_ptr(),
            c"Set through tenancy.set_tenant() or tenancy.authenticate(); any other write is refused."
                .as_ptr(),
            &raw mut CONTEXT_VALUE,
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

    GucRegistry::define_string_guc(
        c"tenancy.request_label",
        c"Free-text label of the current request, copied into logged decisions.",
        c"For example the HTTP route or the job name. Anyone may set it; it grants nothing.",
        &REQUEST_LABEL,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"tenancy.log_allowed",
        c"Also log allowed authorization decisions, not only denials.",
        c"Off by default so that the hot path stays fast. Superuser only.",
        &LOG_ALLOWED,
        GucContext::Suset,
        GucFlags::default(),
    );

    GucRegistry::define_bool_guc(
        c"tenancy.allow_explain_analyze",
        c"Let application roles run EXPLAIN ANALYZE.",
        c"Off by default: EXPLAIN ANALYZE reports rows that row-level security filtered out, \
          an oracle on other tenants' data. Superuser only.",
        &ALLOW_EXPLAIN_ANALYZE,
        GucContext::Suset,
        GucFlags::default(),
    );

    // Any other `tenancy.*` name is an error from now on, and placeholders planted before the
    // library loaded are removed.
    // SAFETY: plain C call with a static string.
    unsafe {
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        pg_sys::MarkGUCPrefixReserved(c"tenancy".as_ptr());
        #[cfg(any(feature = "pg13", feature = "pg14"))]
        pg_sys::EmitWarningsOnPlaceholders(c"tenancy".as_ptr());
    }
}

/// The current `tenancy.request_label`, if any.
pub fn request_label() -> Option<String> {
    REQUEST_LABEL
        .get()
        .map(|c| c.to_string_lossy().into_owned())
}

/// Whether application roles may run EXPLAIN ANALYZE.
pub fn allow_explain_analyze() -> bool {
    ALLOW_EXPLAIN_ANALYZE.get()
}

/// Whether allowed decisions are logged too.
pub fn log_allowed() -> bool {
    LOG_ALLOWED.get()
}

/// Writes `tenancy.context` for the current transaction (`SET LOCAL` semantics: reverted at
/// transaction end and by ROLLBACK TO SAVEPOINT).
pub fn write_context(value: &str) {
    let value = CString::new(value).expect("an encoded context has no NUL byte");
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
            CONTEXT_NAME.as_ptr(),
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
    context::install(raw);
}
