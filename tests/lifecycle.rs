#![cfg(feature = "client-tests")]
//! The tenant lifecycle through real connections, as login roles in `tenancy_app` and
//! `tenancy_client`: the tenants of a user, suspension and resumption on warm connections,
//! handing ownership over (also concurrently), deleting a tenant spread over tables with foreign
//! keys between them, deleting it in batches, and exporting it. The superuser only sets up and
//! counts rows afterwards (it sees every tenant's rows).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Transaction};
use serde_json::json;
use uuid::Uuid;

const NO_CONTEXT: SqlState = SqlState::INVALID_AUTHORIZATION_SPECIFICATION;
const DENIED: SqlState = SqlState::INSUFFICIENT_PRIVILEGE;
const BAD_ARGUMENT: SqlState = SqlState::INVALID_PARAMETER_VALUE;

/// A database, a trusted backend's login role (`app`), an untrusted client's (`cli`), the two
/// tenants of `common`, a platform admin, and a signing key for JWTs.
struct World {
    db: TestDb,
    app: String,
    cli: String,
    t: Tenants,
    root: Uuid,
    kid: String,
    secret: Vec<u8>,
}

fn world(label: &str) -> World {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let cli = db.login_role("cli", "tenancy_client");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    let root: Uuid = admin
        .query_one("SELECT tenancy.create_user('root@platform.example')", &[])
        .unwrap()
        .get(0);
    admin
        .execute(
            "UPDATE tenancy.users SET platform_admin = true WHERE id = $1",
            &[&root],
        )
        .unwrap();
    let key = admin
        .query_one("SELECT kid, secret FROM tenancy.create_signing_key()", &[])
        .unwrap();
    World {
        app,
        cli,
        t,
        root,
        kid: key.get(0),
        secret: key.get::<_, String>(1).into_bytes(),
        db,
    }
}

impl World {
    fn admin(&self) -> Client {
        self.db.admin()
    }

    fn app(&self) -> Client {
        self.db.connect(&self.app)
    }

    fn client(&self) -> Client {
        self.db.connect(&self.cli)
    }

    /// A tenant owned by `owner`, created as the superuser.
    fn tenant(&self, name: &str, owner: Uuid) -> Uuid {
        self.admin()
            .query_one("SELECT tenancy.create_tenant($1, $2)", &[&name, &owner])
            .unwrap()
            .get(0)
    }

    fn user(&self, email: &str) -> Uuid {
        self.admin()
            .query_one("SELECT tenancy.create_user($1)", &[&email])
            .unwrap()
            .get(0)
    }

    fn join(&self, tenant: Uuid, user: Uuid, role: &str) {
        self.admin()
            .execute(
                "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)",
                &[&tenant, &user, &role],
            )
            .unwrap();
    }

    fn slug(&self, tenant: Uuid) -> String {
        self.admin()
            .query_one("SELECT slug FROM tenancy.tenants WHERE id = $1", &[&tenant])
            .unwrap()
            .get(0)
    }

    /// An HS256 JWT for `tenant` and `sub`, valid for an hour, as a JWT library makes it.
    fn jwt(&self, tenant: Uuid, sub: Option<Uuid>) -> String {
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
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.secret),
        )
        .unwrap()
    }

    /// An API token that `creator` makes in `tenant` (through the app role).
    fn api_token(&self, tenant: Uuid, creator: Uuid, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let mut c = self.app();
        let mut tx = begin_as(&mut c, tenant, Some(creator));
        let token: String = tx
            .query_one(
                "SELECT token FROM tenancy.create_api_token('lifecycle', $1)",
                &[&scopes],
            )
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        token
    }

    /// An invitation to `tenant`, made by its owner through the app role.
    fn invitation(&self, tenant: Uuid, owner: Uuid, email: &str) -> String {
        let mut c = self.app();
        let mut tx = begin_as(&mut c, tenant, Some(owner));
        let token: String = tx
            .query_one("SELECT token FROM tenancy.invite($1, 'viewer')", &[&email])
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        token
    }
}

/// Runs `f` in a transaction of `c` whose context is (`tenant`, `user`), and commits it when
/// it succeeds. Entering the tenant may fail too (a suspended or deleted tenant).
fn as_user<T>(
    c: &mut Client,
    tenant: Uuid,
    user: Option<Uuid>,
    f: impl FnOnce(&mut Transaction) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &user])?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// Runs `f` in a transaction of `c` that a token authenticated, and commits it when it
