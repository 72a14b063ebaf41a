//! `last_used_at` of API tokens: written at most once a minute per token and connection.
//!
//! Each connection remembers the writes it committed, so that a token used in every request
//! is not written (nor its row read again) every time: `last_used_at` is not part of what the
//! caches invalidate. Writes rolled back, or never made (a read-only transaction), are not
//! remembered.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use pgrx::pg_sys;
use uuid::Uuid;

/// How stale `last_used_at` may get: one minute.
pub const INTERVAL_US: i64 = 60_000_000;
/// Tokens remembered per connection before the memory starts over.
const REMEMBERED: usize = 16_384;

thread_local! {
    /// Tokens whose `last_used_at` this transaction wrote: (subtransaction, token, time).
    static PENDING: RefCell<Vec<(pg_sys::SubTransactionId, Uuid, i64)>> =
        const { RefCell::new(Vec::new()) };
    /// The last committed write of each token by this connection (PostgreSQL microseconds).
    static COMMITTED: RefCell<HashMap<Uuid, i64>> = RefCell::new(HashMap::new());
}

pub fn init() {
    // SAFETY: called once from _PG_init; the callbacks live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

/// Whether the token's `last_used_at` should be written by a transaction that started at
/// `xact_start`: the row's value (`stored`, as read) and this connection's own writes are both
/// older than a minute, and this transaction has not written it yet.
pub fn due(id: Uuid, stored: Option<i64>, xact_start: i64) -> bool {
    let known = COMMITTED.with(|c| c.borrow().get(&id).copied());
    let last = stored.max(known);
    last.is_none_or(|at| at < xact_start.saturating_sub(INTERVAL_US))
        && !PENDING.with(|p| p.borrow().iter().any(|(_, t, _)| *t == id))
}

/// Notes that this transaction wrote the token's `last_used_at`.
pub fn written(id: Uuid, at: i64) {
    // SAFETY: plain read of transaction state.
    let subid = unsafe { pg_sys::GetCurrentSubTransactionId() };
    PENDING.with(|p| p.borrow_mut().push((subid, id, at)));
}

unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT => {
            let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
            if !pending.is_empty() {
                COMMITTED.with(|c| {
                    let mut c = c.borrow_mut();
                    if c.len() >= REMEMBERED {
                        c.clear();
                    }
                    for (_, id, at) in pending {
                        c.insert(id, at);
                    }
                });
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PREPARE => PENDING.with(|p| p.borrow_mut().clear()),
        _ => {}
    }
}

unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with(|p| p.borrow_mut().retain(|(subid, _, _)| *subid < my_subid));
    }
}
