#![cfg(feature = "client-tests")]
//! Tenant isolation as an application sees it: a login role in `tenancy_app`, its own
//! connection, and every read or write path it could try (plain SQL, views, functions, COPY,
//! TRUNCATE, ON CONFLICT, RETURNING, prepared statements). The superuser connection only sets
//! things up and checks afterwards that the other tenant's rows are untouched.

mod common;

use std::io::{Read, Write};

use common::*;
use postgres::error::SqlState;
use postgres::Client;
use uuid::Uuid;

/// A shop with two tenants, an app login role, and an isolated `orders` table holding two
/// rows per tenant (with a global primary key, as many applications have).
struct Shop {
    db: TestDb,
    app: String,
    t: Tenants,
    a_rows: Vec<Uuid>,
    b_rows: Vec<Uuid>,
}

fn shop(label: &str) -> Shop {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.orders (
                 id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 tenant_id uuid NOT NULL,
                 note      text NOT NULL
             );
             SELECT tenancy.isolate('public.orders');",
        )
        .unwrap();
    let mut insert = |tenant: Uuid, note: &str| -> Uuid {
        admin
            .query_one(
                "INSERT INTO public.orders (tenant_id, note) VALUES ($1, $2) RETURNING id",
                &[&tenant, &note],
            )
            .unwrap()
            .get(0)
    };
    let a_rows = vec![insert(t.a, "a-1"), insert(t.a, "a-2")];
    let b_rows = vec![insert(t.b, "b-1"), insert(t.b, "b-2")];
    Shop {
        db,
        app,
        t,
        a_rows,
        b_rows,
    }
}