/// succeeds.
fn with_token<T>(
    c: &mut Client,
    token: &str,
    f: impl FnOnce(&mut Transaction) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT tenancy.authenticate($1)", &[&token])?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// `user_tenants()` as (tenant, role, status), sorted.
fn tenants_of<C: postgres::GenericClient>(
    c: &mut C,
    user: Option<Uuid>,
) -> Result<Vec<(Uuid, String, String)>, postgres::Error> {
    let mut rows: Vec<(Uuid, String, String)> = c
        .query(
            "SELECT tenant_id, role, status FROM tenancy.user_tenants($1)",
            &[&user],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    rows.sort();
    Ok(rows)
}

fn sorted(mut v: Vec<(Uuid, String, String)>) -> Vec<(Uuid, String, String)> {
    v.sort();
    v
}

/// Polls until `sql` (one bigint) reaches at least `want`, for up to 10 seconds (the durable
/// log is written by a background worker).
fn wait_for_count(admin: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)], want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = admin.query_one(sql, params).unwrap().get(0);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// user_tenants()
// ---------------------------------------------------------------------------------------------

/// The workspace switcher: a user in three tenants sees exactly those three, with the role of
/// each, and the suspended one marked; a trusted backend asks for any user without a context;
/// a client context lists its own user only.
#[test]
fn a_user_sees_exactly_their_tenants_with_their_roles() {
    let w = world("lifeusers");
    let ana = w.user("ana@example.com");
    let bob = w.user("bob@example.com");
    let c = w.tenant("Store C", w.t.owner_a);
    // Ana: owner of her own tenant, manager in A, viewer in C; Bob: staff in C only.
    let own = w.tenant("Ana's", ana);
    w.join(w.t.a, ana, "manager");
    w.join(c, ana, "viewer");
    w.join(c, bob, "staff");
    w.admin()
        .execute(
            "UPDATE tenancy.tenants SET status = 'suspended' WHERE id = $1",
            &[&c],
        )
        .unwrap();
    let ana_expected = sorted(vec![
        (own, "owner".into(), "active".into()),
        (w.t.a, "manager".into(), "active".into()),
        (c, "viewer".into(), "suspended".into()),
    ]);

    // tenancy_app: any user, without a context.
    let mut app = w.app();
    assert_eq!(tenants_of(&mut app, Some(ana)).unwrap(), ana_expected);
    assert_eq!(
        tenants_of(&mut app, Some(bob)).unwrap(),
        vec![(c, "staff".into(), "suspended".into())]
    );
    assert_eq!(
        tenants_of(&mut app, Some(w.t.owner_b)).unwrap(),
        vec![(w.t.b, "owner".into(), "active".into())]
    );
    // With a user context, NULL means the context's user; another user may still be named.
    let mine = as_user(&mut app, w.t.a, Some(ana), |tx| {
        Ok((tenants_of(tx, None)?, tenants_of(tx, Some(bob))?))
    })
    .unwrap();
    assert_eq!(mine.0, ana_expected);
    assert_eq!(mine.1.len(), 1);
    assert_sqlstate(tenants_of(&mut app, None), &BAD_ARGUMENT);
    assert_sqlstate(tenants_of(&mut app, Some(Uuid::new_v4())), &BAD_ARGUMENT);

    // tenancy_client: its own user (a JWT's sub), only.
    let mut cli = w.client();
    assert_sqlstate(tenants_of(&mut cli, None), &NO_CONTEXT);
    assert_sqlstate(tenants_of(&mut cli, Some(ana)), &NO_CONTEXT);
    let jwt = w.jwt(w.t.a, Some(ana));
    let own_list = with_token(&mut cli, &jwt, |tx| tenants_of(tx, None)).unwrap();
    assert_eq!(own_list, ana_expected);
    let named = with_token(&mut cli, &jwt, |tx| tenants_of(tx, Some(ana))).unwrap();
    assert_eq!(named, ana_expected);
    assert_sqlstate(
        with_token(&mut cli, &jwt, |tx| tenants_of(tx, Some(bob))),
        &DENIED,
    );
    assert_sqlstate(
        with_token(&mut cli, &jwt, |tx| tenants_of(tx, Some(w.t.owner_a))),
        &DENIED,
    );
    assert_sqlstate(
        cli.query("SELECT * FROM tenancy.user_tenants_any($1)", &[&bob]),
        &DENIED,
    );
    // A JWT without sub, and an API token, act for a tenant, not for a user.
    let tenant_jwt = w.jwt(w.t.a, None);
    assert_sqlstate(
        with_token(&mut cli, &tenant_jwt, |tx| tenants_of(tx, None)),
        &DENIED,
    );
    let token = w.api_token(w.t.a, w.t.owner_a, &["orders:read"]);
    assert_sqlstate(
        with_token(&mut cli, &token, |tx| tenants_of(tx, None)),
        &DENIED,
    );

    // Every call is logged, allowed or denied.
    let mut admin = w.admin();
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log WHERE action = 'user_tenants' AND outcome = 'deny'",
        &[],
        8,
    );
    assert!(n >= 8, "denied user_tenants() calls logged: {n}");
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log WHERE action = 'user_tenants' AND outcome = 'allow'",
        &[],
        7,
    );
    assert!(n >= 7, "allowed user_tenants() calls logged: {n}");
}

// ---------------------------------------------------------------------------------------------
// suspend_tenant() / resume_tenant()
// ---------------------------------------------------------------------------------------------

