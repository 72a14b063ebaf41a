//! Reading pg_tenancy's own tables on behalf of application roles.
//!
//! Application roles cannot read `tenancy.users` (other tenants' emails) nor other tenants'
//! memberships, but the context and RBAC checks must. The checks are SECURITY INVOKER functions
//! (so that the warnings name the real caller and nothing widens their privileges) and switch to
//! the bootstrap superuser only around fixed, parameterised, schema-qualified queries whose
//! operators are qualified too, so that no `search_path` can redirect them.

use std::cell::RefCell;
use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::ffi::{CStr, CString};
use std::rc::Rc;

use pgrx::spi::{OwnedPreparedStatement, SpiHeapTupleData};
use pgrx::{pg_sys, FromDatum, PgOid, Spi};

use crate::error;

thread_local! {
    /// The fixed queries, prepared once per backend (plans are revalidated by PostgreSQL when
    /// the tables change).
    static PLANS: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>, RandomState>> =
        RefCell::new(HashMap::default());
}

/// Runs one of pg_tenancy's fixed, schema-qualified queries as the bootstrap superuser and maps
/// its first row.
pub fn query_one<R>(
    sql: &'static str,
    arg_types: &[pg_sys::Oid],
    args: &[pgrx::datum::DatumWithOid],
    map: impl FnOnce(&SpiHeapTupleData) -> R,
) -> Option<R> {
    as_superuser(|| {
        Spi::connect(|client| {
            let plan = PLANS.with(|p| p.borrow().get(sql).cloned());
            let plan = match plan {
                Some(plan) => plan,
                None => {
                    let types: Vec<PgOid> = arg_types.iter().map(|t| PgOid::from(*t)).collect();
                    let Ok(prepared) = client.prepare(sql, &types) else {
                        error::internal("a fixed query does not prepare");
                    };
                    let plan = Rc::new(prepared.keep());
                    PLANS.with(|p| p.borrow_mut().insert(sql, plan.clone()));
                    plan
                }
            };
            let Ok(table) = client.select(&*plan, Some(1), args) else {
                error::internal("a fixed query does not run");
            };
            table.into_iter().next().map(|row| map(&row))
        })
    })
}

thread_local! {
    /// The fixed queries read with a fresh snapshot, prepared and kept once per backend.
    static RAW_PLANS: RefCell<HashMap<&'static str, usize, RandomState>> = RefCell::new(HashMap::default());
}

/// One row of a query run by [`query_rows`]; valid while the row callback runs.
pub struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl Row {
    fn raw(&self, column: i32) -> Option<pg_sys::Datum> {
        let mut is_null = false;
        // SAFETY: tuple and descriptor come from SPI_tuptable of the running query; a column
        // number out of range yields NULL with SPI_result set, which is_null reports.
        let datum = unsafe { pg_sys::SPI_getbinval(self.tuple, self.desc, column, &mut is_null) };
        (!is_null).then_some(datum)
    }

    /// Column `column` (1-based) converted to a Rust value (copied out of SPI memory).
    pub fn get<T: FromDatum>(&self, column: i32) -> Option<T> {
        let datum = self.raw(column)?;
        // SAFETY: the queries are fixed, so every caller names the column's real type.
        unsafe { T::from_datum(datum, false) }
    }

    /// A `timestamptz` column as PostgreSQL's microseconds since 2000-01-01
    /// (`i64::MAX` for `infinity`, `i64::MIN` for `-infinity`).
    pub fn timestamp_us(&self, column: i32) -> Option<i64> {
        self.raw(column).map(|d| d.value() as i64)
    }
}

/// Runs one of pg_tenancy's fixed, schema-qualified queries as the bootstrap superuser,
/// read-only, calling `each` per row.
///
/// With `fresh`, the query reads with a snapshot taken now rather than the statement's or the
/// transaction's. The caches read through this: an answer cached after the invalidation
/// messages were processed must include every change committed before them, which only a new
/// snapshot guarantees (a REPEATABLE READ transaction's snapshot can be older). `fresh` is not
/// allowed in parallel mode (`GetLatestSnapshot` refuses it): the caller checks.
pub fn query_rows(
    sql: &'static str,
    fresh: bool,
    arg_types: &[pg_sys::Oid],
    args: &[pgrx::datum::DatumWithOid],
    mut each: impl FnMut(&Row),
) {
    as_superuser(|| {
        Spi::connect(|_client| {
            let plan = RAW_PLANS.with(|p| p.borrow().get(sql).copied());
            let plan = match plan {
                Some(plan) => plan as pg_sys::SPIPlanPtr,
                None => {
                    let Ok(text) = CString::new(sql) else {
                        error::internal("a fixed query holds a NUL byte");
                    };
                    let mut types = arg_types.to_vec();
                    // SAFETY: inside SPI_connect; text and types outlive the call.
                    let plan = unsafe {
                        pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_mut_ptr())
                    };
                    // SAFETY: a plan SPI_prepare returned, kept for the backend's lifetime.
                    if plan.is_null() || unsafe { pg_sys::SPI_keepplan(plan) } != 0 {
                        error::internal("a fixed query does not prepare");
                    }
                    RAW_PLANS.with(|p| p.borrow_mut().insert(sql, plan as usize));
                    plan
                }
            };
            let mut values: Vec<pg_sys::Datum> = args
                .iter()
                .map(|a| {
                    a.datum()
                        .map_or(pg_sys::Datum::from(0), |d| d.sans_lifetime())
                })
                .collect();
            let nulls: Vec<std::ffi::c_char> = args
                .iter()
                .map(|a| if a.datum().is_some() { b' ' } else { b'n' } as std::ffi::c_char)
                .collect();
            // SAFETY: a kept plan, as many values and nulls as it has parameters; a fresh
            // snapshot is copied and pushed by SPI for the duration of the query, else the
            // statement's active snapshot is used (read-only execution).
            let status = unsafe {
                if fresh {
                    pg_sys::SPI_execute_snapshot(
                        plan,
                        values.as_mut_ptr(),
                        nulls.as_ptr(),
                        pg_sys::GetLatestSnapshot(),
                        std::ptr::null_mut(),
                        true,
                        false,
                        0,
                    )
                } else {
                    pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), true, 0)
                }
            };
            if status != pg_sys::SPI_OK_SELECT as i32 {
                error::internal(&format!("a fixed query does not run (SPI status {status})"));
            }
            // SAFETY: SPI_tuptable holds SPI_processed rows of the query just run.
            unsafe {
                let table = pg_sys::SPI_tuptable;
                if table.is_null() {
                    return;
                }
                for i in 0..pg_sys::SPI_processed as usize {
                    each(&Row {
                        tuple: *(*table).vals.add(i),
                        desc: (*table).tupdesc,
                    });
                }
            }
        })
    })
}