/// Every row of `orders` as (id, tenant, note), read by the superuser, sorted by note.
fn all_orders(admin: &mut Client) -> Vec<(Uuid, Uuid, String)> {
    admin
        .query(
            "SELECT id, tenant_id, note FROM public.orders ORDER BY note",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn notes<C: postgres::GenericClient>(c: &mut C, sql: &str) -> Result<Vec<String>, postgres::Error> {
    Ok(c.query(sql, &[])?.iter().map(|r| r.get(0)).collect())
}

#[test]
fn two_independent_layers_rls_and_rbac() {
    let mut db = TestDb::new("layers");
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.products (
                 id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 tenant_id  uuid NOT NULL,
                 name       text NOT NULL,
                 cost_cents bigint NOT NULL
             );
             SELECT tenancy.isolate('public.products');
             INSERT INTO tenancy.permissions (name, description) VALUES ('costs:read', 'see cost prices');
             INSERT INTO tenancy.role_permissions (role, permission) VALUES ('staff', 'costs:read');",
        )
        .unwrap();
    let staff_a = add_member(&mut admin, t.a, "sam@store-a.example", "staff");
    let viewer_a = add_member(&mut admin, t.a, "vic@store-a.example", "viewer");
    let product_a: Uuid = admin
        .query_one(
            "INSERT INTO public.products (tenant_id, name, cost_cents) VALUES ($1, 'espresso beans', 610) RETURNING id",
            &[&t.a],
        )
        .unwrap()
        .get(0);
    let product_b: Uuid = admin
        .query_one(
            "INSERT INTO public.products (tenant_id, name, cost_cents) VALUES ($1, 'green tea', 220) RETURNING id",
            &[&t.b],
        )
        .unwrap()
        .get(0);

    let mut c = db.connect(&app);
    let cost_of = "SELECT name, cost_cents FROM public.products WHERE id = $1";

    // Staff of A: RBAC allows costs:read, RLS shows A's product and hides B's.
    {
        let mut tx = begin_as(&mut c, t.a, Some(staff_a));
        tx.execute("SELECT tenancy.require_permission('costs:read')", &[])
            .unwrap();
        let has: bool = tx
            .query_one("SELECT tenancy.has_permission('costs:read')", &[])
            .unwrap()
            .get(0);
        assert!(has, "staff holds costs:read");
        let rows = tx.query(cost_of, &[&product_a]).unwrap();
        let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, vec![("espresso beans".to_string(), 610)]);
        // B's product: RBAC passed, RLS still answers zero rows.
        assert!(
            tx.query(cost_of, &[&product_b]).unwrap().is_empty(),
            "staff of A must not see B's product"
        );
        tx.commit().unwrap();
    }

    // Viewer of A: RLS lets it see A's product, RBAC refuses costs:read.
    {
        let mut tx = begin_as(&mut c, t.a, Some(viewer_a));
        let has: bool = tx
            .query_one("SELECT tenancy.has_permission('costs:read')", &[])
            .unwrap()
            .get(0);
        assert!(!has, "viewer lacks costs:read");
        let names: Vec<String> = tx
            .query(
                "SELECT name FROM public.products WHERE id = $1",
                &[&product_a],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            names,
            vec!["espresso beans".to_string()],
            "RLS passes for A's own product"
        );
        assert_sqlstate(
            tx.execute("SELECT tenancy.require_permission('costs:read')", &[]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }

    // The superuser still sees both (the row of B exists: the zero rows above were RLS).
    let n: i64 = admin
        .query_one("SELECT count(*) FROM public.products", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

/// A statement run on a client connection; the number of rows it returned or touched.
type Statement = Box<dyn Fn(&mut Client) -> Result<u64, postgres::Error>>;

#[test]
fn fail_closed_without_context_in_new_and_reused_backend() {
    let s = shop("failclosed");
    let (a1, a_tenant) = (s.a_rows[0], s.t.a);
    let statements: Vec<(&str, Statement)> = vec![
        (
            "SELECT",
            Box::new(|c: &mut Client| {
                c.query("SELECT id FROM public.orders", &[])
                    .map(|r| r.len() as u64)
            }),
        ),
        (
            "SELECT by id",
            Box::new(move |c: &mut Client| {
                c.query("SELECT id FROM public.orders WHERE id = $1", &[&a1])
                    .map(|r| r.len() as u64)
            }),
        ),
        (
            "INSERT",
            Box::new(move |c: &mut Client| {
                c.execute(
                    "INSERT INTO public.orders (tenant_id, note) VALUES ($1, 'no-ctx')",
                    &[&a_tenant],
                )
            }),
        ),
        (
            "INSERT default",
            Box::new(|c: &mut Client| {
                c.execute("INSERT INTO public.orders (note) VALUES ('no-ctx')", &[])
            }),
        ),
        (
            "UPDATE",
            Box::new(move |c: &mut Client| {
                c.execute(
                    "UPDATE public.orders SET note = 'no-ctx' WHERE id = $1",
                    &[&a1],
                )
            }),
        ),
        (
            "UPDATE all",
            Box::new(|c: &mut Client| c.execute("UPDATE public.orders SET note = 'no-ctx'", &[])),
        ),
        (
            "DELETE",
            Box::new(move |c: &mut Client| {
                c.execute("DELETE FROM public.orders WHERE id = $1", &[&a1])
            }),
        ),
        (
            "DELETE all",
            Box::new(|c: &mut Client| c.execute("DELETE FROM public.orders", &[])),
        ),
    ];
    let before = all_orders(&mut s.db.admin());

    // A brand-new backend: each statement is the first the backend ever runs.
    for (what, run) in &statements {
        let mut c = s.db.connect(&s.app);
        let got = sqlstate(run(&mut c));
        assert_eq!(
            got,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{what} in a new backend: got {}",
            got.code()
        );
    }

    // A reused backend that had a context in earlier transactions (committed, rolled back, and
    // a single-statement one outside a transaction block).
    let mut c = s.db.connect(&s.app);
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_eq!(
            notes(&mut tx, "SELECT note FROM public.orders ORDER BY note").unwrap(),
            vec!["a-1", "a-2"]
        );
        tx.commit().unwrap();
    }
    for (what, run) in &statements {
        let got = sqlstate(run(&mut c));
        assert_eq!(
            got,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{what} after a committed context: got {}",
            got.code()
        );
    }
    {
        let mut tx = begin_as(&mut c, s.t.b, None);
        assert_eq!(
            notes(&mut tx, "SELECT note FROM public.orders ORDER BY note").unwrap(),
            vec!["b-1", "b-2"]
        );
        tx.rollback().unwrap();
    }
    for (what, run) in &statements {
        let got = sqlstate(run(&mut c));
        assert_eq!(
            got,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{what} after a rolled-back context: got {}",
            got.code()
        );
    }
    c.execute("SELECT tenancy.set_tenant($1)", &[&s.t.a])
        .unwrap();
    for (what, run) in &statements {
        let got = sqlstate(run(&mut c));
        assert_eq!(
            got,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{what} after an autocommit set_tenant: got {}",
            got.code()
        );
    }

    // The accessors agree: no tenant, no user, an empty context.
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    let user: Option<Uuid> = c
        .query_one("SELECT tenancy.current_user_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, None);
    let ctx: serde_json::Value = c.query_one("SELECT tenancy.context()", &[]).unwrap().get(0);
    assert_eq!(ctx, serde_json::json!({}));

    // Nothing was written by any of the refused statements.
    assert_eq!(all_orders(&mut s.db.admin()), before);
}

#[test]
fn fail_closed_on_empty_isolated_table_without_context() {
    let mut db = TestDb::new("emptytbl");
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                        tenant_id uuid NOT NULL, body text);
             SELECT tenancy.isolate('public.notes');",
        )
        .unwrap();

    // No row exists at all: a policy alone would never call current_tenant() and the answer
    // would be a silent empty result. The contract wants 28000.
    let mut c = db.connect(&app);
    for sql in [
        "SELECT * FROM public.notes",
        "SELECT count(*) FROM public.notes",
        "SELECT * FROM public.notes WHERE id = 1",
        "SELECT EXISTS (SELECT FROM public.notes)",
        "UPDATE public.notes SET body = 'x'",
        "UPDATE public.notes SET body = 'x' WHERE false",
        "DELETE FROM public.notes",
        "DELETE FROM public.notes WHERE id = 42",
    ] {
        let got = sqlstate(c.query(sql, &[]));
        assert_eq!(
            got,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{sql}: got {}",
            got.code()
        );
    }

    // With a context the same empty table answers normally (the guard only closes the gap).
    let mut tx = begin_as(&mut c, t.a, None);
    let n: i64 = tx
        .query_one("SELECT count(*) FROM public.notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(
        tx.execute("UPDATE public.notes SET body = 'x'", &[])
            .unwrap(),
        0
    );
    tx.commit().unwrap();
}

#[test]
fn views_and_functions_over_isolated_tables_fail_closed_and_filter() {
    let s = shop("viewsfns");
    s.db.admin()
        .batch_execute(&format!(
            "CREATE VIEW public.order_notes WITH (security_invoker = true) AS SELECT note FROM public.orders;
             CREATE FUNCTION public.order_notes_fn() RETURNS SETOF text LANGUAGE sql STABLE
                 AS 'SELECT note FROM public.orders';
             GRANT SELECT ON public.order_notes TO {app};
             GRANT EXECUTE ON FUNCTION public.order_notes_fn() TO {app};",
            app = s.app
        ))
        .unwrap();
    let mut c = s.db.connect(&s.app);
    for sql in [
        "SELECT note FROM public.order_notes",
        "SELECT public.order_notes_fn()",
    ] {
        assert_sqlstate(
            c.query(sql, &[]),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        );
        let mut tx = begin_as(&mut c, s.t.b, None);
        let mut got = notes(&mut tx, sql).unwrap();
        got.sort();
        assert_eq!(got, vec!["b-1", "b-2"], "{sql} under B");
    }
}

#[test]
fn cross_tenant_insert_and_row_move_raise_42501() {
    let s = shop("xinsert");
    let before = all_orders(&mut s.db.admin());
    let mut c = s.db.connect(&s.app);

    // INSERT naming B's tenant id while the context is A.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.execute(
                "INSERT INTO public.orders (tenant_id, note) VALUES ($1, 'planted')",
                &[&s.t.b],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    // Also through INSERT ... SELECT and with RETURNING.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.query(
                "INSERT INTO public.orders (tenant_id, note) SELECT $1, 'planted' RETURNING id",
                &[&s.t.b],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    // UPDATE that moves A's own row to B.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.execute(
                "UPDATE public.orders SET tenant_id = $1 WHERE id = $2",
                &[&s.t.b, &s.a_rows[0]],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_eq!(all_orders(&mut s.db.admin()), before, "nothing was written");

    // The legitimate paths still work: the default puts a new row into A.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        let tenant: Uuid = tx
            .query_one(
                "INSERT INTO public.orders (note) VALUES ('a-3') RETURNING tenant_id",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(tenant, s.t.a);
        tx.commit().unwrap();
    }
    let after = all_orders(&mut s.db.admin());
    assert_eq!(after.len(), 5);
    assert!(after.iter().any(|(_, t, n)| *t == s.t.a && n == "a-3"));
}

#[test]
fn cross_tenant_update_and_delete_touch_nothing_and_return_nothing() {
    let s = shop("xupdate");
    let before = all_orders(&mut s.db.admin());
    let mut c = s.db.connect(&s.app);
    let b_ids = s.b_rows.clone();

    let mut tx = begin_as(&mut c, s.t.a, None);
    assert_eq!(
        tx.execute(
            "UPDATE public.orders SET note = 'pwned' WHERE id = ANY($1)",
            &[&b_ids]
        )
        .unwrap(),
        0
    );
    assert!(tx
        .query(
            "UPDATE public.orders SET note = 'pwned' WHERE id = ANY($1) RETURNING id, note",
            &[&b_ids]
        )
        .unwrap()
        .is_empty());
    assert_eq!(
        tx.execute("DELETE FROM public.orders WHERE id = ANY($1)", &[&b_ids])
            .unwrap(),
        0
    );
    assert!(tx
        .query(
            "DELETE FROM public.orders WHERE id = ANY($1) RETURNING *",
            &[&b_ids]
        )
        .unwrap()
        .is_empty());
    assert_eq!(
        tx.execute(
            "UPDATE public.orders SET note = 'pwned' WHERE tenant_id = $1",
            &[&s.t.b]
        )
        .unwrap(),
        0
    );
    assert_eq!(
        tx.execute("DELETE FROM public.orders WHERE tenant_id = $1", &[&s.t.b])
            .unwrap(),
        0
    );
    tx.commit().unwrap();
    assert_eq!(
        all_orders(&mut s.db.admin()),
        before,
        "B's rows are untouched"
    );

    // An unqualified UPDATE / DELETE reaches exactly A's rows, and RETURNING shows only them.
    let mut tx = begin_as(&mut c, s.t.a, None);
    let mut touched: Vec<Uuid> = tx
        .query(
            "UPDATE public.orders SET note = note || '!' RETURNING id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    touched.sort();
    let mut a_rows = s.a_rows.clone();
    a_rows.sort();
    assert_eq!(touched, a_rows);
    let mut deleted: Vec<Uuid> = tx
        .query("DELETE FROM public.orders RETURNING id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    deleted.sort();
    assert_eq!(deleted, a_rows);
    tx.commit().unwrap();

    let after = all_orders(&mut s.db.admin());
    let b_before: Vec<_> = before.into_iter().filter(|(_, t, _)| *t == s.t.b).collect();
    assert_eq!(after, b_before, "only B's untouched rows remain");
}

#[test]
fn on_conflict_do_update_cannot_modify_another_tenants_row() {
    let s = shop("onconflict");
    let before = all_orders(&mut s.db.admin());
    let b1 = s.b_rows[0];
    let mut c = s.db.connect(&s.app);

    // A global key that belongs to B: the existing row fails the policy, 42501, nothing changes.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.query(
                "INSERT INTO public.orders (id, note) VALUES ($1, 'hijack')
                 ON CONFLICT (id) DO UPDATE SET note = 'hijacked' RETURNING id, tenant_id, note",
                &[&b1],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.query(
                "INSERT INTO public.orders (id, tenant_id, note) VALUES ($1, $2, 'hijack')
                 ON CONFLICT (id) DO UPDATE SET note = 'hijacked', tenant_id = $3 RETURNING id",
                &[&b1, &s.t.a, &s.t.a],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_eq!(
        all_orders(&mut s.db.admin()),
        before,
        "B's row is unchanged"
    );

    // A key made of (tenant_id, sku): the same sku under A is A's own row; B's stays as it was.
    let mut admin = s.db.admin();
    admin
        .batch_execute(
            "CREATE TABLE public.stock (tenant_id uuid NOT NULL, sku text NOT NULL, qty int NOT NULL,
                                        PRIMARY KEY (tenant_id, sku));
             SELECT tenancy.isolate('public.stock');",
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.stock VALUES ($1, 'sku-1', 7)",
            &[&s.t.b],
        )
        .unwrap();
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        let rows = tx
            .query(
                "INSERT INTO public.stock (sku, qty) VALUES ('sku-1', 1)
                 ON CONFLICT (tenant_id, sku) DO UPDATE SET qty = 999 RETURNING tenant_id, qty",
                &[],
            )
            .unwrap();
        let got: Vec<(Uuid, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, vec![(s.t.a, 1)], "a new row of A, not B's row updated");
        tx.commit().unwrap();
    }
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        // Against B's composite key spelled out: the new row would be B's, refused.
        assert_sqlstate(
            tx.query(
                "INSERT INTO public.stock (tenant_id, sku, qty) VALUES ($1, 'sku-1', 1)
                 ON CONFLICT (tenant_id, sku) DO UPDATE SET qty = 999 RETURNING qty",
                &[&s.t.b],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        tx.execute(
            "INSERT INTO public.stock (sku, qty) VALUES ('sku-1', 1)
             ON CONFLICT (tenant_id, sku) DO UPDATE SET qty = 999",
            &[],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let stock: Vec<(Uuid, String, i32)> = admin
        .query(
            "SELECT tenant_id, sku, qty FROM public.stock ORDER BY qty",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        stock,
        vec![
            (s.t.b, "sku-1".to_string(), 7),
            (s.t.a, "sku-1".to_string(), 999)
        ]
    );
}

#[test]
fn truncate_is_denied_to_app_roles() {
    let s = shop("truncate");
    let mut c = s.db.connect(&s.app);
    assert_sqlstate(
        c.batch_execute("TRUNCATE public.orders"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.batch_execute("TRUNCATE public.orders"),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.batch_execute("TRUNCATE ONLY public.orders CASCADE"),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_eq!(all_orders(&mut s.db.admin()).len(), 4, "every row survived");
}

#[test]
fn copy_to_returns_only_current_tenant_rows() {
    let s = shop("copyto");
    let mut c = s.db.connect(&s.app);

    for sql in [
        "COPY public.orders (tenant_id, note) TO STDOUT",
        "COPY (SELECT tenant_id, note FROM public.orders) TO STDOUT",
    ] {
        let mut tx = begin_as(&mut c, s.t.a, None);
        let out = copy(&mut tx, sql).unwrap();
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        let a = s.t.a;
        assert_eq!(
            lines,
            vec![format!("{a}\ta-1"), format!("{a}\ta-2")],
            "{sql}"
        );
        tx.commit().unwrap();

        // Without a context COPY fails closed like a SELECT.
        let mut tx = c.transaction().unwrap();
        assert_sqlstate(
            copy(&mut tx, sql),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        );
    }

    // COPY FROM into a table with row-level security is refused by PostgreSQL itself.
    let before = all_orders(&mut s.db.admin());
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        let result = tx
            .copy_in("COPY public.orders (tenant_id, note) FROM STDIN")
            .and_then(|mut w| {
                w.write_all(format!("{}\tplanted\n", s.t.b).as_bytes())
                    .unwrap();
                w.finish()
            });
        assert_sqlstate(result, &SqlState::FEATURE_NOT_SUPPORTED);
    }
    assert_eq!(all_orders(&mut s.db.admin()), before);
}

fn copy(tx: &mut postgres::Transaction, sql: &str) -> Result<String, postgres::Error> {
    let mut out = String::new();
    tx.copy_out(sql)?.read_to_string(&mut out).unwrap();
    Ok(out)
}

/// A table big enough (50 tenants x 2000 rows, analyzed) that the planner uses the index on
/// the tenant column.
fn big_shop(label: &str) -> (TestDb, String, Tenants) {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    // These tests read plans with EXPLAIN ANALYZE, which application roles may not run unless a
    // superuser allows it (see explain_analyze_is_refused_to_app_roles).
    admin
        .batch_execute(&format!(
            "ALTER ROLE {app} SET tenancy.allow_explain_analyze = on"
        ))
        .unwrap();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                         tenant_id uuid NOT NULL, v int NOT NULL);
             SELECT tenancy.isolate('public.events');",
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.events (tenant_id, v)
             SELECT t, g
               FROM unnest(array_cat(ARRAY[$1, $2]::uuid[],
                                     ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 48)))) AS t,
                    generate_series(1, 2000) AS g
              ORDER BY t, g",
            &[&t.a, &t.b],
        )
        .unwrap();
    admin.batch_execute("ANALYZE public.events").unwrap();
    (db, app, t)
}

#[test]
fn statement_prepared_under_a_returns_only_b_rows_with_generic_plan() {
    let (db, app, t) = big_shop("plancache");
    let mut c = db.connect(&app);
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let summary = "SELECT count(*), count(DISTINCT tenant_id), min(tenant_id::text) FROM public.events WHERE v <= $1";

    // SQL-level PREPARE under A, EXECUTE under B (and back), in later transactions.
    {
        let mut tx = begin_as(&mut c, t.a, None);
        tx.batch_execute(&format!("PREPARE q(int) AS {summary}"))
            .unwrap();
        let r = tx.query_one("EXECUTE q(2000)", &[]).unwrap();
        assert_eq!(
            (
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2)
            ),
            (2000, 1, t.a.to_string())
        );
        tx.commit().unwrap();
    }
    for (tenant, times) in [(t.b, 3), (t.a, 1), (t.b, 1)] {
        let mut tx = begin_as(&mut c, tenant, None);
        for _ in 0..times {
            let r = tx.query_one("EXECUTE q(100)", &[]).unwrap();
            assert_eq!(
                (
                    r.get::<_, i64>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, String>(2)
                ),
                (100, 1, tenant.to_string())
            );
        }
        tx.commit().unwrap();
    }

    // Protocol-level prepared statement (what drivers and poolers cache), prepared under A.
    let stmt = {
        let mut tx = begin_as(&mut c, t.a, None);
        let stmt = tx
            .prepare("SELECT tenant_id, v FROM public.events WHERE v <= $1 ORDER BY v")
            .unwrap();
        let rows = tx.query(&stmt, &[&5i32]).unwrap();
        assert!(rows.len() == 5 && rows.iter().all(|r| r.get::<_, Uuid>(0) == t.a));
        tx.commit().unwrap();
        stmt
    };
    {
        let mut tx = begin_as(&mut c, t.b, None);
        let rows = tx.query(&stmt, &[&5i32]).unwrap();
        let got: Vec<(Uuid, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, (1..=5).map(|v| (t.b, v)).collect::<Vec<_>>());
        tx.commit().unwrap();
    }
    // The cached plans without any context: 28000, not A's or B's rows.
    assert_sqlstate(
        c.query(&stmt, &[&5i32]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        c.query("EXECUTE q(5)", &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

/// Every node of an EXPLAIN (FORMAT JSON) plan, depth first.
fn plan_nodes(node: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    out.push(node.clone());
    if let Some(children) = node.get("Plans").and_then(|p| p.as_array()) {
        for child in children {
            plan_nodes(child, out);
        }
    }
}

#[test]
fn explain_shows_the_tenant_index_keyed_on_current_tenant_even_in_a_generic_plan() {
    let (db, app, t) = big_shop("explain");
    // EXPLAIN ANALYZE is refused to application roles (see the next test); a superuser lets this
    // role run it, for diagnosis.
    db.admin()
        .batch_execute(&format!(
            "ALTER ROLE {app} SET tenancy.allow_explain_analyze = on"
        ))
        .unwrap();
    let mut c = db.connect(&app);
    let mut tx = begin_as(&mut c, t.a, None);
    tx.batch_execute(
        "SET LOCAL plan_cache_mode = force_generic_plan;
         PREPARE small(int) AS SELECT id, v FROM public.events WHERE v < $1;",
    )
    .unwrap();
    let json: serde_json::Value = tx
        .query_one(
            "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, FORMAT JSON) EXECUTE small(10)",
            &[],
        )
        .unwrap()
        .get(0);
    let plan = json.to_string();
    let mut nodes = Vec::new();
    plan_nodes(&json[0]["Plan"], &mut nodes);

    // The scan uses the tenant index, keyed on an inline call of current_tenant(): an index
    // key is computed once per scan, not per row, and no node filters on it per row. No
    // InitPlan, and no tenant value frozen into the (generic) plan.
    let scan = nodes
        .iter()
        .find(|n| n["Node Type"] == "Index Scan" && n["Relation Name"] == "events")
        .unwrap_or_else(|| panic!("no Index Scan on events: {plan}"));
    assert_eq!(
        scan["Index Cond"], "(events.tenant_id = tenancy.current_tenant())",
        "{plan}"
    );
    assert!(
        scan["Index Name"].as_str().unwrap().contains("tenant_id"),
        "{plan}"
    );
    // PostgreSQL 18 reports actual rows as a fraction (9.0).
    assert_eq!(
        scan["Actual Rows"].as_f64(),
        Some(9.0),
        "v < 10 of tenant A only: {plan}"
    );
    for n in &nodes {
        assert_ne!(n["Parent Relationship"], "InitPlan", "{plan}");
        for key in ["Filter", "Output", "Recheck Cond"] {
            assert!(
                !n[key].to_string().contains("current_tenant"),
                "{key} of a {} calls current_tenant(): {plan}",
                n["Node Type"]
            );
        }
    }
    assert!(
        !plan.contains(&t.a.to_string()),
        "a tenant in the plan: {plan}"
    );

    // The rows are A's; the same generic plan under B returns B's.
    let rows = tx.query("EXECUTE small(10)", &[]).unwrap();
    assert_eq!(rows.len(), 9);
    tx.commit().unwrap();
    let mut tx = begin_as(&mut c, t.b, None);
    tx.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
        .unwrap();
    let ids: Vec<i64> = tx
        .query("EXECUTE small(10)", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let b_ids: Vec<i64> = db
        .admin()
        .query(
            "SELECT id FROM public.events WHERE tenant_id = $1 AND v < 10 ORDER BY id",
            &[&t.b],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, b_ids, "B's rows through the plan prepared under A");
}

#[test]
fn set_tenant_as_superuser_warns_that_rls_is_bypassed() {
    let mut db = TestDb::new("suwarn");
    let app = db.login_role("app", "tenancy_app");
    let bypass = db.login_role("bypass", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(&format!("ALTER ROLE {bypass} BYPASSRLS"))
        .unwrap();

    let warnings = |notices: &Notices| -> Vec<String> {
        notices
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.severity() == "WARNING")
            .map(|n| n.message().to_string())
            .collect()
    };

    // The superuser.
    let (mut su, notices) = connect_capturing_notices(db.admin_config());
    {
        let mut tx = begin_as(&mut su, t.a, None);
        let got = warnings(&notices);
        assert_eq!(got.len(), 1, "one warning: {got:?}");
        assert!(
            got[0].contains("\"postgres\"")
                && got[0].contains("superuser")
                && got[0].contains("row-level security"),
            "the warning names the role and why: {}",
            got[0]
        );
        // It is true: the superuser sees both tenants' rows whatever the context.
        tx.batch_execute(
            "CREATE TABLE public.things (tenant_id uuid NOT NULL, x int);
             SELECT tenancy.isolate('public.things');",
        )
        .unwrap();
        tx.execute(
            "INSERT INTO public.things VALUES ($1, 1), ($2, 2)",
            &[&t.a, &t.b],
        )
        .unwrap();
        let n: i64 = tx
            .query_one("SELECT count(*) FROM public.things", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        tx.commit().unwrap();
    }

    // A BYPASSRLS role in tenancy_app.
    let (mut b, notices) = connect_capturing_notices(db.config(&bypass));
    {
        let _tx = begin_as(&mut b, t.a, None);
        let got = warnings(&notices);
        assert_eq!(got.len(), 1, "one warning: {got:?}");
        assert!(
            got[0].contains(&format!("\"{bypass}\"")) && got[0].contains("BYPASSRLS"),
            "{}",
            got[0]
        );
    }

    // An ordinary app role gets no such warning.
    let (mut a, notices) = connect_capturing_notices(db.config(&app));
    {
        let mut tx = begin_as(&mut a, t.a, None);
        assert!(warnings(&notices).is_empty(), "{:?}", warnings(&notices));
        let n: i64 = tx
            .query_one("SELECT count(*) FROM public.things", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "the app role sees only A's row");
    }
}

#[test]
fn parallel_workers_see_only_the_current_tenant() {
    let (db, app, t) = big_shop("parallel");
    let mut c = db.connect(&app);
    let mut tx = begin_as(&mut c, t.b, None);
    // force_parallel_mode is called debug_parallel_query from PostgreSQL 16 on.
    let version: i32 = tx
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    let force = if version >= 160000 {
        "debug_parallel_query"
    } else {
        "force_parallel_mode"
    };
    tx.batch_execute(&format!(
        "SET LOCAL {force} = on;
         SET LOCAL parallel_setup_cost = 0;
         SET LOCAL parallel_tuple_cost = 0;
         SET LOCAL min_parallel_table_scan_size = 0;
         SET LOCAL max_parallel_workers_per_gather = 2;
         SET LOCAL enable_indexscan = off;
         SET LOCAL enable_indexonlyscan = off;
         SET LOCAL enable_bitmapscan = off;"
    ))
    .unwrap();
    for sql in [
        "SELECT count(*), count(DISTINCT tenant_id), min(tenant_id::text) FROM public.events",
        // current_tenant() called per row inside the workers, not only through the InitPlan.
        "SELECT count(*), count(DISTINCT tenant_id), min(tenant_id::text) FROM public.events
          WHERE tenant_id = tenancy.current_tenant()",
    ] {
        let explain: serde_json::Value = tx
            .query_one(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), &[])
            .unwrap()
            .get(0);
        let mut nodes = Vec::new();
        plan_nodes(&explain[0]["Plan"], &mut nodes);
        let launched: i64 = nodes
            .iter()
            .filter_map(|n| n["Workers Launched"].as_i64())
            .sum();
        assert!(
            launched >= 1,
            "the query ran in parallel workers: {explain}"
        );
        let r = tx.query_one(sql, &[]).unwrap();
        assert_eq!(
            (
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2)
            ),
            (2000, 1, t.b.to_string()),
            "{sql}"
        );
    }
}

struct Ledger {
    db: TestDb,
    app: String,
    t: Tenants,
    manager: Uuid,
    staff: Uuid,
    viewer: Uuid,
}

/// A table isolated with a read and a write permission: `ledger:read` for staff and managers,
/// `ledger:write` for managers only. Two rows of A, one of B.
fn ledger(label: &str) -> Ledger {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let mut su = db.admin();
    let t = two_tenants(&mut su);
    su.batch_execute(
        "INSERT INTO tenancy.permissions (name) VALUES ('ledger:read'), ('ledger:write');
         INSERT INTO tenancy.role_permissions (role, permission) VALUES
             ('staff', 'ledger:read'), ('manager', 'ledger:read'), ('manager', 'ledger:write');
         CREATE TABLE public.ledger (tenant_id uuid NOT NULL, entry text NOT NULL);
         SELECT tenancy.isolate('public.ledger', 'tenant_id', 'ledger:read', 'ledger:write');",
    )
    .unwrap();
    su.execute(
        "INSERT INTO public.ledger VALUES ($1, 'a-1'), ($1, 'a-2'), ($2, 'b-1')",
        &[&t.a, &t.b],
    )
    .unwrap();
    let manager = add_member(&mut su, t.a, "max@store-a.example", "manager");
    let staff = add_member(&mut su, t.a, "sam@store-a.example", "staff");
    let viewer = add_member(&mut su, t.a, "vic@store-a.example", "viewer");
    Ledger {
        db,
        app,
        t,
        manager,
        staff,
        viewer,
    }
}

#[test]
fn isolate_with_read_permission_filters_per_actor_and_per_statement() {
    let l = ledger("permread");
    let (t, manager, staff, viewer) = (&l.t, l.manager, l.staff, l.viewer);
    let mut c = l.db.connect(&l.app);
    let read = "SELECT entry FROM public.ledger ORDER BY entry";

    // With ledger:read A's rows, without it none; B's never.
    for (user, expected) in [
        (Some(manager), vec!["a-1", "a-2"]),
        (Some(staff), vec!["a-1", "a-2"]),
        (Some(viewer), vec![]),
        (None, vec![]),
    ] {
        let mut tx = begin_as(&mut c, t.a, user);
        assert_eq!(notes(&mut tx, read).unwrap(), expected, "{user:?}");
    }

    // A generic plan prepared for the manager does not carry the manager's rights to the viewer.
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let stmt = c.prepare(read).unwrap();
    for (user, expected) in [
        (manager, vec!["a-1", "a-2"]),
        (viewer, vec![]),
        (manager, vec!["a-1", "a-2"]),
    ] {
        let mut tx = begin_as(&mut c, t.a, Some(user));
        let got: Vec<String> = tx
            .query(&stmt, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(got, expected);
    }

    // A grant revoked while a transaction is open applies at its next statement.
    let mut tx = begin_as(&mut c, t.a, Some(staff));
    assert_eq!(tx.query(&stmt, &[]).unwrap().len(), 2);
    l.db.admin()
        .execute(
            "DELETE FROM tenancy.role_permissions WHERE role = 'staff' AND permission = 'ledger:read'",
            &[],
        )
        .unwrap();
    assert!(
        tx.query(&stmt, &[]).unwrap().is_empty(),
        "revoked at the next statement"
    );
}

#[test]
fn isolate_with_write_permission_lets_only_holders_write() {
    let l = ledger("permwrite");
    let (t, manager, staff) = (&l.t, l.manager, l.staff);
    let mut c = l.db.connect(&l.app);
    let all = |l: &Ledger| -> Vec<(Uuid, String)> {
        l.db.admin()
            .query(
                "SELECT tenant_id, entry FROM public.ledger ORDER BY entry",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = all(&l);

    // Staff may read but not write: UPDATE / DELETE see no row, INSERT is refused.
    for (sql, expected) in [
        ("UPDATE public.ledger SET entry = entry || '!'", 0),
        ("DELETE FROM public.ledger", 0),
    ] {
        let mut tx = begin_as(&mut c, t.a, Some(staff));
        assert_eq!(tx.execute(sql, &[]).unwrap(), expected, "{sql}");
        tx.commit().unwrap();
    }
    {
        let mut tx = begin_as(&mut c, t.a, Some(staff));
        assert_sqlstate(
            tx.execute("INSERT INTO public.ledger (entry) VALUES ('a-x')", &[]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_eq!(all(&l), before, "staff changed nothing");

    // The manager holds ledger:write: INSERT, UPDATE and DELETE reach A's rows (never B's).
    let mut tx = begin_as(&mut c, t.a, Some(manager));
    tx.execute("INSERT INTO public.ledger (entry) VALUES ('a-3')", &[])
        .unwrap();
    let updated = tx.execute("UPDATE public.ledger SET entry = entry || '!'", &[]);
    assert_eq!(updated.unwrap(), 3, "the manager updates A's three rows");
    assert_eq!(
        tx.execute("DELETE FROM public.ledger WHERE entry = 'a-1!'", &[])
            .unwrap(),
        1
    );
    tx.commit().unwrap();
    assert_eq!(
        all(&l),
        vec![
            (t.a, "a-2!".to_string()),
            (t.a, "a-3!".to_string()),
            (t.b, "b-1".to_string())
        ]
    );
}

#[test]
fn merge_cannot_touch_another_tenants_rows() {
    let s = shop("merge");
    let before = all_orders(&mut s.db.admin());
    let mut c = s.db.connect(&s.app);
    let b1 = s.b_rows[0];
    let merge_on = |action: &str| {
        format!(
            "MERGE INTO public.orders o USING (SELECT $1::uuid AS id) src ON o.id = src.id
             WHEN MATCHED THEN {action}"
        )
    };

    // B's row never matches under A: nothing is updated or deleted.
    for action in ["UPDATE SET note = 'merged'", "DELETE"] {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_eq!(
            tx.execute(&merge_on(action), &[&b1]).unwrap(),
            0,
            "{action}"
        );
        tx.commit().unwrap();
    }
    // Inserting a row for B through MERGE is refused.
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(
            tx.execute(
                "MERGE INTO public.orders o USING (SELECT gen_random_uuid() AS id) src ON o.id = src.id
                 WHEN NOT MATCHED THEN INSERT (id, tenant_id, note) VALUES (src.id, $1, 'planted')",
                &[&s.t.b],
            ),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    // Without a context MERGE fails closed.
    assert_sqlstate(
        c.execute(&merge_on("UPDATE SET note = 'merged'"), &[&b1]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_eq!(
        all_orders(&mut s.db.admin()),
        before,
        "B's rows are untouched"
    );

    // A's own row does match.
    let mut tx = begin_as(&mut c, s.t.a, None);
    let a1 = s.a_rows[0];
    assert_eq!(
        tx.execute(&merge_on("UPDATE SET note = 'a-1 merged'"), &[&a1])
            .unwrap(),
        1
    );
    tx.commit().unwrap();
    assert!(all_orders(&mut s.db.admin()).contains(&(a1, s.t.a, "a-1 merged".to_string())));
}

#[test]
fn leaky_functions_see_only_the_current_tenants_rows() {
    let s = shop("leaky");
    let (mut c, notices) = connect_capturing_notices(s.db.config(&s.app));
    // A cheap function that prints its argument is the classic way to make a WHERE clause leak
    // rows a policy filters. An app role cannot create one (not even in its temporary schema)...
    assert_sqlstate(
        c.batch_execute(
            "CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
             AS $$ BEGIN RAISE NOTICE 'leak:%', $1; RETURN true; END $$",
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // ... but it may call one that exists, and it must see only its own tenant's rows.
    s.db.admin()
        .batch_execute(
            "CREATE FUNCTION public.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
             AS $$ BEGIN RAISE NOTICE 'leak:%', $1; RETURN true; END $$;
             GRANT EXECUTE ON FUNCTION public.leak(text) TO PUBLIC;",
        )
        .unwrap();
    let mut tx = begin_as(&mut c, s.t.a, None);
    let rows = notes(
        &mut tx,
        "SELECT note FROM public.orders WHERE public.leak(note) ORDER BY note",
    )
    .unwrap();
    assert_eq!(rows, vec!["a-1", "a-2"]);
    let b1 = s.b_rows[0];
    assert!(tx
        .query(
            "SELECT note FROM public.orders WHERE public.leak(note) AND id = $1",
            &[&b1]
        )
        .unwrap()
        .is_empty());
    tx.commit().unwrap();
    let mut leaked: Vec<String> = notices
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| n.message().strip_prefix("leak:").map(str::to_string))
        .collect();
    leaked.sort();
    leaked.dedup();
    assert_eq!(leaked, vec!["a-1", "a-2"], "the function saw only A's rows");
}

#[test]
fn partitioned_table_is_isolated_through_its_parent() {
    let mut db = TestDb::new("partitioned");
    let app = db.login_role("app", "tenancy_app");
    let mut su = db.admin();
    let t = two_tenants(&mut su);
    su.batch_execute(
        "CREATE TABLE public.visits (tenant_id uuid NOT NULL, day date NOT NULL, n int NOT NULL)
             PARTITION BY RANGE (day);
         CREATE TABLE public.visits_2025 PARTITION OF public.visits
             FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE public.visits_2026 PARTITION OF public.visits
             FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         SELECT tenancy.isolate('public.visits');",
    )
    .unwrap();
    su.execute(
        "INSERT INTO public.visits VALUES ($1, '2025-06-01', 1), ($1, '2026-06-01', 2),
                                          ($2, '2025-06-01', 10), ($2, '2026-06-01', 20)",
        &[&t.a, &t.b],
    )
    .unwrap();
    let mut c = db.connect(&app);
    let total = "SELECT coalesce(sum(n), 0)::int FROM public.visits";
    assert_sqlstate(
        c.query_one(total, &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        c.query_one(
            "SELECT count(*) FROM public.visits WHERE day >= '2026-01-01'",
            &[],
        ),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    for (tenant, expected) in [(t.a, 3), (t.b, 30)] {
        let mut tx = begin_as(&mut c, tenant, None);
        let got: i32 = tx.query_one(total, &[]).unwrap().get(0);
        assert_eq!(got, expected);
        let n = tx
            .execute(
                "UPDATE public.visits SET n = n + 100 WHERE tenant_id <> $1",
                &[&tenant],
            )
            .unwrap();
        assert_eq!(n, 0);
        tx.commit().unwrap();
    }
    // The partitions themselves are not reachable for the app role (grants stay on the parent).
    assert_sqlstate(
        c.query("SELECT * FROM public.visits_2025", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    let n: i64 = su
        .query_one("SELECT sum(n) FROM public.visits", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 33, "nothing changed");
}

/// EXPLAIN ANALYZE reports "Rows Removed by Filter", which counts other tenants' rows matching
/// any condition: an oracle on their data. It is refused to application roles; plain EXPLAIN
/// is not.
#[test]
fn explain_analyze_is_refused_to_app_roles() {
    let s = shop("explainanalyze");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, None);
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.query(
            "EXPLAIN (ANALYZE) SELECT * FROM public.orders WHERE note = 'b-1'",
            &[],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.query("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM tenancy.members WHERE email = 'owner-b@example.com'", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    assert!(!tx
        .query(
            "EXPLAIN SELECT * FROM public.orders WHERE note = 'b-1'",
            &[]
        )
        .unwrap()
        .is_empty());
    // Nor do WITH HOLD cursors (their rows outlive the context) or table locks (they block
    // every tenant).
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.batch_execute("DECLARE h CURSOR WITH HOLD FOR SELECT * FROM public.orders"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.batch_execute("LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    // Nor temporary relations: one named like an application table would shadow it for the next
    // client of a pooled connection.
    for sql in [
        "CREATE TEMP TABLE orders (id uuid, tenant_id uuid, note text)",
        "CREATE TABLE pg_temp.orders (id uuid)",
        "CREATE TEMP TABLE o2 AS SELECT * FROM public.orders",
        "SELECT * INTO TEMP o3 FROM public.orders",
        "CREATE TEMP VIEW orders AS SELECT 1 AS id",
        "CREATE TEMP SEQUENCE s1",
    ] {
        let mut sp = tx.transaction().unwrap();
        assert_sqlstate(sp.batch_execute(sql), &SqlState::INSUFFICIENT_PRIVILEGE);
        sp.rollback().unwrap();
    }
    tx.rollback().unwrap();
}

/// A statement that has read the context cannot switch it midway, so no statement ever sees
/// two tenants; nor can the context change under an open cursor.
#[test]
fn a_statement_cannot_switch_tenants_midway() {
    let s = shop("midway");
    let mut admin = s.db.admin();
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION public.switch_to(t uuid) RETURNS text LANGUAGE plpgsql AS
               $f$BEGIN PERFORM tenancy.clear_context(); PERFORM tenancy.set_tenant(t); RETURN ''; END$f$;
             GRANT EXECUTE ON FUNCTION public.switch_to(uuid) TO {}",
            s.app
        ))
        .unwrap();
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, None);
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.query(
            "UPDATE public.orders SET tenant_id = $1, note = note || public.switch_to($1)
              WHERE note = 'a-1' RETURNING id",
            &[&s.t.b],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.query(
            "SELECT (SELECT count(*) FROM public.orders), tenancy.clear_context(),
                    tenancy.set_tenant($1), (SELECT count(*) FROM public.orders)",
            &[&s.t.b],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    // Under an open cursor.
    tx.batch_execute("DECLARE c CURSOR FOR SELECT note FROM public.orders ORDER BY note")
        .unwrap();
    tx.query("FETCH 1 FROM c", &[]).unwrap();
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.execute("SELECT tenancy.clear_context()", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    tx.batch_execute("CLOSE c").unwrap();
    // In statements of their own, switching works.
    tx.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.t.b])
        .unwrap();
    let notes = notes(&mut tx, "SELECT note FROM public.orders ORDER BY note").unwrap();
    assert_eq!(notes, vec!["b-1", "b-2"]);
    tx.rollback().unwrap();
    // Nothing moved.
    assert_eq!(
        all_orders(&mut admin)
            .iter()
            .filter(|r| r.1 == s.t.b)
            .count(),
        2
    );
}
