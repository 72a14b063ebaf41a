#![cfg(feature = "client-tests")]
//! How long a tenant context lives: one transaction, never longer (so a pooled connection that
//! the next client reuses starts without one), reverted with the savepoint it was set in, and
//! never two tenants in one transaction.

mod common;

use common::*;
use postgres::error::SqlState;
use postgres::{Client, GenericClient};
use uuid::Uuid;

struct Setup {
    db: TestDb,
    app: String,
    t: Tenants,
}

/// Two tenants, an app login role, and an isolated table with one row per tenant.
fn setup(label: &str) -> Setup {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.docs (tenant_id uuid NOT NULL, title text NOT NULL);
             SELECT tenancy.isolate('public.docs');",
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.docs VALUES ($1, 'doc-a'), ($2, 'doc-b')",
            &[&t.a, &t.b],
        )
        .unwrap();
    Setup { db, app, t }
}

fn titles<C: GenericClient>(c: &mut C) -> Result<Vec<String>, postgres::Error> {
    Ok(
        c.query("SELECT title FROM public.docs ORDER BY title", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

fn context_json<C: GenericClient>(c: &mut C) -> serde_json::Value {
    c.query_one("SELECT tenancy.context()", &[]).unwrap().get(0)
}

/// Asserts that the connection, in a new transaction and outside one, has no context.
fn assert_no_context(c: &mut Client) {
    assert_sqlstate(
        current_tenant(c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(titles(c), &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    assert_eq!(context_json(c), serde_json::json!({}));
    let mut tx = c.transaction().unwrap();
    assert_eq!(context_json(&mut tx), serde_json::json!({}));
    assert_sqlstate(
        current_tenant(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn context_is_gone_after_commit() {
    let s = setup("lifecommit");
    let owner = s.t.owner_a;
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, Some(owner));
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    let user: Option<Uuid> = tx
        .query_one("SELECT tenancy.current_user_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, Some(owner));
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);
    tx.commit().unwrap();
    assert_no_context(&mut c);
    let user: Option<Uuid> = c
        .query_one("SELECT tenancy.current_user_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, None);
}

#[test]
fn context_is_gone_after_rollback() {
    let s = setup("liferollback");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.b, None);
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-b"]);
    tx.rollback().unwrap();
    assert_no_context(&mut c);
}

#[test]
fn context_is_gone_after_an_error() {
    let s = setup("lifeerror");
    let mut c = s.db.connect(&s.app);

    // An error in an explicit transaction, then ROLLBACK.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(tx.query("SELECT 1 / 0", &[]), &SqlState::DIVISION_BY_ZERO);
        assert_sqlstate(
            current_tenant(&mut tx),
            &SqlState::IN_FAILED_SQL_TRANSACTION,
        );
    }
    assert_no_context(&mut c);

    // An error in an implicit transaction (several statements in one simple query).
    let sql = format!("SELECT tenancy.set_tenant('{}'); SELECT 1 / 0;", s.t.a);
    assert_sqlstate(c.batch_execute(&sql), &SqlState::DIVISION_BY_ZERO);
    assert_no_context(&mut c);

    // An error raised by pg_tenancy itself (switching tenants) also ends the context.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_no_context(&mut c);
}

#[test]
fn rollback_to_savepoint_reverts_context_set_inside_it() {
    let s = setup("lifesavepoint");
    let mut c = s.db.connect(&s.app);
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("SAVEPOINT s1").unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.a])
        .unwrap();
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);
    tx.batch_execute("ROLLBACK TO SAVEPOINT s1").unwrap();
    assert_eq!(context_json(&mut tx), serde_json::json!({}));
    tx.batch_execute("SAVEPOINT s2").unwrap();
    assert_sqlstate(
        titles(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    tx.batch_execute("ROLLBACK TO SAVEPOINT s2").unwrap();
    // The context is really gone: another tenant can be entered without clear_context().
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b])
        .unwrap();
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-b"]);
    tx.commit().unwrap();
    assert_no_context(&mut c);
}

#[test]
fn released_savepoint_keeps_context_until_transaction_end() {
    let s = setup("liferelease");
    let mut c = s.db.connect(&s.app);
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("SAVEPOINT s1").unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.a])
        .unwrap();
    tx.batch_execute("RELEASE SAVEPOINT s1").unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);
    // A nested savepoint released and an outer one rolled back: the context was set outside
    // both, so it stays.
    tx.batch_execute("SAVEPOINT outer_sp; SAVEPOINT inner_sp; RELEASE SAVEPOINT inner_sp; ROLLBACK TO SAVEPOINT outer_sp")
        .unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    tx.commit().unwrap();
    assert_no_context(&mut c);

    // Set in a released inner savepoint, then the enclosing one is rolled back: gone.
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("SAVEPOINT outer_sp; SAVEPOINT inner_sp")
        .unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b])
        .unwrap();
    tx.batch_execute("RELEASE SAVEPOINT inner_sp").unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.b);
    tx.batch_execute("ROLLBACK TO SAVEPOINT outer_sp").unwrap();
    assert_eq!(context_json(&mut tx), serde_json::json!({}));
}

