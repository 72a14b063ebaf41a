//! Structures in shared memory, each with one lightweight lock of its own: the log's queue
//! (`journal/queue.rs`) and, on a Citus node, the ended distributed transactions (`citus.rs`).
//!
//! Each is registered from `_PG_init` while the postmaster loads the library
//! (`shared_preload_libraries`); its space and lock are requested in `shmem_request_hook`, and
//! `shmem_startup_hook` creates it zeroed (all-zero bytes are a valid empty structure for
//! every user) and hands its address and lock to the owner. That runs in the postmaster before
//! any backend exists, and again after a crash when none is left, so nothing races it; the
//! backends inherit the addresses.

use std::ffi::{c_void, CStr};

use pgrx::pg_sys;

/// A structure to place in shared memory.
#[derive(Clone, Copy)]
pub struct Region {
    /// Its name in PostgreSQL's shared memory index.
    pub name: &'static CStr,
    /// The name of its lock's tranche (shown in `pg_stat_activity.wait_event`).
    pub tranche: &'static CStr,
    pub size: usize,
    /// Receives the structure's address and its lock, at every start-up of shared memory.
    pub attach: unsafe fn(*mut c_void, *mut pg_sys::LWLock),
}

const MAX_REGIONS: usize = 4;

static mut REGIONS: [Option<Region>; MAX_REGIONS] = [None; MAX_REGIONS];
static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;
static mut HOOKED: bool = false;

/// Registers `region`.
///
/// # Safety
/// Only from `_PG_init` in the postmaster (`process_shared_preload_libraries_in_progress`),
/// before shared memory is sized.
pub unsafe fn register(region: Region) {
    // SAFETY: the postmaster is single-threaded while it loads libraries; the statics are only
    // written here and read by the hooks below, which run later in the same process.
    unsafe {
        let registered = REGIONS;
        let Some(free) = registered.iter().position(Option::is_none) else {
            crate::error::internal("too many shared memory regions");
        };
        REGIONS[free] = Some(region);
        if !HOOKED {
            HOOKED = true;
            PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(shmem_request);
            PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
            pg_sys::shmem_startup_hook = Some(shmem_startup);
        }
    }
}

fn regions() -> impl Iterator<Item = Region> {
    // SAFETY: written only by `register`, before either hook runs.
    unsafe { REGIONS }.into_iter().flatten()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    // SAFETY: PostgreSQL's shmem_request_hook protocol (postmaster start-up).
    unsafe {
        if let Some(prev) = PREV_SHMEM_REQUEST {
            prev();
        }
        for region in regions() {
            pg_sys::RequestAddinShmemSpace(region.size);
            pg_sys::RequestNamedLWLockTranche(region.tranche.as_ptr(), 1);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    // SAFETY: PostgreSQL's shmem_startup_hook protocol, in the postmaster before any backend
    // exists (see the module's comment); each structure is zeroed once, when created.
    unsafe {
        if let Some(prev) = PREV_SHMEM_STARTUP {
            prev();
        }
        for region in regions() {
            let mut found = false;
            let at = pg_sys::ShmemInitStruct(region.name.as_ptr(), region.size, &mut found);
            if !found {
                std::ptr::write_bytes(at.cast::<u8>(), 0, region.size);
            }
            let lock = &raw mut (*pg_sys::GetNamedLWLockTranche(region.tranche.as_ptr())).lock;
            (region.attach)(at, lock);
        }
    }
}
