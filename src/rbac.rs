//! Role-based access checks for the context's actor in the context's tenant.
//!
//! The rows come from the per-backend caches of `cache`, which see a committed change at the
//! next statement. On top of them, the actor is fixed for the statement (keyed on the
//! transaction, the top-level statement, the command id and the context), so every row of one
//! statement is checked against the same answer.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::prelude::*;
use uuid::Uuid;

use crate::cache::{self, Membership, RoleInfo};
use crate::context::{self, Context};
use crate::{decision, error, standing, statement};

/// The actor of the context, as the membership tables describe it now.
#[derive(Debug, Default)]
pub struct Actor {
    pub platform_admin: bool,
    pub role: Option<String>,
    info: Option<Rc<RoleInfo>>,
}

impl Actor {
    /// Whether the actor holds `permission`, before any narrowing by scopes.
    fn holds(&self, permission: &str) -> bool {
        self.platform_admin
            || self
                .info
                .as_ref()
                .is_some_and(|i| i.grants.iter().any(|g| grant_covers(g, permission)))
    }

    pub fn rank(&self) -> Option<i32> {
        self.info.as_ref().map(|i| i.rank)
    }

    /// The role's grants (`*`, `resource:*` or exact names).
    pub fn grants(&self) -> &[String] {
        self.info.as_ref().map_or(&[], |i| &i.grants)
    }
}

/// Whether a grant (`*`, `resource:*` or an exact name) covers `permission`.
pub fn grant_covers(grant: &str, permission: &str) -> bool {
    if grant == "*" || grant == permission {
        return true;
    }
    match (grant.strip_suffix(":*"), permission.split_once(':')) {
        (Some(resource), Some((p_resource, _))) => resource == p_resource,
        _ => false,
    }
}