/// A platform admin suspends a tenant: every connection that had already let it in (warm
/// caches) refuses it at its next statement: set_tenant(), API tokens, JWTs and invitations;
/// resuming admits it again. Nobody else may suspend.
#[test]
fn suspension_is_refused_at_the_next_statement_and_resumption_admits_again() {
    let w = world("lifesuspend");
    let (a, b) = (w.t.a, w.t.b);
    let staff = w.user("staff@a.example");
    w.join(a, staff, "staff");
    let token = w.api_token(a, w.t.owner_a, &["orders:read"]);
    let jwt = w.jwt(a, Some(staff));
    let jwt_b = w.jwt(b, Some(w.t.owner_b));
    let invitation = w.invitation(a, w.t.owner_a, "new@a.example");

    let enter = |c: &mut Client, tenant: Uuid, user: Option<Uuid>| -> Result<(), postgres::Error> {
        as_user(c, tenant, user, |tx| {
            tx.query_one("SELECT tenancy.current_tenant()", &[])?;
            Ok(())
        })
    };
    let auth = |c: &mut Client, token: &str| -> Result<(), postgres::Error> {
        with_token(c, token, |tx| {
            tx.query_one("SELECT tenancy.current_tenant()", &[])?;
            Ok(())
        })
    };

    // Warm connections: each has let tenant A in several times.
    let mut warm_app = w.app();
    let mut warm_cli = w.client();
    let mut late = w.app();
    for _ in 0..3 {
        enter(&mut late, a, Some(staff)).unwrap();
        enter(&mut warm_app, a, Some(staff)).unwrap();
        enter(&mut warm_app, a, None).unwrap();
        auth(&mut warm_cli, &token).unwrap();
        auth(&mut warm_cli, &jwt).unwrap();
    }
    // A transaction under way on a warm connection, before the suspension.
    let mut open = late.transaction().unwrap();
    open.query_one("SELECT 1", &[]).unwrap();

    // Who may not suspend: without a context, the owner (in A, or in B), an owner's API token,
    // and nobody may call the function that does the work.
    let mut admin_conn = w.app();
    let suspend = "SELECT tenancy.suspend_tenant($1, 'unpaid invoice')";
    assert_sqlstate(admin_conn.execute(suspend, &[&a]), &NO_CONTEXT);
    assert_sqlstate(
        as_user(&mut admin_conn, a, Some(w.t.owner_a), |tx| {
            tx.execute(suspend, &[&a])
        }),
        &DENIED,
    );
    assert_sqlstate(
        as_user(&mut admin_conn, b, Some(w.t.owner_b), |tx| {
            tx.execute(suspend, &[&a])
        }),
        &DENIED,
    );
    let owner_token = w.api_token(a, w.t.owner_a, &["tenant:delete"]);
    let mut cli = w.client();
    assert_sqlstate(
        with_token(&mut cli, &owner_token, |tx| tx.execute(suspend, &[&a])),
        &DENIED,
    );
    assert_sqlstate(
        cli.execute(
            "SELECT tenancy.tenant_status_write($1, 'suspended', 'x', 'x')",
            &[&a],
        ),
        &DENIED,
    );
    enter(&mut warm_app, a, None).unwrap();

    // A platform admin (a JWT whose sub is one, through the client role) suspends A.
    let root_jwt = w.jwt(b, Some(w.root));
    with_token(&mut cli, &root_jwt, |tx| tx.execute(suspend, &[&a])).unwrap();

    // The open transaction's next statement refuses the tenant, as do the warm connections'.
    assert_sqlstate(
        open.execute("SELECT tenancy.set_tenant($1)", &[&a]),
        &NO_CONTEXT,
    );
    open.rollback().unwrap();
    for _ in 0..2 {
        assert_sqlstate(enter(&mut warm_app, a, Some(staff)), &NO_CONTEXT);
        assert_sqlstate(enter(&mut warm_app, a, None), &NO_CONTEXT);
        assert_sqlstate(auth(&mut warm_cli, &token), &NO_CONTEXT);
        assert_sqlstate(auth(&mut warm_cli, &jwt), &NO_CONTEXT);
        // Tenant B goes on.
        enter(&mut warm_app, b, Some(w.t.owner_b)).unwrap();
        auth(&mut warm_cli, &jwt_b).unwrap();
    }
    assert_sqlstate(
        warm_cli.query(
            "SELECT * FROM tenancy.accept_invitation($1)",
            &[&invitation],
        ),
        &NO_CONTEXT,
    );

    // Resumed by a platform admin through set_tenant() in another tenant: admitted again.
    let mut ops = w.app();
    as_user(&mut ops, b, Some(w.root), |tx| {
        tx.execute("SELECT tenancy.resume_tenant($1)", &[&a])
    })
    .unwrap();
    enter(&mut warm_app, a, Some(staff)).unwrap();
    auth(&mut warm_cli, &token).unwrap();
    auth(&mut warm_cli, &jwt).unwrap();
    warm_cli
        .query(
            "SELECT * FROM tenancy.accept_invitation($1)",
            &[&invitation],
        )
        .unwrap();

    // Recorded: who, when, why; and logged.
    let mut admin = w.admin();
    let history: Vec<(String, Option<String>, Option<Uuid>)> = admin
        .query(
            "SELECT status, reason, user_id FROM tenancy.tenant_status_history
              WHERE tenant_id = $1 ORDER BY at",
            &[&a],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        history,
        vec![
            (
                "suspended".into(),
                Some("unpaid invoice".into()),
                Some(w.root)
            ),
            ("active".into(), None, Some(w.root)),
        ]
    );
    for action in ["suspend_tenant", "resume_tenant"] {
        let n = wait_for_count(
            &mut admin,
            "SELECT count(*) FROM tenancy.auth_log
              WHERE action = $1 AND outcome = 'allow' AND tenant_id = $2 AND user_id = $3",
            &[&action, &a, &w.root],
            1,
        );
        assert_eq!(n, 1, "{action} logged");
    }
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log WHERE action = 'suspend_tenant' AND outcome = 'deny'",
        &[],
        4,
    );
    assert!(n >= 4, "refused suspensions logged: {n}");
}

// ---------------------------------------------------------------------------------------------
// transfer_ownership()
// ---------------------------------------------------------------------------------------------

