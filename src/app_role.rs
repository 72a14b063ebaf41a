//! Who is an application role: a non-superuser that has the privileges of `tenancy_client`
//! (so every member of `tenancy_app` too). The hooks that refuse statements, objects and
//! functions ask on every call (the object-access hook for every function a query runs), so
//! the answer is kept for the current users until a role or a role membership changes
//! (PostgreSQL's invalidation of `pg_authid` and `pg_auth_members`, which also reaches this
//! backend's own changes at the next command).

use std::cell::Cell;

use pgrx::pg_sys;

use crate::unguarded;

/// The last question and its answer: (user, outer user, session user, answer).
type Answer = (pg_sys::Oid, pg_sys::Oid, pg_sys::Oid, bool);

thread_local! {
    static LAST: Cell<Option<Answer>> = const { Cell::new(None) };
    /// (role, superuser, BYPASSRLS) of the last role asked about by `bypass_of()`.
    static BYPASS: Cell<Option<(pg_sys::Oid, bool, bool)>> = const { Cell::new(None) };
}

/// Forgets the last answer whenever a role or a role membership changes.
pub fn init() {
    // SAFETY: called once from _PG_init; the callback lives as long as the library.
    unsafe {
        for cache in [
            pg_sys::SysCacheIdentifier::AUTHOID,
            pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(on_role_change),
                pg_sys::Datum::from(0),
            );
        }
    }
}

unsafe extern "C-unwind" fn on_role_change(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    LAST.with(|l| l.set(None));
    BYPASS.with(|b| b.set(None));
}

/// Whether `role` is a superuser, and whether it has the BYPASSRLS attribute.
pub fn bypass_of(role: pg_sys::Oid) -> (bool, bool) {
    if let Some((r, superuser, bypass)) = BYPASS.with(|b| b.get()) {
        if r == role {
            return (superuser, bypass);
        }
    }
    // SAFETY: catalog look-ups by oid.
    let (superuser, bypass) = unsafe {
        (
            pg_sys::superuser_arg(role),
            pg_sys::has_bypassrls_privilege(role),
        )
    };
    BYPASS.with(|b| b.set(Some((role, superuser, bypass))));
    (superuser, bypass)
}

fn user_ids() -> (pg_sys::Oid, pg_sys::Oid, pg_sys::Oid) {
    (
        unguarded::user_id(),
        unguarded::outer_user_id(),
        unguarded::session_user_id(),
    )
}

/// The answer of `is_app_role()` when it is known without a catalog look-up: a plain read
/// that cannot raise (hooks ask it before they set up an error boundary).
pub fn known() -> Option<bool> {
    let (user, outer, session) = user_ids();
    match LAST.with(|l| l.get()) {
        Some((u, o, s, answer)) if (u, o, s) == (user, outer, session) => Some(answer),
        _ => None,
    }
}

/// Whether an application role is acting. Yes when the session logged in as an application
/// role (whatever it SET ROLE to), unless a superuser's SECURITY DEFINER function runs; and
/// when both the current user (`GetUserId()`; inside a SECURITY DEFINER function its owner)
/// and the role the session acts as (`GetOuterUserId()`, after SET ROLE) are application roles.
/// So a superuser's `CREATE SCHEMA … AUTHORIZATION app_role`, which creates as the new owner,
/// is not an application role acting.
pub fn is_app_role() -> bool {
    if let Some(answer) = known() {
        return answer;
    }
    let (user, outer, session) = user_ids();
    // SAFETY: a catalog look-up by oid.
    let answer = !unsafe { pg_sys::superuser_arg(user) }
        && (is_app(session) || (is_app(user) && (outer == user || is_app(outer))));
    LAST.with(|l| l.set(Some((user, outer, session, answer))));
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
