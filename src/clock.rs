//! Time: PostgreSQL counts microseconds from 2000-01-01, token formats and the log from the Unix
//! epoch. Depends on nothing in the crate.

use pgrx::pg_sys;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// A PostgreSQL timestamp (microseconds since 2000-01-01) as microseconds since the Unix epoch.
pub fn pg_to_unix_us(pg_us: i64) -> i64 {
    pg_us.saturating_add(PG_EPOCH_UNIX_US)
}

/// Microseconds since the Unix epoch as a PostgreSQL timestamp (microseconds since 2000-01-01).
pub fn unix_to_pg_us(unix_us: i64) -> i64 {
    unix_us.saturating_sub(PG_EPOCH_UNIX_US)
}

/// Microseconds since the Unix epoch, from the wall clock (`clock_timestamp()`).
pub fn now_unix_us() -> i64 {
    // SAFETY: plain read of the clock.
    pg_to_unix_us(unsafe { pg_sys::GetCurrentTimestamp() })
}
