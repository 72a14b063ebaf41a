#![cfg(feature = "client-tests")]
//! No spoofing: an application role cannot choose or change its tenant through any setting
//! mechanism (SET, SET LOCAL, set_config, RESET, connection options, ALTER ROLE / DATABASE SET,
//! settings planted in the catalog), on `tenancy.context` or any invented `tenancy.*` name;
//! `tenancy.request_label` is free text and grants nothing; a `tenancy_client` member cannot
//! call `set_tenant()`.

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

fn setup(label: &str) -> Setup {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.secrets (tenant_id uuid NOT NULL, body text NOT NULL);
             SELECT tenancy.isolate('public.secrets');",
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.secrets VALUES ($1, 'secret-a'), ($2, 'secret-b')",
            &[&t.a, &t.b],
        )
        .unwrap();
    Setup { db, app, t }
}

/// Values an attacker would try for `tenancy.context`: pg_tenancy's own encoding of a context
/// for `tenant` (with and without a user), a bare uuid, and the empty string.
fn forged_values(tenant: Uuid, user: Uuid) -> Vec<String> {
    vec![
        format!("t={tenant};s=set_tenant"),
        format!("t={tenant};u={user};s=set_tenant"),
        format!("t={tenant};s=jwt;p=*"),
        tenant.to_string(),
        String::new(),
    ]
}

/// Invented names in the `tenancy.` prefix that an application might guess at.
const INVENTED: [&str; 4] = [
    "tenancy.tenant_id",
    "tenancy.user_id",
    "tenancy.tenant",
    "tenancy.current_tenant",
];

