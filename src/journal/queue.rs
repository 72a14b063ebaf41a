//! The queue in shared memory: events waiting to be written, and the table of log writers.
//!
//! All-zero bytes are an empty queue: it is initialised in place in shared memory (it is too
//! large to build on a stack). Every access holds the queue's one lightweight lock
//! ([`Locked`]); nothing under it allocates, raises or waits.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Events the queue holds.
pub const CAPACITY: usize = 16_384;
/// From this many queued events on, an event identical to one still waiting (but for its time)
/// is merged into it (counted in its `repeats`) instead of taking a slot of its own.
const MERGE_FROM: u32 = (CAPACITY / 4) as u32;
/// How many of the most recently queued events are candidates for a merge.
const RECENT: usize = 64;
/// Databases with a log writer at once.
pub const WRITERS: usize = 32;
/// Events one writer transaction takes at most.
pub const BATCH: usize = 1024;
/// How long a writer may take to start before it is considered lost (microseconds).
const START_TIMEOUT_US: i64 = 10_000_000;

/// A fixed-size, NUL-free text field of shared memory.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Text<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    const EMPTY: Self = Text {
        len: 0,
        bytes: [0; N],
    };

    /// Keeps at most N bytes, cut at a character boundary.
    pub fn new(s: &str) -> Self {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut t = Self::EMPTY;
        t.bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        t.len = end as u16;
        t
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// What a slot holds (a plain byte: a free slot of zeroed memory must be a valid `Slot`).
pub mod kind {
    /// An authorization decision, for `tenancy.auth_log`.
    pub const DECISION: u8 = 1;
    /// An API token was used: its `last_used_at` is brought up to `at`.
    pub const TOKEN_USED: u8 = 2;
}

/// One queued event. `seq` 0 is a free slot.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Slot {
    /// 0: free; else the order of arrival.
    pub seq: u64,
    pub database: u32,
    /// One of [`kind`].
    pub kind: u8,
    pub allowed: bool,
    /// Bit 0: tenant set, bit 1: user set, bit 2: token set.
    pub present: u8,
    /// Microseconds since the Unix epoch: the first occurrence, and the last one merged in.
    pub at: i64,
    pub last_at: i64,
    /// How many identical events this slot stands for (1 unless merged).
    pub repeats: u32,
    pub tenant: [u8; 16],
    pub user: [u8; 16],
    pub token: [u8; 16],
    pub action: Text<32>,
    pub permission: Text<128>,
    pub reason: Text<64>,
    pub label: Text<128>,
    pub role: Text<64>,
    pub login_role: Text<64>,
}

impl Slot {
    pub fn tenant(&self) -> Option<[u8; 16]> {
        (self.present & 1 != 0).then_some(self.tenant)
    }
    pub fn user(&self) -> Option<[u8; 16]> {
        (self.present & 2 != 0).then_some(self.user)
    }
    pub fn token(&self) -> Option<[u8; 16]> {
        (self.present & 4 != 0).then_some(self.token)
    }

    /// Whether two events are the same but for their times.
    fn same_event(&self, other: &Slot) -> bool {
        self.database == other.database
            && self.kind == other.kind
            && if self.kind == kind::TOKEN_USED {
                self.token == other.token
            } else {
                self.allowed == other.allowed
                    && self.present == other.present
                    && self.tenant == other.tenant
                    && self.user == other.user
                    && self.token == other.token
                    && self.action == other.action
                    && self.permission == other.permission
                    && self.reason == other.reason
                    && self.label == other.label
                    && self.role == other.role
                    && self.login_role == other.login_role
            }
    }
}

/// A database's log writer: its pid, or -1 while it is being started, and how many events it
/// is writing right now (lost, and counted as dropped, if it dies before committing them).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Writer {
    pub database: u32,
    pub pid: i32,
    pub in_flight: u32,
    /// When the slot was claimed (microseconds, Unix epoch): a writer that never started is
    /// replaced after a while.
    pub claimed_at: i64,
}

impl Writer {
    pub const NONE: Writer = Writer {
        database: 0,
        pid: 0,
        in_flight: 0,
        claimed_at: 0,
    };