fn roles_of(admin: &mut Client, tenant: Uuid) -> BTreeMap<Uuid, String> {
    admin
        .query(
            "SELECT user_id, role FROM tenancy.memberships WHERE tenant_id = $1",
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The owner hands the tenant to a member and becomes admin, in one step; nobody else can,
/// and not to a non-member.
#[test]
fn the_owner_hands_over_and_becomes_admin() {
    let w = world("lifetransfer");
    let a = w.t.a;
    let owner = w.t.owner_a;
    let ada = w.user("ada@a.example");
    let sam = w.user("sam@a.example");
    w.join(a, ada, "admin");
    w.join(a, sam, "staff");
    let outsider = w.t.owner_b;
    let transfer = "SELECT tenancy.transfer_ownership($1)";
    let mut app = w.app();

    assert_sqlstate(app.execute(transfer, &[&sam]), &NO_CONTEXT);
    assert_sqlstate(
        as_user(&mut app, a, Some(ada), |tx| tx.execute(transfer, &[&ada])),
        &DENIED,
    );
    assert_sqlstate(
        as_user(&mut app, a, Some(w.root), |tx| {
            tx.execute(transfer, &[&sam])
        }),
        &DENIED,
    );
    assert_sqlstate(
        as_user(&mut app, a, None, |tx| tx.execute(transfer, &[&sam])),
        &DENIED,
    );
    // An owner's API token or scoped JWT does not hand the tenant over either.
    let token = w.api_token(a, owner, &["members:write"]);
    let mut cli = w.client();
    assert_sqlstate(
        with_token(&mut cli, &token, |tx| tx.execute(transfer, &[&sam])),
        &DENIED,
    );
    let none: Option<Uuid> = None;
    for (target, code) in [
        (Some(outsider), &BAD_ARGUMENT),
        (Some(owner), &BAD_ARGUMENT),
        (none, &BAD_ARGUMENT),
    ] {
        assert_sqlstate(
            as_user(&mut app, a, Some(owner), |tx| {
                tx.execute(transfer, &[&target])
            }),
            code,
        );
    }
    assert_eq!(roles_of(&mut w.admin(), a)[&owner], "owner");

    // The owner, through a JWT as a client, hands A to Sam (staff).
    let jwt = w.jwt(a, Some(owner));
    with_token(&mut cli, &jwt, |tx| tx.execute(transfer, &[&sam])).unwrap();
    let roles = roles_of(&mut w.admin(), a);
    assert_eq!(roles[&sam], "owner");
    assert_eq!(roles[&owner], "admin");
    assert_eq!(roles[&ada], "admin");
    // The former owner has nothing left to hand over; the new one can.
    assert_sqlstate(
        as_user(&mut app, a, Some(owner), |tx| tx.execute(transfer, &[&ada])),
        &DENIED,
    );
    as_user(&mut app, a, Some(sam), |tx| tx.execute(transfer, &[&owner])).unwrap();
    let roles = roles_of(&mut w.admin(), a);
    assert_eq!(roles[&owner], "owner");
    assert_eq!(roles[&sam], "admin");
    let mut admin = w.admin();
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log
          WHERE action = 'transfer_ownership' AND outcome = 'allow' AND tenant_id = $1",
        &[&a],
        2,
    );
    assert_eq!(n, 2);
}

/// Waits until the backend running `needle` waits for a lock (it is blocked behind the other
/// transfer), for up to 30 seconds.
fn wait_until_blocked(admin: &mut Client, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let blocked: bool = admin
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity
                                 WHERE wait_event_type = 'Lock' AND query LIKE $1)",
                &[&format!("%{needle}%")],
            )
            .unwrap()
            .get(0);
        if blocked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the second transfer never waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs two transfers concurrently: the first holds its transaction open until the second is
/// blocked behind it, then commits. Returns the second's outcome.
fn race(
    w: &World,
    tenant: Uuid,
    first: (Uuid, Uuid),
    second: (Uuid, Uuid),
) -> Result<u64, postgres::Error> {
    let mut c1 = w.app();
    let mut tx1 = begin_as(&mut c1, tenant, Some(first.0));
    tx1.execute("SELECT tenancy.transfer_ownership($1)", &[&first.1])
        .unwrap();
    let db_name = w.db.name.clone();
    let role = w.app.clone();
    let port = port();
    let handle = std::thread::spawn(move || {
        let mut c2 = Client::connect(
            &format!("host=127.0.0.1 port={port} user={role} password={role} dbname={db_name}"),
            postgres::NoTls,
        )
        .unwrap();
        let mut tx2 = begin_as(&mut c2, tenant, Some(second.0));
        let out = tx2.execute(
            "SELECT tenancy.transfer_ownership($1) /* second transfer */",
            &[&second.1],
        );
        if out.is_ok() {
            tx2.commit().unwrap();
        }
        out
    });
    wait_until_blocked(&mut w.admin(), "second transfer");
    tx1.commit().unwrap();
    handle.join().unwrap()
}

