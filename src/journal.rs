//! The durable channel of the authorization log.
//!
//! A denial raises an error, and the error rolls back the transaction that would have recorded
//! it. So decisions are not written by the backend: they are queued in shared memory and a
//! background worker per database (the "log writer") inserts them into `tenancy.auth_log` in
//! transactions of its own. This needs `shared_preload_libraries = 'pg_tenancy'` (shared memory
//! is reserved at server start); without it, decisions go to the server log only.
//!
//! The queue holds `CAPACITY` events. When it is full the event is dropped, never waited for:
//! a caller is never blocked or failed by the log. Dropped events are counted
//! (`tenancy.log_status()`), and every decision is also a JSON line in the server log.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use uuid::Uuid;

/// Events the queue holds before it drops new ones.
const CAPACITY: usize = 4096;
/// Databases with a log writer at once.
const WRITERS: usize = 32;
/// Events one writer transaction inserts at most.
const BATCH: usize = 1024;
/// How often an idle writer looks at the queue (a filling queue also wakes it).
const POLL: Duration = Duration::from_millis(100);
/// How long a writer waits without events before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(2);

/// A fixed-size, NUL-free text field of shared memory.
#[derive(Clone, Copy)]
#[repr(C)]
struct Text<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    const EMPTY: Self = Text {
        len: 0,
        bytes: [0; N],
    };

    /// Keeps at most N bytes, cut at a character boundary.
    fn new(s: &str) -> Self {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut t = Self::EMPTY;
        t.bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        t.len = end as u16;
        t
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// One decision, as queued.
#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    /// 0: free; else the order of arrival.
    seq: u64,
    database: u32,
    /// Microseconds since the Unix epoch.
    at: i64,
    allowed: bool,
    /// Bit 0: tenant set, bit 1: user set, bit 2: token set.
    present: u8,
    tenant: [u8; 16],
    user: [u8; 16],
    token: [u8; 16],
    action: Text<32>,
    permission: Text<128>,
    reason: Text<64>,
    label: Text<128>,
    role: Text<64>,
}

impl Slot {
    fn tenant(&self) -> Option<[u8; 16]> {
        (self.present & 1 != 0).then_some(self.tenant)
    }
    fn user(&self) -> Option<[u8; 16]> {
        (self.present & 2 != 0).then_some(self.user)
    }
    fn token(&self) -> Option<[u8; 16]> {
        (self.present & 4 != 0).then_some(self.token)
    }
}

/// A database's log writer: its pid, or -1 while it is being started, and how many events it
/// is writing right now (lost, and counted as dropped, if it dies before committing them).
#[derive(Clone, Copy)]
#[repr(C)]
struct Writer {
    database: u32,
    pid: i32,
    in_flight: u32,
    /// When the slot was claimed (microseconds, Unix epoch): a writer that never started is
    /// replaced after a while.
    claimed_at: i64,
}

impl Writer {
    const NONE: Writer = Writer {
        database: 0,
        pid: 0,
        in_flight: 0,
        claimed_at: 0,
    };
}

/// How long a claimed writer may take to start before it is considered lost.
const START_TIMEOUT_US: i64 = 10_000_000;

/// The shared queue. All-zero bytes are an empty queue: it is initialised in place in shared
/// memory (it is too large to build on a stack).
#[repr(C)]
struct Queue {
    next_seq: u64,
    used: u32,
    /// Where the next search for a free slot starts.
    hint: u32,
    dropped: AtomicU64,
    slots: [Slot; CAPACITY],
    writers: [Writer; WRITERS],
}

const SHMEM_NAME: &CStr = c"pg_tenancy log queue";
const TRANCHE: &CStr = c"pg_tenancy";

/// Set in the postmaster when the library is preloaded, inherited by every backend.
static mut DURABLE: bool = false;
static mut QUEUE: *mut Queue = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();
static mut PREV_SHMEM_REQUEST: Option<unsafe extern "C-unwind" fn()> = None;
static mut PREV_SHMEM_STARTUP: Option<unsafe extern "C-unwind" fn()> = None;

/// The queue under its lock, exclusive; released when the guard drops.
struct Locked(*mut Queue);

