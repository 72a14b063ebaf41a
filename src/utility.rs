//! Utility statements refused to application roles because they reach past row-level security:
//!
//! * `EXPLAIN ANALYZE` reports how many rows a policy filtered out ("Rows Removed by Filter"),
//!   which lets a caller search other tenants' values by binary search. Allowed again by a
//!   superuser with `tenancy.allow_explain_analyze` (for diagnosing plans).
//! * `LOCK TABLE` on an isolated table blocks every tenant.
//! * `DECLARE … WITH HOLD` keeps rows after the transaction, where the next client of a pooled
//!   connection can fetch them without a context.
//! * Temporary tables, views and sequences live on the server connection: one named like an
//!   application table shadows it for the next client of a pooled connection, who then writes
//!   its tenant's rows into the attacker's table.
//!
//! "Application role" means a non-superuser member of `tenancy_client` (and so of
//! `tenancy_app`). The hook is a plain frame; only the check runs inside a pgrx guard.

use std::ffi::{c_char, CStr};

use pgrx::{pg_guard, pg_sys};

use crate::{error, fail_closed, gucs, statement};

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

pub fn init() {
    // SAFETY: called once from _PG_init.
    unsafe {
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// Whether the current user is an application role (see the module comment).
pub fn is_app_role() -> bool {
    // SAFETY: catalog look-ups by oid and name.
    unsafe {
        let user = pg_sys::GetUserId();
        if pg_sys::superuser_arg(user) {
            return false;
        }
        let client = pg_sys::get_role_oid(c"tenancy_client".as_ptr(), true);
        client != pg_sys::InvalidOid && pg_sys::has_privs_of_role(user, client)
    }
}

#[cfg(not(feature = "pg13"))]
unsafe extern "C-unwind" {
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

#[cfg(not(feature = "pg13"))]
#[allow(clippy::too_many_arguments)] // PostgreSQL's hook signature
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: PostgreSQL passes a valid statement; the previous hook and the standard function
    // have exactly this signature.
    unsafe {
        if context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL {
            statement::begin_statement();
        }
        check_guarded(pstmt);
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => raw_standard_process_utility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

#[cfg(feature = "pg13")]
unsafe extern "C-unwind" {
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

#[cfg(feature = "pg13")]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: as above.
    unsafe {
        if context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL {
            statement::begin_statement();
        }
        check_guarded(pstmt);
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(pstmt, query_string, context, params, query_env, dest, qc),
            None => raw_standard_process_utility(
                pstmt,
                query_string,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_guarded(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: the statement is valid for the duration of the hook.
    unsafe { check(pstmt) }
}

unsafe fn check(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: utilityStmt is a valid node pointer (or NULL) of the planned utility statement.
    unsafe {
        let node = (*pstmt).utilityStmt;
        if node.is_null() {
            return;
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_ExplainStmt => {
                let stmt = node as *mut pg_sys::ExplainStmt;
                if explain_analyzes(stmt) && !gucs::allow_explain_analyze() && is_app_role() {
                    error::forbidden(
                        "tenancy: EXPLAIN ANALYZE is not available to application roles",
                        "it reports rows that row-level security filtered out; run it as the table owner, \
                         or have a superuser set tenancy.allow_explain_analyze for diagnosis",
                    );
                }
            }
            pg_sys::NodeTag::T_LockStmt => {
                let stmt = node as *mut pg_sys::LockStmt;
                if locks_isolated_table(stmt) && is_app_role() {
                    error::forbidden(
                        "tenancy: LOCK TABLE on an isolated table is not available to application roles",
                        "a table lock blocks every tenant; use SELECT … FOR UPDATE on your own rows",
                    );
                }
            }
            pg_sys::NodeTag::T_CreateStmt
            | pg_sys::NodeTag::T_CreateTableAsStmt
            | pg_sys::NodeTag::T_ViewStmt
            | pg_sys::NodeTag::T_CreateSeqStmt
                if creates_temporary_relation(node) && is_app_role() =>
            {
                error::forbidden(
                    "tenancy: temporary tables, views and sequences are not available to application roles",
                    "they outlive the transaction on a pooled connection and shadow the application's tables; \
                     use a CTE, or an isolated table",
                );
            }
            pg_sys::NodeTag::T_DeclareCursorStmt => {
                let stmt = node as *mut pg_sys::DeclareCursorStmt;
                if (*stmt).options & pg_sys::CURSOR_OPT_HOLD as i32 != 0 && is_app_role() {
                    error::forbidden(
                        "tenancy: cursors WITH HOLD are not available to application roles",
                        "their rows outlive the transaction and its tenant context; use a cursor without HOLD",
                    );
                }
            }
            _ => {}
        }
    }
}

/// Whether a CREATE statement makes a temporary relation (TEMP, or in schema pg_temp).
unsafe fn creates_temporary_relation(node: *mut pg_sys::Node) -> bool {
    // SAFETY: each node type is checked before its cast; RangeVar pointers may be NULL.
    unsafe {
        let rv = match (*node).type_ {
            pg_sys::NodeTag::T_CreateStmt => (*(node as *mut pg_sys::CreateStmt)).relation,
            pg_sys::NodeTag::T_CreateTableAsStmt => {
                let into = (*(node as *mut pg_sys::CreateTableAsStmt)).into;
                if into.is_null() {
                    return false;
                }
                (*into).rel
            }
            pg_sys::NodeTag::T_ViewStmt => (*(node as *mut pg_sys::ViewStmt)).view,
            pg_sys::NodeTag::T_CreateSeqStmt => (*(node as *mut pg_sys::CreateSeqStmt)).sequence,
            _ => return false,
        };
        if rv.is_null() {
            return false;
        }
        if (*rv).relpersistence as u8 == pg_sys::RELPERSISTENCE_TEMP {
            return true;
        }
        !(*rv).schemaname.is_null()
            && CStr::from_ptr((*rv).schemaname)
                .to_bytes()
                .starts_with(b"pg_temp")
    }
}

/// Whether an EXPLAIN statement has the ANALYZE option on.
unsafe fn explain_analyzes(stmt: *mut pg_sys::ExplainStmt) -> bool {
    // SAFETY: the options list holds DefElem nodes.
    unsafe {
        let options = (*stmt).options;
        if options.is_null() {
            return false;
        }
        (0..(*options).length as usize).any(|i| {
            let def = (*(*options).elements.add(i)).ptr_value as *mut pg_sys::DefElem;
            CStr::from_ptr((*def).defname) == c"analyze" && pg_sys::defGetBoolean(def)
        })
    }
}

/// Whether a LOCK statement names an isolated table.
unsafe fn locks_isolated_table(stmt: *mut pg_sys::LockStmt) -> bool {
    // SAFETY: the relations list holds RangeVar nodes.
    unsafe {
        let relations = (*stmt).relations;
        if relations.is_null() {
            return false;
        }
        (0..(*relations).length as usize).any(|i| {
            let rv = (*(*relations).elements.add(i)).ptr_value as *mut pg_sys::RangeVar;
            let relid = pg_sys::RangeVarGetRelidExtended(
                rv,
                pg_sys::NoLock as pg_sys::LOCKMODE,
                pg_sys::RVROption::RVR_MISSING_OK,
                None,
                std::ptr::null_mut(),
            );
            relid != pg_sys::InvalidOid && fail_closed::is_isolated(relid)
        })
    }
}
