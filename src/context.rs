//! The per-transaction tenant context and its accessors.
//!
//! The context lives in the `tenancy.context` setting (see `gucs.rs`), written with `SET LOCAL`
//! semantics by pg_tenancy only. Its decoded form is kept here, refreshed by the setting's
//! assign hook, so that `current_tenant()` is a memory read.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::JsonB;
use uuid::Uuid;

use crate::{error, gucs, log, privileged, rbac, statement};

/// How the context was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    SetTenant,
    ApiToken,
    Jwt,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::SetTenant => "set_tenant",
            Source::ApiToken => "api_token",
            Source::Jwt => "jwt",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        match s {
            "set_tenant" => Some(Source::SetTenant),
            "api_token" => Some(Source::ApiToken),
            "jwt" => Some(Source::Jwt),
            _ => None,
        }
    }
}

/// A tenant context: the tenant, and who acts in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub tenant: Uuid,
    /// The acting user (`current_user_id()`); `None` for API tokens and tenant-only contexts.
    pub user: Option<Uuid>,
    /// The API token that authenticated, if any.
    pub token: Option<Uuid>,
    /// The user whose membership bounds the permissions: the acting user, or a token's creator.
    pub actor: Option<Uuid>,
    pub source: Source,
    /// Scopes that narrow the actor's permissions (tokens, JWTs with `scope`); `None` means
    /// the actor's permissions are not narrowed.
    pub scopes: Option<Vec<String>>,
}

impl Context {
    /// `t=<uuid>;u=<uuid>;k=<uuid>;a=<uuid>;s=<source>;p=<scope> <scope>` (u, k, a, p optional).
    pub fn encode(&self) -> String {
        let mut out = format!("t={}", self.tenant);
        if let Some(u) = self.user {
            out.push_str(&format!(";u={u}"));
        }
        if let Some(k) = self.token {
            out.push_str(&format!(";k={k}"));
        }
        if let Some(a) = self.actor {
            out.push_str(&format!(";a={a}"));
        }
        out.push_str(";s=");
        out.push_str(self.source.as_str());
        if let Some(scopes) = &self.scopes {
            out.push_str(";p=");
            out.push_str(&scopes.join(" "));
        }
        out
    }

