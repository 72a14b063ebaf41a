//! PostgreSQL functions called directly, without pgrx's error boundary.
//!
//! pgrx wraps every function of `pg_sys` so that a PostgreSQL error becomes a Rust panic: a
//! `sigsetjmp` per call, which costs more than these functions do. The hooks and the entry
//! points that policies call for every row use the ones below, declared here as PostgreSQL
//! exports them. They are reads of backend state that do not raise, or raise only on a broken
//! catalog (the relation cache) or when memory is exhausted (palloc); such an error longjmps
//! through the callers' plain frames, which hold nothing to drop, as PostgreSQL's own hooks
//! expect.

use pgrx::pg_sys;

mod ffi {
    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        pub fn GetUserId() -> pg_sys::Oid;
        pub fn GetOuterUserId() -> pg_sys::Oid;
        pub fn GetSessionUserId() -> pg_sys::Oid;
        pub fn IsTransactionBlock() -> bool;
        pub fn IsInParallelMode() -> bool;
        pub fn GetCurrentCommandId(used: bool) -> pg_sys::CommandId;
        pub fn GetCurrentStatementStartTimestamp() -> pg_sys::TimestampTz;
        pub fn RelationIdGetRelation(relid: pg_sys::Oid) -> pg_sys::Relation;
        pub fn RelationClose(relation: pg_sys::Relation);
        pub fn palloc(size: usize) -> *mut std::ffi::c_void;
    }
}

/// The current user (inside a SECURITY DEFINER function, its owner).
pub fn user_id() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { ffi::GetUserId() }
}

/// The role the session acts as (after SET ROLE).
pub fn outer_user_id() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { ffi::GetOuterUserId() }
}

/// The role the session logged in as (or SET SESSION AUTHORIZATION chose).
pub fn session_user_id() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { ffi::GetSessionUserId() }
}

/// Whether a transaction block (BEGIN … COMMIT) is open.
pub fn in_transaction_block() -> bool {
    // SAFETY: reads transaction state.
    unsafe { ffi::IsTransactionBlock() }
}

/// Whether the backend is in parallel mode.
pub fn in_parallel_mode() -> bool {
    // SAFETY: reads transaction state.
    unsafe { ffi::IsInParallelMode() }
}

/// The current command id (not marked as used).
pub fn command_id() -> pg_sys::CommandId {
    // SAFETY: reads transaction state; `false` changes nothing.
    unsafe { ffi::GetCurrentCommandId(false) }
}

/// When the current statement started (PostgreSQL microseconds).
pub fn statement_start() -> pg_sys::TimestampTz {
    // SAFETY: reads transaction state.
    unsafe { ffi::GetCurrentStatementStartTimestamp() }
}

/// `size` bytes in the current memory context (raises only when memory is exhausted).
pub fn palloc(size: usize) -> *mut std::ffi::c_void {
    // SAFETY: allocates in the current memory context.
    unsafe { ffi::palloc(size) }
}

/// Runs `f` on the relation-cache entry of `relid` (`None`: no such relation).
///
/// # Safety
/// The relation must be locked by the running statement, or its entry may be rebuilt under
/// `f`; `f` must not keep the pointer.
pub unsafe fn with_relation<R>(
    relid: pg_sys::Oid,
    f: impl FnOnce(Option<pg_sys::Relation>) -> R,
) -> R {
    // SAFETY: the entry is pinned between the two calls; see the function's contract.
    unsafe {
        let rel = ffi::RelationIdGetRelation(relid);
        if rel.is_null() {
            return f(None);
        }
        let answer = f(Some(rel));
        ffi::RelationClose(rel);
        answer
    }
}
