#![cfg(feature = "client-tests")]
//! A backend killed with SIGKILL makes the server restart all backends (crash recovery): the
//! committed rows of auth_log are intact afterwards, and new denials are recorded again. Alone
//! in its own test binary, because it restarts the whole test cluster.

mod common;

use std::time::{Duration, Instant};

use common::*;
use postgres::error::SqlState;
use postgres::Client;
use uuid::Uuid;

fn count(admin: &mut Client, reason_label: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM tenancy.auth_log WHERE request_label = $1",
            &[&reason_label],
        )
        .unwrap()
        .get(0)
}

fn wait_for(db: &TestDb, label: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = db
            .admin_retry()
            .map(|mut a| count(&mut a, label))
            .unwrap_or(-1);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn deny(c: &mut Client, tenant: Uuid, user: Uuid, label: &str) {
    let mut tx = c.transaction().unwrap();
    tx.batch_execute(&format!("SET LOCAL tenancy.request_label = '{label}'"))
        .unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &user])
        .unwrap();
    let err = tx
        .execute("SELECT tenancy.require_permission('billing:write')", &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let _ = tx.rollback();
}

#[test]
fn committed_log_rows_survive_a_killed_backend_and_logging_resumes() {
    let mut db = TestDb::new("crash");
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    let viewer: Uuid = admin
        .query_one("SELECT tenancy.create_user('v@example.com')", &[])
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')",
            &[&t.a, &viewer],
        )
        .unwrap();
    let before = format!("before-{}", db.suffix);
    let after = format!("after-{}", db.suffix);

    let mut c = db.connect(&app);
    for _ in 0..5 {
        deny(&mut c, t.a, viewer, &before);
    }
    assert_eq!(
        wait_for(&db, &before, 5),
        5,
        "denials before the crash were not recorded"
    );

    // One more denial, then the backend dies with SIGKILL: the postmaster restarts everything.
    deny(&mut c, t.a, viewer, &before);
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(c);
    drop(admin);

    // The committed rows are intact (the sixth may or may not have been written before the kill).
    let n = wait_for(&db, &before, 5);
    assert!(
        (5..=6).contains(&n),
        "{n} rows of the {before} denials after the crash"
    );

    // And the restarted server records new denials.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = loop {
        match db.try_connect(&app) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("the server did not come back: {e}"),
        }
    };
    for _ in 0..3 {
        deny(&mut c, t.a, viewer, &after);
    }
    assert_eq!(
        wait_for(&db, &after, 3),
        3,
        "denials after the crash were not recorded"
    );
}
