//! The log launcher: one background worker per server, registered at start-up (so it never
//! waits for a free worker slot), that starts a log writer for every database whose events wait
//! without one. Backends that queue an event for a database without a live writer set its
//! latch; it also looks every `POLL` on its own, so a writer that could not be started (every
//! worker slot taken by parallel queries, say) is started as soon as a slot frees up. Events
//! of databases that no longer exist are forgotten (counted as dropped).

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;

use super::queue::Locked;
use crate::clock;

/// How often the launcher looks at the queue without being woken.
const POLL: Duration = Duration::from_millis(250);

/// Registers the launcher. Called from `_PG_init` in the postmaster (preloaded library).
pub fn register() {
    BackgroundWorkerBuilder::new("pg_tenancy log launcher")
        .set_type("pg_tenancy log launcher")
        .set_library("pg_tenancy")
        .set_function("tenancy_log_launcher_main")
        .enable_shmem_access(None)
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Entry point of the launcher.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenancy_log_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Connected to no database: it reads only the shared catalog pg_database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    // SAFETY: plain read of this process's pid.
    let pid = unsafe { pg_sys::MyProcPid };
    Locked::exclusive().launcher = pid;
    while BackgroundWorker::wait_latch(Some(POLL)) {
        let waiting = {
            let q = Locked::exclusive();
            let now = clock::now_unix_us();
            q.waiting_databases()
                .into_iter()
                .filter(|db| !q.writer_alive(*db, now))
                .collect::<Vec<u32>>()
        };
        for database in waiting {
            if !database_exists(database) {
                Locked::exclusive().forget_database(database);
                continue;
            }
            let claimed = Locked::exclusive().claim_writer(database, clock::now_unix_us());
            if claimed && start_writer(database).is_err() {
                // No worker slot now: forget the claim and try again at the next look.
                Locked::exclusive().release_writer(database, false);
            }
        }
    }
    Locked::exclusive().launcher = 0;
}

fn database_exists(database: u32) -> bool {
    BackgroundWorker::transaction(|| {
        // SAFETY: a syscache look-up of the shared catalog pg_database inside a transaction.
        unsafe {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::DATABASEOID as i32,
                pg_sys::Datum::from(pg_sys::Oid::from(database)),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
            )
        }
    })
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
