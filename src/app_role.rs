//! Who is an application role: a non-superuser that has the privileges of `tenancy_client`
//! (so every member of `tenancy_app` too). The hooks that refuse statements, objects and
//! functions ask on every call, so the answer is kept for the current users and transaction.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::statement;

thread_local! {
    /// (user, outer user, local transaction id, answer) of the last question.
    static LAST: Cell<Option<(pg_sys::Oid, pg_sys::Oid, u32, bool)>> = const { Cell::new(None) };
}

/// Whether an application role is acting. Yes when the session logged in as an application
/// role (whatever it SET ROLE to), unless a superuser's SECURITY DEFINER function runs; and
/// when both the current user (`GetUserId()`; inside a SECURITY DEFINER function its owner)
/// and the role the session acts as (`GetOuterUserId()`, after SET ROLE) are application roles.
/// So a superuser's `CREATE SCHEMA … AUTHORIZATION app_role`, which creates as the new owner,
/// is not an application role acting.
pub fn is_app_role() -> bool {
    // SAFETY: plain reads of the current user ids.
    let (user, outer, session) = unsafe {
        (
            pg_sys::GetUserId(),
            pg_sys::GetOuterUserId(),
            pg_sys::GetSessionUserId(),
        )
    };
    let xid = statement::local_xid();
    if let Some((u, o, x, answer)) = LAST.with(|l| l.get()) {
        if u == user && o == outer && x == xid {
            return answer;
        }
    }
    // SAFETY: a catalog look-up by oid.
    let answer = !unsafe { pg_sys::superuser_arg(user) }
        && (is_app(session) || (is_app(user) && (outer == user || is_app(outer))));
    LAST.with(|l| l.set(Some((user, outer, xid, answer))));
    answer
}

fn is_app(role: pg_sys::Oid) -> bool {
    // SAFETY: catalog look-ups by oid and name.
    unsafe {
        !pg_sys::superuser_arg(role) && {
            let client = pg_sys::get_role_oid(c"tenancy_client".as_ptr(), true);
            client != pg_sys::InvalidOid && pg_sys::has_privs_of_role(role, client)
        }
    }
}
