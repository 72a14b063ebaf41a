//! What pg_tenancy uses of Citus, found at run time: Citus is optional, and when it runs it is
//! loaded first (`shared_preload_libraries = 'citus,pg_tenancy'`, Citus refuses any other
//! order).
//!
//! * The distributed transaction a backend takes part in: the coordinator's backend that
//!   starts it, and every worker backend that serves it (Citus sends
//!   `assign_distributed_transaction_id()` with each remote BEGIN). A signed context is bound to
//!   it (see `cluster.rs`), through Citus's exported `GetCurrentDistributedTransactionId()`
//!   and `UseCoordinatedTransaction()`.
//! * Which distributed transactions have ended on this node: a ring in shared memory, so that
//!   a signed context copied from a transaction that is over opens nothing. Every backend that
//!   signed or used a context bound to a distributed transaction adds it when its own
//!   transaction ends (they all end together, at the coordinator's commit).
//!
//! Citus's structure layout is not a stable API: this follows Citus 13 (`DistributedTransactionId`
//! in `transaction_identifier.h`); `make test-citus` checks it against the Citus in use.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};

use pgrx::pg_sys;

use crate::statement;

/// A distributed transaction: the node group that started it, its number there, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DistributedTxn {
    pub initiator: i32,
    pub number: u64,
    pub timestamp: i64,
}

/// Citus's `DistributedTransactionId`.
#[repr(C)]
struct CitusTransactionId {
    initiator_node_identifier: c_int,
    transaction_originator: bool,
    transaction_number: u64,
    timestamp: pg_sys::TimestampTz,
}

type GetIdFn = unsafe extern "C-unwind" fn() -> *mut CitusTransactionId;
type UseCoordinatedFn = unsafe extern "C-unwind" fn();

#[derive(Clone, Copy)]
struct Functions {
    get_id: GetIdFn,
    use_coordinated: UseCoordinatedFn,
}

/// Set in the postmaster when Citus is preloaded before pg_tenancy, inherited by every backend.
static mut PRELOADED: bool = false;

thread_local! {
    /// Citus's functions, once looked up.
    static FUNCTIONS: Cell<Option<Functions>> = const { Cell::new(None) };
    /// (local transaction id, whether the citus extension exists in this database).
    static IN_DATABASE: Cell<Option<(u32, bool)>> = const { Cell::new(None) };
    /// The distributed transaction this backend signed or used a context for, added to the
    /// ended ring when the backend's transaction ends.
    static SERVED: Cell<Option<DistributedTxn>> = const { Cell::new(None) };
}

/// Notes whether Citus is preloaded, and reserves the ring. Called from `_PG_init`.
pub fn init() {
    // SAFETY: reading and setting PostgreSQL globals during _PG_init in the postmaster.
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        let libraries = pg_sys::GetConfigOption(c"shared_preload_libraries".as_ptr(), true, false);
        if libraries.is_null() {
            return;
        }
        let libraries = CStr::from_ptr(libraries).to_string_lossy();
        PRELOADED = libraries.split(',').any(|l| {
            let l = l.trim().trim_matches('"');
            l == "citus" || l.ends_with("/citus")
        });
        if PRELOADED {
            ended::install_hooks();
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        }
    }
}

/// Whether Citus runs in this database: preloaded, and its extension created here.
pub fn active() -> bool {
    // SAFETY: written once before any backend exists.
    if !unsafe { PRELOADED } {
        return false;
    }
    let xid = statement::local_xid();
    if let Some((x, answer)) = IN_DATABASE.with(|c| c.get()) {
        if x == xid {
            return answer;
        }
    }
    // SAFETY: a catalog look-up by name.
    let answer =
        unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } != pg_sys::InvalidOid;
    IN_DATABASE.with(|c| c.set(Some((xid, answer))));
    answer
}

fn functions() -> Option<Functions> {
    if let Some(f) = FUNCTIONS.with(|f| f.get()) {
        return Some(f);
    }
    // SAFETY: Citus is already loaded (preloaded before pg_tenancy), so this only looks its
    // symbols up; the signatures are Citus 13's.
    let f = unsafe {
        let lookup = |name: &CStr| {
            pg_sys::load_external_function(
                c"citus".as_ptr(),
                name.as_ptr(),
                false,
                std::ptr::null_mut::<*mut c_void>(),
            )
        };
        let get_id = lookup(c"GetCurrentDistributedTransactionId");
        let use_coordinated = lookup(c"UseCoordinatedTransaction");
        if get_id.is_null() || use_coordinated.is_null() {
            return None;
        }
        Functions {
            get_id: std::mem::transmute::<*mut c_void, GetIdFn>(get_id),
            use_coordinated: std::mem::transmute::<*mut c_void, UseCoordinatedFn>(use_coordinated),
        }
    };
    FUNCTIONS.with(|c| c.set(Some(f)));
    Some(f)
}

