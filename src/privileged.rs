//! Reading pg_tenancy's own tables on behalf of application roles.
//!
//! Application roles cannot read `tenancy.users` (other tenants' emails) nor other tenants'
//! memberships, but the context and RBAC checks must. The checks are SECURITY INVOKER functions
//! (so that the warnings name the real caller and nothing widens their privileges) and switch to
//! the bootstrap superuser only around fixed, parameterised, schema-qualified queries whose
//! operators are qualified too, so that no `search_path` can redirect them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::spi::{OwnedPreparedStatement, SpiHeapTupleData};
use pgrx::{pg_sys, PgOid, Spi};

thread_local! {
    /// The fixed queries, prepared once per backend (plans are revalidated by PostgreSQL when
    /// the tables change).
    static PLANS: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
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
                    let plan = Rc::new(
                        client
                            .prepare(sql, &types)
                            .expect("a fixed query prepares")
                            .keep(),
                    );
                    PLANS.with(|p| p.borrow_mut().insert(sql, plan.clone()));
                    plan
                }
            };
            let table = client
                .select(&*plan, Some(1), args)
                .expect("a fixed query runs");
            table.into_iter().next().map(|row| map(&row))
        })
    })
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
        }
    }

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
