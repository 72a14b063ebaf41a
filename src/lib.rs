//! pg_tenancy: tenant isolation, RBAC and tokens inside PostgreSQL.
//!
//! The wiring lives here: the module list, the hand-written SQL in install order, and
//! `_PG_init`. Each module is named after what it does, and the modules stack: each one uses
//! only modules listed above it, so the files can be read from the top of this list down
//! (`scripts/check-modules.py`, run by `make lint`, keeps it so).

// Every unsafe operation sits in an `unsafe` block of its own with a SAFETY comment.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

// Leaves: PostgreSQL functions called without pgrx's boundary; the error contract, time,
// settings, privileged queries, structures in shared memory, the statement counter.
mod unguarded;

mod clock;
mod error;
mod gucs;
mod privileged;
mod shmem;
mod statement;

// Who is an application role (asked by the hooks below); what pg_tenancy uses of Citus.
mod app_role;
mod citus;

// The tenant context: its values (context/value.rs), their storage and accessors.
mod context;

// Per-connection caches of pg_tenancy's rows, and their invalidation.
mod cache;

// The durable channel of the authorization log.
mod journal;

// Decisions, recorded in the server log and through the journal.
mod decision;

// Whether the context still stands.
mod standing;

// Permission and role checks; the checks isolate()'s policies make on written rows.
mod rbac;
mod row_checks;

// The context across the nodes of a Citus cluster, and one tenant's queries on one shard.
mod cluster;
mod routing;

// The ways into a context: set_tenant() and authenticate(), with tokens and signing keys.
mod entry;
mod tokens;

// Hooks that refuse what would reach past row-level security.
mod fail_closed;

mod allowlist;
mod object_access;

mod tests;

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
        decision::log_denial
    ]
);
pgrx::extension_sql_file!(
    "../sql/policy.sql",
    name = "policy",
    requires = [
        context::current_tenant,
        rbac::has_permission,
        row_checks::check_row_tenant,
        row_checks::check_write_permission
    ]
);
pgrx::extension_sql_file!(
    "../sql/tokens_schema.sql",
    name = "tokens_schema",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/cache.sql",
    name = "cache",
    requires = ["tokens_schema", cache::invalidation::cache_invalidate]
);
pgrx::extension_sql_file!(
    "../sql/tokens.sql",
    name = "tokens",
    requires = [
        "tokens_schema",
        "rbac",
        decision::log_denial,
        context::actor_id,
        tokens::invite::sign_invitation,
        tokens::invite::verify_invitation,
        tokens::invite::invitation_failed,
        tokens::api_token::new_api_token,
        entry::caller_may_set_tenant
    ]
);
pgrx::extension_sql_file!(
    "../sql/auth_log.sql",
    name = "auth_log",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/linter.sql",
    name = "linter",
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
        decision::log_decision,
        context::current_user_id,
        entry::context
    ]
);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// Called once per backend when the library is loaded (at server start when it is in
/// `shared_preload_libraries`, else on the first call of one of its functions).
///
/// The order matters once: every setting is defined before the `tenancy.` prefix is reserved,
/// so that a placeholder planted before the library loaded meets `tenancy.context`'s check hook
/// and every other `tenancy.` name becomes an error. The rest registers callbacks and hooks that
/// do not depend on each other (each hook chains to the one installed before it).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    context::init();
    cluster::init();
    gucs::init();
    gucs::reserve_prefix();
    citus::init();
    cache::init();
    journal::init();
    fail_closed::init();
    statement::init();
    routing::init();
    allowlist::init();
    app_role::init();
    object_access::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_tenancy'"]
    }
}
