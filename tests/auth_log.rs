#![cfg(feature = "client-tests")]
//! The authorization log: every denial is in `tenancy.auth_log`, also when the denied
//! transaction rolled back, and as a JSON line in the server log. Application roles read their
//! own tenant's rows and write nothing. The test cluster preloads the library (the durable
//! channel needs it).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use postgres::error::SqlState;
use postgres::Client;
use uuid::Uuid;

/// Polls until `sql` (one bigint) reaches at least `want`, for up to `secs` seconds.
fn wait_for_count(admin: &mut Client, sql: &str, want: i64, secs: u64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n: i64 = admin.query_one(sql, &[]).unwrap().get(0);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Setup {
    db: TestDb,
    app: String,
    client: String,
    t: Tenants,
    viewer: Uuid,
}

fn setup(label: &str) -> Setup {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let client = db.login_role("cli", "tenancy_client");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    let viewer: Uuid = admin
        .query_one("SELECT tenancy.create_user('viewer-a@example.com')", &[])
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')",
            &[&t.a, &viewer],
        )
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE TABLE public.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                         tenant_id uuid NOT NULL, note text);
             SELECT tenancy.isolate('public.orders');
             GRANT USAGE ON SCHEMA public TO {client};"
        ))
        .unwrap();
    Setup {
        db,
        app,
        client,
        t,
        viewer,
    }
}

#[test]
fn denials_are_recorded_even_when_the_transaction_rolls_back() {
    let s = setup("denials");
    let mut app = s.db.connect(&s.app);

    // 1. A denied permission check, in a transaction that then rolls back.
    let mut tx = app.transaction().unwrap();
    tx.batch_execute("SET LOCAL tenancy.request_label = 'POST /billing'")
        .unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&s.t.a, &s.viewer])
        .unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('billing:write')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    tx.rollback().unwrap();

    // 2. A write into another tenant, refused by the isolation policy.
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&s.t.a, &s.viewer])
        .unwrap();
    assert_sqlstate(
        tx.execute(
            "INSERT INTO public.orders (tenant_id, note) VALUES ($1, 'forged')",
            &[&s.t.b],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    tx.rollback().unwrap();

    // 3. A bad token and 4. a bad invitation, as the client role.
    let mut c = s.db.connect(&s.client);
    let bad_token = format!("tnc_{}", "A".repeat(64));
    assert_sqlstate(
        c.execute("SELECT tenancy.authenticate($1)", &[&bad_token]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        c.query(
            "SELECT * FROM tenancy.accept_invitation('not-an-invitation')",
            &[],
        ),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );

    let mut admin = s.db.admin();
    let n = wait_for_count(
        &mut admin,
        "SELECT count(*) FROM tenancy.auth_log WHERE outcome = 'deny'",
        4,
        15,
    );
    assert!(n >= 4, "only {n} denials reached auth_log");
    let rows = admin
        .query(
            "SELECT action, permission, reason, tenant_id, user_id, request_label, db_role
               FROM tenancy.auth_log WHERE outcome = 'deny' ORDER BY id",
            &[],
        )
        .unwrap();
    let find = |action: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == action)
            .unwrap_or_else(|| panic!("no {action} denial in auth_log"))
    };
    let r = find("require_permission");
    assert_eq!(
        r.get::<_, Option<String>>(1).as_deref(),
        Some("billing:write")
    );
    assert_eq!(
        r.get::<_, Option<String>>(2).as_deref(),
        Some("permission_missing")
    );
    assert_eq!(r.get::<_, Option<Uuid>>(3), Some(s.t.a));
    assert_eq!(r.get::<_, Option<Uuid>>(4), Some(s.viewer));
    assert_eq!(
        r.get::<_, Option<String>>(5).as_deref(),
        Some("POST /billing")
    );
    assert_eq!(
        r.get::<_, Option<String>>(6).as_deref(),
        Some(s.app.as_str())
    );
    let r = find("write");
    assert_eq!(
        r.get::<_, Option<String>>(2).as_deref(),
        Some("row_level_security")
    );
    assert_eq!(r.get::<_, Option<Uuid>>(3), Some(s.t.a));
    assert_eq!(r.get::<_, Option<Uuid>>(4), Some(s.viewer));
    let r = find("authenticate");
    assert_eq!(
        r.get::<_, Option<String>>(2).as_deref(),
        Some("unknown_token")
    );
    assert_eq!(
        r.get::<_, Option<String>>(6).as_deref(),
        Some(s.client.as_str())
    );
    let r = find("accept_invitation");
    assert!(r.get::<_, Option<String>>(2).is_some());

    // The same events are JSON lines in the server log.
    let log: String = admin
        .query_one("SELECT pg_read_file('server.log')", &[])
        .unwrap()
        .get(0);
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
        .filter_map(|j| serde_json::from_str(j).ok())
        .filter(|v: &serde_json::Value| v["event"] == "tenancy.decision")
        .collect();
    let a = s.t.a.to_string();
    assert!(events.iter().any(|e| e["action"] == "require_permission"
        && e["tenant_id"] == a.as_str()
        && e["outcome"] == "deny"
        && e["request_label"] == "POST /billing"));
    assert!(events
        .iter()
        .any(|e| e["action"] == "write" && e["tenant_id"] == a.as_str()));
    assert!(events.iter().any(|e| e["action"] == "authenticate"
        && e["reason"] == "unknown_token"
        && e["db_role"] == s.client.as_str()));

    let status = admin
        .query_one("SELECT durable, dropped FROM tenancy.log_status()", &[])
        .unwrap();
    assert!(
        status.get::<_, bool>(0),
        "the test cluster preloads pg_tenancy"
    );
}