thread_local! {
    /// How many of pg_tenancy's own privileged queries are running (nested).
    static OWN_QUERIES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether one of pg_tenancy's own queries is running: the hooks leave those alone (they read
/// pg_tenancy's tables as the bootstrap superuser, for a decision already under way).
pub fn own_query_running() -> bool {
    OWN_QUERIES.with(|d| d.get() > 0)
}

/// Runs `f` as the bootstrap superuser in a security-restricted operation, then restores the
/// caller's user id and security context (also when `f` raises).
pub fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    struct Restore {
        user: pg_sys::Oid,
        sec: i32,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores exactly what GetUserIdAndSecContext returned.
            unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.sec) };
            OWN_QUERIES.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    OWN_QUERIES.with(|d| d.set(d.get() + 1));

    let mut user = pg_sys::InvalidOid;
    let mut sec = 0i32;
    // SAFETY: out-parameters are valid locals.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut sec) };
    let _restore = Restore { user, sec };
    let restricted =
        sec | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
    // SAFETY: switching to a superuser that always exists; restored by `_restore`.
    unsafe {
        pg_sys::SetUserIdAndSecContext(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), restricted)
    };
    f()
}

/// Runs `f` with setting `name` at `value` for the current transaction (`SET LOCAL`), then puts
/// back what it was (also a transaction-local value), so the caller's own setting is unchanged.
pub fn with_setting_local<R>(name: &CStr, value: &CStr, f: impl FnOnce() -> R) -> R {
    // SAFETY: GetConfigOptionByName copies the current value (NULL for an unknown setting).
    let previous = unsafe {
        let v = pg_sys::GetConfigOptionByName(name.as_ptr(), std::ptr::null_mut(), true);
        (!v.is_null()).then(|| CStr::from_ptr(v).to_owned())
    };
    let set = |v: &CStr| {
        // SAFETY: both strings are valid C strings for the duration of the call.
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                v.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_LOCAL,
                true,
                0,
                false,
            )
        }
    };
    if previous.is_none() {
        return f();
    }
    set(value);
    let r = f();
    if let Some(previous) = previous {
        set(&previous);
    }
    r
}

/// The name of a role, or its oid when it no longer exists.
pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId with noerr=true returns NULL for a missing role.
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        format!("{}", u32::from(role))
    } else {
        // SAFETY: a palloc'd NUL-terminated string.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}

/// The name of the role the client is acting as: the session's role (after SET ROLE), not the
/// owner of a SECURITY DEFINER function that happens to be running.
pub fn current_role_name() -> String {
    // SAFETY: plain read of the outer user id.
    role_name(unsafe { pg_sys::GetOuterUserId() })
}

/// The name of the role the session logged in as (`session_user`): the accountable identity
/// when a client has used `SET ROLE`.
pub fn session_role_name() -> String {
    // SAFETY: plain read of the session user id.
    role_name(unsafe { pg_sys::GetSessionUserId() })
}

/// The name of the current user (`GetUserId()`): the role a Citus coordinator's connections to
/// its workers run as, and, on a worker, the role such a connection runs as.
pub fn connecting_role_name() -> String {
    // SAFETY: plain read of the current user id.
    role_name(unsafe { pg_sys::GetUserId() })
}

/// How many named cursors (DECLAREd, kept WITH HOLD, or named protocol portals) other than the
/// running one are open in this session.
pub fn open_cursors() -> i64 {
    // SAFETY: ActivePortal is NULL or a valid portal with a NUL-terminated name.
    let active = unsafe {
        let portal = pg_sys::ActivePortal;
        if portal.is_null() || (*portal).name.is_null() {
            String::new()
        } else {
            CStr::from_ptr((*portal).name)
                .to_string_lossy()
                .into_owned()
        }
    };
    as_superuser(|| {
        pgrx::Spi::get_one_with_args::<i64>(
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors c \
              WHERE c.name OPERATOR(pg_catalog.<>) '' AND c.name OPERATOR(pg_catalog.<>) $1",
            &[active.as_str().into()],
        )
        .ok()
        .flatten()
        .unwrap_or(0)
    })
}