/// The last-owner rule under concurrency: two owners handing the tenant to each other at the
/// same moment, and one owner handing it to two members from two connections, never leave it
/// without an owner (nor with both transfers applied).
#[test]
fn concurrent_transfers_never_leave_a_tenant_without_an_owner() {
    let w = world("liferace");
    let a = w.t.a;
    let o1 = w.t.owner_a;
    let o2 = w.user("second-owner@a.example");
    w.join(a, o2, "owner");

    // Each owner hands A to the other: applied one after the other, the second sees that its
    // caller is still an owner and the first one an admin now, so it promotes the first back.
    let second = race(&w, a, (o1, o2), (o2, o1));
    assert!(second.is_ok(), "second transfer: {second:?}");
    let roles = roles_of(&mut w.admin(), a);
    let owners: Vec<_> = roles.iter().filter(|(_, r)| *r == "owner").collect();
    assert_eq!(owners.len(), 1, "owners after the swap: {roles:?}");
    assert_eq!(roles[&o1], "owner");
    assert_eq!(roles[&o2], "admin");

    // One owner, two transfers from two connections: the first wins, the second finds its
    // caller no longer owner.
    let b = w.t.b;
    let ob = w.t.owner_b;
    let m1 = w.user("m1@b.example");
    let m2 = w.user("m2@b.example");
    w.join(b, m1, "staff");
    w.join(b, m2, "staff");
    assert_sqlstate(race(&w, b, (ob, m1), (ob, m2)), &DENIED);
    let roles = roles_of(&mut w.admin(), b);
    assert_eq!(roles[&m1], "owner");
    assert_eq!(roles[&ob], "admin");
    assert_eq!(roles[&m2], "staff");
    assert_eq!(roles.values().filter(|r| *r == "owner").count(), 1);
}

// ---------------------------------------------------------------------------------------------
// delete_tenant(), purge_tenant(), export_tenant()
// ---------------------------------------------------------------------------------------------

/// The application's tables, in schema shop: composite foreign keys with CASCADE, NO ACTION,
/// SET NULL and RESTRICT (a tree), a partitioned table, and a table that nothing references.
const SHOP: &str = "
CREATE SCHEMA shop;
GRANT USAGE ON SCHEMA shop TO tenancy_client;
CREATE TABLE shop.customers (tenant_id uuid NOT NULL, id int NOT NULL, name text NOT NULL,
                             PRIMARY KEY (tenant_id, id));
CREATE TABLE shop.orders (tenant_id uuid NOT NULL, id int NOT NULL, customer_id int NOT NULL,
                          PRIMARY KEY (tenant_id, id),
                          FOREIGN KEY (tenant_id, customer_id) REFERENCES shop.customers (tenant_id, id)
                              ON DELETE CASCADE);
CREATE TABLE shop.order_lines (tenant_id uuid NOT NULL, order_id int NOT NULL, n int NOT NULL,
                               sku text NOT NULL,
                               PRIMARY KEY (tenant_id, order_id, n),
                               FOREIGN KEY (tenant_id, order_id) REFERENCES shop.orders (tenant_id, id));
CREATE TABLE shop.payments (tenant_id uuid NOT NULL, id int NOT NULL, order_id int, amount int NOT NULL,
                            PRIMARY KEY (tenant_id, id),
                            FOREIGN KEY (tenant_id, order_id) REFERENCES shop.orders (tenant_id, id)
                                ON DELETE SET NULL (order_id));
CREATE TABLE shop.categories (tenant_id uuid NOT NULL, id int NOT NULL, parent_id int,
                              PRIMARY KEY (tenant_id, id),
                              FOREIGN KEY (tenant_id, parent_id) REFERENCES shop.categories (tenant_id, id)
                                  ON DELETE RESTRICT);
CREATE TABLE shop.events (tenant_id uuid NOT NULL, at int NOT NULL, what text NOT NULL)
    PARTITION BY RANGE (at);
CREATE TABLE shop.events_old PARTITION OF shop.events FOR VALUES FROM (0) TO (100);
CREATE TABLE shop.events_new PARTITION OF shop.events FOR VALUES FROM (100) TO (10000);
CREATE TABLE shop.settings (tenant_id uuid NOT NULL, key text NOT NULL, value jsonb,
                            PRIMARY KEY (tenant_id, key));
SELECT tenancy.isolate(t) FROM unnest(ARRAY['shop.customers', 'shop.orders', 'shop.order_lines',
    'shop.payments', 'shop.categories', 'shop.events', 'shop.settings']::regclass[]) AS t;
";

const SHOP_TABLES: [&str; 7] = [
    "shop.categories",
    "shop.customers",
    "shop.events",
    "shop.order_lines",
    "shop.orders",
    "shop.payments",
    "shop.settings",
];

/// Rows for `tenant`, `scale` times more of each for a larger tenant.
fn fill(admin: &mut Client, tenant: Uuid, scale: i32) {
    admin
        .batch_execute(&format!(
            "INSERT INTO shop.customers SELECT '{tenant}', g, 'customer ' || g FROM generate_series(1, 3 * {scale}) g;
             INSERT INTO shop.orders SELECT '{tenant}', g, 1 + g % (3 * {scale}) FROM generate_series(1, 5 * {scale}) g;
             INSERT INTO shop.order_lines SELECT '{tenant}', o, n, 'sku-' || n FROM generate_series(1, 5 * {scale}) o, generate_series(1, 2) n;
             INSERT INTO shop.payments SELECT '{tenant}', g, g, 100 * g FROM generate_series(1, 4 * {scale}) g;
             INSERT INTO shop.categories VALUES ('{tenant}', 1, NULL);
             INSERT INTO shop.categories SELECT '{tenant}', g, g - 1 FROM generate_series(2, 4 * {scale}) g;
             INSERT INTO shop.events SELECT '{tenant}', g * 7, 'event' FROM generate_series(1, 30 * {scale}) g;
             INSERT INTO shop.settings VALUES ('{tenant}', 'theme', '\"dark\"'), ('{tenant}', 'locale', '\"fr\"');"
        ))
        .unwrap();
}