impl Locked {
    fn exclusive() -> Locked {
        // SAFETY: LOCK and QUEUE were set by the shared-memory start-up hook (durable() holds).
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

unsafe fn request_shmem() {
    // SAFETY: called while shared memory is being sized (postmaster start-up).
    unsafe {
        pg_sys::RequestAddinShmemSpace(std::mem::size_of::<Queue>());
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), 1);
    }
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    // SAFETY: PostgreSQL's shmem_request_hook protocol.
    unsafe {
        if let Some(prev) = PREV_SHMEM_REQUEST {
            prev();
        }
        request_shmem();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    // SAFETY: PostgreSQL's shmem_startup_hook protocol. It runs in the postmaster, before any
    // backend exists (and again after a crash, when none is left), so nothing races it.
    unsafe {
        if let Some(prev) = PREV_SHMEM_STARTUP {
            prev();
        }
        let mut found = false;
        let queue = pg_sys::ShmemInitStruct(
            SHMEM_NAME.as_ptr(),
            std::mem::size_of::<Queue>(),
            &mut found,
        ) as *mut Queue;
        if !found {
            std::ptr::write_bytes(queue, 0, 1);
        }
        QUEUE = queue;
        LOCK = &raw mut (*pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr())).lock;
    }
}

pub fn init() {
    // SAFETY: reading and setting PostgreSQL globals during _PG_init in the postmaster.
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        {
            PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(shmem_request);
        }
        #[cfg(any(feature = "pg13", feature = "pg14"))]
        request_shmem();
        PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
        DURABLE = true;
    }
}

/// Whether decisions reach `tenancy.auth_log` (the library is preloaded).
pub fn durable() -> bool {
    // SAFETY: written once before any backend exists.
    unsafe { DURABLE }
}

/// A decision to record.
pub struct Event<'a> {
    pub at_unix_us: i64,
    pub tenant: Option<Uuid>,
    pub user: Option<Uuid>,
    pub token: Option<Uuid>,
    pub action: &'a str,
    pub permission: Option<&'a str>,
    pub allowed: bool,
    pub reason: &'a str,
    pub label: Option<&'a str>,
    pub role: &'a str,
}