    /// The inverse of `encode`; anything malformed decodes to no context (fail closed).
    pub fn decode(raw: &str) -> Option<Context> {
        let (mut tenant, mut user, mut token, mut actor) = (None, None, None, None);
        let (mut source, mut scopes) = (None, None);
        for field in raw.split(';') {
            let (key, value) = field.split_once('=')?;
            match key {
                "t" if tenant.is_none() => tenant = Some(Uuid::try_parse(value).ok()?),
                "u" if user.is_none() => user = Some(Uuid::try_parse(value).ok()?),
                "k" if token.is_none() => token = Some(Uuid::try_parse(value).ok()?),
                "a" if actor.is_none() => actor = Some(Uuid::try_parse(value).ok()?),
                "s" if source.is_none() => source = Some(Source::parse(value)?),
                "p" if scopes.is_none() => {
                    scopes = Some(
                        value
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                _ => return None,
            }
        }
        Some(Context {
            tenant: tenant?,
            user,
            token,
            actor,
            source: source?,
            scopes,
        })
    }
}

thread_local! {
    /// The top-level statement that last read the context (see `statement.rs`).
    static READ_IN: Cell<u64> = const { Cell::new(0) };
    static CURRENT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
    static TENANT: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// Bumped on every change, so caches keyed on the actor can tell contexts apart.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Called by the assign hook of `tenancy.context` with its new raw value.
pub fn install(raw: &str) {
    let decoded = if raw.is_empty() {
        None
    } else {
        Context::decode(raw)
    };
    TENANT.with(|t| t.set(decoded.as_ref().map(|c| *c.tenant.as_bytes())));
    CURRENT.with(|c| *c.borrow_mut() = decoded.map(Rc::new));
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

/// Whether the transaction has a tenant context (a memory read).
pub fn has_tenant() -> bool {
    TENANT.with(|t| t.get().is_some())
}

/// The current context, if any.
pub fn current() -> Option<Rc<Context>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The current context, read on behalf of a statement: the statement may then no longer change
/// the context (so that no statement ever sees two tenants).
pub fn read() -> Option<Rc<Context>> {
    READ_IN.with(|r| r.set(statement::current()));
    current()
}

/// Raises `42501` unless the context may change now: the running statement has not read it,
/// and no open cursor may still return rows read under it.
fn check_change_allowed() {
    if READ_IN.with(|r| r.get()) == statement::current() {
        error::forbidden(
            "tenancy: the context cannot change within a statement that has already used it",
            "change the context with set_tenant(), authenticate() or clear_context() in a statement of its own",
        );
    }
    if privileged::open_cursors() > 0 {
        error::forbidden(
            "tenancy: the context cannot change while cursors are open",
            "close the transaction's cursors (CLOSE ALL) before changing the context",
        );
    }
}

/// A number that changes whenever the context changes.
pub fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

/// Enters `ctx` for the rest of the transaction, enforcing one tenant per transaction.
/// Returns false when the very same context is already set (a no-op).
pub fn enter(ctx: &Context) -> bool {
    let encoded = ctx.encode();
    if Context::decode(&encoded).as_ref() != Some(ctx) {
        error::unauthenticated(
            "tenancy: the context cannot be represented",
            "scopes must be permission names such as 'orders:read'",
        );
    }
    if let Some(existing) = current() {
        if *existing == *ctx {
            return false;
        }
        error::forbidden(
            format!(
                "tenancy: this transaction already has a context for tenant {} (source {})",
                existing.tenant,
                existing.source.as_str()
            ),
            "call tenancy.clear_context() before entering another tenant or actor",
        );
    }
    // SAFETY: plain read of transaction state.
    if !unsafe { pg_sys::IsTransactionBlock() } {
        pgrx::warning!(
            "tenancy: no transaction block is open, so the context lasts for this statement only"
        );
    }
    gucs::write_context(&encoded);
    true
}

/// Warns when the current role bypasses row-level security, so isolation does not hold for it.
pub fn warn_if_bypassing_rls() {
    // SAFETY: plain catalog look-ups for the current user id.
    let (role, superuser, bypass) = unsafe {
        let uid = pg_sys::GetUserId();
        (
            uid,
            pg_sys::superuser_arg(uid),
            pg_sys::has_bypassrls_privilege(uid),
        )
    };
    if superuser || bypass {
        let why = if superuser {
            "is a superuser"
        } else {
            "has the BYPASSRLS attribute"
        };
        let name = privileged::role_name(role);
        pgrx::warning!(
            "tenancy: role {} {} and bypasses row-level security: tenant isolation does not apply to it",
            error::echo(&name),
            why
        );
    }
}

fn to_pg(u: Uuid) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*u.as_bytes())
}

fn from_pg(u: pgrx::Uuid) -> Uuid {
    Uuid::from_bytes(*u.as_bytes())
}

/// Sets the tenant (and optionally the acting user) for the current transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant(tenant_id: Option<pgrx::Uuid>, user_id: default!(Option<pgrx::Uuid>, "NULL")) {
    let Some(tenant) = tenant_id.map(from_pg) else {
        error::bad_argument(
            "tenancy: tenant_id must not be null",
            "pass the id of an active tenant to tenancy.set_tenant()",
        );
    };
    let user = user_id.map(from_pg);
    warn_if_bypassing_rls();
    crate::cache::sync_now();

    let wanted = Context {
        tenant,
        user,
        token: None,
        actor: user,
        source: Source::SetTenant,
        scopes: None,
    };
    if current().is_some_and(|c| *c == wanted) {
        return;
    }
    if !rbac::tenant_is_active(tenant) {
        log::decision(
            Some(tenant),
            user,
            None,
            "set_tenant",
            None,
            false,
            "tenant_unknown_or_suspended",
        );
        error::unauthenticated(
            format!("tenancy: tenant {tenant} does not exist or is suspended"),
            "check the tenant id; a suspended tenant must be reactivated by a platform admin",
        );
    }
    if let Some(user) = user {
        let actor = rbac::lookup_actor(tenant, user);
        if actor.role.is_none() && !actor.platform_admin {
            log::decision(
                Some(tenant),
                Some(user),
                None,
                "set_tenant",
                None,
                false,
                "not_a_member",
            );
            error::forbidden(
                format!("tenancy: user {user} is not a member of tenant {tenant}"),
                "add the user to the tenant (tenancy.invite()) or pass the id of a member",
            );
        }
        if actor.role.is_none() {
            log::decision_always(
                Some(tenant),
                Some(user),
                None,
                "set_tenant",
                None,
                true,
                "platform_admin",
            );
        }
    }
    enter(&wanted);
}

/// Clears the context of the current transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context() {
    if current().is_some() {
        check_change_allowed();
        gucs::write_context("");
    }
}

