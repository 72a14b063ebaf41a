//! Authorization decisions as one JSON object per line in the server log.
//!
//! Denials are always logged; allowed decisions only when `tenancy.log_allowed` is on, or when
//! the decision is one the contract wants on record (a platform admin entering a tenant).
//! Lines are written at `LOG_SERVER_ONLY`, so a client can never read the reason of a denial
//! (an oracle telling "expired" from "unknown") by lowering `client_min_messages`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use serde_json::json;
use uuid::Uuid;

use crate::{context, gucs, privileged};

/// Logs one decision with explicit subjects (used before a context exists).
#[allow(clippy::too_many_arguments)] // one flat event; a struct would only rename the fields
pub fn decision(
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
    decision_always(tenant, user, token, action, permission, allowed, reason);
}

/// Logs one decision whatever `tenancy.log_allowed` says.
#[allow(clippy::too_many_arguments)] // see `decision`
pub fn decision_always(
    tenant: Option<Uuid>,
    user: Option<Uuid>,
    token: Option<Uuid>,
    action: &str,
    permission: Option<&str>,
    allowed: bool,
    reason: &str,
) {
    let event = json!({
        "event": "tenancy.decision",
        "tenant_id": tenant.map(|u| u.to_string()),
        "user_id": user.map(|u| u.to_string()),
        "token_id": token.map(|u| u.to_string()),
        "action": action,
        "permission": permission,
        "outcome": if allowed { "allow" } else { "deny" },
        "reason": reason,
        "request_label": gucs::request_label(),
        "db_role": privileged::current_role_name(),
    });
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        event.to_string(),
        "pg_tenancy",
    )
    .report(PgLogLevel::LOG_SERVER_ONLY);
}

/// Logs a denial for the actor of the current context.
pub fn denial(action: &str, permission: Option<&str>, reason: &str) {
    let ctx = context::current();
    let ctx = ctx.as_deref();
    decision_always(
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
    decision_always(
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
