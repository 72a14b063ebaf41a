//! Entering and leaving a tenant context from SQL: `set_tenant()`, `clear_context()`, and
//! `context()` for debugging. (`authenticate()`, the other way in, is in `tokens/`.)
//!
//! `set_tenant()` checks the tenant and the acting user against pg_tenancy's tables (through
//! `rbac` and the caches) before `context::enter` stores the context.

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::context::{self, Context, Source};
use crate::{app_role, cache, cluster, decision, error, privileged, rbac, unguarded};

/// Sets the tenant for the current transaction, with no acting user. A separate overload
/// rather than a DEFAULT: the common call then needs no default expression from the parser.
#[pg_extern(volatile, parallel_unsafe, name = "set_tenant")]
fn set_tenant_only(tenant_id: Option<pgrx::Uuid>) {
    enter_tenant(tenant_id, None);
}

/// Sets the tenant and the acting user (NULL: none) for the current transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant(tenant_id: Option<pgrx::Uuid>, user_id: Option<pgrx::Uuid>) {
    enter_tenant(tenant_id, user_id);
}

fn enter_tenant(tenant_id: Option<pgrx::Uuid>, user_id: Option<pgrx::Uuid>) {
    let Some(tenant) = tenant_id.map(context::from_pg) else {
        error::bad_argument(
            "tenancy: tenant_id must not be null",
            "pass the id of an active tenant to tenancy.set_tenant()",
        );
    };
    let user = user_id.map(context::from_pg);
    warn_if_bypassing_rls();
    cache::sync_now();

    let wanted = Context {
        tenant,
        user,
        token: None,
        actor: user,
        source: Source::SetTenant,
        scopes: None,
        kid: None,
        exp: None,
    };
    if context::current().is_some_and(|c| *c == wanted) {
        return;
    }
    if !rbac::tenant_is_active(tenant) {
        decision::record(
            Some(tenant),
            user,
            None,
            "set_tenant",
            None,
            false,
            "tenant_unknown_or_suspended",
        );
        error::unauthenticated(
            format!("tenancy: tenant {tenant} does not exist or is suspended"),
            "check the tenant id; a suspended tenant must be reactivated by a platform admin",
        );
    }
    if let Some(user) = user {
        let actor = rbac::lookup_actor(tenant, user);
        if actor.role.is_none() && !actor.platform_admin {
            decision::record(
                Some(tenant),
                Some(user),
                None,
                "set_tenant",
                None,
                false,
                "not_a_member",
            );
            error::forbidden(
                format!("tenancy: user {user} is not a member of tenant {tenant}"),
                "add the user to the tenant (tenancy.invite()) or pass the id of a member",
            );
        }
        if actor.role.is_none() {
            decision::record_always(
                Some(tenant),
                Some(user),
                None,
                "set_tenant",
                None,
                true,
                "platform_admin",
            );
        }
    }
    if context::enter(&wanted) {
        cluster::hand_over();
    }
}

/// Whether the caller (the role the session acts as, outside any SECURITY DEFINER function) may
/// choose tenants itself: a member of `tenancy_app`, or a superuser. Internal: pg_tenancy's own
/// SECURITY DEFINER functions ask it to tell a trusted backend from an untrusted client.
#[pg_extern(stable, parallel_safe)]
fn caller_may_set_tenant() -> bool {
    // SAFETY: catalog look-ups by oid and name.
    unsafe {
        let caller = pg_sys::GetOuterUserId();
        pg_sys::superuser_arg(caller) || {
            let app = pg_sys::get_role_oid(c"tenancy_app".as_ptr(), true);
            app != pg_sys::InvalidOid && pg_sys::has_privs_of_role(caller, app)
        }
    }
}

/// Clears the context of the current transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context() {
    context::leave();
    cluster::hand_over();
}

/// The whole context as JSON, for debugging and logging; `{}` when there is none.
#[pg_extern(stable, parallel_restricted)]
fn context() -> JsonB {
    let Some(ctx) = context::current() else {
        return JsonB(serde_json::json!({}));
    };
    let actor = rbac::actor();
    JsonB(serde_json::json!({
        "tenant_id": ctx.tenant.to_string(),
        "user_id": ctx.user.map(|u| u.to_string()),
        "token_id": ctx.token.map(|k| k.to_string()),
        "role": actor.and_then(|a| a.role.clone()),
        "scopes": ctx.scopes,
        "source": ctx.source.as_str(),
    }))
}

/// Warns when the current role bypasses row-level security, so isolation does not hold for it.
pub fn warn_if_bypassing_rls() {
    let role = unguarded::user_id();
    let (superuser, bypass) = app_role::bypass_of(role);
    if superuser || bypass {
        let why = if superuser {
            "is a superuser"
        } else {
            "has the BYPASSRLS attribute"
        };
        let name = privileged::role_name(role);
        pgrx::warning!(
            "tenancy: role {} {} and bypasses row-level security: tenant isolation does not apply to it",
            error::echo(&name),
            why
        );
    }
}