/// Rows per (table, tenant) as the superuser sees them, over the shop's tables and
/// pg_tenancy's own per-tenant tables.
fn census(admin: &mut Client) -> BTreeMap<(String, Uuid), i64> {
    let mut out = BTreeMap::new();
    let tables = SHOP_TABLES.iter().copied().chain([
        "tenancy.memberships",
        "tenancy.invitations",
        "tenancy.api_tokens",
    ]);
    for table in tables {
        for row in admin
            .query(
                &format!("SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id"),
                &[],
            )
            .unwrap()
        {
            out.insert((table.to_string(), row.get(0)), row.get(1));
        }
    }
    for row in admin
        .query("SELECT id, count(*) FROM tenancy.tenants GROUP BY id", &[])
        .unwrap()
    {
        out.insert(("tenancy.tenants".to_string(), row.get(0)), row.get(1));
    }
    out
}

fn of_tenant(census: &BTreeMap<(String, Uuid), i64>, tenant: Uuid) -> BTreeMap<String, i64> {
    census
        .iter()
        .filter(|((_, t), _)| *t == tenant)
        .map(|((table, _), n)| (table.clone(), *n))
        .collect()
}

fn without_tenant(
    census: &BTreeMap<(String, Uuid), i64>,
    tenant: Uuid,
) -> BTreeMap<(String, Uuid), i64> {
    census
        .iter()
        .filter(|((_, t), _)| *t != tenant)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

/// `delete_tenant()` (or `purge_tenant()`) as (table, rows), tables as text.
fn deleted<C: postgres::GenericClient>(
    c: &mut C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<BTreeMap<String, i64>, postgres::Error> {
    let mut out = BTreeMap::new();
    for row in c.query(sql, params)? {
        let table: String = row.get(0);
        let n: i64 = row.get(1);
        if n > 0 && (table.starts_with("shop.") || table.starts_with("tenancy.")) {
            *out.entry(table).or_insert(0) += n;
        }
    }
    Ok(out)
}

const DELETE: &str = "SELECT table_name::text, rows_deleted FROM tenancy.delete_tenant($1, $2)";

/// A tenant spread over tables with foreign keys between them is deleted by its owner: none of
/// its rows is left anywhere, every other tenant's rows are all there (counts before and
/// after), the id is never used again and the log keeps its rows. The wrong slug, and anyone
/// but its owner or a platform admin, are refused with nothing deleted.
#[test]
fn delete_tenant_removes_every_row_of_the_tenant_and_nothing_else() {
    let w = world("lifedelete");
    w.admin().batch_execute(SHOP).unwrap();
    let c = w.tenant("Store C", w.t.owner_b);
    let (a, b) = (w.t.a, w.t.b);
    let staff = w.user("staff@a.example");
    w.join(a, staff, "staff");
    w.join(b, staff, "admin");
    let mut admin = w.admin();
    fill(&mut admin, a, 2);
    fill(&mut admin, b, 1);
    fill(&mut admin, c, 3);
    w.api_token(a, w.t.owner_a, &["orders:read"]);
    w.invitation(a, w.t.owner_a, "later@a.example");
    w.api_token(b, w.t.owner_b, &["orders:read"]);
    let slug = w.slug(a);
    let before = census(&mut admin);
    assert!(of_tenant(&before, a).values().all(|n| *n > 0), "{before:?}");

    // Refused, with nothing deleted.
    let mut app = w.app();
    assert_sqlstate(deleted(&mut app, DELETE, &[&a, &slug]), &NO_CONTEXT);
    for (tenant, user) in [(a, staff), (b, staff), (b, w.t.owner_b)] {
        assert_sqlstate(
            as_user(&mut app, tenant, Some(user), |tx| {
                deleted(tx, DELETE, &[&a, &slug])
            }),
            &DENIED,
        );
    }
    for wrong in ["wrong", "STORE-A", "store-a "] {
        assert_ne!(wrong, slug);
        assert_sqlstate(
            as_user(&mut app, a, Some(w.t.owner_a), |tx| {
                deleted(tx, DELETE, &[&a, &wrong])
            }),
            &BAD_ARGUMENT,
        );
    }
    let none: Option<String> = None;
    assert_sqlstate(
        as_user(&mut app, a, Some(w.t.owner_a), |tx| {
            deleted(tx, DELETE, &[&a, &none])
        }),
        &BAD_ARGUMENT,
    );
    let mut cli = w.client();
    let staff_jwt = w.jwt(a, Some(staff));
    assert_sqlstate(
        with_token(&mut cli, &staff_jwt, |tx| deleted(tx, DELETE, &[&a, &slug])),
        &DENIED,
    );
    assert_sqlstate(
        cli.query(
            "SELECT * FROM tenancy.delete_tenant_write($1, $2, 'x')",
            &[&a, &slug],
        ),
        &DENIED,
    );
    assert_eq!(census(&mut admin), before, "a refused delete changed rows");

    // The owner deletes A, in A's context.
    let report = as_user(&mut app, a, Some(w.t.owner_a), |tx| {
        deleted(tx, DELETE, &[&a, &slug])
    })
    .unwrap();
    let after = census(&mut admin);
    assert_eq!(of_tenant(&after, a), BTreeMap::new(), "rows of A left");
    assert_eq!(without_tenant(&after, a), without_tenant(&before, a));
    // The report: every row of A, per table.
    assert_eq!(report, of_tenant(&before, a));

    // Its id is never used again; the log and the status history keep their rows.
    let tomb: i64 = admin
        .query_one(
            "SELECT count(*) FROM tenancy.deleted_tenants WHERE id = $1 AND slug = $2",
            &[&a, &slug],
        )
        .unwrap()
        .get(0);
    assert_eq!(tomb, 1);
    assert_sqlstate(
        admin.execute(
            "INSERT INTO tenancy.tenants (id, name, slug) VALUES ($1, 'Again', 'again')",
            &[&a],
        ),
        &BAD_ARGUMENT,
    );
    assert_sqlstate(as_user(&mut app, a, None, |_| Ok(())), &NO_CONTEXT);
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log
          WHERE tenant_id = $1 AND action = 'delete_tenant' AND outcome = 'allow'",
        &[&a],
        1,
    );
    assert_eq!(n, 1);
    let kept = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log WHERE tenant_id = $1 AND outcome = 'deny'",
        &[&a],
        1,
    );
    assert!(kept >= 1, "auth_log rows of the deleted tenant");
    assert!(tenants_of(&mut app, Some(w.t.owner_a)).unwrap().is_empty());

    // A platform admin deletes C from B's context (through a JWT); B is untouched.
    let root_jwt = w.jwt(b, Some(w.root));
    let slug_c = w.slug(c);
    let before_c = census(&mut admin);
    let report = with_token(&mut cli, &root_jwt, |tx| {
        deleted(tx, DELETE, &[&c, &slug_c])
    })
    .unwrap();
    let after = census(&mut admin);
    assert_eq!(report, of_tenant(&before_c, c));
    assert_eq!(of_tenant(&after, c), BTreeMap::new());
    assert_eq!(after, without_tenant(&before_c, c));
    assert_eq!(of_tenant(&after, b), of_tenant(&before, b));
}

