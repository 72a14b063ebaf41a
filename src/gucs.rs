//! Settings of pg_tenancy, all in the reserved `tenancy.` prefix. Depends on nothing in the
//! crate. (`tenancy.context`, the tenant context itself, is defined by `context.rs`, which owns
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

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

static REQUEST_LABEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOG_ALLOWED: GucSetting<bool> = GucSetting::<bool>::new(false);
static ALLOW_EXPLAIN_ANALYZE: GucSetting<bool> = GucSetting::<bool>::new(false);
static CLUSTER_SECRET: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CLUSTER_SECRET_PREVIOUS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
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
    // The secret is never shown to anyone but superusers, nor listed by SHOW ALL.
    let secret_flags = GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL;
    GucRegistry::define_string_guc(
        c"tenancy.cluster_secret",
        c"Secret shared by the nodes of a Citus cluster, to sign and verify tenant contexts.",
        c"Set it to the same value (at least 32 characters) on every node, in postgresql.conf or \
          with ALTER SYSTEM, and reload. Without it, workers refuse every propagated context.",
        &CLUSTER_SECRET,
        GucContext::Sighup,
        secret_flags,
    );
    GucRegistry::define_string_guc(
        c"tenancy.cluster_secret_previous",
        c"The cluster secret being rotated out: it still verifies contexts, but signs none.",
        c"Set the old secret here and the new one in tenancy.cluster_secret on every node, then \
          clear this once every node has reloaded.",
        &CLUSTER_SECRET_PREVIOUS,
        GucContext::Sighup,
        secret_flags,
    );
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

/// The cluster secrets that verify a signed context (the current one first); shorter than 32
/// bytes counts as unset.
pub fn cluster_secrets() -> Vec<Vec<u8>> {
    [&CLUSTER_SECRET, &CLUSTER_SECRET_PREVIOUS]
        .iter()
        .filter_map(|s| s.get())
        .map(|s| s.into_bytes())
        .filter(|s| s.len() >= 32)
        .collect()
}

/// The cluster secret that signs, if one is set (at least 32 bytes).
pub fn cluster_signing_secret() -> Option<Vec<u8>> {
    CLUSTER_SECRET
        .get()
        .map(|s| s.into_bytes())
        .filter(|s| s.len() >= 32)
}

/// How long a signed context stays valid, in microseconds.
pub fn cluster_context_ttl_us() -> i64 {
    i64::from(CLUSTER_CONTEXT_TTL.get()) * 1_000_000
}

/// Whether allowed decisions are logged too.
pub fn log_allowed() -> bool {
    LOG_ALLOWED.get()
}
