//! Settings of pg_tenancy, all in the reserved `tenancy.` prefix. Depends on nothing in the
//! crate. (`tenancy.context`, the tenant context itself, is defined by `context/`, which owns
//! it.)
//!
//! * `tenancy.request_label` is free text anyone may set (an HTTP route, a job name); it is
//!   copied into every logged decision.
//! * `tenancy.log_allowed` (superuser only) also logs allowed decisions, not just denials.
//! * `tenancy.allow_explain_analyze` (superuser only) lets application roles run EXPLAIN
//!   ANALYZE, which is refused by default (see `allowlist.rs`).
//! * `tenancy.cluster_secret`, `tenancy.cluster_secret_previous` (postgresql.conf or ALTER
//!   SYSTEM, reloadable, readable by superusers only): the secret the nodes of a Citus cluster
//!   share to sign and verify the context a coordinator hands to its workers; the previous one
//!   still verifies, so the secret can be rotated without downtime (`cluster/`).
//! * `tenancy.cluster_context_ttl` (reloadable): how long a signed context stays valid, in
//!   seconds; a coordinator signs again before half of it has passed.

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::{pg_guard, pg_sys};

static REQUEST_LABEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOG_ALLOWED: GucSetting<bool> = GucSetting::<bool>::new(false);
static ALLOW_EXPLAIN_ANALYZE: GucSetting<bool> = GucSetting::<bool>::new(false);
/// Backing storage of the two cluster secrets; owned by the GUC machinery.
static mut CLUSTER_SECRET: *mut c_char = std::ptr::null_mut();
static mut CLUSTER_SECRET_PREVIOUS: *mut c_char = std::ptr::null_mut();
/// Shortest cluster secret accepted, in bytes.
const CLUSTER_SECRET_MIN: usize = 32;
static CLUSTER_CONTEXT_TTL: GucSetting<i32> = GucSetting::<i32>::new(60);

/// Defines the settings. Called once from `_PG_init`.
pub fn init() {
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
    // The secrets are never shown to anyone but superusers, nor listed by SHOW ALL; one shorter
    // than 32 bytes is refused (on reload, the previous value stays and the server log says why).
    let secret_flags =
        (pg_sys::GUC_SUPERUSER_ONLY | pg_sys::GUC_NO_SHOW_ALL | pg_sys::GUC_NOT_IN_SAMPLE) as i32;
    // SAFETY: called once from _PG_init; the pointers are 'static and the hook is pg_guarded.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            c"tenancy.cluster_secret".as_ptr(),
            c"Secret shared by the nodes of a Citus cluster, to sign and verify tenant contexts."
                .as_ptr(),
            c"Set it to the same value (at least 32 characters) on every node, in postgresql.conf \
              or with ALTER SYSTEM, and reload. Without it, workers refuse every handed-over context."
                .as_ptr(),
            &raw mut CLUSTER_SECRET,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_SIGHUP,
            secret_flags,
            Some(check_cluster_secret),
            None,
            None,
        );
        pg_sys::DefineCustomStringVariable(
            c"tenancy.cluster_secret_previous".as_ptr(),
            c"The cluster secret being rotated out: it still verifies contexts, but signs none."
                .as_ptr(),
            c"Set the old secret here and the new one in tenancy.cluster_secret on every node, \
              then clear this once every node has reloaded."
                .as_ptr(),
            &raw mut CLUSTER_SECRET_PREVIOUS,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_SIGHUP,
            secret_flags,
            Some(check_cluster_secret),
            None,
            None,
        );
    }
    GucRegistry::define_int_guc(
        c"tenancy.cluster_context_ttl",
        c"Seconds a signed tenant context stays valid on the nodes of a Citus cluster.",
        c"The coordinator signs the context again before half of it has passed.",
        &CLUSTER_CONTEXT_TTL,
        10,
        3600,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// Makes every other `tenancy.*` name an error from now on, and removes placeholders planted
/// before the library loaded. Called from `_PG_init` after every setting is defined.
pub fn reserve_prefix() {
    // SAFETY: plain C call with a static string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"tenancy".as_ptr()) };
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

/// Refuses a cluster secret shorter than 32 bytes (empty: unset).
#[pg_guard]
unsafe extern "C-unwind" fn check_cluster_secret(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to a (possibly NULL) C string.
    let len = unsafe {
        if (*newval).is_null() {
            0
        } else {
            CStr::from_ptr(*newval).to_bytes().len()
        }
    };
    if len == 0 || len >= CLUSTER_SECRET_MIN {
        return true;
    }
    // SAFETY: the GUC_check_* globals are consumed by the caller right after we return false.
    unsafe {
        pg_sys::GUC_check_errdetail_string =
            pg_sys::pstrdup(c"A cluster secret has at least 32 characters.".as_ptr());
    }
    false
}

fn secret(value: *mut c_char) -> Option<Vec<u8>> {
    // SAFETY: the GUC machinery keeps the value a valid C string (or NULL).
    let bytes = unsafe { (!value.is_null()).then(|| CStr::from_ptr(value).to_bytes().to_vec()) }?;
    (bytes.len() >= CLUSTER_SECRET_MIN).then_some(bytes)
}

/// The cluster secrets that verify a signed context (the current one first).
pub fn cluster_secrets() -> Vec<Vec<u8>> {
    // SAFETY: plain reads of the settings' storage.
    let (current, previous) = unsafe { (CLUSTER_SECRET, CLUSTER_SECRET_PREVIOUS) };
    [current, previous].into_iter().filter_map(secret).collect()
}

/// The cluster secret that signs, if one is set.
pub fn cluster_signing_secret() -> Option<Vec<u8>> {
    // SAFETY: plain read of the setting's storage.
    secret(unsafe { CLUSTER_SECRET })
}

/// How long a signed context stays valid, in microseconds.
pub fn cluster_context_ttl_us() -> i64 {
    i64::from(CLUSTER_CONTEXT_TTL.get()) * 1_000_000
}

/// Whether allowed decisions are logged too.
pub fn log_allowed() -> bool {
    LOG_ALLOWED.get()
}