/// A row that cannot be deleted (a table that is not isolated references the tenant's rows,
/// ON DELETE RESTRICT) fails the whole call with 22023 naming that table: nothing of the
/// tenant is deleted. The linter check reports the key beforehand.
#[test]
fn a_blocked_delete_deletes_nothing() {
    let w = world("lifeblocked");
    let mut admin = w.admin();
    admin.batch_execute(SHOP).unwrap();
    admin
        .batch_execute(
            "CREATE TABLE public.shipments (id int PRIMARY KEY, order_tenant uuid, order_id int,
                 FOREIGN KEY (order_tenant, order_id) REFERENCES shop.orders (tenant_id, id) ON DELETE RESTRICT);",
        )
        .unwrap();
    let a = w.t.a;
    fill(&mut admin, a, 1);
    admin
        .execute("INSERT INTO public.shipments VALUES (1, $1, 3)", &[&a])
        .unwrap();
    let findings: Vec<(String, String)> = admin
        .query(
            "SELECT code, object FROM tenancy.lint_delete_blocked()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        findings,
        vec![(
            "delete_tenant_blocked".to_string(),
            "public.shipments".to_string()
        )]
    );
    let before = census(&mut admin);
    let slug = w.slug(a);
    let mut app = w.app();
    let err = as_user(&mut app, a, Some(w.t.owner_a), |tx| {
        deleted(tx, DELETE, &[&a, &slug])
    })
    .unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code(), &BAD_ARGUMENT);
    assert!(
        db.message().contains("public.shipments") && db.message().contains("shop.orders"),
        "{}",
        db.message()
    );
    assert_eq!(census(&mut admin), before, "a failed delete changed rows");
    admin.batch_execute("DELETE FROM public.shipments").unwrap();
    as_user(&mut app, a, Some(w.t.owner_a), |tx| {
        deleted(tx, DELETE, &[&a, &slug])
    })
    .unwrap();
    assert_eq!(of_tenant(&census(&mut admin), a), BTreeMap::new());
}

