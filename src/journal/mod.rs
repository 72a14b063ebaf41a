//! The durable channel of the authorization log (`tenancy.auth_log`), and of API tokens'
//! `last_used_at`.
//!
//! A denial raises an error, and the error rolls back the transaction that would have recorded
//! it. So decisions are not written by the backend: they are queued in shared memory
//! (`queue.rs`), and a background worker per database, the log writer (`writer.rs`), writes them
//! in transactions of its own. A launcher registered at server start (`launcher.rs`) starts the
//! writers. The same channel brings token uses to `last_used_at`, so that `authenticate()`
//! writes nothing and holds no row lock in the caller's transaction. This needs
//! `shared_preload_libraries = 'pg_tenancy'` (shared memory is reserved at server start);
//! without it, decisions go to the server log only and `last_used_at` is not kept.
//!
//! A caller is never blocked or failed by the log. When the queue fills up, an event identical
//! to one still waiting but for its time is merged into it (`auth_log.repeats`, `last_at`); only
//! when the queue is full of distinct events is a new one dropped, counted in
//! `tenancy.log_status()` (every decision is also a JSON line in the server log).

mod launcher;
mod queue;
mod writer;

use pgrx::prelude::*;
use uuid::Uuid;

use queue::{kind, Locked, Pushed, Queue, Slot, Text};

/// Set in the postmaster when the library is preloaded, inherited by every backend.
static mut DURABLE: bool = false;

pub fn init() {
    // SAFETY: reading and setting PostgreSQL globals during _PG_init in the postmaster.
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        queue::install_hooks();
        DURABLE = true;
    }
    launcher::register();
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
    /// The role the client acts as (after SET ROLE), and the role it logged in as.
    pub role: &'a str,
    pub login_role: &'a str,
}

/// Whether events can be written at all: the library is preloaded and this is not a standby
/// (whose databases cannot be written).
fn writable() -> bool {
    // SAFETY: plain read of the recovery state.
    durable() && !unsafe { pg_sys::RecoveryInProgress() }
}

fn database() -> u32 {
    // SAFETY: plain read of a PostgreSQL global.
    u32::from(unsafe { pg_sys::MyDatabaseId })
}

/// Queues `slot` for this database's writer, and has one started when none runs.
fn push(slot: Slot) -> Pushed {
    let database = slot.database;
    let (pushed, wake) = {
        let mut q = Locked::exclusive();
        let pushed = q.push(slot);
        let now = crate::clock::now_unix_us();
        let wake = if !q.writer_alive(database, now) {
            q.launcher
        } else if q.used.is_multiple_of(256) {
            // A filling queue is drained before the writer's next periodic look.
            q.writers
                .iter()
                .find(|w| w.database == database && w.pid > 0)
                .map_or(0, |w| w.pid)
        } else {
            0
        };
        (pushed, wake)
    };
    Queue::wake(wake);
    pushed
}

/// Queues a decision for this database's log writer.
pub fn record(event: &Event) {
    if !writable() {
        return;
    }
    push(Slot {
        seq: 0,
        database: database(),
        kind: kind::DECISION,
        allowed: event.allowed,
        present: u8::from(event.tenant.is_some())
            | u8::from(event.user.is_some()) << 1
            | u8::from(event.token.is_some()) << 2,
        at: event.at_unix_us,
        last_at: event.at_unix_us,
        repeats: 1,
        tenant: event.tenant.map(|u| *u.as_bytes()).unwrap_or_default(),
        user: event.user.map(|u| *u.as_bytes()).unwrap_or_default(),
        token: event.token.map(|u| *u.as_bytes()).unwrap_or_default(),
        action: Text::new(event.action),
        permission: Text::new(event.permission.unwrap_or("")),
        reason: Text::new(event.reason),
        label: Text::new(event.label.unwrap_or("")),
        role: Text::new(event.role),
        login_role: Text::new(event.login_role),
    });
}

/// Queues a use of API token `token` at `at_unix_us`, for its `last_used_at`. Returns whether
/// it will be written (queued or merged into a waiting use).
pub fn token_used(token: Uuid, at_unix_us: i64) -> bool {
    if !writable() {
        return false;
    }
    let pushed = push(Slot {
        seq: 0,
        database: database(),
        kind: kind::TOKEN_USED,
        allowed: true,
        present: 4,
        at: at_unix_us,
        last_at: at_unix_us,
        repeats: 1,
        tenant: [0; 16],
        user: [0; 16],
        token: *token.as_bytes(),
        action: Text::new(""),
        permission: Text::new(""),
        reason: Text::new(""),
        label: Text::new(""),
        role: Text::new(""),
        login_role: Text::new(""),
    });
    pushed != Pushed::Dropped
}

/// Whether the durable log is on, and the queue's state: events waiting, events merged into
/// identical waiting ones, events dropped (since the server started), and log writers.
#[pg_extern(volatile, parallel_safe)]
fn log_status() -> TableIterator<
    'static,
    (
        name!(durable, bool),
        name!(queued, i64),
        name!(merged, i64),
        name!(dropped, i64),
        name!(writers, i64),
    ),
> {
    if !durable() {
        return TableIterator::once((false, 0, 0, 0, 0));
    }
    let q = Locked::exclusive();
    let writers = q.writers.iter().filter(|w| w.database != 0).count();
    TableIterator::once((
        true,
        i64::from(q.used),
        q.merged as i64,
        q.dropped as i64,
        writers as i64,
    ))
}
