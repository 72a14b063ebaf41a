#![cfg(feature = "client-tests")]
//! Stale authorisation: whatever pg_tenancy keeps per backend (tenant status, memberships and
//! roles, role grants, permission names, API-token rows, signing keys), a change committed by
//! another connection must be honoured by a long-lived connection whose caches are warm, at the
//! latest at its next statement (READ COMMITTED), and a revocation also by the next statement of
//! a REPEATABLE READ (or SERIALIZABLE) transaction that started before it (authorisation data is
//! read with a fresh snapshot; a new grant may or may not be seen there, so that direction is
//! not asserted).
//!
//! The long-lived connections are what an attacker holds: login roles in `tenancy_app` /
//! `tenancy_client`, never superuser, never owner. Each is warmed first (the same call succeeds
//! several times, through prepared statements that reach their generic plans), then the
//! superuser changes pg_tenancy's tables, through the SQL functions or by direct UPDATE /
//! DELETE / INSERT / TRUNCATE / COPY, and the warm connection is asked again.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Statement, Transaction};
use serde_json::json;
use sha2::Digest;
use uuid::Uuid;

use Probe::*;

/// How often a probe runs before a change: more than five times, so that the server switches
/// the prepared statements to generic plans, and enough for any cache to be filled.
const WARM_ROUNDS: usize = 6;

/// pg_tenancy's tables whose rows may be cached per backend.
const CACHED_TABLES: [&str; 8] = [
    "api_tokens",
    "memberships",
    "permissions",
    "role_permissions",
    "roles",
    "signing_keys",
    "tenants",
    "users",
];

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

/// What a check answered: `Ok(bool)` for a boolean (or `Ok(true)` for a call that passed), or
/// the SQLSTATE it failed with.
type Outcome = Result<bool, SqlState>;

fn yes() -> Outcome {
    Ok(true)
}

fn no() -> Outcome {
    Ok(false)
}