/// A tenant too large for one transaction: suspended, then purged in batches (each call its
/// own transaction, at most that many rows), then delete_tenant() finishes. Every other
/// tenant's rows are untouched throughout.
#[test]
fn purge_in_batches_then_delete() {
    let w = world("lifepurge");
    let mut admin = w.admin();
    admin.batch_execute(SHOP).unwrap();
    let (a, b) = (w.t.a, w.t.b);
    fill(&mut admin, a, 10);
    fill(&mut admin, b, 2);
    let before = census(&mut admin);
    let slug = w.slug(a);
    let purge = "SELECT table_name::text, rows_deleted FROM tenancy.purge_tenant($1, $2, $3)";
    let batch: i64 = 40;
    let mut ops = w.app();

    // An active tenant is not purged in batches; the owner cannot purge (the tenant must be
    // suspended, so its context cannot be entered).
    assert_sqlstate(
        as_user(&mut ops, b, Some(w.root), |tx| {
            deleted(tx, purge, &[&a, &slug, &batch])
        }),
        &BAD_ARGUMENT,
    );
    as_user(&mut ops, b, Some(w.root), |tx| {
        tx.execute("SELECT tenancy.suspend_tenant($1, 'closing')", &[&a])
    })
    .unwrap();
    assert_sqlstate(
        as_user(&mut ops, b, Some(w.t.owner_b), |tx| {
            deleted(tx, purge, &[&a, &slug, &batch])
        }),
        &DENIED,
    );

    let mut total = 0;
    let mut calls = 0;
    loop {
        let report = as_user(&mut ops, b, Some(w.root), |tx| {
            deleted(tx, purge, &[&a, &slug, &batch])
        })
        .unwrap();
        calls += 1;
        let n: i64 = report.values().sum();
        // At most a batch, or the tree of categories (a foreign key to itself) alone, whole.
        assert!(
            n <= batch || report.keys().eq(["shop.categories"].iter()),
            "a batch deleted {n} rows: {report:?}"
        );
        if n == 0 {
            break;
        }
        total += n;
        assert!(calls < 1000);
        let now = census(&mut admin);
        assert_eq!(of_tenant(&now, b), of_tenant(&before, b));
    }
    let shop_rows: i64 = of_tenant(&before, a)
        .iter()
        .filter(|(t, _)| t.starts_with("shop."))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, shop_rows);
    assert!(calls > 2, "{calls} calls");

    let report = as_user(&mut ops, b, Some(w.root), |tx| {
        deleted(tx, DELETE, &[&a, &slug])
    })
    .unwrap();
    assert_eq!(report["tenancy.tenants"], 1);
    assert_eq!(report["tenancy.memberships"], 1);
    let after = census(&mut admin);
    assert_eq!(of_tenant(&after, a), BTreeMap::new());
    assert_eq!(after, without_tenant(&before, a));
}

/// Rows of `table` of `tenant` as JSON, as the superuser reads them.
fn rows_as_superuser(admin: &mut Client, table: &str, tenant: Uuid) -> BTreeSet<String> {
    admin
        .query(
            &format!("SELECT to_jsonb(t)::text FROM {table} t WHERE tenant_id = $1"),
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// export_tenant() returns exactly the tenant's rows of every isolated table and nothing else,
/// compared with what the superuser reads, for the owner through the app role and through a
/// JWT as a client; others are refused.
#[test]
fn export_returns_exactly_the_tenants_rows() {
    let w = world("lifeexport");
    let mut admin = w.admin();
    admin.batch_execute(SHOP).unwrap();
    let (a, b) = (w.t.a, w.t.b);
    fill(&mut admin, a, 2);
    fill(&mut admin, b, 1);
    let staff = w.user("staff@b.example");
    w.join(b, staff, "admin");
    let export = "SELECT table_name::text, \"row\"::text FROM tenancy.export_tenant()";
    let collect = |rows: Vec<postgres::Row>| -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut n = 0;
        for r in &rows {
            out.entry(r.get(0)).or_default().insert(r.get(1));
            n += 1;
        }
        // No row twice (a partition and its parent, say).
        assert_eq!(n, out.values().map(|s| s.len()).sum::<usize>());
        out
    };

    let mut app = w.app();
    assert_sqlstate(app.query(export, &[]), &NO_CONTEXT);
    // An admin does not hold tenant:export; nor does an owner's token without it.
    assert_sqlstate(
        as_user(&mut app, b, Some(staff), |tx| tx.query(export, &[])),
        &DENIED,
    );
    let token = w.api_token(b, w.t.owner_b, &["orders:read"]);
    let mut cli = w.client();
    assert_sqlstate(
        with_token(&mut cli, &token, |tx| tx.query(export, &[])),
        &DENIED,
    );
    assert_sqlstate(cli.query(export, &[]), &NO_CONTEXT);

    for tenant in [a, b] {
        let owner = if tenant == a {
            w.t.owner_a
        } else {
            w.t.owner_b
        };
        let expected: BTreeMap<String, BTreeSet<String>> = SHOP_TABLES
            .iter()
            .map(|t| (t.to_string(), rows_as_superuser(&mut admin, t, tenant)))
            .collect();
        let by_app =
            collect(as_user(&mut app, tenant, Some(owner), |tx| tx.query(export, &[])).unwrap());
        assert_eq!(by_app, expected, "export of {tenant} through the app role");
        let jwt = w.jwt(tenant, Some(owner));
        let by_client = collect(with_token(&mut cli, &jwt, |tx| tx.query(export, &[])).unwrap());
        assert_eq!(by_client, expected, "export of {tenant} through a JWT");
        // A token scoped to tenant:export (and the tables' read permissions) exports as well.
        let export_token = w.api_token(tenant, owner, &["tenant:export"]);
        let by_token =
            collect(with_token(&mut cli, &export_token, |tx| tx.query(export, &[])).unwrap());
        assert_eq!(
            by_token, expected,
            "export of {tenant} through an API token"
        );
        for rows in by_app.values() {
            for row in rows {
                let v: serde_json::Value = serde_json::from_str(row).unwrap();
                assert_eq!(v["tenant_id"], json!(tenant));
            }
        }
        let count: usize = by_app.values().map(|s| s.len()).sum();
        let superuser_count: i64 = of_tenant(&census(&mut admin), tenant)
            .iter()
            .filter(|(t, _)| t.starts_with("shop."))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(count as i64, superuser_count);
    }
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log WHERE action = 'export_tenant' AND outcome = 'allow'",
        &[],
        6,
    );
    assert!(n >= 6, "exports logged: {n}");
}