#[test]
fn auth_log_is_read_only_and_tenant_scoped_for_app_roles() {
    let s = setup("logrights");
    let mut app = s.db.connect(&s.app);
    for (tenant, user) in [(s.t.a, s.viewer), (s.t.b, s.t.owner_b)] {
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &user])
            .unwrap();
        let _ = tx.execute("SELECT tenancy.require_permission('tenant:delete')", &[]);
        let _ = tx.rollback();
    }
    let mut admin = s.db.admin();
    wait_for_count(
        &mut admin,
        "SELECT count(DISTINCT tenant_id) FROM tenancy.auth_log",
        1,
        15,
    );

    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&s.t.a, &s.viewer])
        .unwrap();
    let tenants: Vec<Uuid> = tx
        .query("SELECT DISTINCT tenant_id FROM tenancy.auth_log", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tenants,
        vec![s.t.a],
        "an app role reads its own tenant's log rows only"
    );
    for sql in [
        "INSERT INTO tenancy.auth_log (at, action, outcome) VALUES (now(), 'forged', 'allow')",
        "UPDATE tenancy.auth_log SET outcome = 'allow'",
        "DELETE FROM tenancy.auth_log",
        "TRUNCATE tenancy.auth_log",
    ] {
        let mut sp = tx.transaction().unwrap();
        assert_sqlstate(sp.batch_execute(sql), &SqlState::INSUFFICIENT_PRIVILEGE);
        sp.rollback().unwrap();
    }
    tx.rollback().unwrap();
    // The table is logged (it survives a crash).
    let persistence: String = admin
        .query_one(
            "SELECT relpersistence::text FROM pg_class WHERE oid = 'tenancy.auth_log'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(persistence, "p");
}

/// Connections produce denials as fast as they can (8, then 40 of them): every denial a client
/// saw is on record in auth_log (identical ones merged under load and counted in `repeats`),
/// and none is dropped.
#[test]
fn every_denial_under_load_is_recorded() {
    for connections in [8, 40] {
        flood(connections, Duration::from_secs(8));
    }
}

fn flood(connections: usize, duration: Duration) {
    let s = setup(&format!("load{connections}"));
    let label = format!("load-{}", s.db.suffix);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let mut admin = s.db.admin();
    let dropped_before: i64 = admin
        .query_one("SELECT dropped FROM tenancy.log_status()", &[])
        .unwrap()
        .get(0);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let mut c = s.db.connect(&s.app);
            let (stop, seen, label) = (stop.clone(), seen.clone(), label.clone());
            let (tenant, user) = (s.t.a, s.viewer);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut tx = c.transaction().unwrap();
                    tx.batch_execute(&format!("SET LOCAL tenancy.request_label = '{label}'"))
                        .unwrap();
                    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &user])
                        .unwrap();
                    let err = tx
                        .execute("SELECT tenancy.require_permission('billing:write')", &[])
                        .unwrap_err();
                    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
                    seen.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.rollback();
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let seen = seen.load(Ordering::Relaxed) as i64;
    assert!(seen > 1000, "the load produced only {seen} denials");
    let sql = format!(
        "SELECT coalesce(sum(repeats), 0)::bigint FROM tenancy.auth_log WHERE request_label = '{label}'"
    );
    let recorded = wait_for_count(&mut admin, &sql, seen, 60);
    let rows: i64 = admin
        .query_one(
            "SELECT count(*) FROM tenancy.auth_log WHERE request_label = $1",
            &[&label],
        )
        .unwrap()
        .get(0);
    let dropped: i64 = admin
        .query_one("SELECT dropped FROM tenancy.log_status()", &[])
        .unwrap()
        .get(0);
    let dropped = dropped - dropped_before;
    println!(
        "{connections} connections: {seen} denials produced, {recorded} recorded in {rows} rows, {dropped} dropped"
    );
    assert_eq!(dropped, 0, "events were dropped");
    assert_eq!(
        recorded, seen,
        "auth_log records {recorded} of {seen} denials"
    );
}