#[test]
fn rollback_to_savepoint_restores_the_outer_context() {
    let s = setup("lifeouter");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, None);

    // clear_context() and a switch to B inside a savepoint are undone by ROLLBACK TO.
    tx.batch_execute("SAVEPOINT s1").unwrap();
    tx.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b])
        .unwrap();
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-b"]);
    tx.batch_execute("ROLLBACK TO SAVEPOINT s1").unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);

    // An error inside a savepoint leaves the outer context as it was.
    tx.batch_execute("SAVEPOINT s2").unwrap();
    assert_sqlstate(tx.query("SELECT 1 / 0", &[]), &SqlState::DIVISION_BY_ZERO);
    tx.batch_execute("ROLLBACK TO SAVEPOINT s2").unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);
    tx.commit().unwrap();
    assert_no_context(&mut c);
}

#[test]
fn switching_tenant_in_one_transaction_needs_clear_context() {
    let s = setup("lifeswitch");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, None);
    tx.batch_execute("SAVEPOINT s1").unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    tx.batch_execute("ROLLBACK TO SAVEPOINT s1").unwrap();
    // The refused switch changed nothing.
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);

    // Another actor in the same tenant is a switch too.
    tx.batch_execute("SAVEPOINT s2").unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&s.t.a, &s.t.owner_a]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    tx.batch_execute("ROLLBACK TO SAVEPOINT s2").unwrap();

    // clear_context(), then B: B's rows only, and current_tenant() fails in between.
    tx.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    tx.batch_execute("SAVEPOINT s3").unwrap();
    assert_sqlstate(
        current_tenant(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    tx.batch_execute("ROLLBACK TO SAVEPOINT s3").unwrap();
    assert_eq!(context_json(&mut tx), serde_json::json!({}));
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b])
        .unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.b);
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-b"]);
    tx.commit().unwrap();
}

#[test]
fn same_tenant_again_is_a_noop() {
    let s = setup("lifesame");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, Some(s.t.owner_a));
    let before = context_json(&mut tx);
    for _ in 0..3 {
        tx.execute(
            "SELECT tenancy.set_tenant($1, $2)",
            &[&s.t.a, &Some(s.t.owner_a)],
        )
        .unwrap();
    }
    assert_eq!(context_json(&mut tx), before);
    assert_eq!(before["tenant_id"], s.t.a.to_string());
    assert_eq!(before["user_id"], s.t.owner_a.to_string());
    assert_eq!(before["role"], "owner");
    assert_eq!(before["source"], "set_tenant");
    assert_eq!(titles(&mut tx).unwrap(), vec!["doc-a"]);
    tx.commit().unwrap();

    let mut tx = begin_as(&mut c, s.t.b, None);
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b])
        .unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.b);
    tx.commit().unwrap();
}

#[test]
fn clear_context_makes_current_tenant_fail_closed() {
    let s = setup("lifeclear");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, Some(s.t.owner_a));
    tx.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    assert_eq!(context_json(&mut tx), serde_json::json!({}));
    let user: Option<Uuid> = tx
        .query_one("SELECT tenancy.current_user_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, None);
    // clear_context() without a context is harmless.
    tx.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    assert_sqlstate(
        titles(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn set_tenant_outside_a_transaction_block_warns_and_lasts_one_statement() {
    let s = setup("lifeautocommit");
    let (mut c, notices) = connect_capturing_notices(s.db.config(&s.app));
    c.execute("SELECT tenancy.set_tenant($1)", &[&s.t.a])
        .unwrap();
    let warnings: Vec<String> = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.severity() == "WARNING")
        .map(|n| n.message().to_string())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("this statement only"),
        "{}",
        warnings[0]
    );
    assert_no_context(&mut c);

    // Several statements sent in one simple query share one implicit transaction: the context
    // holds until its end, and not one statement longer.
    let sql = format!(
        "SELECT tenancy.set_tenant('{}'); SELECT title FROM public.docs;",
        s.t.b
    );
    let rows: Vec<String> = c
        .simple_query(&sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(rows, vec!["doc-b"]);
    assert_no_context(&mut c);
}
