//! The utility statements application roles may run: an allowlist, so that nothing reaches
//! past row-level security through a statement nobody thought of.
//!
//! Allowed: transaction control and savepoints, SET/RESET/SHOW of settings, SET CONSTRAINTS,
//! PREPARE/EXECUTE/DEALLOCATE, DISCARD, UNLISTEN, cursors (DECLARE without HOLD, FETCH,
//! CLOSE), CALL and DO, COPY to STDOUT / from STDIN, EXPLAIN without ANALYZE, and LOCK TABLE on
//! tables that are not isolated. Queries and DML are not utility statements: row-level security
//! and the grants decide those. Everything else (every CREATE, ALTER, DROP, GRANT, LISTEN,
//! NOTIFY, VACUUM, ...) is refused with `42501` and recorded. Why some are refused:
//!
//! * `EXPLAIN ANALYZE` reports how many rows a policy filtered out ("Rows Removed by Filter"),
//!   which lets a caller search other tenants' values by binary search. Allowed again by a
//!   superuser with `tenancy.allow_explain_analyze` (for diagnosing plans).
//! * `LOCK TABLE` on an isolated table blocks every tenant.
//! * `DECLARE … WITH HOLD` keeps rows after the transaction, where the next client of a pooled
//!   connection can fetch them without a context.
//! * Objects an application role creates (temporary ones above all) live on the server
//!   connection: one named like an application table shadows it for the next client of a
//!   pooled connection, who then hands its rows to the attacker (`object_access.rs` also
//!   refuses temporary objects however they are made).
//! * `LISTEN`/`NOTIFY` carry payloads between the sessions of every tenant.
//!
//! "Application role" means a non-superuser member of `tenancy_client` (and so of
//! `tenancy_app`). The hook is a plain frame; only the check runs inside a pgrx guard.

use std::ffi::{c_char, CStr};

use pgrx::{pg_guard, pg_sys};

use crate::{app_role::is_app_role, decision, error, fail_closed, gucs, statement};

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

pub fn init() {
    // SAFETY: called once from _PG_init.
    unsafe {
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

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
        // Transaction control and the like need no look-up, and no error boundary.
        let node = (*pstmt).utilityStmt;
        if node.is_null() || !always_allowed(node) {
            check_guarded(pstmt);
        }
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

#[pg_guard]
unsafe extern "C-unwind" fn check_guarded(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: the statement is valid for the duration of the hook.
    unsafe { check(pstmt) }
}

/// Refuses a utility statement that is not on the list, or is on it with a forbidden option,
/// when an application role runs it (at any nesting level: in a DO block or a function too).
unsafe fn check(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: utilityStmt is a valid node pointer (or NULL) of the planned utility statement;
    // each node type is checked before its cast.
    unsafe {
        let node = (*pstmt).utilityStmt;
        if node.is_null() {
            return;
        }
        let Some((message, hint)) = refusal(node) else {
            return;
        };
        if !is_app_role() {
            return;
        }
        let tag = CStr::from_ptr(pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node)))
            .to_string_lossy()
            .into_owned();
        decision::denial("statement", Some(&tag), "not_allowed");
        let message = if message.is_empty() {
            format!("tenancy: {tag} is not available to application roles")
        } else {
            message.to_owned()
        };
        error::forbidden(message, hint);
    }
}

/// Statements every role may run, whatever their options: transactions, savepoints, two-phase
/// commit; settings (SET, RESET, SHOW, SET TRANSACTION, SET CONSTRAINTS; `tenancy.*` settings
/// guard themselves); prepared statements; a pooler's DISCARD and UNLISTEN; cursors; code the
/// role could send as statements anyway. A plain read of the node's tag.
unsafe fn always_allowed(node: *mut pg_sys::Node) -> bool {
    // SAFETY: a valid node has a tag.
    let tag = unsafe { (*node).type_ };
    matches!(
        tag,
        pg_sys::NodeTag::T_TransactionStmt
            | pg_sys::NodeTag::T_VariableSetStmt
            | pg_sys::NodeTag::T_VariableShowStmt
            | pg_sys::NodeTag::T_ConstraintsSetStmt
            | pg_sys::NodeTag::T_PrepareStmt
            | pg_sys::NodeTag::T_ExecuteStmt
            | pg_sys::NodeTag::T_DeallocateStmt
            | pg_sys::NodeTag::T_DiscardStmt
            | pg_sys::NodeTag::T_UnlistenStmt
            | pg_sys::NodeTag::T_ClosePortalStmt
            | pg_sys::NodeTag::T_FetchStmt
            | pg_sys::NodeTag::T_CallStmt
            | pg_sys::NodeTag::T_DoStmt
    )
}

/// Why an application role may not run the statement (message, or "" for the generic one, and
/// hint), or `None` when it may.
unsafe fn refusal(node: *mut pg_sys::Node) -> Option<(&'static str, &'static str)> {
    // SAFETY: each node type is checked before its cast.
    unsafe {
        if always_allowed(node) {
            return None;
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_DeclareCursorStmt => {
                let stmt = node as *mut pg_sys::DeclareCursorStmt;
                ((*stmt).options & pg_sys::CURSOR_OPT_HOLD as i32 != 0).then_some((
                    "tenancy: cursors WITH HOLD are not available to application roles",
                    "their rows outlive the transaction and its tenant context; use a cursor without HOLD",
                ))
            }
            pg_sys::NodeTag::T_ExplainStmt => {
                let stmt = node as *mut pg_sys::ExplainStmt;
                (explain_analyzes(stmt) && !gucs::allow_explain_analyze()).then_some((
                    "tenancy: EXPLAIN ANALYZE is not available to application roles",
                    "it reports rows that row-level security filtered out; run it as the table owner, \
                     or have a superuser set tenancy.allow_explain_analyze for diagnosis",
                ))
            }
            pg_sys::NodeTag::T_CopyStmt => {
                let stmt = node as *mut pg_sys::CopyStmt;
                (!(*stmt).filename.is_null() || (*stmt).is_program).then_some((
                    "tenancy: COPY to or from a server file or program is not available to application roles",
                    "use COPY … TO STDOUT or COPY … FROM STDIN",
                ))
            }
            pg_sys::NodeTag::T_LockStmt => {
                let stmt = node as *mut pg_sys::LockStmt;
                locks_isolated_table(stmt).then_some((
                    "tenancy: LOCK TABLE on an isolated table is not available to application roles",
                    "a table lock blocks every tenant; use SELECT … FOR UPDATE on your own rows",
                ))
            }
            _ => Some((
                "",
                "application roles run queries, DML, transaction control, cursors, prepared statements, \
                 SET/SHOW, CALL and DO; schema changes belong to a role that is not an application role \
                 (docs/security.md, \"Statements application roles may run\")",
            )),
        }
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