/// The distributed transaction this backend takes part in; `None` without Citus or outside
/// one.
pub fn current_transaction() -> Option<DistributedTxn> {
    if !active() {
        return None;
    }
    let f = functions()?;
    // SAFETY: Citus returns a palloc'd copy of its backend data, read here and freed.
    unsafe {
        let id = (f.get_id)();
        if id.is_null() {
            return None;
        }
        let txn = DistributedTxn {
            initiator: (*id).initiator_node_identifier,
            number: (*id).transaction_number,
            timestamp: (*id).timestamp,
        };
        pg_sys::pfree(id.cast());
        (txn.number != 0).then_some(txn)
    }
}

/// The distributed transaction of this (coordinator) transaction, started now if it has none
/// yet: a signed context must name it before any worker connection opens.
pub fn start_transaction() -> Option<DistributedTxn> {
    if !active() {
        return None;
    }
    let f = functions()?;
    // SAFETY: Citus's own entry point for a transaction that will use remote connections.
    unsafe { (f.use_coordinated)() };
    current_transaction()
}

/// Notes that this backend signed or used a context bound to `txn`.
pub fn serving(txn: DistributedTxn) {
    SERVED.with(|s| s.set(Some(txn)));
}

/// Whether `txn` has ended on this node.
pub fn has_ended(txn: DistributedTxn) -> bool {
    ended::contains(txn)
}

unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE
    ) {
        if let Some(txn) = SERVED.with(|s| s.take()) {
            ended::add(txn);
        }
    }
}

/// The ring of ended distributed transactions in shared memory.
mod ended {
    use super::*;

    /// Ended transactions remembered: a hash table of SLOTS entries in shared memory, each
    /// looked for in a window of PROBE slots. When a window is full its oldest entry gives way;
    /// at the default expiry of a signed context (60 seconds) that takes over a thousand
    /// distributed transactions ending per second on one node, and an entry that gave way is
    /// still refused by the expiry of the value it named.
    const SLOTS: usize = 65_536;
    const PROBE: usize = 8;

    #[repr(C)]
    struct Ring {
        /// (initiator, number, timestamp); number 0 is a free slot.
        entries: [(i32, u64, i64); SLOTS],
    }

    fn home(txn: &DistributedTxn) -> usize {
        let mut h = txn.number.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= (txn.initiator as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= (txn.timestamp as u64).rotate_left(17);
        (h >> 16) as usize % SLOTS
    }

    const SHMEM_NAME: &CStr = c"pg_tenancy ended distributed transactions";
    const TRANCHE: &CStr = c"pg_tenancy cluster";

    static mut RING_PTR: *mut Ring = std::ptr::null_mut();
    static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();
    /// Places the table in shared memory. Called from `_PG_init` in the postmaster only.
    pub unsafe fn install_hooks() {
        // SAFETY: see `shmem::register`; `attach` stores what the postmaster created.
        unsafe {
            crate::shmem::register(crate::shmem::Region {
                name: SHMEM_NAME,
                tranche: TRANCHE,
                size: std::mem::size_of::<Ring>(),
                attach,
            });
        }
    }

    unsafe fn attach(at: *mut std::ffi::c_void, lock: *mut pg_sys::LWLock) {
        // SAFETY: called by shmem_startup in the postmaster, before any backend exists.
        unsafe {
            RING_PTR = at.cast();
            LOCK = lock;
        }
    }

    fn with_ring<R>(mode: pg_sys::LWLockMode::Type, f: impl FnOnce(&mut Ring) -> R) -> Option<R> {
        // SAFETY: the pointers were set by the start-up hook (PRELOADED holds when they are
        // used); the lock is released before returning and nothing in `f` can raise.
        unsafe {
            if RING_PTR.is_null() {
                return None;
            }
            pg_sys::LWLockAcquire(LOCK, mode);
            let r = f(&mut *RING_PTR);
            pg_sys::LWLockRelease(LOCK);
            Some(r)
        }
    }

    pub fn add(txn: DistributedTxn) {
        let key = (txn.initiator, txn.number, txn.timestamp);
        let start = home(&txn);
        with_ring(pg_sys::LWLockMode::LW_EXCLUSIVE, |r| {
            let window = (0..PROBE).map(|k| (start + k) % SLOTS);
            if window.clone().any(|i| r.entries[i] == key) {
                return;
            }
            let slot = window
                .clone()
                .find(|&i| r.entries[i].1 == 0)
                .or_else(|| window.min_by_key(|&i| r.entries[i].2))
                .unwrap_or(start);
            r.entries[slot] = key;
        });
    }

    pub fn contains(txn: DistributedTxn) -> bool {
        let key = (txn.initiator, txn.number, txn.timestamp);
        let start = home(&txn);
        with_ring(pg_sys::LWLockMode::LW_SHARED, |r| {
            (0..PROBE).any(|k| r.entries[(start + k) % SLOTS] == key)
        })
        .unwrap_or(false)
    }
}
