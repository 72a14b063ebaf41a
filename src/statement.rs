//! Which top-level statement is running.
//!
//! A counter that moves once per top-level statement (each statement of a multi-statement
//! query string, each FETCH, each statement of a DO block or procedure), kept by
//! ExecutorRun/ExecutorFinish hooks that track the executor's nesting depth. It keys the RBAC
//! cache (an answer never outlives the statement) and lets the context refuse to change in a
//! statement that has already read it (no statement ever sees two tenants).
//!
//! The hooks are plain frames: an error in a query longjmps through them untouched, and the
//! depth is restored by the (sub)transaction-abort callbacks instead.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;

use pgrx::pg_sys;

use crate::unguarded;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// How deep in the planner the session is (0: not planning).
    static PLANNING: Cell<u32> = const { Cell::new(0) };
    static STATEMENT: Cell<u64> = const { Cell::new(1) };
    /// Depths (executor, planner) at the start of each open subtransaction, innermost last.
    static SAVED: RefCell<Vec<(pg_sys::SubTransactionId, u32, u32)>> = const { RefCell::new(Vec::new()) };
}

static mut PREV_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_FINISH: pg_sys::ExecutorFinish_hook_type = None;

/// The current top-level statement's number (changes at least once per statement).
pub fn current() -> u64 {
    STATEMENT.with(|s| s.get())
}

pub fn init() {
    // SAFETY: called once from _PG_init.
    unsafe {
        PREV_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_FINISH = pg_sys::ExecutorFinish_hook;
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// The local transaction id: changes with every transaction.
pub fn local_xid() -> u32 {
    // SAFETY: plain read of backend-local transaction state; MyProc is valid in a backend.
    unsafe {
        #[cfg(any(feature = "pg15", feature = "pg16"))]
        let lxid = (*pg_sys::MyProc).lxid;
        #[cfg(not(any(feature = "pg15", feature = "pg16")))]
        let lxid = (*pg_sys::MyProc).vxid.lxid;
        lxid
    }
}

/// Where the session is: (local transaction id, top-level statement, command id). Changes
/// whenever a new statement (or command within one) runs; keys what lives for one statement.
pub fn position() -> (u32, u64, u32) {
    (local_xid(), current(), unguarded::command_id())
}

/// Whether the planner is running. The planner evaluates STABLE functions to estimate
/// selectivities, so an accessor that would raise without a context (`current_tenant()` in an
/// inline policy) must not raise then: the statement has not run yet, and the fail-closed
/// guard refuses it at executor start, on the record.
pub fn planning() -> bool {
    PLANNING.with(|p| p.get() > 0)
}

/// A top-level utility statement (CALL, DO, COPY, …) starts a statement too: a procedure's
/// or DO block's own expressions may never reach the executor.
pub fn begin_statement() {
    if DEPTH.with(|d| d.get()) == 0 {
        STATEMENT.with(|s| s.set(s.get().wrapping_add(1)));
    }
}

fn enter() {
    begin_statement();
    let depth = DEPTH.with(|d| d.get());
    DEPTH.with(|d| d.set(depth + 1));
}

fn leave() {
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
}

unsafe extern "C-unwind" {
    #[link_name = "standard_ExecutorRun"]
    #[cfg(not(feature = "pg18"))]
    fn raw_standard_executor_run(
        query_desc: *mut pg_sys::QueryDesc,
        direction: pg_sys::ScanDirection::Type,
        count: u64,
        execute_once: bool,
    );
    #[link_name = "standard_ExecutorRun"]
    #[cfg(feature = "pg18")]
    fn raw_standard_executor_run(
        query_desc: *mut pg_sys::QueryDesc,
        direction: pg_sys::ScanDirection::Type,
        count: u64,
    );
    #[link_name = "standard_ExecutorFinish"]
    fn raw_standard_executor_finish(query_desc: *mut pg_sys::QueryDesc);
    /// PostgreSQL's planner, called directly (not through pgrx's guarded wrapper): an error in
    /// planning must pass through the plain frames of the planner hooks untouched.
    #[link_name = "standard_planner"]
    pub fn raw_standard_planner(
        parse: *mut pg_sys::Query,
        query_string: *const std::ffi::c_char,
        cursor_options: std::ffi::c_int,
        bound_params: pg_sys::ParamListInfo,
    ) -> *mut pg_sys::PlannedStmt;
}

#[cfg(not(feature = "pg18"))]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    enter();
    // SAFETY: the previous hook and the standard function have exactly this signature.
    unsafe {
        match PREV_RUN {
            Some(prev) => prev(query_desc, direction, count, execute_once),
            None => raw_standard_executor_run(query_desc, direction, count, execute_once),
        }
    }
    leave();
}

#[cfg(feature = "pg18")]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
) {
    enter();
    // SAFETY: the previous hook and the standard function have exactly this signature.
    unsafe {
        match PREV_RUN {
            Some(prev) => prev(query_desc, direction, count),
            None => raw_standard_executor_run(query_desc, direction, count),
        }
    }
    leave();
}

unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    PLANNING.with(|p| p.set(p.get() + 1));
    // SAFETY: the previous hook and the standard planner have exactly this signature. An error
    // longjmps past the decrement: the (sub)transaction-abort callbacks restore the depth.
    let planned = unsafe {
        match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => raw_standard_planner(parse, query_string, cursor_options, bound_params),
        }
    };
    PLANNING.with(|p| p.set(p.get().saturating_sub(1)));
    planned
}

unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    enter();
    // SAFETY: the previous hook and the standard function have exactly this signature.
    unsafe {
        match PREV_FINISH {
            Some(prev) => prev(query_desc),
            None => raw_standard_executor_finish(query_desc),
        }
    }
    leave();
}

unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        DEPTH.with(|d| d.set(0));
        PLANNING.with(|p| p.set(0));
        SAVED.with(|s| s.borrow_mut().clear());
    }
}

unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    use pg_sys::SubXactEvent::*;
    match event {
        SUBXACT_EVENT_START_SUB => {
            let depth = DEPTH.with(|d| d.get());
            let planning = PLANNING.with(|p| p.get());
            SAVED.with(|s| s.borrow_mut().push((my_subid, depth, planning)));
        }
        SUBXACT_EVENT_ABORT_SUB | SUBXACT_EVENT_COMMIT_SUB => SAVED.with(|s| {
            let mut saved = s.borrow_mut();
            while let Some((subid, depth, planning)) = saved.pop() {
                if subid == my_subid {
                    if event == SUBXACT_EVENT_ABORT_SUB {
                        DEPTH.with(|d| d.set(depth));
                        PLANNING.with(|p| p.set(planning));
                    }
                    break;
                }
            }
        }),
        _ => {}
    }
}