/// 28000: no context, unknown or suspended tenant, a credential that does not verify.
fn unauthenticated() -> Outcome {
    Err(SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
}

/// 42501: authenticated, but not a member / lacking the permission or rank.
fn forbidden() -> Outcome {
    Err(SqlState::INSUFFICIENT_PRIVILEGE)
}

/// 22023: unknown permission or role name.
fn bad_argument() -> Outcome {
    Err(SqlState::INVALID_PARAMETER_VALUE)
}

/// The SQLSTATE of a server error; panics on an error without one (a lost connection).
fn code(e: postgres::Error) -> SqlState {
    e.code()
        .cloned()
        .unwrap_or_else(|| panic!("error without SQLSTATE (connection lost?): {e}"))
}

fn outcome(r: Result<bool, postgres::Error>) -> Outcome {
    r.map_err(code)
}

// ---------------------------------------------------------------------------------------------
// Probes: one request of an application, in a transaction of its own
// ---------------------------------------------------------------------------------------------

/// A request as a long-lived connection makes it.
#[derive(Clone, Debug)]
enum Probe {
    /// `set_tenant(tenant, user)`.
    Enter(Uuid, Option<Uuid>),
    /// `set_tenant(tenant, user)`, then `has_permission(permission)`.
    Has(Uuid, Option<Uuid>, &'static str),
    /// `set_tenant(tenant, user)`, then `require_permission(permission)` (`Ok(true)`: passed).
    Require(Uuid, Option<Uuid>, &'static str),
    /// `set_tenant(tenant, user)`, then `has_role(min_role)`.
    HasRole(Uuid, Option<Uuid>, &'static str),
    /// `authenticate(token)`.
    Auth(String),
    /// `authenticate(token)`, then `has_permission(permission)`.
    AuthHas(String, &'static str),
}

/// The statements of a connection, prepared once (named statements, reused across
/// transactions, as drivers and pools do).
#[derive(Clone)]
struct Stmts {
    set_tenant: Statement,
    authenticate: Statement,
    has_permission: Statement,
    require_permission: Statement,
    has_role: Statement,
    require_role: Statement,
    role: Statement,
}

fn set_tenant_on(tx: &mut Transaction<'_>, s: &Stmts, t: Uuid, u: Option<Uuid>) -> Outcome {
    outcome(tx.execute(&s.set_tenant, &[&t, &u]).map(|_| true))
}

fn authenticate_on(tx: &mut Transaction<'_>, s: &Stmts, token: &str) -> Outcome {
    outcome(tx.execute(&s.authenticate, &[&token]).map(|_| true))
}

fn has_on(tx: &mut Transaction<'_>, s: &Stmts, permission: &str) -> Outcome {
    outcome(
        tx.query_one(&s.has_permission, &[&permission])
            .map(|r| r.get(0)),
    )
}

fn require_on(tx: &mut Transaction<'_>, s: &Stmts, permission: &str) -> Outcome {
    outcome(
        tx.execute(&s.require_permission, &[&permission])
            .map(|_| true),
    )
}

fn has_role_on(tx: &mut Transaction<'_>, s: &Stmts, role: &str) -> Outcome {
    outcome(tx.query_one(&s.has_role, &[&role]).map(|r| r.get(0)))
}

fn require_role_on(tx: &mut Transaction<'_>, s: &Stmts, role: &str) -> Outcome {
    outcome(tx.execute(&s.require_role, &[&role]).map(|_| true))
}

/// Runs a probe in `tx`, statement after statement, without savepoints.
fn run_on(tx: &mut Transaction<'_>, s: &Stmts, p: &Probe) -> Outcome {
    match p {
        Enter(t, u) => set_tenant_on(tx, s, *t, *u),
        Has(t, u, permission) => {
            set_tenant_on(tx, s, *t, *u)?;
            has_on(tx, s, permission)
        }
        Require(t, u, permission) => {
            set_tenant_on(tx, s, *t, *u)?;
            require_on(tx, s, permission)
        }
        HasRole(t, u, role) => {
            set_tenant_on(tx, s, *t, *u)?;
            has_role_on(tx, s, role)
        }
        Auth(token) => authenticate_on(tx, s, token),
        AuthHas(token, permission) => {
            authenticate_on(tx, s, token)?;
            has_on(tx, s, permission)
        }
    }
}

/// A long-lived connection as an application login role.
struct Conn {
    c: Client,
    s: Stmts,
}

impl Conn {
    fn new(db: &TestDb, role: &str) -> Conn {
        let mut c = db.connect(role);
        let mut prepare = |sql: &str| {
            c.prepare(sql)
                .unwrap_or_else(|e| panic!("prepare {sql}: {e}"))
        };
        let s = Stmts {
            set_tenant: prepare("SELECT tenancy.set_tenant($1, $2)"),
            authenticate: prepare("SELECT tenancy.authenticate($1)"),
            has_permission: prepare("SELECT tenancy.has_permission($1)"),
            require_permission: prepare("SELECT tenancy.require_permission($1)"),
            has_role: prepare("SELECT tenancy.has_role($1)"),
            require_role: prepare("SELECT tenancy.require_role($1)"),
            role: prepare("SELECT tenancy.context() ->> 'role'"),
        };
        Conn { c, s }
    }

    /// A READ COMMITTED transaction.
    fn begin(&mut self) -> Open<'_> {
        Open {
            tx: self.c.transaction().unwrap(),
            s: self.s.clone(),
        }
    }

    fn begin_at(&mut self, level: IsolationLevel) -> Open<'_> {
        Open {
            tx: self
                .c
                .build_transaction()
                .isolation_level(level)
                .start()
                .unwrap(),
            s: self.s.clone(),
        }
    }

    /// Runs `p` in a new READ COMMITTED transaction, committed when it passed (as a request
    /// would; an API token's `last_used_at` is then written once, not by every probe).
    fn probe(&mut self, p: &Probe) -> Outcome {
        let mut open = self.begin();
        let out = open.run(p);
        if out.is_ok() {
            open.tx.commit().unwrap();
        } else {
            open.tx.rollback().unwrap();
        }
        out
    }

    #[track_caller]
    fn expect(&mut self, p: &Probe, expected: &Outcome, when: &str) {
        let got = self.probe(p);
        assert_eq!(&got, expected, "{when}: {p:?}");
    }

    /// Runs `p` `WARM_ROUNDS` times, each time expecting `expected`.
    #[track_caller]
    fn warm(&mut self, p: &Probe, expected: &Outcome) {
        for round in 0..WARM_ROUNDS {
            self.expect(p, expected, &format!("warming (round {round})"));
        }
    }

    #[track_caller]
    fn warm_all(&mut self, cases: &[(Probe, Outcome)]) {
        for (p, expected) in cases {
            self.warm(p, expected);
        }
    }

    #[track_caller]
    fn expect_all(&mut self, cases: &[(Probe, Outcome)], when: &str) {
        for (p, expected) in cases {
            self.expect(p, expected, when);
        }
    }
}

/// A transaction under way on a long-lived connection.
struct Open<'a> {
    tx: Transaction<'a>,
    s: Stmts,
}

impl Open<'_> {
    /// Runs `p` in this transaction, without a savepoint (a failure aborts the transaction).
    fn run(&mut self, p: &Probe) -> Outcome {
        run_on(&mut self.tx, &self.s, p)
    }

    /// Runs `f` in a savepoint that is then rolled back, so that a failure leaves the
    /// transaction usable (and a context set inside it is undone).
    fn in_savepoint(&mut self, f: impl FnOnce(&mut Transaction<'_>, &Stmts) -> Outcome) -> Outcome {
        let mut sp = self.tx.transaction().unwrap();
        let out = f(&mut sp, &self.s);
        sp.rollback().unwrap();
        out
    }

    fn run_in_savepoint(&mut self, p: &Probe) -> Outcome {
        self.in_savepoint(|tx, s| run_on(tx, s, p))
    }

    fn set_tenant(&mut self, tenant: Uuid, user: Option<Uuid>) -> Outcome {
        set_tenant_on(&mut self.tx, &self.s, tenant, user)
    }

    fn authenticate(&mut self, token: &str) -> Outcome {
        authenticate_on(&mut self.tx, &self.s, token)
    }

    /// Authenticates again with a token, in a savepoint (a request re-verifying its token).
    fn reauthenticate(&mut self, token: &str) -> Outcome {
        self.in_savepoint(|tx, s| authenticate_on(tx, s, token))
    }

    /// `has_permission()`, as the very next statement (no savepoint first).
    #[track_caller]
    fn has(&mut self, permission: &str) -> bool {
        has_on(&mut self.tx, &self.s, permission)
            .unwrap_or_else(|e| panic!("has_permission('{permission}') failed: {e:?}"))
    }

    /// `has_permission()` without a savepoint, returning the outcome (an error aborts).
    fn has_now(&mut self, permission: &str) -> Outcome {
        has_on(&mut self.tx, &self.s, permission)
    }

    /// `has_permission()` in a savepoint (for an expected `22023`).
    fn has_checked(&mut self, permission: &str) -> Outcome {
        self.in_savepoint(|tx, s| has_on(tx, s, permission))
    }

    fn require(&mut self, permission: &str) -> Outcome {
        self.in_savepoint(|tx, s| require_on(tx, s, permission))
    }

    #[track_caller]
    fn has_role(&mut self, role: &str) -> bool {
        has_role_on(&mut self.tx, &self.s, role)
            .unwrap_or_else(|e| panic!("has_role('{role}') failed: {e:?}"))
    }

    fn has_role_checked(&mut self, role: &str) -> Outcome {
        self.in_savepoint(|tx, s| has_role_on(tx, s, role))
    }

    fn require_role(&mut self, role: &str) -> Outcome {
        self.in_savepoint(|tx, s| require_role_on(tx, s, role))
    }

    /// The role the context reports (`context()->>'role'`).
    fn role(&mut self) -> Option<String> {
        self.tx.query_one(&self.s.role, &[]).unwrap().get(0)
    }

    fn count(&mut self, sql: &str) -> i64 {
        self.tx.query_one(sql, &[]).unwrap().get(0)
    }

    /// A statement that takes the transaction's snapshot (REPEATABLE READ freezes it here).
    fn take_snapshot(&mut self) {
        let n = self.count("SELECT count(*) FROM tenancy.roles");
        assert!(n > 0);
    }

    fn rollback(self) {
        self.tx.rollback().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The world: a database, application roles, tenants, a signing key
// ---------------------------------------------------------------------------------------------

/// A signing key: its kid and the HMAC key (the base64url secret's text, as JWT libraries take
/// it).
#[derive(Clone)]
struct Key {
    kid: String,
    hmac: Vec<u8>,
}

struct World {
    db: TestDb,
    /// A login role in `tenancy_app` (trusted backend: `set_tenant()`).
    app: String,
    /// A login role in `tenancy_client` (untrusted: tokens only).
    cli: String,
    t: Tenants,
    key: Key,
}

fn world(label: &str) -> World {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let cli = db.login_role("cli", "tenancy_client");
    let t = two_tenants(&mut db.admin());
    let mut w = World {
        db,
        app,
        cli,
        t,
        key: Key {
            kid: String::new(),
            hmac: Vec::new(),
        },
    };
    w.key = w.signing_key();
    w
}

/// 32 random bytes.
fn random32() -> Vec<u8> {
    [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat()
}

impl World {
    fn admin(&self) -> Client {
        self.db.admin()
    }

    fn app(&self) -> Conn {
        Conn::new(&self.db, &self.app)
    }

    fn client(&self) -> Conn {
        Conn::new(&self.db, &self.cli)
    }

    /// One statement as the superuser, committed when it returns.
    #[track_caller]
    fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) {
        self.admin()
            .execute(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Statements as the superuser (simple protocol), committed when it returns.
    #[track_caller]
    fn batch(&self, sql: &str) {
        self.admin()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn owner_of(&self, tenant: Uuid) -> Uuid {
        if tenant == self.t.a {
            self.t.owner_a
        } else {
            self.t.owner_b
        }
    }

    /// A user who is a member of `tenant` with `role`.
    fn member(&self, tenant: Uuid, email: &str, role: &str) -> Uuid {
        add_member(&mut self.admin(), tenant, email, role)
    }

    /// A user who is a member of no tenant.
    fn user(&self, email: &str) -> Uuid {
        self.admin()
            .query_one("SELECT tenancy.create_user($1)", &[&email])
            .unwrap()
            .get(0)
    }

    /// Calls a SQL function of pg_tenancy in a committed transaction whose context is the
    /// tenant's owner (the way an owner's request would).
    #[track_caller]
    fn as_owner(&self, tenant: Uuid, sql: &str, params: &[&(dyn ToSql + Sync)]) {
        let mut admin = self.admin();
        let mut tx = admin.transaction().unwrap();
        tx.execute(
            "SELECT tenancy.set_tenant($1, $2)",
            &[&tenant, &self.owner_of(tenant)],
        )
        .unwrap();
        tx.execute(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        tx.commit().unwrap();
    }

    /// An API token made by `creator` in `tenant`: (id, plaintext).
    fn api_token(&self, tenant: Uuid, creator: Uuid, scopes: &[&str]) -> (Uuid, String) {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let mut admin = self.admin();
        let mut tx = admin.transaction().unwrap();
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &creator])
            .unwrap();
        let row = tx
            .query_one(
                "SELECT token_id, token FROM tenancy.create_api_token('cache test', $1)",
                &[&scopes],
            )
            .unwrap();
        tx.commit().unwrap();
        (row.get(0), row.get(1))
    }

    fn signing_key(&self) -> Key {
        let row = self
            .admin()
            .query_one("SELECT kid, secret FROM tenancy.create_signing_key()", &[])
            .unwrap();
        Key {
            kid: row.get(0),
            hmac: row.get::<_, String>(1).into_bytes(),
        }
    }

    /// A JWT for `tenant` (and `sub`), signed with the world's key, valid for an hour.
    fn jwt(&self, tenant: Uuid, sub: Option<Uuid>) -> String {
        self.jwt_with(&self.key, tenant, sub)
    }

    fn jwt_with(&self, key: &Key, tenant: Uuid, sub: Option<Uuid>) -> String {
        let now: i64 = self
            .admin()
            .query_one(
                "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
                &[],
            )
            .unwrap()
            .get(0);
        let mut claims = json!({"tid": tenant, "exp": now + 3600, "iat": now});
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&key.hmac),
        )
        .unwrap()
    }
}

/// Warms both connections with their cases.
#[track_caller]
fn warm_both(
    app: &mut Conn,
    app_cases: &[(Probe, Outcome)],
    cli: &mut Conn,
    cli_cases: &[(Probe, Outcome)],
) {
    app.warm_all(app_cases);
    cli.warm_all(cli_cases);
}

/// The same cases, every expected outcome replaced.
fn expecting(cases: &[(Probe, Outcome)], expected: Outcome) -> Vec<(Probe, Outcome)> {
    cases
        .iter()
        .map(|(p, _)| (p.clone(), expected.clone()))
        .collect()
}

// SQL the superuser runs to change one row (the values spliced in are uuids, kids and fixed
// words, never input).

fn set_role_sql(tenant: Uuid, user: Uuid, role: &str) -> String {
    format!(
        "UPDATE tenancy.memberships SET role = '{role}'
          WHERE tenant_id = '{tenant}' AND user_id = '{user}'"
    )
}

fn remove_member_sql(tenant: Uuid, user: Uuid) -> String {
    format!(
        "DELETE FROM tenancy.memberships
          WHERE tenant_id = '{tenant}' AND user_id = '{user}'"
    )
}

fn tenant_status_sql(tenant: Uuid, status: &str) -> String {
    format!("UPDATE tenancy.tenants SET status = '{status}' WHERE id = '{tenant}'")
}

fn platform_admin_sql(user: Uuid, flag: bool) -> String {
    format!("UPDATE tenancy.users SET platform_admin = {flag} WHERE id = '{user}'")
}

fn token_revoked_sql(token: Uuid, revoked: bool) -> String {
    let value = if revoked { "clock_timestamp()" } else { "NULL" };
    format!("UPDATE tenancy.api_tokens SET revoked_at = {value} WHERE id = '{token}'")
}

fn key_retired_sql(kid: &str, retired: bool) -> String {
    let value = if retired { "clock_timestamp()" } else { "NULL" };
    format!("UPDATE tenancy.signing_keys SET retired_at = {value} WHERE kid = '{kid}'")
}

const DELETE_STAFF_ORDERS: &str =
    "DELETE FROM tenancy.role_permissions WHERE role = 'staff' AND permission = 'orders:*'";

/// A change made by the superuser, what it is checked with, and what the check gives after it
/// (the probe passes before it).
struct Change {
    what: &'static str,
    probe: Probe,
    change: String,
    /// Undoes the change (empty: nothing to undo).
    revert: String,
    after: Outcome,
}

// ---------------------------------------------------------------------------------------------
// 1. Tenant status
// ---------------------------------------------------------------------------------------------

/// Attack: a tenant suspended (abuse, unpaid bill) keeps working on every pooled connection
/// that had already let it in, because "tenant X is active" is cached; through set_tenant(),
/// API tokens and JWTs alike. Reactivation must work again as well.
#[test]
fn suspended_tenant_is_refused_at_the_next_transaction() {
    let w = world("cachesuspend");
    let (a, b) = (w.t.a, w.t.b);
    let ada = w.member(a, "ada@a.example", "admin");
    let (_, token) = w.api_token(a, ada, &["orders:read"]);
    let jwt = w.jwt(a, Some(ada));
    let (_, token_b) = w.api_token(b, w.t.owner_b, &["orders:read"]);
    let jwt_b = w.jwt(b, Some(w.t.owner_b));
    let mut app = w.app();
    let mut cli = w.client();

    let app_a = vec![
        (Enter(a, None), yes()),
        (Enter(a, Some(w.t.owner_a)), yes()),
        (Has(a, Some(ada), "orders:write"), yes()),
        (Require(a, Some(ada), "orders:read"), yes()),
    ];
    let cli_a = vec![
        (Auth(token.clone()), yes()),
        (Auth(jwt.clone()), yes()),
        (AuthHas(token.clone(), "orders:read"), yes()),
        (AuthHas(jwt.clone(), "orders:write"), yes()),
    ];
    // Tenant B is never touched: it must keep working throughout.
    let app_b = vec![(Enter(b, Some(w.t.owner_b)), yes())];
    let cli_b = vec![(Auth(token_b), yes()), (Auth(jwt_b), yes())];
    warm_both(&mut app, &app_a, &mut cli, &cli_a);
    warm_both(&mut app, &app_b, &mut cli, &cli_b);

    // A transaction already under way (READ COMMITTED) that enters the tenant only now.
    let mut late = w.app();
    let mut open = late.begin();
    open.take_snapshot();

    w.exec(
        "UPDATE tenancy.tenants SET status = 'suspended' WHERE id = $1",
        &[&a],
    );

    assert_eq!(
        open.set_tenant(a, None),
        unauthenticated(),
        "set_tenant() in a transaction begun before the suspension"
    );
    open.rollback();
    for round in 0..3 {
        let when = format!("suspended (check {round})");
        app.expect_all(&expecting(&app_a, unauthenticated()), &when);
        cli.expect_all(&expecting(&cli_a, unauthenticated()), &when);
        app.expect_all(&app_b, &when);
        cli.expect_all(&cli_b, &when);
    }

    w.exec(
        "UPDATE tenancy.tenants SET status = 'active' WHERE id = $1",
        &[&a],
    );
    app.expect_all(&app_a, "reactivated");
    cli.expect_all(&cli_a, "reactivated");
}

// ---------------------------------------------------------------------------------------------
// 2. A member's role lowered
// ---------------------------------------------------------------------------------------------

/// Attack: an administrator demoted to viewer keeps administrator rights on connections whose
/// cache still holds the old role: in the transaction already under way (its next statement),
/// in the next transaction, through the API tokens and JWTs they use, and through the RLS
/// policies that call has_permission(). Demoted once through set_member_role() and once by a
/// direct UPDATE of tenancy.memberships.
#[test]
fn lowered_role_loses_permissions_at_the_next_statement() {
    let w = world("cachelower");
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    w.batch(
        "CREATE TABLE public.payouts (tenant_id uuid NOT NULL, amount int NOT NULL);
         SELECT tenancy.isolate('public.payouts', read_permission => 'payments:write');",
    );
    w.exec(
        "INSERT INTO public.payouts VALUES ($1, 10), ($1, 20), ($2, 30)",
        &[&a, &w.t.b],
    );
    let (_, token) = w.api_token(a, ada, &["orders:write", "payments:write"]);
    let jwt = w.jwt(a, Some(ada));

    let demote_by_function =
        || w.as_owner(a, "SELECT tenancy.set_member_role($1, 'viewer')", &[&ada]);
    let promote_by_update = || {
        w.exec(
            "UPDATE tenancy.memberships SET role = 'admin' WHERE tenant_id = $1 AND user_id = $2",
            &[&a, &ada],
        )
    };
    let demote_by_update = || {
        w.exec(
            "UPDATE tenancy.memberships SET role = 'viewer' WHERE tenant_id = $1 AND user_id = $2",
            &[&a, &ada],
        )
    };
    let promote_by_function =
        || w.as_owner(a, "SELECT tenancy.set_member_role($1, 'admin')", &[&ada]);

    demotion_round(
        &w,
        ada,
        &token,
        &jwt,
        "set_member_role()",
        &demote_by_function,
        &promote_by_update,
    );
    demotion_round(
        &w,
        ada,
        &token,
        &jwt,
        "UPDATE tenancy.memberships",
        &demote_by_update,
        &promote_by_function,
    );
}

fn demotion_round(
    w: &World,
    user: Uuid,
    token: &str,
    jwt: &str,
    how: &str,
    demote: &dyn Fn(),
    restore: &dyn Fn(),
) {
    let a = w.t.a;
    let payouts = "SELECT count(*) FROM public.payouts";
    let (mut app, mut cli, mut cli2) = (w.app(), w.client(), w.client());
    let app_cases = vec![
        (Has(a, Some(user), "orders:write"), yes()),
        (Require(a, Some(user), "orders:write"), yes()),
        (HasRole(a, Some(user), "admin"), yes()),
    ];
    let cli_cases = vec![
        (AuthHas(token.to_string(), "orders:write"), yes()),
        (AuthHas(jwt.to_string(), "members:write"), yes()),
    ];
    warm_both(&mut app, &app_cases, &mut cli, &cli_cases);
    cli2.warm(&AuthHas(jwt.to_string(), "members:write"), &yes());

    // Three transactions under way: set_tenant(), an API token, a JWT.
    let mut by_app = app.begin();
    assert_eq!(by_app.set_tenant(a, Some(user)), yes());
    let mut by_token = cli.begin();
    assert_eq!(by_token.authenticate(token), yes());
    let mut by_jwt = cli2.begin();
    assert_eq!(by_jwt.authenticate(jwt), yes());
    for _ in 0..WARM_ROUNDS {
        assert!(by_app.has("orders:write"));
        assert!(by_app.has_role("admin"));
        assert_eq!(by_app.count(payouts), 2);
        assert!(by_token.has("orders:write"));
        assert_eq!(by_token.count(payouts), 2);
        assert!(by_jwt.has("members:write"));
    }
    assert_eq!(by_app.role().as_deref(), Some("admin"));

    demote();

    // The very next statement of each transaction under way.
    assert!(
        !by_app.has("orders:write"),
        "{how}: the open transaction still has orders:write"
    );
    assert!(by_app.has("orders:read"), "{how}: a viewer reads orders");
    assert_eq!(by_app.count(payouts), 0, "{how}: RLS read policy");
    assert!(!by_app.has_role("admin"), "{how}");
    assert!(by_app.has_role("viewer"), "{how}");
    assert_eq!(by_app.role().as_deref(), Some("viewer"), "{how}");
    assert_eq!(by_app.require("orders:write"), forbidden(), "{how}");
    assert_eq!(by_app.require_role("admin"), forbidden(), "{how}");
    assert!(
        !by_token.has("orders:write"),
        "{how}: a token keeps its demoted creator's old rights"
    );
    assert_eq!(by_token.count(payouts), 0, "{how}: RLS through a token");
    assert_eq!(by_token.require("orders:write"), forbidden(), "{how}");
    assert!(
        !by_jwt.has("members:write"),
        "{how}: a JWT keeps its demoted subject's old rights"
    );
    assert_eq!(by_jwt.require("members:write"), forbidden(), "{how}");
    by_app.rollback();
    by_token.rollback();
    by_jwt.rollback();

    // New transactions.
    let when = format!("demoted by {how}");
    app.expect_all(
        &[
            (Has(a, Some(user), "orders:write"), no()),
            (Require(a, Some(user), "orders:write"), forbidden()),
            (HasRole(a, Some(user), "admin"), no()),
            (Has(a, Some(user), "orders:read"), yes()),
            (Enter(a, Some(user)), yes()),
        ],
        &when,
    );
    cli.expect_all(
        &[
            (AuthHas(token.to_string(), "orders:write"), no()),
            (AuthHas(jwt.to_string(), "members:write"), no()),
            (AuthHas(jwt.to_string(), "orders:read"), yes()),
        ],
        &when,
    );

    // Promoted again: READ COMMITTED sees the new grant at once too.
    restore();
    app.expect_all(&app_cases, "promoted again");
    cli.expect_all(&cli_cases, "promoted again");
}

// ---------------------------------------------------------------------------------------------
// 3. A member removed
// ---------------------------------------------------------------------------------------------

/// Attack: a fired employee (removed from the tenant) keeps entering it, because their
/// membership is cached: through set_tenant(), the API tokens they made and JWTs naming them.
/// Removed once through remove_member() and once by a direct DELETE. Their membership in
/// another tenant must stay exactly as it was (a cache keyed on the user alone would mix them).
#[test]
fn removed_member_is_refused_everywhere() {
    let w = world("cacheremove");
    let (a, b) = (w.t.a, w.t.b);
    let ada = w.member(a, "ada@a.example", "admin");
    w.exec(
        "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')",
        &[&b, &ada],
    );
    let (_, token) = w.api_token(a, ada, &["orders:read"]);
    let jwt = w.jwt(a, Some(ada));
    let jwt_b = w.jwt(b, Some(ada));

    let remove_by_function = || w.as_owner(a, "SELECT tenancy.remove_member($1)", &[&ada]);
    let remove_by_delete = || {
        w.exec(
            "DELETE FROM tenancy.memberships WHERE tenant_id = $1 AND user_id = $2",
            &[&a, &ada],
        )
    };
    let add_again = || {
        w.exec(
            "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, 'admin')",
            &[&a, &ada],
        )
    };
    for (how, remove) in [
        ("remove_member()", &remove_by_function as &dyn Fn()),
        (
            "DELETE FROM tenancy.memberships",
            &remove_by_delete as &dyn Fn(),
        ),
    ] {
        let mut app = w.app();
        let mut cli = w.client();
        let app_member = vec![
            (Enter(a, Some(ada)), yes()),
            (Has(a, Some(ada), "orders:write"), yes()),
            (Require(a, Some(ada), "orders:write"), yes()),
        ];
        let cli_member = vec![(Auth(token.clone()), yes()), (Auth(jwt.clone()), yes())];
        let app_unaffected = vec![
            (Enter(a, None), yes()),
            (Enter(b, Some(ada)), yes()),
            (Has(b, Some(ada), "orders:read"), yes()),
            (Has(b, Some(ada), "orders:write"), no()),
        ];
        let cli_unaffected = vec![(Auth(jwt_b.clone()), yes())];
        warm_both(&mut app, &app_member, &mut cli, &cli_member);
        warm_both(&mut app, &app_unaffected, &mut cli, &cli_unaffected);

        let mut app2 = w.app();
        let mut open = app2.begin();
        assert_eq!(open.set_tenant(a, Some(ada)), yes());
        for _ in 0..WARM_ROUNDS {
            assert!(open.has("orders:write"));
        }
        assert_eq!(open.role().as_deref(), Some("admin"));

        remove();

        assert!(
            !open.has("orders:write"),
            "{how}: the open transaction still has orders:write"
        );
        assert!(!open.has("orders:read"), "{how}");
        assert_eq!(open.role(), None, "{how}");
        assert!(!open.has_role("viewer"), "{how}");
        assert_eq!(open.require("orders:read"), forbidden(), "{how}");
        open.rollback();

        let when = format!("removed by {how}");
        app.expect_all(
            &[
                (Enter(a, Some(ada)), forbidden()),
                (Has(a, Some(ada), "orders:write"), forbidden()),
                (Require(a, Some(ada), "orders:read"), forbidden()),
            ],
            &when,
        );
        cli.expect_all(
            &[
                (Auth(token.clone()), unauthenticated()),
                (Auth(jwt.clone()), unauthenticated()),
            ],
            &when,
        );
        app.expect_all(&app_unaffected, &when);
        cli.expect_all(&cli_unaffected, &when);

        add_again();
        app.expect_all(&app_member, "added again");
        cli.expect_all(&cli_member, "added again");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Role grants (tenancy.role_permissions)
// ---------------------------------------------------------------------------------------------

/// Attack: a permission taken away from a role (the whole staff loses orders:write) is still
/// honoured from a cached grant list, for members and for the tokens they made. Grants are
/// deleted, inserted (exact and wildcard) and rewritten by UPDATE.
#[test]
fn role_grants_are_followed_at_the_next_statement() {
    let w = world("cachegrants");
    let a = w.t.a;
    let sam = w.member(a, "sam@a.example", "staff");
    let ada = w.member(a, "ada@a.example", "admin");
    let (_, token) = w.api_token(a, ada, &["orders:write", "billing:read"]);
    let mut app = w.app();
    let mut cli = w.client();
    warm_both(
        &mut app,
        &[
            (Has(a, Some(sam), "orders:write"), yes()),
            (Has(a, Some(sam), "billing:read"), no()),
            (Has(a, Some(ada), "orders:write"), yes()),
        ],
        &mut cli,
        &[
            (AuthHas(token.clone(), "orders:write"), yes()),
            (AuthHas(token.clone(), "billing:read"), yes()),
        ],
    );

    let mut app2 = w.app();
    let mut cli2 = w.client();
    let mut staff = app2.begin();
    assert_eq!(staff.set_tenant(a, Some(sam)), yes());
    let mut by_token = cli2.begin();
    assert_eq!(by_token.authenticate(&token), yes());
    for _ in 0..WARM_ROUNDS {
        assert!(staff.has("orders:write"));
        assert!(!staff.has("billing:read"));
        assert!(by_token.has("orders:write"));
    }

    // Deleted: staff's 'orders:*' and admin's exact 'orders:write'.
    w.exec(
        "DELETE FROM tenancy.role_permissions
          WHERE (role, permission) IN (('staff', 'orders:*'), ('admin', 'orders:write'))",
        &[],
    );
    assert!(!staff.has("orders:write"), "deleted wildcard grant");
    assert!(!staff.has("orders:read"), "deleted wildcard grant");
    assert!(staff.has("products:read"), "an untouched grant");
    assert_eq!(staff.require("orders:write"), forbidden());
    assert!(
        !by_token.has("orders:write"),
        "token of a creator whose role lost it"
    );
    assert_eq!(by_token.require("orders:write"), forbidden());
    assert!(by_token.has("billing:read"));

    // Inserted: a wildcard, then an exact grant.
    w.exec(
        "INSERT INTO tenancy.role_permissions (role, permission) VALUES ('staff', 'billing:*')",
        &[],
    );
    assert!(staff.has("billing:read"), "inserted wildcard grant");
    assert!(staff.has("billing:write"), "inserted wildcard grant");
    w.exec(
        "INSERT INTO tenancy.role_permissions (role, permission) VALUES ('staff', 'orders:write')",
        &[],
    );
    assert!(staff.has("orders:write"), "inserted exact grant");
    assert!(!staff.has("orders:read"));

    // Rewritten by UPDATE.
    w.exec(
        "UPDATE tenancy.role_permissions SET permission = 'orders:read'
          WHERE role = 'staff' AND permission = 'orders:write'",
        &[],
    );
    assert!(!staff.has("orders:write"), "grant rewritten by UPDATE");
    assert!(staff.has("orders:read"), "grant rewritten by UPDATE");
    staff.rollback();
    by_token.rollback();

    app.expect_all(
        &[
            (Has(a, Some(sam), "orders:write"), no()),
            (Require(a, Some(sam), "orders:write"), forbidden()),
            (Has(a, Some(sam), "orders:read"), yes()),
            (Has(a, Some(sam), "billing:write"), yes()),
            (Has(a, Some(ada), "orders:write"), no()),
        ],
        "after the grant changes",
    );
    cli.expect_all(
        &[
            (AuthHas(token.clone(), "orders:write"), no()),
            (AuthHas(token.clone(), "billing:read"), yes()),
        ],
        "after the grant changes",
    );

    w.exec(
        "DELETE FROM tenancy.role_permissions WHERE role = 'staff' AND permission = 'billing:*'",
        &[],
    );
    app.expect(
        &Has(a, Some(sam), "billing:read"),
        &no(),
        "wildcard deleted again",
    );
}

/// Attack: a role's rank lowered, or a role renamed, while connections compare against a
/// cached rank or name (has_role / require_role, and the role name in context()).
#[test]
fn role_rank_and_name_changes_are_followed() {
    let w = world("cacheroles");
    let a = w.t.a;
    let max = w.member(a, "max@a.example", "manager");
    let mut app = w.app();
    app.warm_all(&[
        (HasRole(a, Some(max), "staff"), yes()),
        (HasRole(a, Some(max), "manager"), yes()),
        (Has(a, Some(max), "orders:write"), yes()),
    ]);

    let mut app2 = w.app();
    let mut open = app2.begin();
    assert_eq!(open.set_tenant(a, Some(max)), yes());
    for _ in 0..WARM_ROUNDS {
        assert!(open.has_role("staff"));
        assert!(open.has_role("manager"));
    }

    w.exec(
        "UPDATE tenancy.roles SET rank = 10 WHERE name = 'manager'",
        &[],
    );
    assert!(!open.has_role("staff"), "rank lowered below staff's");
    assert!(!open.has_role("viewer"), "rank lowered below viewer's");
    assert!(open.has_role("manager"));
    assert_eq!(open.require_role("staff"), forbidden());

    // Renamed: memberships and grants follow (ON UPDATE CASCADE); the old name is unknown.
    w.exec(
        "UPDATE tenancy.roles SET name = 'supervisor' WHERE name = 'manager'",
        &[],
    );
    assert_eq!(open.role().as_deref(), Some("supervisor"));
    assert!(open.has("orders:write"));
    assert_eq!(open.has_role_checked("manager"), bad_argument());
    assert!(open.has_role("supervisor"));
    open.rollback();

    app.expect_all(
        &[
            (HasRole(a, Some(max), "staff"), no()),
            (HasRole(a, Some(max), "manager"), bad_argument()),
            (HasRole(a, Some(max), "supervisor"), yes()),
            (Has(a, Some(max), "orders:write"), yes()),
        ],
        "after the rank and name changes",
    );

    w.exec(
        "UPDATE tenancy.roles SET name = 'manager', rank = 60 WHERE name = 'supervisor'",
        &[],
    );
    app.expect_all(
        &[
            (HasRole(a, Some(max), "staff"), yes()),
            (HasRole(a, Some(max), "manager"), yes()),
            (HasRole(a, Some(max), "supervisor"), bad_argument()),
        ],
        "restored",
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Permission names (tenancy.permissions)
// ---------------------------------------------------------------------------------------------

/// Attack: the set of known permission names is cached, so a new permission keeps raising
/// 22023 (availability) or, worse, a deleted or renamed one keeps being granted (through the
/// owner's '*'). Unknown names must give 22023 again as soon as they are gone.
#[test]
fn new_renamed_and_deleted_permissions_are_followed() {
    let w = world("cacheperms");
    let a = w.t.a;
    let owner = w.t.owner_a;
    let sam = w.member(a, "sam@a.example", "staff");
    let mut app = w.app();
    app.warm_all(&[
        (Has(a, Some(owner), "reports:export"), bad_argument()),
        (Has(a, Some(sam), "reports:export"), bad_argument()),
        (Require(a, Some(sam), "reports:export"), bad_argument()),
    ]);
    let mut app2 = w.app();
    let mut open = app2.begin();
    assert_eq!(open.set_tenant(a, Some(owner)), yes());
    for _ in 0..WARM_ROUNDS {
        assert_eq!(open.has_checked("reports:export"), bad_argument());
    }

    w.exec(
        "INSERT INTO tenancy.permissions (name, description) VALUES ('reports:export', 'export')",
        &[],
    );
    assert!(
        open.has("reports:export"),
        "new permission, owner holds '*'"
    );
    app.expect_all(
        &[
            (Has(a, Some(owner), "reports:export"), yes()),
            (Has(a, Some(sam), "reports:export"), no()),
            (Require(a, Some(sam), "reports:export"), forbidden()),
        ],
        "permission inserted",
    );
    w.batch("INSERT INTO tenancy.role_permissions VALUES ('staff', 'reports:export')");
    app.expect(
        &Has(a, Some(sam), "reports:export"),
        &yes(),
        "permission granted to staff",
    );

    // Renamed: the old name is unknown at once, the new one known.
    w.exec(
        "UPDATE tenancy.permissions SET name = 'reports:download' WHERE name = 'reports:export'",
        &[],
    );
    assert_eq!(open.has_checked("reports:export"), bad_argument());
    assert!(open.has("reports:download"));

    // Deleted.
    w.exec(
        "DELETE FROM tenancy.permissions WHERE name = 'reports:download'",
        &[],
    );
    assert_eq!(
        open.has_now("reports:download"),
        bad_argument(),
        "a deleted permission, next statement"
    );
    open.rollback();
    app.expect_all(
        &[
            (Has(a, Some(owner), "reports:export"), bad_argument()),
            (Has(a, Some(owner), "reports:download"), bad_argument()),
            (Require(a, Some(owner), "reports:download"), bad_argument()),
            (Has(a, Some(sam), "reports:export"), bad_argument()),
        ],
        "permission deleted",
    );
}

// ---------------------------------------------------------------------------------------------
// 6. API tokens
// ---------------------------------------------------------------------------------------------

/// Attack: a leaked API token keeps working after it was revoked, expired, re-hashed or
/// narrowed, because its row is cached on the connections that already saw it. Also: a token
/// whose expiry passes with no write at all must stop at its expiry.
#[test]
fn revoked_expired_and_altered_api_tokens_fail_at_the_next_transaction() {
    let w = world("cachetokens");
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    let (id_fn, revoked_by_fn) = w.api_token(a, ada, &["orders:write"]);
    let (id_upd, revoked_by_update) = w.api_token(a, ada, &["orders:write"]);
    let (id_exp, expired) = w.api_token(a, ada, &["orders:write"]);
    let (id_hash, rehashed) = w.api_token(a, ada, &["orders:write"]);
    let (id_scope, narrowed) = w.api_token(a, ada, &["orders:write", "orders:read"]);
    let (id_short, short_lived) = w.api_token(a, ada, &["orders:write"]);
    let (_, control) = w.api_token(a, ada, &["orders:write"]);
    let mut cli = w.client();

    // Expires by itself in five seconds.
    w.exec(
        "UPDATE tenancy.api_tokens SET expires_at = clock_timestamp() + interval '5 seconds'
          WHERE id = $1",
        &[&id_short],
    );
    let expiry = Instant::now() + Duration::from_secs(5);
    cli.warm(&Auth(short_lived.clone()), &yes());
    assert!(
        Instant::now() + Duration::from_millis(500) < expiry,
        "warming took too long to test expiry"
    );
    cli.warm_all(&[
        (Auth(revoked_by_fn.clone()), yes()),
        (Auth(revoked_by_update.clone()), yes()),
        (Auth(expired.clone()), yes()),
        (Auth(rehashed.clone()), yes()),
        (AuthHas(narrowed.clone(), "orders:write"), yes()),
        (Auth(control.clone()), yes()),
    ]);

    // A request under way re-verifies its token after the revocation: refused.
    let mut cli2 = w.client();
    let mut open = cli2.begin();
    assert_eq!(open.authenticate(&revoked_by_fn), yes());
    w.as_owner(a, "SELECT tenancy.revoke_api_token($1)", &[&id_fn]);
    assert_eq!(
        open.reauthenticate(&revoked_by_fn),
        unauthenticated(),
        "re-verified in the transaction under way"
    );
    open.rollback();
    cli.expect(
        &Auth(revoked_by_fn.clone()),
        &unauthenticated(),
        "revoke_api_token()",
    );

    w.exec(
        "UPDATE tenancy.api_tokens SET revoked_at = clock_timestamp() WHERE id = $1",
        &[&id_upd],
    );
    cli.expect(
        &Auth(revoked_by_update.clone()),
        &unauthenticated(),
        "UPDATE revoked_at",
    );

    w.exec(
        "UPDATE tenancy.api_tokens SET expires_at = clock_timestamp() - interval '1 second'
          WHERE id = $1",
        &[&id_exp],
    );
    cli.expect(
        &Auth(expired.clone()),
        &unauthenticated(),
        "expires_at set to the past",
    );

    w.exec(
        "UPDATE tenancy.api_tokens SET token_hash = sha256('another secret'::bytea) WHERE id = $1",
        &[&id_hash],
    );
    cli.expect(
        &Auth(rehashed.clone()),
        &unauthenticated(),
        "token_hash replaced",
    );

    w.exec(
        "UPDATE tenancy.api_tokens SET scopes = ARRAY['orders:read'] WHERE id = $1",
        &[&id_scope],
    );
    cli.expect_all(
        &[
            (AuthHas(narrowed.clone(), "orders:write"), no()),
            (AuthHas(narrowed.clone(), "orders:read"), yes()),
        ],
        "scopes narrowed",
    );

    // No write at all: the clock passes the expiry.
    let now = Instant::now();
    if now < expiry {
        std::thread::sleep(expiry - now + Duration::from_millis(300));
    }
    cli.expect(
        &Auth(short_lived.clone()),
        &unauthenticated(),
        "expiry passed without any write",
    );

    cli.expect(&Auth(control.clone()), &yes(), "an untouched token");

    // Un-revoked: READ COMMITTED sees it.
    w.exec(
        "UPDATE tenancy.api_tokens SET revoked_at = NULL WHERE id = $1",
        &[&id_upd],
    );
    cli.expect(&Auth(revoked_by_update), &yes(), "revoked_at cleared");
}

// ---------------------------------------------------------------------------------------------
// 7. Signing keys
// ---------------------------------------------------------------------------------------------

/// Attack: a compromised signing key keeps verifying JWTs on warm connections after it was
/// retired (through retire_signing_key() or UPDATE), deleted, or given a new secret under the
/// same kid.
#[test]
fn retired_deleted_and_rotated_signing_keys_stop_jwts() {
    let w = world("cachekeys");
    let a = w.t.a;
    let k_fn = w.key.clone();
    let k_upd = w.signing_key();
    let k_del = w.signing_key();
    let k_rot = w.signing_key();
    let k_ctl = w.signing_key();
    let jwt = |k: &Key| w.jwt_with(k, a, None);
    let (j_fn, j_upd, j_del, j_rot, j_ctl) = (
        jwt(&k_fn),
        jwt(&k_upd),
        jwt(&k_del),
        jwt(&k_rot),
        jwt(&k_ctl),
    );
    let mut cli = w.client();
    cli.warm_all(&[
        (Auth(j_fn.clone()), yes()),
        (Auth(j_upd.clone()), yes()),
        (Auth(j_del.clone()), yes()),
        (Auth(j_rot.clone()), yes()),
        (Auth(j_ctl.clone()), yes()),
    ]);

    // A request under way re-verifies its JWT after the key was retired: refused.
    let mut cli2 = w.client();
    let mut open = cli2.begin();
    assert_eq!(open.authenticate(&j_fn), yes());
    w.exec("SELECT tenancy.retire_signing_key($1)", &[&k_fn.kid]);
    assert_eq!(
        open.reauthenticate(&j_fn),
        unauthenticated(),
        "re-verified in the transaction under way"
    );
    open.rollback();
    cli.expect(
        &Auth(j_fn.clone()),
        &unauthenticated(),
        "retire_signing_key()",
    );

    w.exec(
        "UPDATE tenancy.signing_keys SET retired_at = clock_timestamp() WHERE kid = $1",
        &[&k_upd.kid],
    );
    cli.expect(
        &Auth(j_upd.clone()),
        &unauthenticated(),
        "UPDATE retired_at",
    );

    w.exec(
        "DELETE FROM tenancy.signing_keys WHERE kid = $1",
        &[&k_del.kid],
    );
    cli.expect(&Auth(j_del), &unauthenticated(), "key deleted");

    // A new secret under the same kid: old JWTs die, JWTs signed with the new secret work.
    let raw = random32();
    w.exec(
        "UPDATE tenancy.signing_keys SET secret = $1 WHERE kid = $2",
        &[&raw, &k_rot.kid],
    );
    cli.expect(
        &Auth(j_rot),
        &unauthenticated(),
        "secret replaced under the same kid",
    );
    let rotated = Key {
        kid: k_rot.kid.clone(),
        hmac: URL_SAFE_NO_PAD.encode(&raw).into_bytes(),
    };
    cli.expect(
        &Auth(w.jwt_with(&rotated, a, None)),
        &yes(),
        "signed with the new secret",
    );

    cli.expect(&Auth(j_ctl), &yes(), "an untouched key");

    // Un-retired: READ COMMITTED sees it.
    w.exec(
        "UPDATE tenancy.signing_keys SET retired_at = NULL WHERE kid = $1",
        &[&k_upd.kid],
    );
    cli.expect(&Auth(j_upd), &yes(), "retired_at cleared");
}

// ---------------------------------------------------------------------------------------------
// 8. Platform admins
// ---------------------------------------------------------------------------------------------

/// Attack: a platform admin whose flag was cleared keeps entering every tenant and passing
/// every check on connections that cached the flag (with set_tenant() and JWTs); a platform
/// admin who is also an ordinary member falls back to that member's role. Granting the flag
/// again is seen too (READ COMMITTED).
#[test]
fn platform_admin_flag_is_followed_both_ways() {
    let w = world("cacheplatform");
    let a = w.t.a;
    let root = w.user("root@platform.example");
    let vic = w.member(a, "vic@a.example", "viewer");
    w.exec(
        "UPDATE tenancy.users SET platform_admin = true WHERE id IN ($1, $2)",
        &[&root, &vic],
    );
    let jwt_root = w.jwt(a, Some(root));
    let jwt_vic = w.jwt(a, Some(vic));
    let mut app = w.app();
    let mut cli = w.client();
    let app_admin = vec![
        (Enter(a, Some(root)), yes()),
        (Has(a, Some(root), "tenant:delete"), yes()),
        (HasRole(a, Some(root), "owner"), yes()),
        (Has(a, Some(vic), "billing:write"), yes()),
    ];
    let cli_admin = vec![
        (Auth(jwt_root.clone()), yes()),
        (AuthHas(jwt_root.clone(), "tenant:delete"), yes()),
        (AuthHas(jwt_vic.clone(), "billing:write"), yes()),
    ];
    warm_both(&mut app, &app_admin, &mut cli, &cli_admin);

    let mut app2 = w.app();
    let mut open = app2.begin();
    assert_eq!(open.set_tenant(a, Some(root)), yes());
    for _ in 0..WARM_ROUNDS {
        assert!(open.has("tenant:delete"));
        assert!(open.has_role("owner"));
    }

    w.exec(
        "UPDATE tenancy.users SET platform_admin = false WHERE id IN ($1, $2)",
        &[&root, &vic],
    );
    assert!(
        !open.has("tenant:delete"),
        "the open transaction still passes as platform admin"
    );
    assert!(!open.has_role("viewer"));
    assert_eq!(open.require("orders:read"), forbidden());
    open.rollback();

    let when = "platform_admin cleared";
    app.expect_all(
        &[
            (Enter(a, Some(root)), forbidden()),
            (Has(a, Some(root), "tenant:delete"), forbidden()),
            (Has(a, Some(vic), "billing:write"), no()),
            (Has(a, Some(vic), "orders:read"), yes()),
        ],
        when,
    );
    cli.expect_all(
        &[
            (Auth(jwt_root.clone()), unauthenticated()),
            (AuthHas(jwt_vic.clone(), "billing:write"), no()),
            (AuthHas(jwt_vic.clone(), "orders:read"), yes()),
        ],
        when,
    );

    w.exec(
        "UPDATE tenancy.users SET platform_admin = true WHERE id IN ($1, $2)",
        &[&root, &vic],
    );
    app.expect_all(&app_admin, "platform_admin set again");
    cli.expect_all(&cli_admin, "platform_admin set again");
}

// ---------------------------------------------------------------------------------------------
// 9. Changes rolled back, and changes pending while the caches fill
// ---------------------------------------------------------------------------------------------

/// Attack (both ways): a cache that is invalidated by a change that then rolls back is merely
/// slower, but one that applies an uncommitted or rolled-back change is wrong (a denial of
/// service an admin can trigger by accident). Worse, a cache filled while a revocation is
/// pending (uncommitted) must not keep the old rows once it commits.
#[test]
fn rolled_back_changes_are_not_seen_and_pending_ones_are_seen_once_committed() {
    let w = world("cacherollback");
    let (a, b) = (w.t.a, w.t.b);
    let ada = w.member(a, "ada@a.example", "admin");
    let sam = w.member(a, "sam@a.example", "staff");
    let (tok_id, token) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let jwt = w.jwt(a, None);
    let mut app = w.app();
    let mut cli = w.client();
    let app_cases = vec![
        (Enter(a, None), yes()),
        (Enter(a, Some(ada)), yes()),
        (Has(a, Some(ada), "orders:write"), yes()),
        (Has(a, Some(sam), "orders:write"), yes()),
        (Has(a, Some(sam), "reports:export"), bad_argument()),
    ];
    let cli_cases = vec![(Auth(token.clone()), yes()), (Auth(jwt.clone()), yes())];
    warm_both(&mut app, &app_cases, &mut cli, &cli_cases);

    let changes = [
        remove_member_sql(a, ada),
        DELETE_STAFF_ORDERS.to_string(),
        "INSERT INTO tenancy.permissions (name) VALUES ('reports:export')".to_string(),
        token_revoked_sql(tok_id, true),
        key_retired_sql(&w.key.kid, true),
    ]
    .join(";\n");
    let suspend = tenant_status_sql(a, "suspended");
    let mut admin = w.admin();

    // Rolled back, after the warm connections looked while it was pending.
    let mut tx = admin.transaction().unwrap();
    tx.batch_execute(&changes).unwrap();
    tx.batch_execute(&suspend).unwrap();
    app.expect_all(&app_cases, "uncommitted changes");
    cli.expect_all(&cli_cases, "uncommitted changes");
    tx.rollback().unwrap();
    for round in 0..2 {
        app.expect_all(&app_cases, &format!("rolled back (check {round})"));
        cli.expect_all(&cli_cases, &format!("rolled back (check {round})"));
    }

    // Rolled back to a savepoint; the rest of the transaction (an unrelated change) commits.
    let mut tx = admin.transaction().unwrap();
    tx.execute(
        "UPDATE tenancy.tenants SET name = 'Store B renamed' WHERE id = $1",
        &[&b],
    )
    .unwrap();
    let mut sp = tx.transaction().unwrap();
    sp.batch_execute(&changes).unwrap();
    sp.batch_execute(&suspend).unwrap();
    sp.rollback().unwrap();
    tx.commit().unwrap();
    app.expect_all(&app_cases, "rolled back to a savepoint");
    cli.expect_all(&cli_cases, "rolled back to a savepoint");

    // Pending while the warm connections read (their caches may fill with the old rows), then
    // committed: the next transaction sees all of it.
    let mut tx = admin.transaction().unwrap();
    tx.batch_execute(&changes).unwrap();
    app.expect_all(&app_cases, "changes pending");
    cli.expect_all(&cli_cases, "changes pending");
    tx.commit().unwrap();
    let when = "committed after being pending";
    app.expect_all(
        &[
            (Enter(a, None), yes()),
            (Enter(a, Some(ada)), forbidden()),
            (Has(a, Some(ada), "orders:write"), forbidden()),
            (Has(a, Some(sam), "orders:write"), no()),
            (Has(a, Some(sam), "reports:export"), no()),
        ],
        when,
    );
    cli.expect_all(&expecting(&cli_cases, unauthenticated()), when);
}

// ---------------------------------------------------------------------------------------------
// 10. REPEATABLE READ / SERIALIZABLE
// ---------------------------------------------------------------------------------------------

/// One user (or token) per kind of revocation: each change's probe enters a context and
/// checks a permission, `after` is what that check gives in the transaction under way once
/// the change committed; the second element is what the whole probe gives in a new
/// transaction.
fn revocations_in_context(w: &World) -> Vec<(Change, Outcome)> {
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    let max = w.member(a, "max@a.example", "admin");
    let sam = w.member(a, "sam@a.example", "staff");
    let tim = w.member(a, "tim@a.example", "admin");
    let root = w.user("root@platform.example");
    w.batch(&platform_admin_sql(root, true));
    w.batch("INSERT INTO tenancy.permissions (name) VALUES ('reports:export')");
    let (_, token) = w.api_token(a, tim, &["orders:write"]);
    let jwt_max = w.jwt(a, Some(max));
    let change = |what, probe, change: String, after| Change {
        what,
        probe,
        change,
        revert: String::new(),
        after,
    };
    vec![
        (
            change(
                "membership removed",
                Has(a, Some(ada), "orders:write"),
                remove_member_sql(a, ada),
                no(),
            ),
            forbidden(),
        ),
        (
            change(
                "role lowered (JWT subject)",
                AuthHas(jwt_max, "orders:write"),
                set_role_sql(a, max, "viewer"),
                no(),
            ),
            no(),
        ),
        (
            change(
                "grant deleted",
                Has(a, Some(sam), "orders:write"),
                DELETE_STAFF_ORDERS.to_string(),
                no(),
            ),
            no(),
        ),
        (
            change(
                "token creator demoted",
                AuthHas(token, "orders:write"),
                set_role_sql(a, tim, "viewer"),
                no(),
            ),
            no(),
        ),
        (
            change(
                "platform_admin cleared",
                Has(a, Some(root), "tenant:delete"),
                platform_admin_sql(root, false),
                no(),
            ),
            forbidden(),
        ),
        (
            change(
                "permission deleted",
                Has(a, Some(w.t.owner_a), "reports:export"),
                "DELETE FROM tenancy.permissions WHERE name = 'reports:export'".to_string(),
                bad_argument(),
            ),
            bad_argument(),
        ),
    ]
}

/// Enters the context of each probe and checks its permission in a transaction at `level`
/// that started before the revocation; after the revocation the next statement must honour it.
fn snapshot_checks_honour_revocations(label: &str, level: IsolationLevel) {
    let w = world(label);
    let cases = revocations_in_context(&w);
    let mut app = w.app();
    let mut cli = w.client();
    for (c, next_transaction) in &cases {
        let what = c.what;
        let (entry, permission) = match &c.probe {
            Has(t, u, p) => (Enter(*t, *u), *p),
            AuthHas(token, p) => (Auth(token.clone()), *p),
            other => unreachable!("{other:?}"),
        };
        let conn = match entry {
            Auth(..) => &mut cli,
            _ => &mut app,
        };
        conn.warm(&c.probe, &yes());
        let mut open = conn.begin_at(level);
        assert_eq!(open.run(&entry), yes(), "{what}: entering");
        for _ in 0..WARM_ROUNDS {
            assert!(open.has(permission), "{what}: before the revocation");
        }

        w.batch(&c.change);

        let got = open.has_now(permission);
        assert_eq!(
            got, c.after,
            "{what}: {level:?} transaction begun before the revocation, next statement"
        );
        if got.is_ok() {
            assert_eq!(open.require(permission), forbidden(), "{what}: require");
            assert!(!open.has(permission), "{what}: and the statement after");
        }
        open.rollback();
        conn.expect(
            &c.probe,
            next_transaction,
            &format!("{what}: next transaction"),
        );
    }
}

/// Attack: a long REPEATABLE READ transaction (a report, a batch job, an ORM's default) keeps
/// acting with rights revoked after its snapshot was taken, because the checks read the
/// authorisation tables (or a cache) as of that snapshot. A membership removed, a role
/// lowered, a grant deleted, a token's creator demoted, a platform admin flag cleared, a
/// permission deleted: each must be honoured by the transaction's next statement.
#[test]
fn repeatable_read_checks_honour_revocations_committed_mid_transaction() {
    snapshot_checks_honour_revocations("cacherrcheck", IsolationLevel::RepeatableRead);
}

/// The same under SERIALIZABLE (some applications run everything at that level).
#[test]
fn serializable_checks_honour_revocations_committed_mid_transaction() {
    snapshot_checks_honour_revocations("cacheserialcheck", IsolationLevel::Serializable);
}

/// Attack: a REPEATABLE READ transaction whose snapshot predates a revocation enters the
/// tenant (or authenticates) afterwards, and set_tenant() / authenticate() check the tenant,
/// membership, platform admin flag, token row and signing key as of that old snapshot.
#[test]
fn repeatable_read_entering_after_a_revocation_is_refused() {
    let w = world("cacherrenter");
    let (a, b) = (w.t.a, w.t.b);
    let ada = w.member(a, "ada@a.example", "admin");
    let tim = w.member(a, "tim@a.example", "admin");
    let ed = w.member(a, "ed@a.example", "staff");
    let root = w.user("root@platform.example");
    w.batch(&platform_admin_sql(root, true));
    let (id_rev, revoked) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let (id_exp, expired) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let (_, by_tim) = w.api_token(a, tim, &["orders:read"]);
    let (id_again, reverified) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let jwt = w.jwt(a, None);
    let jwt_ed = w.jwt(a, Some(ed));
    let kid = w.key.kid.clone();

    let change = |what, probe, change: String, revert: String, after| Change {
        what,
        probe,
        change,
        revert,
        after,
    };
    let cases = vec![
        change(
            "tenant suspended",
            Enter(a, None),
            tenant_status_sql(a, "suspended"),
            tenant_status_sql(a, "active"),
            unauthenticated(),
        ),
        change(
            "tenant suspended (API token)",
            Auth(revoked.clone()),
            tenant_status_sql(a, "suspended"),
            tenant_status_sql(a, "active"),
            unauthenticated(),
        ),
        change(
            "member removed",
            Enter(a, Some(ada)),
            remove_member_sql(a, ada),
            String::new(),
            forbidden(),
        ),
        change(
            "platform_admin cleared",
            Enter(b, Some(root)),
            platform_admin_sql(root, false),
            String::new(),
            forbidden(),
        ),
        change(
            "API token revoked",
            Auth(revoked.clone()),
            token_revoked_sql(id_rev, true),
            String::new(),
            unauthenticated(),
        ),
        change(
            "API token expired",
            Auth(expired),
            format!(
                "UPDATE tenancy.api_tokens
                    SET expires_at = clock_timestamp() - interval '1 second' WHERE id = '{id_exp}'"
            ),
            String::new(),
            unauthenticated(),
        ),
        change(
            "API token's creator removed",
            Auth(by_tim),
            remove_member_sql(a, tim),
            String::new(),
            unauthenticated(),
        ),
        change(
            "JWT subject removed",
            Auth(jwt_ed),
            remove_member_sql(a, ed),
            String::new(),
            unauthenticated(),
        ),
        change(
            "signing key retired",
            Auth(jwt),
            format!("SELECT tenancy.retire_signing_key('{kid}')"),
            String::new(),
            unauthenticated(),
        ),
    ];
    let mut app = w.app();
    let mut cli = w.client();
    for c in &cases {
        let (what, probe) = (c.what, &c.probe);
        let conn = match probe {
            Auth(..) => &mut cli,
            _ => &mut app,
        };
        conn.warm(probe, &yes());
        let mut open = conn.begin_at(IsolationLevel::RepeatableRead);
        open.take_snapshot();
        // Entered once inside the transaction (and undone), so it is warm there too.
        assert_eq!(open.run_in_savepoint(probe), yes(), "{what}: before");
        w.batch(&c.change);
        assert_eq!(
            open.run(probe),
            c.after,
            "{what}: REPEATABLE READ snapshot taken before the revocation"
        );
        open.rollback();
        conn.expect(probe, &c.after, &format!("{what}: next transaction"));
        if !c.revert.is_empty() {
            w.batch(&c.revert);
            conn.expect(probe, &yes(), &format!("{what}: restored"));
        }
    }

    // A token verified in the transaction, revoked, then verified again by the next request
    // in the same REPEATABLE READ transaction.
    cli.warm(&Auth(reverified.clone()), &yes());
    let mut open = cli.begin_at(IsolationLevel::RepeatableRead);
    assert_eq!(open.authenticate(&reverified), yes());
    w.exec(
        "UPDATE tenancy.api_tokens SET revoked_at = clock_timestamp() WHERE id = $1",
        &[&id_again],
    );
    assert_eq!(
        open.authenticate(&reverified),
        unauthenticated(),
        "the same token verified again after its revocation"
    );
    open.rollback();
}

// ---------------------------------------------------------------------------------------------
// 11. Many connections
// ---------------------------------------------------------------------------------------------

/// Attack: an invalidation that reaches only some backends (the one that made the change, or
/// the first to ask) leaves the others stale: with a pool, the attacker retries until a stale
/// connection answers. Eight warm connections (set_tenant(), API token, JWT), one change,
/// every one of them must see it in its next transaction.
#[test]
fn many_warm_connections_all_see_one_change() {
    const N: usize = 8;
    let w = world("cachemany");
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    let (_, token) = w.api_token(a, ada, &["orders:write"]);
    let jwt = w.jwt(a, Some(ada));
    let probes: Vec<Probe> = (0..N)
        .map(|i| match i % 4 {
            0 | 1 => Has(a, Some(ada), "orders:write"),
            2 => AuthHas(token.clone(), "orders:write"),
            _ => AuthHas(jwt.clone(), "orders:write"),
        })
        .collect();
    let rounds: Vec<(&str, String, Outcome)> = vec![
        ("role lowered", set_role_sql(a, ada, "viewer"), no()),
        ("role restored", set_role_sql(a, ada, "admin"), yes()),
        (
            "tenant suspended",
            tenant_status_sql(a, "suspended"),
            unauthenticated(),
        ),
        ("tenant reactivated", tenant_status_sql(a, "active"), yes()),
        (
            "grant deleted",
            "DELETE FROM tenancy.role_permissions
              WHERE role = 'admin' AND permission = 'orders:write'"
                .to_string(),
            no(),
        ),
    ];
    let barrier = Barrier::new(N + 1);
    let results: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let workers: Vec<_> = probes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (w, barrier, rounds) = (&w, &barrier, &rounds);
                s.spawn(move || {
                    let mut conn = if i % 4 < 2 { w.app() } else { w.client() };
                    conn.warm(p, &yes());
                    barrier.wait(); // all warm
                    let mut seen = Vec::new();
                    for _ in rounds {
                        barrier.wait(); // the change is committed
                        seen.push(conn.probe(p));
                        seen.push(conn.probe(p));
                        barrier.wait(); // everyone has looked
                    }
                    seen
                })
            })
            .collect();
        barrier.wait();
        for (_, sql, _) in &rounds {
            w.batch(sql);
            barrier.wait();
            barrier.wait();
        }
        workers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, seen) in results.iter().enumerate() {
        for (r, (what, _, expected)) in rounds.iter().enumerate() {
            for got in &seen[2 * r..2 * r + 2] {
                assert_eq!(
                    got, expected,
                    "connection {i} ({:?}) after {what}",
                    probes[i]
                );
            }
        }
    }
}

/// Attack: the race itself. Busy connections run requests back to back while the superuser
/// flips a member's role between admin and viewer; every request whose transaction began after
/// a change committed (and before the next one started) must answer for exactly that state.
#[test]
fn busy_connections_never_act_on_a_grant_revoked_before_their_transaction() {
    const THREADS: usize = 4;
    const CHANGES: usize = 12;
    let w = world("cacherace");
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    let (_, token) = w.api_token(a, ada, &["orders:write"]);
    // Changes started / committed; an even count means admin (granted), odd means viewer.
    let started = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (w, started, done, stop, token) = (&w, &started, &done, &stop, &token);
                s.spawn(move || {
                    let (mut conn, p) = if i % 2 == 0 {
                        (w.app(), Has(a, Some(ada), "orders:write"))
                    } else {
                        (w.client(), AuthHas(token.clone(), "orders:write"))
                    };
                    let mut checked = [0usize; 2];
                    let mut wrong = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let committed = done.load(Ordering::SeqCst);
                        let got = conn.probe(&p);
                        if started.load(Ordering::SeqCst) == committed {
                            let expected = if committed % 2 == 0 { yes() } else { no() };
                            checked[committed % 2] += 1;
                            if got != expected {
                                wrong.push((committed, got));
                            }
                        }
                    }
                    (p, checked, wrong)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut admin = w.admin();
        for k in 1..=CHANGES {
            let role = if k % 2 == 1 { "viewer" } else { "admin" };
            started.store(k, Ordering::SeqCst);
            admin.batch_execute(&set_role_sql(a, ada, role)).unwrap();
            done.store(k, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::SeqCst);
        for h in workers {
            let (p, checked, wrong) = h.join().unwrap();
            assert!(
                wrong.is_empty(),
                "{p:?}: answers for a state other than the committed one \
                 (changes committed, answer): {wrong:?}"
            );
            assert!(
                checked[0] >= CHANGES && checked[1] >= CHANGES,
                "{p:?}: too few requests between the changes to mean anything: {checked:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Changes that arrive by other paths
// ---------------------------------------------------------------------------------------------

/// Attack: changes that reach the tables without an ordinary UPDATE of the row that is cached:
/// a user or tenant deleted (their memberships and tokens go by ON DELETE CASCADE) and whole
/// tables truncated.
#[test]
fn cascaded_deletes_and_truncates_are_seen() {
    let w = world("cachecascade");
    let (a, b) = (w.t.a, w.t.b);
    let ada = w.member(a, "ada@a.example", "admin");
    let sam = w.member(a, "sam@a.example", "staff");
    let (_, tok_ada) = w.api_token(a, ada, &["orders:read"]);
    let jwt_ada = w.jwt(a, Some(ada));
    let (_, tok_b) = w.api_token(b, w.t.owner_b, &["orders:read"]);
    let jwt_b = w.jwt(b, None);
    let (_, tok_owner) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let jwt_a = w.jwt(a, None);
    let mut app = w.app();
    let mut cli = w.client();
    warm_both(
        &mut app,
        &[
            (Enter(a, Some(ada)), yes()),
            (Enter(b, None), yes()),
            (Has(a, Some(sam), "orders:write"), yes()),
        ],
        &mut cli,
        &[
            (Auth(tok_ada.clone()), yes()),
            (Auth(jwt_ada.clone()), yes()),
            (Auth(tok_b.clone()), yes()),
            (Auth(jwt_b.clone()), yes()),
            (Auth(tok_owner.clone()), yes()),
            (Auth(jwt_a.clone()), yes()),
        ],
    );

    w.exec("DELETE FROM tenancy.users WHERE id = $1", &[&ada]);
    app.expect(&Enter(a, Some(ada)), &forbidden(), "user deleted");
    cli.expect(&Auth(tok_ada), &unauthenticated(), "user deleted (token)");
    cli.expect(&Auth(jwt_ada), &unauthenticated(), "user deleted (JWT)");

    w.exec("DELETE FROM tenancy.tenants WHERE id = $1", &[&b]);
    app.expect(&Enter(b, None), &unauthenticated(), "tenant deleted");
    cli.expect(&Auth(tok_b), &unauthenticated(), "tenant deleted (token)");
    cli.expect(&Auth(jwt_b), &unauthenticated(), "tenant deleted (JWT)");

    w.batch("TRUNCATE tenancy.api_tokens");
    cli.expect(&Auth(tok_owner), &unauthenticated(), "api_tokens truncated");
    w.batch("TRUNCATE tenancy.signing_keys");
    cli.expect(&Auth(jwt_a), &unauthenticated(), "signing_keys truncated");
    w.batch("TRUNCATE tenancy.role_permissions");
    app.expect(
        &Has(a, Some(sam), "orders:write"),
        &no(),
        "role_permissions truncated",
    );
    w.batch("TRUNCATE tenancy.memberships");
    app.expect(&Enter(a, Some(sam)), &forbidden(), "memberships truncated");
}

/// Attack: changes made with `session_replication_role = replica` (logical replication's
/// apply, pg_restore --disable-triggers, some migration tools), which skips ordinary triggers,
/// and bulk loads with COPY.
#[test]
fn changes_in_replica_mode_and_by_copy_are_seen() {
    let w = world("cachereplica");
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    let sam = w.member(a, "sam@a.example", "staff");
    let (tok_id, token) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let mut app = w.app();
    let mut cli = w.client();
    warm_both(
        &mut app,
        &[
            (Has(a, Some(ada), "orders:write"), yes()),
            (Has(a, Some(sam), "billing:read"), no()),
            (Has(a, Some(w.t.owner_a), "reports:export"), bad_argument()),
            (Enter(a, None), yes()),
        ],
        &mut cli,
        &[(Auth(token.clone()), yes())],
    );

    let mut replica = w.admin();
    replica
        .batch_execute("SET session_replication_role = replica")
        .unwrap();
    replica
        .execute(
            "UPDATE tenancy.memberships SET role = 'viewer' WHERE tenant_id = $1 AND user_id = $2",
            &[&a, &ada],
        )
        .unwrap();
    app.expect(
        &Has(a, Some(ada), "orders:write"),
        &no(),
        "role lowered in replica mode",
    );
    replica
        .execute(
            "UPDATE tenancy.api_tokens SET revoked_at = clock_timestamp() WHERE id = $1",
            &[&tok_id],
        )
        .unwrap();
    cli.expect(
        &Auth(token),
        &unauthenticated(),
        "token revoked in replica mode",
    );
    let mut copy = replica
        .copy_in("COPY tenancy.role_permissions (role, permission) FROM STDIN")
        .unwrap();
    copy.write_all(b"staff\tbilling:read\n").unwrap();
    copy.finish().unwrap();
    app.expect(
        &Has(a, Some(sam), "billing:read"),
        &yes(),
        "grant loaded by COPY in replica mode",
    );
    replica
        .batch_execute("RESET session_replication_role")
        .unwrap();

    let mut copy = replica
        .copy_in("COPY tenancy.permissions (name) FROM STDIN")
        .unwrap();
    copy.write_all(b"reports:export\n").unwrap();
    copy.finish().unwrap();
    app.expect(
        &Has(a, Some(w.t.owner_a), "reports:export"),
        &yes(),
        "permission loaded by COPY",
    );

    replica
        .batch_execute("SET session_replication_role = replica")
        .unwrap();
    replica
        .execute(
            "UPDATE tenancy.tenants SET status = 'suspended' WHERE id = $1",
            &[&a],
        )
        .unwrap();
    app.expect(
        &Enter(a, None),
        &unauthenticated(),
        "tenant suspended in replica mode",
    );
}

/// Attack (on availability, and on cache keys): a refusal must not be remembered. An unknown
/// tenant, a non-member, an unknown kid, an unknown API token id and an unknown permission are
/// asked about repeatedly (as an attacker probing would), then created by the superuser with
/// exactly those keys: the next transaction must see them.
#[test]
fn refusals_are_not_remembered() {
    let w = world("cachenegative");
    let a = w.t.a;
    let owner = w.t.owner_a;
    let later_tenant = Uuid::new_v4();
    let nia = w.user("nia@a.example");
    let kid = format!("later{}", &Uuid::new_v4().simple().to_string()[..8]);
    let key_raw = random32();
    let later_key = Key {
        kid: kid.clone(),
        hmac: URL_SAFE_NO_PAD.encode(&key_raw).into_bytes(),
    };
    let jwt_later = w.jwt_with(&later_key, a, None);
    let token_id = Uuid::new_v4();
    let token = format!(
        "tnc_{}",
        URL_SAFE_NO_PAD.encode([token_id.as_bytes().as_slice(), random32().as_slice()].concat())
    );
    let token_hash = sha2::Sha256::digest(token.as_bytes()).to_vec();
    let mut app = w.app();
    let mut cli = w.client();
    let app_cases = vec![
        (Enter(later_tenant, None), unauthenticated()),
        (Enter(a, Some(nia)), forbidden()),
        (Has(a, Some(owner), "reports:export"), bad_argument()),
    ];
    let cli_cases = vec![
        (Auth(jwt_later.clone()), unauthenticated()),
        (Auth(token.clone()), unauthenticated()),
    ];
    warm_both(&mut app, &app_cases, &mut cli, &cli_cases);

    w.exec(
        "INSERT INTO tenancy.tenants (id, name, slug) VALUES ($1, 'Later', 'later')",
        &[&later_tenant],
    );
    w.exec(
        "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')",
        &[&a, &nia],
    );
    w.exec(
        "INSERT INTO tenancy.signing_keys (kid, secret) VALUES ($1, $2)",
        &[&kid, &key_raw],
    );
    w.exec(
        "INSERT INTO tenancy.api_tokens (id, tenant_id, name, scopes, created_by, token_hash)
         VALUES ($1, $2, 'made by the DBA', ARRAY['orders:read'], $3, $4)",
        &[&token_id, &a, &owner, &token_hash],
    );
    w.exec(
        "INSERT INTO tenancy.permissions (name) VALUES ('reports:export')",
        &[],
    );
    app.expect_all(&expecting(&app_cases, yes()), "created after refusals");
    cli.expect_all(&expecting(&cli_cases, yes()), "created after refusals");
}

// ---------------------------------------------------------------------------------------------
// The invalidation triggers
// ---------------------------------------------------------------------------------------------

/// The states (tgenabled) of the user triggers of a table of pg_tenancy.
fn trigger_states(admin: &mut Client, table: &str) -> Vec<(String, String)> {
    admin
        .query(
            "SELECT t.tgname::text, t.tgenabled::text FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = ('tenancy.' || $1)::regclass AND NOT t.tgisinternal
              ORDER BY 1",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Puts the user triggers of a table back into the states recorded.
fn restore_triggers(admin: &mut Client, table: &str, states: &[(String, String)]) {
    for (name, state) in states {
        let action = match state.as_str() {
            "A" => "ENABLE ALWAYS",
            "R" => "ENABLE REPLICA",
            "O" => "ENABLE",
            _ => "DISABLE",
        };
        admin
            .batch_execute(&format!(
                "ALTER TABLE tenancy.{table} {action} TRIGGER \"{}\"",
                name.replace('"', "\"\"")
            ))
            .unwrap();
    }
    assert_eq!(&trigger_states(admin, table), states);
}

/// Guards the caches' kill switch: when a superuser disables (or drops) the invalidation
/// triggers, or leaves them enabled for origin sessions only while a replica-mode session
/// writes, nothing tells the backends about changes any more, so they must stop caching; a
/// warm connection must still see a change made then.
#[test]
fn disabled_invalidation_triggers_turn_the_caches_off() {
    let w = world("cachetriggers");
    let mut admin = w.admin();
    let rows = admin
        .query(
            "SELECT c.relname::text, t.tgenabled::text, t.tgtype::int4, t.tgfoid::regprocedure::text
               FROM pg_catalog.pg_trigger t
               JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'tenancy' AND t.tgname = 'tenancy_cache_invalidate'
              ORDER BY 1",
            &[],
        )
        .unwrap();
    assert!(
        !rows.is_empty(),
        "no trigger tenancy_cache_invalidate on pg_tenancy's tables: the caches cannot be invalidated"
    );
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        tables, CACHED_TABLES,
        "tenancy_cache_invalidate must be on each of the eight tables"
    );
    for r in &rows {
        let (table, enabled, tgtype, function): (String, String, i32, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(function, "tenancy.cache_invalidate()", "{table}");
        assert_eq!(tgtype & 1, 0, "{table}: must be a statement-level trigger");
        assert_eq!(
            tgtype & (4 | 8 | 16),
            4 | 8 | 16,
            "{table}: must fire on INSERT, DELETE and UPDATE"
        );
        assert_eq!(enabled, "A", "{table}: must be ENABLE ALWAYS");
    }

    let (a, b) = (w.t.a, w.t.b);
    let ada = w.member(a, "ada@a.example", "admin");
    let sam = w.member(a, "sam@a.example", "staff");
    let root = w.user("root@platform.example");
    w.batch(&platform_admin_sql(root, true));
    w.batch("INSERT INTO tenancy.permissions (name) VALUES ('reports:export')");
    let (tok_id, token) = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let jwt = w.jwt(a, None);
    let kid = w.key.kid.clone();

    // One change per table (`what` is the table); each probe passes before its change.
    let change = |what, probe, change: String, revert: String, after| Change {
        what,
        probe,
        change,
        revert,
        after,
    };
    let cases = vec![
        change(
            "tenants",
            Enter(a, None),
            tenant_status_sql(a, "suspended"),
            tenant_status_sql(a, "active"),
            unauthenticated(),
        ),
        change(
            "users",
            Enter(b, Some(root)),
            platform_admin_sql(root, false),
            platform_admin_sql(root, true),
            forbidden(),
        ),
        change(
            "memberships",
            Has(a, Some(ada), "orders:write"),
            set_role_sql(a, ada, "viewer"),
            set_role_sql(a, ada, "admin"),
            no(),
        ),
        change(
            "roles",
            HasRole(a, Some(sam), "viewer"),
            "UPDATE tenancy.roles SET rank = 10 WHERE name = 'staff'".to_string(),
            "UPDATE tenancy.roles SET rank = 40 WHERE name = 'staff'".to_string(),
            no(),
        ),
        change(
            "role_permissions",
            Has(a, Some(sam), "orders:write"),
            DELETE_STAFF_ORDERS.to_string(),
            "INSERT INTO tenancy.role_permissions (role, permission) VALUES ('staff', 'orders:*')"
                .to_string(),
            no(),
        ),
        change(
            "permissions",
            Has(a, Some(w.t.owner_a), "reports:export"),
            "DELETE FROM tenancy.permissions WHERE name = 'reports:export'".to_string(),
            "INSERT INTO tenancy.permissions (name) VALUES ('reports:export')".to_string(),
            bad_argument(),
        ),
        change(
            "api_tokens",
            Auth(token),
            token_revoked_sql(tok_id, true),
            token_revoked_sql(tok_id, false),
            unauthenticated(),
        ),
        change(
            "signing_keys",
            Auth(jwt),
            key_retired_sql(&kid, true),
            key_retired_sql(&kid, false),
            unauthenticated(),
        ),
    ];
    let mut app = w.app();
    let mut cli = w.client();
    for c in &cases {
        let (table, probe, after) = (c.what, &c.probe, &c.after);
        let (change, revert) = (c.change.as_str(), c.revert.as_str());
        let conn = match probe {
            Auth(..) => &mut cli,
            _ => &mut app,
        };
        conn.warm(probe, &yes());
        let states = trigger_states(&mut admin, table);

        // Disabled: the caches must not be used.
        admin
            .batch_execute(&format!("ALTER TABLE tenancy.{table} DISABLE TRIGGER USER"))
            .unwrap();
        assert!(
            trigger_states(&mut admin, table)
                .iter()
                .any(|(n, s)| n == "tenancy_cache_invalidate" && s == "D"),
            "{table}: the trigger is disabled"
        );
        conn.warm(probe, &yes());
        w.batch(change);
        conn.expect(
            probe,
            after,
            &format!("{table}: changed while its triggers are disabled"),
        );
        conn.expect(
            probe,
            after,
            &format!("{table}: changed while its triggers are disabled (again)"),
        );
        w.batch(revert);
        conn.expect(
            probe,
            &yes(),
            &format!("{table}: reverted while its triggers are disabled"),
        );

        // Enabled again, as they were: the ordinary path.
        restore_triggers(&mut admin, table, &states);
        conn.warm(probe, &yes());
        w.batch(change);
        conn.expect(probe, after, &format!("{table}: triggers enabled again"));
        w.batch(revert);
        conn.expect(
            probe,
            &yes(),
            &format!("{table}: reverted, triggers enabled"),
        );
    }

    // Enabled for origin sessions only (ENABLE TRIGGER, not ALWAYS): a replica-mode session
    // writes without firing it.
    let probe = Has(a, Some(ada), "orders:write");
    let in_replica_mode = |sql: String| {
        format!("SET session_replication_role = replica; {sql}; RESET session_replication_role;")
    };
    let lower = in_replica_mode(set_role_sql(a, ada, "viewer"));
    let raise = in_replica_mode(set_role_sql(a, ada, "admin"));
    let states = trigger_states(&mut admin, "memberships");
    admin
        .batch_execute("ALTER TABLE tenancy.memberships ENABLE TRIGGER tenancy_cache_invalidate")
        .unwrap();
    app.warm(&probe, &yes());
    w.batch(&lower);
    app.expect(
        &probe,
        &no(),
        "memberships: replica-mode change, trigger enabled for origin only",
    );
    w.batch(&raise);
    app.expect(&probe, &yes(), "memberships: replica-mode revert");
    restore_triggers(&mut admin, "memberships", &states);

    // Dropped: the same.
    let definition: String = admin
        .query_one(
            "SELECT pg_catalog.pg_get_triggerdef(t.oid) FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = 'tenancy.memberships'::regclass
                AND t.tgname = 'tenancy_cache_invalidate'",
            &[],
        )
        .unwrap()
        .get(0);
    admin
        .batch_execute("DROP TRIGGER tenancy_cache_invalidate ON tenancy.memberships")
        .unwrap();
    app.warm(&probe, &yes());
    w.batch(&set_role_sql(a, ada, "viewer"));
    app.expect(
        &probe,
        &no(),
        "memberships: changed while the trigger is dropped",
    );
    w.batch(&set_role_sql(a, ada, "admin"));
    app.expect(
        &probe,
        &yes(),
        "memberships: reverted while the trigger is dropped",
    );
    admin.batch_execute(&definition).unwrap();
    restore_triggers(&mut admin, "memberships", &states);

    // Everything back: the ordinary path still works.
    app.warm(&probe, &yes());
    w.batch(&set_role_sql(a, ada, "viewer"));
    app.expect(&probe, &no(), "memberships: trigger recreated");
}

/// Attack: a procedure's own expressions (plpgsql evaluates `IF tenancy.has_permission(...)`
/// without the executor) must not act on a role that was lowered before the CALL started,
/// within the same open transaction: a CALL (like a DO block) is a statement of its own.
#[test]
fn a_call_sees_a_role_lowered_before_it_started() {
    let w = world("cachecall");
    let a = w.t.a;
    let ada = w.member(a, "ada@a.example", "admin");
    w.exec(
        "CREATE PROCEDURE public.may_write(INOUT ok boolean) LANGUAGE plpgsql AS $p$
         BEGIN
             ok := tenancy.has_permission('orders:write');
         END $p$",
        &[],
    );
    let mut app = w.app();
    let mut tx = app.c.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&a, &ada])
        .unwrap();
    let call = |tx: &mut Transaction<'_>| -> bool {
        tx.query_one("CALL public.may_write(NULL)", &[])
            .unwrap()
            .get(0)
    };
    assert!(call(&mut tx), "an admin may write");
    assert!(call(&mut tx), "still, from the caches");
    w.exec(&set_role_sql(a, ada, "viewer"), &[]);
    assert!(!call(&mut tx), "the CALL after the demotion must see it");
    let direct: bool = tx
        .query_one("SELECT tenancy.has_permission('orders:write')", &[])
        .unwrap()
        .get(0);
    assert!(!direct);
    tx.rollback().unwrap();
}