    /// Whether the writer runs, or was claimed recently enough to be still starting.
    pub fn alive(&self, now_us: i64) -> bool {
        if self.pid == -1 {
            return now_us.saturating_sub(self.claimed_at) < START_TIMEOUT_US;
        }
        // SAFETY: BackendPidGetProc only reads the proc array.
        self.pid > 0 && unsafe { !pg_sys::BackendPidGetProc(self.pid).is_null() }
    }
}

pub struct Queue {
    next_seq: u64,
    pub used: u32,
    /// Where the next search for a free slot starts.
    hint: u32,
    /// The last RECENT slots filled, as index + 1 (0: none), newest at `recent_at`.
    recent: [u32; RECENT],
    recent_at: u32,
    pub merged: u64,
    pub dropped: u64,
    /// The launcher's pid (0 while there is none): set its latch to have a writer started.
    pub launcher: i32,
    pub slots: [Slot; CAPACITY],
    pub writers: [Writer; WRITERS],
}

/// What became of a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    Merged,
    Dropped,
}

impl Queue {
    /// Queues `event` (its `seq` is assigned here), merging it into an identical waiting event
    /// when the queue is filling up, or drops it (counted) when the queue is full.
    pub fn push(&mut self, mut event: Slot) -> Pushed {
        if self.used >= MERGE_FROM || event.kind == kind::TOKEN_USED {
            for &r in &self.recent {
                if r == 0 {
                    continue;
                }
                let slot = &mut self.slots[r as usize - 1];
                if slot.seq != 0 && slot.same_event(&event) {
                    slot.repeats = slot.repeats.saturating_add(1);
                    slot.last_at = slot.last_at.max(event.at);
                    self.merged += 1;
                    return Pushed::Merged;
                }
            }
        }
        if self.used as usize >= CAPACITY {
            self.dropped += 1;
            return Pushed::Dropped;
        }
        let mut i = self.hint as usize;
        while self.slots[i].seq != 0 {
            i = (i + 1) % CAPACITY;
        }
        self.next_seq += 1;
        event.seq = self.next_seq;
        event.repeats = 1;
        event.last_at = event.at;
        self.slots[i] = event;
        self.used += 1;
        self.hint = ((i + 1) % CAPACITY) as u32;
        self.recent_at = (self.recent_at + 1) % RECENT as u32;
        self.recent[self.recent_at as usize] = i as u32 + 1;
        Pushed::Queued
    }

