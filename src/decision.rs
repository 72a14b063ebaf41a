//! Authorization decisions: one JSON object per line in the server log, and a row in
//! `tenancy.auth_log` through the durable channel (`journal/`) when the library is preloaded.
//!
//! Denials are always logged; allowed decisions only when `tenancy.log_allowed` is on, or when
//! the decision is one the contract wants on record (a platform admin entering a tenant).
//! Lines are written at `LOG_SERVER_ONLY`, so a client can never read the reason of a denial
//! (an oracle telling "expired" from "unknown") by lowering `client_min_messages`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
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
    let login_role = privileged::session_role_name();
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
        "login_role": login_role,
    });
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        event.to_string(),
        "pg_tenancy",
    )
    .report(PgLogLevel::LOG_SERVER_ONLY);
    journal::record(&journal::Event {
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
        login_role: &login_role,
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
