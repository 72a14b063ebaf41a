//! Settings of pg_tenancy, all in the reserved `tenancy.` prefix. Depends on nothing in the
//! crate. (`tenancy.context`, the tenant context itself, is defined by `context.rs`, which owns
//! it.)
//!
//! * `tenancy.request_label` is free text anyone may set (an HTTP route, a job name); it is
//!   copied into every logged decision.
//! * `tenancy.log_allowed` (superuser only) also logs allowed decisions, not just denials.
//! * `tenancy.allow_explain_analyze` (superuser only) lets application roles run EXPLAIN
//!   ANALYZE, which is refused by default (see `utility.rs`).

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

static REQUEST_LABEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOG_ALLOWED: GucSetting<bool> = GucSetting::<bool>::new(false);
static ALLOW_EXPLAIN_ANALYZE: GucSetting<bool> = GucSetting::<bool>::new(false);

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

/// Whether allowed decisions are logged too.
pub fn log_allowed() -> bool {
    LOG_ALLOWED.get()
}