    /// Takes up to BATCH of this database's events, oldest first, and notes them in flight
    /// for its writer.
    pub fn take(&mut self, database: u32) -> Vec<Slot> {
        let mut mine: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.seq != 0 && s.database == database)
            .map(|(i, s)| (s.seq, i))
            .collect();
        mine.sort_unstable();
        mine.truncate(BATCH);
        let taken: Vec<Slot> = mine.iter().map(|&(_, i)| self.slots[i]).collect();
        for &(_, i) in &mine {
            self.slots[i].seq = 0;
        }
        self.used -= taken.len() as u32;
        if let Some(w) = self.writer_mut(database) {
            w.in_flight = taken.iter().map(|s| s.repeats).sum();
        }
        taken
    }

    /// Whether events of `database` wait.
    pub fn has_events(&self, database: u32) -> bool {
        self.slots
            .iter()
            .any(|s| s.seq != 0 && s.database == database)
    }

    /// The databases whose events wait, each once.
    pub fn waiting_databases(&self) -> Vec<u32> {
        let mut dbs: Vec<u32> = self
            .slots
            .iter()
            .filter(|s| s.seq != 0)
            .map(|s| s.database)
            .collect();
        dbs.sort_unstable();
        dbs.dedup();
        dbs
    }

    /// Frees the events of `database` (it was dropped: nobody can write them), counted as
    /// dropped.
    pub fn forget_database(&mut self, database: u32) {
        let mut freed = 0u64;
        let mut count = 0u32;
        for slot in self.slots.iter_mut() {
            if slot.seq != 0 && slot.database == database {
                slot.seq = 0;
                freed += u64::from(slot.repeats);
                count += 1;
            }
        }
        self.used -= count;
        self.dropped += freed;
    }

    pub fn writer_mut(&mut self, database: u32) -> Option<&mut Writer> {
        self.writers.iter_mut().find(|w| w.database == database)
    }

    /// Whether `database` has a writer running or starting.
    pub fn writer_alive(&self, database: u32, now_us: i64) -> bool {
        self.writers
            .iter()
            .any(|w| w.database == database && w.alive(now_us))
    }

    /// Claims a writer slot for `database` (its writer is about to be started). A writer that
    /// died is replaced, and the events it was writing are counted as dropped. False when every
    /// slot is taken by a live writer.
    pub fn claim_writer(&mut self, database: u32, now_us: i64) -> bool {
        if let Some(w) = self.writer_mut(database) {
            let lost = std::mem::take(&mut w.in_flight);
            self.dropped += u64::from(lost);
        }
        let slot = self
            .writers
            .iter()
            .position(|w| w.database == database)
            .or_else(|| self.writers.iter().position(|w| w.database == 0))
            .or_else(|| self.writers.iter().position(|w| !w.alive(now_us)));
        match slot {
            Some(i) => {
                self.writers[i] = Writer {
                    database,
                    pid: -1,
                    in_flight: 0,
                    claimed_at: now_us,
                };
                true
            }
            None => false,
        }
    }

    /// A writer for `database` is running as `pid`.
    pub fn writer_started(&mut self, database: u32, pid: i32) {
        match self.writers.iter().position(|w| w.database == database) {
            Some(i) => self.writers[i].pid = pid,
            None => {
                if let Some(w) = self.writers.iter_mut().find(|w| w.database == 0) {
                    *w = Writer {
                        database,
                        pid,
                        in_flight: 0,
                        claimed_at: 0,
                    };
                }
            }
        }
    }

    /// Frees the writer slot of `database`; with `only_if_idle`, only when none of its events
    /// wait (an event queued afterwards gets a new writer). Returns whether it was freed.
    pub fn release_writer(&mut self, database: u32, only_if_idle: bool) -> bool {
        if only_if_idle && self.has_events(database) {
            return false;
        }
        if let Some(w) = self.writer_mut(database) {
            *w = Writer::NONE;
        }
        true
    }

    /// Sets the latch of the process `pid`, if it runs.
    pub fn wake(pid: i32) {
        if pid <= 0 {
            return;
        }
        // SAFETY: BackendPidGetProc reads the proc array; SetLatch on a live proc's latch.
        unsafe {
            let proc_ = pg_sys::BackendPidGetProc(pid);
            if !proc_.is_null() {
                pg_sys::SetLatch(&raw mut (*proc_).procLatch);
            }
        }
    }
}

const SHMEM_NAME: &CStr = c"pg_tenancy log queue";
const TRANCHE: &CStr = c"pg_tenancy";

static mut QUEUE: *mut Queue = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();

/// The queue under its lock, exclusive; released when the guard drops.
pub struct Locked(*mut Queue);

impl Locked {
    /// Only once the shared memory exists (the library is preloaded: `journal::durable()`).
    pub fn exclusive() -> Locked {
        // SAFETY: LOCK and QUEUE were set by the shared-memory start-up hook.
        unsafe {
            pg_sys::LWLockAcquire(LOCK, pg_sys::LWLockMode::LW_EXCLUSIVE);
            Locked(QUEUE)
        }
    }
}

impl std::ops::Deref for Locked {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        // SAFETY: exclusive access under the lock.
        unsafe { &*self.0 }
    }
}

impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Queue {
        // SAFETY: exclusive access under the lock.
        unsafe { &mut *self.0 }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: acquired in `exclusive`.
        unsafe { pg_sys::LWLockRelease(LOCK) };
    }
}

/// Places the queue in shared memory. Called from `_PG_init` in the postmaster only.
pub unsafe fn install_hooks() {
    // SAFETY: see `shmem::register`; `attach` stores what the postmaster created.
    unsafe {
        crate::shmem::register(crate::shmem::Region {
            name: SHMEM_NAME,
            tranche: TRANCHE,
            size: std::mem::size_of::<Queue>(),
            attach,
        });
    }
}

unsafe fn attach(at: *mut std::ffi::c_void, lock: *mut pg_sys::LWLock) {
    // SAFETY: called by shmem_startup in the postmaster, before any backend exists.
    unsafe {
        QUEUE = at.cast();
        LOCK = lock;
    }
}