/// Queues an event for this database's log writer, and makes sure a writer runs. Never blocks
/// on a full queue: the event is counted as dropped instead.
pub fn enqueue(event: &Event) {
    if !durable() {
        return;
    }
    // SAFETY: plain read of a PostgreSQL global.
    let database = u32::from(unsafe { pg_sys::MyDatabaseId });
    let need_writer = {
        let mut q = Locked::exclusive();
        if q.used as usize >= CAPACITY {
            q.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut i = q.hint as usize;
        while q.slots[i].seq != 0 {
            i = (i + 1) % CAPACITY;
        }
        q.next_seq += 1;
        let seq = q.next_seq;
        q.used += 1;
        q.hint = ((i + 1) % CAPACITY) as u32;
        q.slots[i] = Slot {
            seq,
            database,
            at: event.at_unix_us,
            allowed: event.allowed,
            present: u8::from(event.tenant.is_some())
                | u8::from(event.user.is_some()) << 1
                | u8::from(event.token.is_some()) << 2,
            tenant: event.tenant.map(|u| *u.as_bytes()).unwrap_or_default(),
            user: event.user.map(|u| *u.as_bytes()).unwrap_or_default(),
            token: event.token.map(|u| *u.as_bytes()).unwrap_or_default(),
            action: Text::new(event.action),
            permission: Text::new(event.permission.unwrap_or("")),
            reason: Text::new(event.reason),
            label: Text::new(event.label.unwrap_or("")),
            role: Text::new(event.role),
        };
        if q.used.is_multiple_of(256) {
            wake_writer(&q, database);
        }
        claim_writer_slot(&mut q, database)
    };
    if need_writer && start_writer(database).is_err() {
        // No worker slot now: forget the claim, the next event tries again. Queued events wait.
        let mut q = Locked::exclusive();
        if let Some(w) = q
            .writers
            .iter_mut()
            .find(|w| w.database == database && w.pid == -1)
        {
            *w = Writer::NONE;
        }
    }
}

/// Under the queue lock: sets the latch of this database's writer, so that a filling queue is
/// drained before its next periodic wake-up.
fn wake_writer(q: &Queue, database: u32) {
    if let Some(w) = q
        .writers
        .iter()
        .find(|w| w.database == database && w.pid > 0)
    {
        // SAFETY: BackendPidGetProc reads the proc array; SetLatch on a live proc's latch.
        unsafe {
            let proc_ = pg_sys::BackendPidGetProc(w.pid);
            if !proc_.is_null() {
                pg_sys::SetLatch(&raw mut (*proc_).procLatch);
            }
        }
    }
}

/// Under the queue lock: whether this database needs a writer started, claiming its slot if so.
/// A writer that died is replaced, and the events it was writing are counted as dropped.
fn claim_writer_slot(q: &mut Queue, database: u32) -> bool {
    if let Some(w) = q.writers.iter_mut().find(|w| w.database == database) {
        if writer_alive(w) {
            return false;
        }
        let lost = std::mem::take(&mut w.in_flight);
        q.dropped.fetch_add(u64::from(lost), Ordering::Relaxed);
    }
    // This database's slot, else a free one, else one whose writer is gone (its database may
    // have been dropped).
    let slot = q
        .writers
        .iter()
        .position(|w| w.database == database)
        .or_else(|| q.writers.iter().position(|w| w.database == 0))
        .or_else(|| q.writers.iter().position(|w| !writer_alive(w)));
    match slot {
        Some(i) => {
            q.writers[i] = Writer {
                database,
                pid: -1,
                in_flight: 0,
                claimed_at: crate::clock::now_unix_us(),
            };
            true
        }
        None => false,
    }
}

/// Whether a slot's writer is running, or was claimed recently enough to be still starting.
fn writer_alive(w: &Writer) -> bool {
    if w.pid == -1 {
        return crate::clock::now_unix_us().saturating_sub(w.claimed_at) < START_TIMEOUT_US;
    }
    // SAFETY: BackendPidGetProc only reads the proc array.
    w.pid > 0 && unsafe { !pg_sys::BackendPidGetProc(w.pid).is_null() }
}

fn start_writer(database: u32) -> Result<(), ()> {
    BackgroundWorkerBuilder::new("pg_tenancy log writer")
        .set_type("pg_tenancy log writer")
        .set_library("pg_tenancy")
        .set_function("tenancy_log_writer_main")
        .set_argument(Some(pg_sys::Datum::from(database)))
        .enable_spi_access()
        .set_restart_time(None)
        .load_dynamic()
        .map(|_| ())
        .map_err(|_| ())
}

/// The queue as `log_status()` reports it: (queued, dropped, writers).
pub fn status() -> (i64, i64, i64) {
    if !durable() {
        return (0, 0, 0);
    }
    let q = Locked::exclusive();
    let writers = q.writers.iter().filter(|w| w.database != 0).count();
    (
        q.used as i64,
        q.dropped.load(Ordering::Relaxed) as i64,
        writers as i64,
    )
}

/// Takes up to BATCH of this database's events, oldest first.
fn take(database: u32) -> Vec<Slot> {
    let mut q = Locked::exclusive();
    let mut mine: Vec<(u64, usize)> = q
        .slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.seq != 0 && s.database == database)
        .map(|(i, s)| (s.seq, i))
        .collect();
    mine.sort_unstable();
    mine.truncate(BATCH);
    let taken: Vec<Slot> = mine.iter().map(|&(_, i)| q.slots[i]).collect();
    for &(_, i) in &mine {
        q.slots[i].seq = 0;
    }
    q.used -= taken.len() as u32;
    if let Some(w) = q.writers.iter_mut().find(|w| w.database == database) {
        w.in_flight = taken.len() as u32;
    }
    taken
}

/// The batch taken by `take` is committed.
fn written(database: u32) {
    let mut q = Locked::exclusive();
    if let Some(w) = q.writers.iter_mut().find(|w| w.database == database) {
        w.in_flight = 0;
    }
}

const INSERT_SQL: &str = include_str!("../sql/queries/auth_log_insert.sql");

fn uuid_column(slots: &[Slot], f: impl Fn(&Slot) -> Option<[u8; 16]>) -> Vec<Option<pgrx::Uuid>> {
    slots
        .iter()
        .map(|s| f(s).map(pgrx::Uuid::from_bytes))
        .collect()
}

fn text_column(slots: &[Slot], f: impl Fn(&Slot) -> &str) -> Vec<Option<String>> {
    slots
        .iter()
        .map(|s| Some(f(s)).filter(|t| !t.is_empty()).map(str::to_owned))
        .collect()
}

