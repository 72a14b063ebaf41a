//! What application roles may not create or execute, however the SQL is spelled: PostgreSQL's
//! object-access hook sees every object created and every function about to run.
//!
//! * **No objects.** An application role creates no database object at all. Above all no
//!   temporary one: a temporary view, table, function, operator or domain lives on the server
//!   connection, and `pg_temp` is searched first for relations and types, so one named like an
//!   application's object captures the rows, tokens and context of the next client of a pooled
//!   connection. (`allowlist.rs` refuses the statements that create objects; this catches every
//!   other way, e.g. `SET search_path = pg_temp` then `CREATE VIEW`.)
//! * **No functions that see other tenants' activity.** Statistics accessors (`pg_stat_get_*`,
//!   behind every `pg_stat_*` view) count what row-level security filtered out (an index scan
//!   fetches other tenants' rows before the policy drops them: a range query's fetch count
//!   tells whether another tenant has a value in the range) and show the queries of every
//!   session of the same role; `pg_stat_statements` shows other tenants' literals;
//!   `pg_notify` and large objects are shared by every tenant of the database.
//!
//! Every refusal is `42501` and recorded. The refused functions are found by name once per
//! connection (and again after any function is created, changed or dropped), so the check of
//! a function about to run is a hash look-up.

use std::cell::{Cell, RefCell};

use pgrx::{pg_guard, pg_sys};

use crate::app_role::{self, is_app_role};
use crate::{decision, error, privileged};

const REFUSED_FUNCTIONS_SQL: &str = include_str!("../sql/queries/refused_functions.sql");

static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;

thread_local! {
    /// The functions application roles may not run, sorted; `None` until found (or after a
    /// change).
    static REFUSED: RefCell<Option<Vec<u32>>> = const { RefCell::new(None) };
    /// Set while the refused functions are being found (the query runs functions too).
    static FINDING: Cell<bool> = const { Cell::new(false) };
}

pub fn init() {
    // SAFETY: called once from _PG_init; the callback lives as long as the library.
    unsafe {
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            Some(on_function_change),
            pg_sys::Datum::from(0),
        );
    }
}

unsafe extern "C-unwind" fn on_function_change(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    hash: u32,
) {
    // A change of tenant invalidates plans through this cache too: no function changed.
    if hash != crate::context::ROUTED_PLANS_HASH && !FINDING.with(|f| f.get()) {
        REFUSED.with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                *r = None;
            }
        });
    }
}

// A plain frame: the checks run inside a pgrx guard.
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: the previous hook has exactly this signature; the checks only read.
    unsafe {
        if let Some(prev) = PREV_OBJECT_ACCESS {
            prev(access, class_id, object_id, sub_id, arg);
        }
        match access {
            pg_sys::ObjectAccessType::OAT_POST_CREATE if sub_id == 0 => check_create(class_id),
            // Every function a query runs comes here: when both answers are known, they are
            // read without setting up an error boundary.
            pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE => {
                match (app_role::known(), known_refused(object_id)) {
                    (Some(false), _) | (Some(true), Some(false)) => {}
                    _ => check_execute(object_id),
                }
            }
            _ => {}
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_create(class_id: pg_sys::Oid) {
    if !is_app_role() {
        return;
    }
    let what = if class_id == pg_sys::NamespaceRelationId {
        "schema"
    } else {
        "object"
    };
    decision::denial("create", Some(what), "not_allowed");
    error::forbidden(
        "tenancy: application roles cannot create database objects",
        "temporary and permanent objects outlive the transaction on a pooled connection; \
         create them as a role that is not an application role",
    );
}

#[pg_guard]
unsafe extern "C-unwind" fn check_execute(function: pg_sys::Oid) {
    if FINDING.with(|f| f.get()) || !is_app_role() || !refused(function) {
        return;
    }
    // SAFETY: a syscache look-up of an existing function's name.
    let name = unsafe {
        let name = pg_sys::get_func_name(function);
        if name.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        }
    };
    decision::denial("execute", Some(&name), "not_allowed");
    error::forbidden(
        format!(
            "tenancy: function {} is not available to application roles",
            error::echo(&name)
        ),
        "statistics, other sessions' queries, notifications and large objects are shared by every \
         tenant; query them as a role that is not an application role",
    );
}

/// Whether `function` is one application roles may not run, when that is known without a
/// query. Cannot raise.
fn known_refused(function: pg_sys::Oid) -> Option<bool> {
    REFUSED.with(|r| {
        r.try_borrow()
            .ok()?
            .as_ref()
            .map(|set| set.binary_search(&function.to_u32()).is_ok())
    })
}

/// Whether `function` is one application roles may not run.
fn refused(function: pg_sys::Oid) -> bool {
    if let Some(hit) = known_refused(function) {
        return hit;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FINDING.with(|f| f.set(false));
        }
    }
    FINDING.with(|f| f.set(true));
    let mut set = Vec::new();
    {
        let _reset = Reset;
        privileged::query_rows(REFUSED_FUNCTIONS_SQL, false, &[], &[], |row| {
            if let Some(oid) = row.get::<pg_sys::Oid>(1) {
                set.push(oid.to_u32());
            }
        });
    }
    set.sort_unstable();
    set.dedup();
    let hit = set.binary_search(&function.to_u32()).is_ok();
    REFUSED.with(|r| *r.borrow_mut() = Some(set));
    hit
}
