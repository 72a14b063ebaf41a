//! Authorization decisions: one JSON object per line in the server log, and a row in
//! `tenancy.auth_log` through the durable channel (`journal.rs`) when the library is preloaded.
//!
//! Denials are always logged; allowed decisions only when `tenancy.log_allowed` is on, or when
//! the decision is one the contract wants on record (a platform admin entering a tenant).
//! Lines are written at `LOG_SERVER_ONLY`, so a client can never read the reason of a denial
//! (an oracle telling "expired" from "unknown") by lowering `client_min_messages`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};
use serde_json::json;
use uuid::Uuid;

use crate::{context, gucs, journal, privileged};

/// Logs one decision with explicit subjects (used before a context exists).
#[allow(clippy::too_many_arguments)] // one flat event; a struct would only rename the fields
pub fn record(
    tenant: Option<Uuid>,
    user: Option<Uuid>,
    token: Option<Uuid>,
    action: &str,
    permission: Option<&str>,
    allowed: bool,
    reason: &str,
) {
    if allowed && !gucs::log_allowed() {
        return;
    }
    record_always(tenant, user, token, action, permission, allowed, reason);
}

/// Logs one decision whatever `tenancy.log_allowed` says.
#[allow(clippy::too_many_arguments)] // see `record`
pub fn record_always(
    tenant: Option<Uuid>,
    user: Option<Uuid>,
    token: Option<Uuid>,
    action: &str,
    permission: Option<&str>,
    allowed: bool,
    reason: &str,
) {
    let label = gucs::request_label();
    let role = privileged::current_role_name();
    let event = json!({
        "event": "tenancy.decision",
        "tenant_id": tenant.map(|u| u.to_string()),
        "user_id": user.map(|u| u.to_string()),
        "token_id": token.map(|u| u.to_string()),
        "action": action,
        "permission": permission,
        "outcome": if allowed { "allow" } else { "deny" },
        "reason": reason,
        "request_label": label,
        "db_role": role,
    });
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        event.to_string(),
        "pg_tenancy",
    )
    .report(PgLogLevel::LOG_SERVER_ONLY);
    journal::enqueue(&journal::Event {
        at_unix_us: crate::clock::now_unix_us(),
        tenant,
        user,
        token,
        action,
        permission,
        allowed,
        reason,
        label: label.as_deref(),
        role: &role,
    });
}

/// Logs a denial for the actor of the current context.
pub fn denial(action: &str, permission: Option<&str>, reason: &str) {
    let ctx = context::current();
    let ctx = ctx.as_deref();
    record_always(
        ctx.map(|c| c.tenant),
        ctx.and_then(|c| c.user),
        ctx.and_then(|c| c.token),
        action,
        permission,
        false,
        reason,
    );
}

/// Logs an allowed decision for the current context, when `tenancy.log_allowed` is on.
pub fn allowed(action: &str, permission: Option<&str>) {
    if !gucs::log_allowed() {
        return;
    }
    let ctx = context::current();
    let ctx = ctx.as_deref();
    record_always(
        ctx.map(|c| c.tenant),
        ctx.and_then(|c| c.user),
        ctx.and_then(|c| c.token),
        action,
        permission,
        true,
        "granted",
    );
}

/// Logs a denial decided in SQL (the member-management functions). Not executable by
/// application roles: only pg_tenancy's own SECURITY DEFINER functions call it.
#[pgrx::pg_extern(volatile, parallel_restricted)]
fn log_denial(action: Option<&str>, permission: Option<&str>, reason: Option<&str>) {
    let (Some(action), Some(reason)) = (action, reason) else {
        crate::error::bad_argument(
            "tenancy: action and reason must not be null",
            "log_denial(action, permission, reason) records why a request was denied",
        );
    };
    denial(action, permission, reason);
}

/// Records a decision taken in SQL about `tenant` (the lifecycle functions: suspending a tenant,
/// listing a user's tenants, ...), allowed or not, whatever `tenancy.log_allowed` says. The user
/// and token come from the context, if any. Not executable by application roles: only
/// pg_tenancy's own SECURITY DEFINER functions call it.
#[pgrx::pg_extern(volatile, parallel_restricted)]
fn log_decision(
    tenant: Option<pgrx::Uuid>,
    action: Option<&str>,
    permission: Option<&str>,
    allowed: Option<bool>,
    reason: Option<&str>,
) {
    let (Some(action), Some(allowed), Some(reason)) = (action, allowed, reason) else {
        crate::error::bad_argument(
            "tenancy: action, allowed and reason must not be null",
            "log_decision(tenant, action, permission, allowed, reason) records a decision",
        );
    };
    let ctx = context::current();
    let ctx = ctx.as_deref();
    record_always(
        tenant.map(|t| Uuid::from_bytes(*t.as_bytes())),
        ctx.and_then(|c| c.user),
        ctx.and_then(|c| c.token),
        action,
        permission,
        allowed,
        reason,
    );
}

/// A write refused by an isolation policy (PostgreSQL's "new row violates row-level security
/// policy"), seen while its error was reported and logged once its transaction rolled back.
struct RefusedWrite {
    tenant: Option<Uuid>,
    user: Option<Uuid>,
    token: Option<Uuid>,
}

thread_local! {
    static REFUSED_WRITES: std::cell::RefCell<Vec<RefusedWrite>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

static mut PREV_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

/// Installs the hook that records writes refused by row-level security: those errors are
/// raised by PostgreSQL itself, not by pg_tenancy, and are denials like any other.
pub fn init() {
    // SAFETY: called once from _PG_init.
    unsafe {
        PREV_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(emit_log);
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

/// Runs while an error is being reported: only notes it (no locks, no nested reports).
unsafe extern "C-unwind" fn emit_log(edata: *mut pg_sys::ErrorData) {
    // SAFETY: PostgreSQL passes the error being reported; message_id is its untranslated
    // format string (or NULL).
    unsafe {
        let e = &*edata;
        if e.elevel >= PgLogLevel::ERROR as i32
            && e.sqlerrcode == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32
            && !e.message_id.is_null()
            && std::ffi::CStr::from_ptr(e.message_id)
                .to_bytes()
                .starts_with(b"new row violates row-level security policy")
            && context::has_tenant()
        {
            if let Some(ctx) = context::current() {
                REFUSED_WRITES.with(|r| {
                    r.borrow_mut().push(RefusedWrite {
                        tenant: Some(ctx.tenant),
                        user: ctx.user,
                        token: ctx.token,
                    })
                });
            }
        }
        if let Some(prev) = PREV_EMIT_LOG_HOOK {
            prev(edata);
        }
    }
}

fn flush_refused_writes() {
    let refused = REFUSED_WRITES.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for w in refused {
        record_always(
            w.tenant,
            w.user,
            w.token,
            "write",
            None,
            false,
            "row_level_security",
        );
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_ABORT | XACT_EVENT_COMMIT | XACT_EVENT_PREPARE
    ) {
        flush_refused_writes();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        flush_refused_writes();
    }
}