/// Inserts the events in one transaction of the writer's own. If the insert fails (say the
/// extension was dropped from the database), the writer exits with the error in the server
/// log; the next event starts a new writer and counts the lost batch as dropped.
fn write(database: u32, slots: Vec<Slot>) {
    BackgroundWorker::transaction(move || {
        let at: Vec<i64> = slots.iter().map(|s| s.at).collect();
        let outcome: Vec<&str> = slots
            .iter()
            .map(|s| if s.allowed { "allow" } else { "deny" })
            .collect();
        let args = [
            at.into(),
            uuid_column(&slots, Slot::tenant).into(),
            uuid_column(&slots, Slot::user).into(),
            uuid_column(&slots, Slot::token).into(),
            text_column(&slots, |s| s.action.as_str()).into(),
            text_column(&slots, |s| s.permission.as_str()).into(),
            outcome.into(),
            text_column(&slots, |s| s.reason.as_str()).into(),
            text_column(&slots, |s| s.label.as_str()).into(),
            text_column(&slots, |s| s.role.as_str()).into(),
        ];
        // Recorded denials are durable when the writer commits, whatever the server's default.
        if Spi::run("SET LOCAL synchronous_commit = on").is_err()
            || Spi::run_with_args(INSERT_SQL, &args).is_err()
        {
            crate::error::internal("the log writer cannot insert into tenancy.auth_log");
        }
    });
    written(database);
}

/// Entry point of a log writer (a dynamic background worker, one per database).
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenancy_log_writer_main(arg: pg_sys::Datum) {
    let database = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    {
        let mut q = Locked::exclusive();
        // SAFETY: plain read of this process's pid.
        let pid = unsafe { pg_sys::MyProcPid };
        match q.writers.iter_mut().find(|w| w.database == database) {
            Some(w) => w.pid = pid,
            None => {
                if let Some(w) = q.writers.iter_mut().find(|w| w.database == 0) {
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
    let mut idle = Duration::ZERO;
    loop {
        let batch = take(database);
        let full = batch.len() == BATCH;
        if !batch.is_empty() {
            idle = Duration::ZERO;
            write(database, batch);
        }
        if full {
            continue;
        }
        if !BackgroundWorker::wait_latch(Some(POLL)) {
            // Shutting down: write what is left.
            loop {
                let batch = take(database);
                if batch.is_empty() {
                    break;
                }
                write(database, batch);
            }
            release_slot(database);
            return;
        }
        idle += POLL;
        // Idle writers exit, so that they never hold a database that someone wants to drop
        // (DROP DATABASE waits 5 seconds for other sessions to leave). The slot is released
        // under the queue lock only when no event of this database waits: an event queued
        // afterwards starts a new writer.
        if idle >= IDLE_EXIT {
            forget_dropped_databases();
            if release_slot_if_idle(database) {
                return;
            }
        }
    }
}

/// Frees the queued events of databases that no longer exist (dropped before their writer ran):
/// nobody can write them, and they would take room from everyone else. Counted as dropped.
fn forget_dropped_databases() {
    let existing: Vec<u32> = BackgroundWorker::transaction(|| {
        Spi::get_one::<Vec<pg_sys::Oid>>(
            "SELECT pg_catalog.array_agg(oid) FROM pg_catalog.pg_database",
        )
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(u32::from)
        .collect()
    });
    if existing.is_empty() {
        return;
    }
    let mut q = Locked::exclusive();
    let mut freed = 0u32;
    for slot in q.slots.iter_mut() {
        if slot.seq != 0 && !existing.contains(&slot.database) {
            slot.seq = 0;
            freed += 1;
        }
    }
    if freed > 0 {
        q.used -= freed;
        q.dropped.fetch_add(u64::from(freed), Ordering::Relaxed);
    }
}

fn release_slot(database: u32) {
    let mut q = Locked::exclusive();
    if let Some(w) = q.writers.iter_mut().find(|w| w.database == database) {
        *w = Writer::NONE;
    }
}

fn release_slot_if_idle(database: u32) -> bool {
    let mut q = Locked::exclusive();
    if q.slots.iter().any(|s| s.seq != 0 && s.database == database) {
        return false;
    }
    if let Some(w) = q.writers.iter_mut().find(|w| w.database == database) {
        *w = Writer::NONE;
    }
    true
}

/// Whether the durable log is on, and the queue's state.
#[pg_extern(volatile, parallel_safe)]
fn log_status() -> TableIterator<
    'static,
    (
        name!(durable, bool),
        name!(queued, i64),
        name!(dropped, i64),
        name!(writers, i64),
    ),
> {
    let (queued, dropped, writers) = status();
    TableIterator::once((durable(), queued, dropped, writers))
}
