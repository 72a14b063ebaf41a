//! The fail-closed guard: a statement that touches an isolated table without a tenant context
//! raises `28000` before it runs, and one that touches it in a context that no longer stands
//! (see `standing.rs`) raises before it reads a row.
//!
//! The isolation policy alone raises only when it evaluates `current_tenant()`, which a
//! sequential scan of an empty table (or an UPDATE whose WHERE matches no row) never does: the
//! result would be a silent empty page. This `ExecutorStart` hook closes that gap. With a
//! context that stands it costs a comparison of counters; otherwise it looks only at the
//! relations of the statement, in the relation cache. It is installed when the library loads:
//! at server start with `shared_preload_libraries` (recommended), else at the first pg_tenancy
//! call.

use std::ffi::{c_int, CStr};

use pgrx::{pg_guard, pg_sys};

use crate::{cluster, context, decision, error, privileged, standing, unguarded};

/// Name of the policy `isolate()` creates; a table that has it is isolated.
const ISOLATION_POLICY: &CStr = c"tenancy_isolation";

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

pub fn init() {
    // SAFETY: called once from _PG_init, before any query runs in this process.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

// The hook itself is a plain frame (no destructors, no pgrx guard), so that an error raised by
// the next ExecutorStart goes straight back to PostgreSQL exactly as without pg_tenancy. Only
// our own check runs inside a pgrx guard.
unsafe extern "C-unwind" {
    #[link_name = "standard_ExecutorStart"]
    fn raw_standard_executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: c_int);
}

unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    // SAFETY: PostgreSQL passes a valid query descriptor; the previous hook and the standard
    // function have exactly this signature.
    unsafe {
        // Without a context, a statement that reads no isolated table needs nothing more: found
        // by plain reads of the relation cache, before any error boundary is set up.
        if context::has_tenant() || reads_isolated(query_desc, eflags) {
            check_guarded(query_desc, eflags);
        }
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query_desc, eflags),
            None => raw_standard_executor_start(query_desc, eflags),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_guarded(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    // SAFETY: see `check`.
    unsafe { check(query_desc, eflags) }
}

/// Raises `28000` when there is no context and the statement reads or writes an isolated
/// table whose row-level security applies to the current user.
unsafe fn check(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0 {
        return;
    }
    // With a context that still stands (the usual case, and cheap to know) there is nothing
    // to check; otherwise a statement that reads isolated rows is refused: without a context
    // (28000), or in a context that no longer stands (its tenant suspended, its credential
    // revoked, its user removed since it was set).
    let has_tenant = context::has_tenant();
    if has_tenant && standing::verdict().is_ok() {
        // On a Citus coordinator, the workers must hold the context as this node sees it.
        if !privileged::own_query_running() {
            cluster::refresh();
        }
        return;
    }
    // SAFETY: the planned statement and its range table are valid for the whole call.
    unsafe {
        let stmt = (*query_desc).plannedstmt;
        if stmt.is_null() || (*stmt).rtable.is_null() {
            return;
        }
        let rtable = (*stmt).rtable;
        for i in 0..(*rtable).length as usize {
            let rte = (*(*rtable).elements.add(i)).ptr_value as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION || !is_isolated((*rte).relid) {
                continue;
            }
            let rls = pg_sys::check_enable_rls((*rte).relid, pg_sys::InvalidOid, true);
            if rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as c_int {
                if has_tenant {
                    standing::check("query");
                    return;
                }
                decision::denial("query", None, "no_context");
                error::no_tenant_context();
            }
        }
    }
}

/// Whether the statement (not an EXPLAIN without ANALYZE) reads or writes an isolated table.
unsafe fn reads_isolated(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) -> bool {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0 {
        return false;
    }
    // SAFETY: the planned statement and its range table are valid for the whole call.
    unsafe {
        let stmt = (*query_desc).plannedstmt;
        if stmt.is_null() || (*stmt).rtable.is_null() {
            return false;
        }
        let rtable = (*stmt).rtable;
        (0..(*rtable).length as usize).any(|i| {
            let rte = (*(*rtable).elements.add(i)).ptr_value as *mut pg_sys::RangeTblEntry;
            (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && is_isolated((*rte).relid)
        })
    }
}

/// Whether the relation has row-level security on and the isolation policy of `isolate()`.
/// Plain reads of the relation cache (the executor-start hook asks before it sets up an error
/// boundary).
pub unsafe fn is_isolated(relid: pg_sys::Oid) -> bool {
    // SAFETY: the relation is locked by the statement being started; its entry is only read.
    unsafe {
        unguarded::with_relation(relid, |rel| {
            let Some(rel) = rel else {
                return false;
            };
            let rsdesc = (*rel).rd_rsdesc;
            if !(*(*rel).rd_rel).relrowsecurity || rsdesc.is_null() || (*rsdesc).policies.is_null()
            {
                return false;
            }
            let policies = (*rsdesc).policies;
            (0..(*policies).length as usize).any(|i| {
                let policy =
                    (*(*policies).elements.add(i)).ptr_value as *mut pg_sys::RowSecurityPolicy;
                CStr::from_ptr((*policy).policy_name) == ISOLATION_POLICY
            })
        })
    }
}
