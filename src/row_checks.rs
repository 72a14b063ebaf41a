//! The checks `isolate()`'s policies make on every row an application writes (their `WITH
//! CHECK`). A refused row raises PostgreSQL's own "new row violates row-level security policy";
//! these functions record the denial first, when it happens, so it is on record even when the
//! error is caught (a PL/pgSQL `EXCEPTION` block) and never reported.

use pgrx::prelude::*;

use crate::{context, decision, error, rbac};

/// Whether a written row's tenant column holds the context's tenant (`28000` without a
/// context). A row for another tenant is recorded as a denial.
#[pg_extern(stable, parallel_restricted)]
fn check_row_tenant(tenant: Option<pgrx::Uuid>) -> bool {
    let Some(ctx) = context::read() else {
        decision::denial("write", None, "no_context");
        error::no_tenant_context();
    };
    let ok = tenant.is_some_and(|t| context::from_pg(t) == ctx.tenant);
    if !ok {
        decision::denial("write", None, "row_level_security");
    }
    ok
}

/// Whether the context's actor may write with `permission` (the write policy of an
/// `isolate(…, write_permission => …)`); a refusal is recorded as a denial.
#[pg_extern(stable, parallel_restricted)]
fn check_write_permission(permission: Option<&str>) -> bool {
    let ok = rbac::has_permission(permission);
    if !ok {
        decision::denial("write", permission, "permission_missing");
    }
    ok
}