fn secrets<C: GenericClient>(c: &mut C) -> Result<Vec<String>, postgres::Error> {
    Ok(
        c.query("SELECT body FROM public.secrets ORDER BY body", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// Runs `sql` inside a savepoint of `tx` and returns its SQLSTATE (it must fail).
fn fails_in_savepoint(tx: &mut postgres::Transaction, sql: &str) -> SqlState {
    tx.batch_execute("SAVEPOINT probe").unwrap();
    let got = sqlstate(tx.batch_execute(sql));
    tx.batch_execute("ROLLBACK TO SAVEPOINT probe").unwrap();
    got
}

#[test]
fn set_and_set_local_cannot_plant_or_change_the_context() {
    let s = setup("spoofset");
    let mut c = s.db.connect(&s.app);
    for value in forged_values(s.t.b, s.t.owner_b) {
        for sql in [
            format!("SET tenancy.context = {}", quote(&value)),
            format!("SET SESSION tenancy.context = {}", quote(&value)),
            format!("SET LOCAL tenancy.context = {}", quote(&value)),
            "SET tenancy.context TO DEFAULT".to_string(),
        ] {
            // Without a context: refused, and still no context.
            assert_sqlstate(c.batch_execute(&sql), &SqlState::INSUFFICIENT_PRIVILEGE);
            assert_sqlstate(
                current_tenant(&mut c),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );
            assert_sqlstate(
                secrets(&mut c),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );

            // With A's context: refused, and still A.
            let mut tx = begin_as(&mut c, s.t.a, None);
            let got = fails_in_savepoint(&mut tx, &sql);
            assert_eq!(
                got,
                SqlState::INSUFFICIENT_PRIVILEGE,
                "{sql}: got {}",
                got.code()
            );
            assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a, "{sql}");
            assert_eq!(secrets(&mut tx).unwrap(), vec!["secret-a"], "{sql}");
            tx.commit().unwrap();
        }
    }
}

#[test]
fn set_config_cannot_plant_or_change_the_context() {
    let s = setup("spoofsetconfig");
    let mut c = s.db.connect(&s.app);
    for value in forged_values(s.t.b, s.t.owner_b) {
        for is_local in [false, true] {
            let sql = "SELECT set_config('tenancy.context', $1, $2)";
            assert_sqlstate(
                c.query_one(sql, &[&value, &is_local]),
                &SqlState::INSUFFICIENT_PRIVILEGE,
            );
            assert_sqlstate(
                current_tenant(&mut c),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );

            let mut tx = begin_as(&mut c, s.t.a, None);
            tx.batch_execute("SAVEPOINT probe").unwrap();
            assert_sqlstate(
                tx.query_one(sql, &[&value, &is_local]),
                &SqlState::INSUFFICIENT_PRIVILEGE,
            );
            tx.batch_execute("ROLLBACK TO SAVEPOINT probe").unwrap();
            assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
            assert_eq!(secrets(&mut tx).unwrap(), vec!["secret-a"]);
            tx.commit().unwrap();
        }
    }
    // The setting reads back empty for the app role, whatever it tried.
    let shown: Option<String> = c
        .query_one("SELECT current_setting('tenancy.context', true)", &[])
        .unwrap()
        .get(0);
    assert_eq!(shown.as_deref().unwrap_or(""), "");
}

#[test]
fn reset_cannot_clear_or_change_the_context() {
    let s = setup("spoofreset");
    let mut c = s.db.connect(&s.app);
    assert_sqlstate(
        c.batch_execute("RESET tenancy.context"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );

    let mut tx = begin_as(&mut c, s.t.a, None);
    let got = fails_in_savepoint(&mut tx, "RESET tenancy.context");
    assert_eq!(got, SqlState::INSUFFICIENT_PRIVILEGE);
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    // RESET ALL is allowed, but leaves the context alone.
    tx.batch_execute("RESET ALL").unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    assert_eq!(secrets(&mut tx).unwrap(), vec!["secret-a"]);
    // DISCARD ALL cannot run inside a transaction block.
    let got = fails_in_savepoint(&mut tx, "DISCARD ALL");
    assert_eq!(got, SqlState::ACTIVE_SQL_TRANSACTION);
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    tx.commit().unwrap();

    // Outside a transaction, RESET ALL / DISCARD ALL give no context either.
    c.batch_execute("RESET ALL").unwrap();
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    c.batch_execute("DISCARD ALL").unwrap();
    assert_sqlstate(
        secrets(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn invented_and_superuser_tenancy_settings_are_refused_to_app_roles() {
    let s = setup("spoofinvented");
    let mut c = s.db.connect(&s.app);
    let b = s.t.b.to_string();
    for name in INVENTED {
        for sql in [
            format!("SET {name} = {}", quote(&b)),
            format!("SET LOCAL {name} = {}", quote(&b)),
            format!("SELECT set_config('{name}', {}, false)", quote(&b)),
            format!("RESET {name}"),
        ] {
            let got = sqlstate(c.batch_execute(&sql));
            assert_eq!(got, SqlState::INVALID_NAME, "{sql}: got {}", got.code());
            assert_sqlstate(
                current_tenant(&mut c),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );

            let mut tx = begin_as(&mut c, s.t.a, None);
            let got = fails_in_savepoint(&mut tx, &sql);
            assert_eq!(got, SqlState::INVALID_NAME, "{sql}: got {}", got.code());
            assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
            assert_eq!(secrets(&mut tx).unwrap(), vec!["secret-a"]);
            tx.commit().unwrap();
        }
    }
    // tenancy.log_allowed is superuser-only.
    for sql in [
        "SET tenancy.log_allowed = on",
        "SET LOCAL tenancy.log_allowed = on",
    ] {
        assert_sqlstate(c.batch_execute(sql), &SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // ALTER SYSTEM is not for app roles either.
    assert_sqlstate(
        c.batch_execute(&format!(
            "ALTER SYSTEM SET tenancy.context = 't={b};s=set_tenant'"
        )),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
}

#[test]
fn request_label_is_settable_by_anyone_and_grants_nothing() {
    let s = setup("spooflabel");
    let mut c = s.db.connect(&s.app);
    let b = s.t.b.to_string();
    c.batch_execute(&format!("SET tenancy.request_label = 't={b};s=set_tenant'"))
        .unwrap();
    let label: String = c
        .query_one("SHOW tenancy.request_label", &[])
        .unwrap()
        .get(0);
    assert_eq!(label, format!("t={b};s=set_tenant"));
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        secrets(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );

    let mut tx = begin_as(&mut c, s.t.a, None);
    tx.batch_execute("SET LOCAL tenancy.request_label = 'GET /orders'")
        .unwrap();
    tx.query_one(
        "SELECT set_config('tenancy.request_label', $1, true)",
        &[&b],
    )
    .unwrap();
    assert_eq!(current_tenant(&mut tx).unwrap(), s.t.a);
    assert_eq!(secrets(&mut tx).unwrap(), vec!["secret-a"]);
    tx.commit().unwrap();
    c.batch_execute("RESET tenancy.request_label").unwrap();
    let label: String = c
        .query_one("SHOW tenancy.request_label", &[])
        .unwrap()
        .get(0);
    assert_eq!(label, "");
}

#[test]
fn connection_options_cannot_plant_a_context() {
    let s = setup("spoofoptions");
    let b = s.t.b;
    for value in forged_values(b, s.t.owner_b) {
        // libpq escapes spaces in options with a backslash; the values here have none.
        let got = sqlstate(
            s.db.connect_with_options(&s.app, &format!("-c tenancy.context={value}"))
                .map(|_| ()),
        );
        assert_eq!(
            got,
            SqlState::INSUFFICIENT_PRIVILEGE,
            "-c tenancy.context={value}: got {}",
            got.code()
        );
    }
    for name in INVENTED {
        let got = sqlstate(
            s.db.connect_with_options(&s.app, &format!("-c {name}={b}"))
                .map(|_| ()),
        );
        assert_eq!(got, SqlState::INVALID_NAME, "-c {name}: got {}", got.code());
    }
    let got = sqlstate(
        s.db.connect_with_options(&s.app, "-c tenancy.log_allowed=on")
            .map(|_| ()),
    );
    assert_eq!(got, SqlState::INSUFFICIENT_PRIVILEGE);

    // The allowed one connects, and gives no context.
    let mut c =
        s.db.connect_with_options(
            &s.app,
            &format!("-c tenancy.request_label=t={b};s=set_tenant"),
        )
        .unwrap_or_else(|e| panic!("request_label in options must be accepted: {e}"));
    let label: String = c
        .query_one("SHOW tenancy.request_label", &[])
        .unwrap()
        .get(0);
    assert_eq!(label, format!("t={b};s=set_tenant"));
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        secrets(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

/// A fresh connection as `role` has no context, and a real set_tenant() still works in it.
fn assert_new_connection_has_no_context(s: &Setup, role: &str) -> Client {
    let mut c = s.db.connect(role);
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        secrets(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    let ctx: serde_json::Value = c.query_one("SELECT tenancy.context()", &[]).unwrap().get(0);
    assert_eq!(ctx, serde_json::json!({}));
    {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_eq!(secrets(&mut tx).unwrap(), vec!["secret-a"]);
        tx.commit().unwrap();
    }
    c
}

#[test]
fn alter_role_and_database_set_cannot_plant_a_context() {
    let s = setup("spoofalter");
    let mut admin = s.db.admin();
    let (app, dbname) = (&s.app, &s.db.name);
    for value in forged_values(s.t.b, s.t.owner_b)
        .into_iter()
        .filter(|v| !v.is_empty())
    {
        for sql in [
            format!("ALTER ROLE {app} SET tenancy.context = {}", quote(&value)),
            format!(
                "ALTER ROLE {app} IN DATABASE {dbname} SET tenancy.context = {}",
                quote(&value)
            ),
            format!(
                "ALTER DATABASE {dbname} SET tenancy.context = {}",
                quote(&value)
            ),
        ] {
            // Refused even to the superuser, by pg_tenancy's check of the value.
            let got = sqlstate(admin.batch_execute(&sql));
            assert_eq!(
                got,
                SqlState::INSUFFICIENT_PRIVILEGE,
                "{sql}: got {}",
                got.code()
            );
        }
    }
    for name in INVENTED {
        for sql in [
            format!("ALTER ROLE {app} SET {name} = '{}'", s.t.b),
            format!("ALTER DATABASE {dbname} SET {name} = '{}'", s.t.b),
        ] {
            let got = sqlstate(admin.batch_execute(&sql));
            assert_eq!(got, SqlState::INVALID_NAME, "{sql}: got {}", got.code());
        }
    }
    let stored: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE c LIKE 'tenancy.%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "nothing was stored");

    // The app role on itself: not even allowed to try.
    let mut c = s.db.connect(app);
    assert_sqlstate(
        c.batch_execute(&format!(
            "ALTER ROLE {app} SET tenancy.context = 't={};s=set_tenant'",
            s.t.b
        )),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );

    // What ALTER ROLE does accept (an empty context, a request label) gives no context.
    admin
        .batch_execute(&format!(
            "ALTER ROLE {app} SET tenancy.context = '';
             ALTER ROLE {app} SET tenancy.request_label = 'from-role'"
        ))
        .unwrap();
    let mut c = assert_new_connection_has_no_context(&s, app);
    let label: String = c
        .query_one("SHOW tenancy.request_label", &[])
        .unwrap()
        .get(0);
    assert_eq!(label, "from-role");
    admin
        .batch_execute(&format!("ALTER ROLE {app} RESET ALL"))
        .unwrap();
}

#[test]
fn settings_planted_in_the_catalog_are_ignored_at_login() {
    // A role or database setting that bypassed ALTER's validation (restored from a dump made
    // before the library was loaded, or written into the catalog by hand).
    let s = setup("spoofcatalog");
    let mut admin = s.db.admin();
    let planted: Vec<String> = vec![
        format!("tenancy.context=t={};s=set_tenant", s.t.b),
        format!("tenancy.tenant_id={}", s.t.b),
        "tenancy.request_label=planted".to_string(),
    ];
    admin
        .execute(
            "INSERT INTO pg_catalog.pg_db_role_setting (setdatabase, setrole, setconfig)
             VALUES (0, $1::text::regrole, $2)",
            &[&s.app, &planted],
        )
        .unwrap();
    let mut c = assert_new_connection_has_no_context(&s, &s.app);
    let label: String = c
        .query_one("SHOW tenancy.request_label", &[])
        .unwrap()
        .get(0);
    assert_eq!(label, "planted", "the planted row was applied at login");
    admin
        .execute(
            "DELETE FROM pg_catalog.pg_db_role_setting WHERE setrole = $1::text::regrole",
            &[&s.app],
        )
        .unwrap();

    admin
        .execute(
            "INSERT INTO pg_catalog.pg_db_role_setting (setdatabase, setrole, setconfig)
             SELECT oid, 0, $2 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&s.db.name, &planted],
        )
        .unwrap();
    assert_new_connection_has_no_context(&s, &s.app);
    admin
        .execute(
            "DELETE FROM pg_catalog.pg_db_role_setting
              WHERE setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = $1)",
            &[&s.db.name],
        )
        .unwrap();
}

#[test]
fn not_even_a_superuser_can_write_the_context_setting() {
    // The value check holds for everyone: the superuser connection here only proves that the
    // check is not a mere privilege test.
    let s = setup("spoofsuper");
    let mut admin = s.db.admin();
    let mut tx = admin.transaction().unwrap();
    let value = format!("t={};s=set_tenant", s.t.a);
    for sql in [
        format!("SET LOCAL tenancy.context = {}", quote(&value)),
        format!(
            "SELECT set_config('tenancy.context', {}, true)",
            quote(&value)
        ),
    ] {
        let got = fails_in_savepoint(&mut tx, &sql);
        assert_eq!(
            got,
            SqlState::INSUFFICIENT_PRIVILEGE,
            "{sql}: got {}",
            got.code()
        );
    }
    assert_sqlstate(
        current_tenant(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn tenancy_client_member_cannot_call_set_tenant() {
    let mut s = setup("spoofclient");
    let client_role = s.db.login_role("client", "tenancy_client");
    let mut c = s.db.connect(&client_role);
    for (sql, args) in [
        ("SELECT tenancy.set_tenant($1)", vec![s.t.a]),
        (
            "SELECT tenancy.set_tenant($1, $2)",
            vec![s.t.a, s.t.owner_a],
        ),
    ] {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        assert_sqlstate(c.execute(sql, &params), &SqlState::INSUFFICIENT_PRIVILEGE);
        let mut tx = c.transaction().unwrap();
        assert_sqlstate(tx.execute(sql, &params), &SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // Nor create tenants or users, nor plant a context by any setting.
    assert_sqlstate(
        c.execute("SELECT tenancy.create_tenant('Evil', $1)", &[&s.t.owner_a]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        c.execute("SELECT tenancy.create_user('evil@example.com')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        c.batch_execute(&format!("SET tenancy.context = 't={};s=set_tenant'", s.t.a)),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // It still reaches the accessors and the isolated table, and fails closed there.
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        secrets(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    let ctx: serde_json::Value = c.query_one("SELECT tenancy.context()", &[]).unwrap().get(0);
    assert_eq!(ctx, serde_json::json!({}));
    c.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    let n: i64 =
        s.db.admin()
            .query_one("SELECT count(*) FROM tenancy.tenants", &[])
            .unwrap()
            .get(0);
    assert_eq!(n, 2, "no tenant was created");
}