/// Whether the context's actor may use `permission`: the actor holds it and, when the context
/// carries scopes, a scope covers it too.
fn allowed(ctx: &Context, actor: &Actor, permission: &str) -> bool {
    if !actor.holds(permission) {
        return false;
    }
    match &ctx.scopes {
        None => true,
        Some(scopes) => scopes.iter().any(|s| grant_covers(s, permission)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct StatementKey {
    position: (u32, u64, u32),
    generation: u64,
}

impl StatementKey {
    fn now() -> StatementKey {
        StatementKey {
            position: statement::position(),
            generation: context::generation(),
        }
    }
}

#[derive(Default)]
struct Cache {
    key: Option<StatementKey>,
    actor: Option<Option<Rc<Actor>>>,
    /// `has_permission()`'s answers in this statement, by permission name (a policy asks
    /// for every row, and mostly about one or two names).
    answers: Vec<(Box<str>, bool)>,
}

impl Cache {
    /// The cache for the current statement, emptied when the statement changed.
    fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
        CACHE.with(|c| {
            let mut cache = c.borrow_mut();
            let key = StatementKey::now();
            if cache.key != Some(key) {
                *cache = Cache {
                    key: Some(key),
                    ..Cache::default()
                };
            }
            f(&mut cache)
        })
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The user's standing in the tenant, as the tables say now (through the backend's cache).
pub fn lookup_actor(tenant: Uuid, user: Uuid) -> Actor {
    let membership: Rc<Membership> = cache::membership(tenant, user);
    let info = membership.role.as_deref().and_then(cache::role);
    Actor {
        platform_admin: membership.platform_admin,
        role: membership.role.clone(),
        info,
    }
}

/// Whether the tenant exists and is active.
pub fn tenant_is_active(tenant: Uuid) -> bool {
    cache::tenant_active(tenant).unwrap_or(false)
}

/// The actor of the current context (cached for the statement); `None` without an actor, or
/// when the context no longer stands. A context handed over by a Citus coordinator carries
/// its actor's standing (a worker has no membership rows).
pub fn actor() -> Option<Rc<Actor>> {
    standing::verdict().ok()?;
    if let Some(remote) = context::remote() {
        let granted = remote.actor.as_ref()?;
        return Some(Rc::new(Actor {
            platform_admin: granted.platform_admin,
            role: granted.role.clone(),
            info: granted.rank.map(|rank| {
                Rc::new(RoleInfo {
                    rank,
                    grants: granted.grants.clone(),
                })
            }),
        }));
    }
    let ctx = context::current()?;
    let user = ctx.actor?;
    if let Some(known) = Cache::with(|cache| cache.actor.clone()) {
        return known;
    }
    // Looked up outside the cache's borrow: the look-up runs queries, whose hooks may ask again.
    let actor = Some(Rc::new(lookup_actor(ctx.tenant, user)));
    Cache::with(|cache| cache.actor.get_or_insert(actor).clone())
}

/// Raises `22023` unless `permission` names a row of `tenancy.permissions`.
fn check_permission_name(permission: Option<&str>) -> &str {
    let Some(permission) = permission else {
        error::bad_argument(
            "tenancy: permission must not be null",
            "pass a permission name such as 'orders:read'",
        );
    };
    // A Citus worker holds only the seeded rows of tenancy.permissions: in a context handed over
    // by the coordinator, which knows them all, a name is taken as the policy gives it.
    if context::remote().is_none() && !cache::permission_exists(permission) {
        error::bad_argument(
            format!("tenancy: unknown permission {}", error::echo(permission)),
            "permissions are rows of tenancy.permissions, named resource:action",
        );
    }
    permission
}

/// The rank of a role; raises `22023` for an unknown role.
fn role_rank(role: Option<&str>) -> (String, i32) {
    let Some(role) = role else {
        error::bad_argument(
            "tenancy: role must not be null",
            "pass a role name such as 'staff'",
        );
    };
    match cache::role(role) {
        Some(info) => (role.to_owned(), info.rank),
        None => error::bad_argument(
            format!("tenancy: unknown role {}", error::echo(role)),
            "roles are rows of tenancy.roles: owner, admin, manager, staff, viewer or your own",
        ),
    }
}

fn permission_decision(permission: &str) -> Option<bool> {
    let ctx = context::read()?;
    let granted = match actor() {
        Some(actor) => allowed(&ctx, &actor, permission),
        None => false,
    };
    Some(granted)
}

/// A role check. A context narrowed by scopes (an API token, a JWT with `scope`) carries
/// permissions, not a role: it passes no role check.
fn role_decision(min_rank: i32) -> Option<bool> {
    let ctx = context::read()?;
    if ctx.scopes.is_some() {
        return Some(false);
    }
    let granted = match actor() {
        Some(actor) => actor.platform_admin || actor.rank().is_some_and(|r| r >= min_rank),
        None => false,
    };
    Some(granted)
}

/// Whether the context's actor holds `permission` in the context's tenant. False without a
/// context or without an actor; `22023` for an unknown permission. Decided once per statement
/// and permission: every row of a statement gets the same answer. SQL calls it through
/// `has_permission_fast`, which answers a repeated question without pgrx's wrapper.
#[pg_extern(
    stable,
    parallel_restricted,
    sql = "CREATE FUNCTION @extschema@.has_permission(permission text) RETURNS boolean \
           LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'has_permission_fast';"
)]
pub fn has_permission(permission: Option<&str>) -> bool {
    if let Some(answer) = permission.and_then(|name| known_answer(name.as_bytes())) {
        return answer;
    }
    let permission = check_permission_name(permission);
    let answer = permission_decision(permission).unwrap_or(false);
    Cache::with(|c| c.answers.push((permission.into(), answer)));
    answer
}

/// The answer `has_permission()` already gave in this statement for `name`, if any. Cannot
/// raise or panic.
fn known_answer(name: &[u8]) -> Option<bool> {
    CACHE.with(|c| {
        let cache = c.try_borrow().ok()?;
        if cache.key != Some(StatementKey::now()) {
            return None;
        }
        cache
            .answers
            .iter()
            .find(|(p, _)| p.as_bytes() == name)
            .map(|(_, answer)| *answer)
    })
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_has_permission_fast() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The entry point of `tenancy.has_permission(text)`. A policy calls it for every row with the
/// same constant: the answer given earlier in the statement is read straight from the
/// argument's bytes (a plain, uncompressed value), with no error boundary, no conversion and no
/// allocation. Anything else goes through pgrx's wrapper of `has_permission`.
///
/// # Safety
/// Called by PostgreSQL's function manager with a valid call frame of one argument.
#[no_mangle]
#[doc(hidden)]
pub unsafe extern "C-unwind" fn has_permission_fast(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the function manager passes a frame with `nargs` arguments; a non-null text
    // argument points to a varlena, read only when it is neither external nor compressed.
    unsafe {
        if (*fcinfo).nargs == 1 {
            let arg = (*fcinfo).args.as_slice(1)[0];
            let text = arg.value.cast_mut_ptr::<pg_sys::varlena>();
            if !arg.isnull
                && !pgrx::varlena::varatt_is_1b_e(text)
                && !pgrx::varlena::varatt_is_4b_c(text)
            {
                let name = std::slice::from_raw_parts(
                    pgrx::varlena::vardata_any(text).cast::<u8>(),
                    pgrx::varlena::varsize_any_exhdr(text),
                );
                if let Some(answer) = known_answer(name) {
                    return pg_sys::Datum::from(answer);
                }
            }
        }
        has_permission_wrapper(fcinfo)
    }
}

/// Raises unless the context's actor holds `permission`: `28000` without a context, `42501`
/// when lacking, `22023` for an unknown permission. Denials are logged.
#[pg_extern(volatile, parallel_restricted)]
pub fn require_permission(permission: Option<&str>) {
    let permission = check_permission_name(permission);
    standing::check("require_permission");
    match permission_decision(permission) {
        None => {
            decision::denial("require_permission", Some(permission), "no_context");
            error::no_tenant_context();
        }
        Some(false) => {
            decision::denial("require_permission", Some(permission), "permission_missing");
            error::forbidden(
                format!("tenancy: permission {} denied", error::echo(permission)),
                "the acting user's role (or the token's scopes) must grant it; ask an owner or admin",
            );
        }
        Some(true) => decision::allowed("require_permission", Some(permission)),
    }
}

/// Whether the context's actor has a role of at least the rank of `min_role`.
#[pg_extern(stable, parallel_restricted)]
pub fn has_role(min_role: Option<&str>) -> bool {
    let (_, rank) = role_rank(min_role);
    role_decision(rank).unwrap_or(false)
}

/// Raises unless the context's actor has a role of at least the rank of `min_role`.
#[pg_extern(volatile, parallel_restricted)]
pub fn require_role(min_role: Option<&str>) {
    let (role, rank) = role_rank(min_role);
    standing::check("require_role");
    let what = format!("role:{role}");
    match role_decision(rank) {
        None => {
            decision::denial("require_role", Some(&what), "no_context");
            error::no_tenant_context();
        }
        Some(false) => {
            decision::denial("require_role", Some(&what), "rank_too_low");
            error::forbidden(
                format!("tenancy: role {} or higher required", error::echo(&role)),
                "ask an owner or admin for a higher role",
            );
        }
        Some(true) => decision::allowed("require_role", Some(&what)),
    }
}

#[cfg(test)]
mod tests {
    use super::grant_covers;

    #[test]
    fn grants_cover_exact_resource_wildcard_and_star() {
        assert!(grant_covers("*", "orders:read"));
        assert!(grant_covers("orders:*", "orders:read"));
        assert!(grant_covers("orders:read", "orders:read"));
        assert!(!grant_covers("orders:*", "ordersx:read"));
        assert!(!grant_covers("orders:read", "orders:write"));
        assert!(!grant_covers("order:*", "orders:read"));
        assert!(!grant_covers("orders:*", "orders"));
        assert!(!grant_covers("", "orders:read"));
    }
}