/// The context's tenant; `28000` when there is none.
#[pg_extern(stable, parallel_safe)]
fn current_tenant() -> pgrx::Uuid {
    READ_IN.with(|r| r.set(statement::current()));
    match TENANT.with(|t| t.get()) {
        Some(bytes) => pgrx::Uuid::from_bytes(bytes),
        None => error::no_tenant_context(),
    }
}

/// The context's user, or NULL (no context, a token context, or a tenant-only context).
#[pg_extern(stable, parallel_safe)]
fn current_user_id() -> Option<pgrx::Uuid> {
    current().and_then(|c| c.user).map(to_pg)
}

/// The user whose membership bounds the context's permissions (the acting user, or an API
/// token's creator). Internal: recorded as `invited_by` / `created_by` by the SQL functions.
#[pg_extern(stable, parallel_restricted)]
fn actor_id() -> Option<pgrx::Uuid> {
    current().and_then(|c| c.actor).map(to_pg)
}

/// The whole context as JSON, for debugging and logging; `{}` when there is none.
#[pg_extern(stable, parallel_restricted)]
fn context() -> JsonB {
    let Some(ctx) = current() else {
        return JsonB(serde_json::json!({}));
    };
    let actor = rbac::actor();
    JsonB(serde_json::json!({
        "tenant_id": ctx.tenant.to_string(),
        "user_id": ctx.user.map(|u| u.to_string()),
        "token_id": ctx.token.map(|k| k.to_string()),
        "role": actor.and_then(|a| a.role.clone()),
        "scopes": ctx.scopes,
        "source": ctx.source.as_str(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Context {
        Context {
            tenant: Uuid::from_u128(1),
            user: Some(Uuid::from_u128(2)),
            token: None,
            actor: Some(Uuid::from_u128(2)),
            source: Source::SetTenant,
            scopes: None,
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut c = sample();
        assert_eq!(Context::decode(&c.encode()), Some(c.clone()));
        c.token = Some(Uuid::from_u128(3));
        c.actor = Some(Uuid::from_u128(4));
        c.user = None;
        c.source = Source::ApiToken;
        c.scopes = Some(vec!["orders:read".into(), "inventory:write".into()]);
        assert_eq!(Context::decode(&c.encode()), Some(c.clone()));
        c.scopes = Some(vec![]);
        assert_eq!(Context::decode(&c.encode()), Some(c));
    }

    #[test]
    fn malformed_values_decode_to_nothing() {
        for raw in [
            "",
            "t=not-a-uuid;s=set_tenant",
            "t=00000000-0000-0000-0000-000000000001",
            "s=set_tenant",
            "t=00000000-0000-0000-0000-000000000001;s=root",
            "t=00000000-0000-0000-0000-000000000001;s=set_tenant;x=1",
            "t=00000000-0000-0000-0000-000000000001;t=00000000-0000-0000-0000-000000000002;s=jwt",
            "garbage",
        ] {
            assert_eq!(Context::decode(raw), None, "{raw}");
        }
    }
}
