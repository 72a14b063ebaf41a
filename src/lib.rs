//! pg_tenancy: tenant isolation, RBAC and tokens inside PostgreSQL.
//!
//! The wiring lives here: the module list, the hand-written SQL in install order, and
//! `_PG_init`. Each module is named after what it does.

mod cache;
mod context;
mod error;
mod guard;
mod gucs;
mod journal;
mod log;
mod privileged;
mod rbac;
mod statement;
mod tests;
mod tokens;
mod utility;

::pgrx::pg_module_magic!(name, version);

// Hand-written SQL, in install order. `bootstrap` runs before every generated object (the
// tables the Rust functions query); `finalize` runs last (policies, grants).
pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!(
    "../sql/rbac.sql",
    name = "rbac",
    requires = [
        rbac::has_role,
        rbac::require_permission,
        context::current_tenant,
        log::log_denial
    ]
);
pgrx::extension_sql_file!(
    "../sql/policy.sql",
    name = "policy",
    requires = [context::current_tenant, rbac::has_permission]
);
pgrx::extension_sql_file!(
    "../sql/tokens_schema.sql",
    name = "tokens_schema",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/cache.sql",
    name = "cache",
    requires = ["tokens_schema", cache::cache_invalidate]
);
pgrx::extension_sql_file!(
    "../sql/tokens.sql",
    name = "tokens",
    requires = [
        "tokens_schema",
        "rbac",
        log::log_denial,
        context::actor_id,
        tokens::invite::sign_invitation,
        tokens::invite::verify_invitation,
        tokens::invite::invitation_failed,
        tokens::api_token::new_api_token
    ]
);
pgrx::extension_sql_file!(
    "../sql/auth_log.sql",
    name = "auth_log",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/audit.sql",
    name = "audit",
    requires = ["policy", "tokens", "auth_log"]
);
pgrx::extension_sql_file!(
    "../sql/lifecycle.sql",
    name = "lifecycle",
    requires = [
        "rbac",
        "policy",
        "tokens",
        "auth_log",
        log::log_decision,
        context::current_user_id,
        context::context
    ]
);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// Called once per backend when the library is loaded (at server start when it is in
/// `shared_preload_libraries`, else on the first call of one of its functions).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    cache::init();
    journal::init();
    log::init();
    guard::init();
    statement::init();
    utility::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_tenancy'"]
    }
}
