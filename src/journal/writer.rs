//! The log writer: a background worker per database that takes that database's events from
//! the queue and writes them in transactions of its own, committed synchronously. Started by
//! the launcher; exits when idle, so that it never holds a database someone wants to drop.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;

use super::queue::{kind, Locked, Slot, BATCH};

/// How often an idle writer looks at the queue (a filling queue also wakes it).
const POLL: Duration = Duration::from_millis(100);
/// How long a writer waits without events before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(2);

const INSERT_SQL: &str = include_str!("../../sql/queries/auth_log_insert.sql");
const TOKENS_USED_SQL: &str = include_str!("../../sql/queries/api_tokens_used.sql");

/// Entry point of a log writer (a dynamic background worker; its argument is the database).
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenancy_log_writer_main(arg: pg_sys::Datum) {
    let database = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    // SAFETY: plain read of this process's pid.
    let pid = unsafe { pg_sys::MyProcPid };
    Locked::exclusive().writer_started(database, pid);
    let mut idle = Duration::ZERO;
    loop {
        let batch = Locked::exclusive().take(database);
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
                let batch = Locked::exclusive().take(database);
                if batch.is_empty() {
                    break;
                }
                write(database, batch);
            }
            Locked::exclusive().release_writer(database, false);
            return;
        }
        idle += POLL;
        // The slot is released under the queue lock only when no event of this database
        // waits; an event queued afterwards has the launcher start a new writer.
        if idle >= IDLE_EXIT && Locked::exclusive().release_writer(database, true) {
            return;
        }
    }
}

fn uuid_column(slots: &[&Slot], f: impl Fn(&Slot) -> Option<[u8; 16]>) -> Vec<Option<pgrx::Uuid>> {
    slots
        .iter()
        .map(|s| f(s).map(pgrx::Uuid::from_bytes))
        .collect()
}

fn text_column(slots: &[&Slot], f: impl Fn(&Slot) -> &str) -> Vec<Option<String>> {
    slots
        .iter()
        .map(|s| Some(f(s)).filter(|t| !t.is_empty()).map(str::to_owned))
        .collect()
}

/// Writes one batch in one transaction: decisions into `tenancy.auth_log`, token uses into
/// `tenancy.api_tokens.last_used_at`. If a write fails (say the extension was dropped from the
/// database), the writer exits with the error in the server log, and the launcher starts a new
/// one that counts the lost batch as dropped.
fn write(database: u32, slots: Vec<Slot>) {
    BackgroundWorker::transaction(move || {
        // Recorded denials are durable when the writer commits, whatever the server's default.
        if Spi::run("SET LOCAL synchronous_commit = on").is_err() {
            crate::error::internal("the log writer cannot set synchronous_commit");
        }
        let decisions: Vec<&Slot> = slots.iter().filter(|s| s.kind == kind::DECISION).collect();
        if !decisions.is_empty() {
            let at: Vec<i64> = decisions.iter().map(|s| s.at).collect();
            let last_at: Vec<Option<i64>> = decisions
                .iter()
                .map(|s| (s.repeats > 1).then_some(s.last_at))
                .collect();
            let repeats: Vec<i32> = decisions
                .iter()
                .map(|s| i32::try_from(s.repeats).unwrap_or(i32::MAX))
                .collect();
            let outcome: Vec<&str> = decisions
                .iter()
                .map(|s| if s.allowed { "allow" } else { "deny" })
                .collect();
            let args = [
                at.into(),
                uuid_column(&decisions, Slot::tenant).into(),
                uuid_column(&decisions, Slot::user).into(),
                uuid_column(&decisions, Slot::token).into(),
                text_column(&decisions, |s| s.action.as_str()).into(),
                text_column(&decisions, |s| s.permission.as_str()).into(),
                outcome.into(),
                text_column(&decisions, |s| s.reason.as_str()).into(),
                text_column(&decisions, |s| s.label.as_str()).into(),
                text_column(&decisions, |s| s.role.as_str()).into(),
                text_column(&decisions, |s| s.login_role.as_str()).into(),
                repeats.into(),
                last_at.into(),
            ];
            if Spi::run_with_args(INSERT_SQL, &args).is_err() {
                crate::error::internal("the log writer cannot insert into tenancy.auth_log");
            }
        }
        let used: Vec<&Slot> = slots
            .iter()
            .filter(|s| s.kind == kind::TOKEN_USED)
            .collect();
        if !used.is_empty() {
            let at: Vec<i64> = used.iter().map(|s| s.last_at).collect();
            let args = [uuid_column(&used, Slot::token).into(), at.into()];
            if Spi::run_with_args(TOKENS_USED_SQL, &args).is_err() {
                crate::error::internal("the log writer cannot update tenancy.api_tokens");
            }
        }
    });
    if let Some(w) = Locked::exclusive().writer_mut(database) {
        w.in_flight = 0;
    }
}
