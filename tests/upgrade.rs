#![cfg(feature = "client-tests")]
//! Upgrades and dumps. A database created at each released version (0.1.0, 0.2.0) with tenants,
//! members, invitations, tokens, isolated tables and users' own grants is updated with
//! `ALTER EXTENSION pg_tenancy UPDATE`: the data, the grants and isolation survive, and the
//! extension's objects equal those of a fresh install of the current version. The pg_tenancy
//! tables also survive `pg_dump` / `pg_restore`.
//!
//! `make install` installs the current version's install script and every upgrade script; the
//! released install scripts (`sql/pg_tenancy--X.Y.Z.sql`) are test fixtures, copied into the
//! extension directory of the PostgreSQL under test (`PG_CONFIG`) here.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use postgres::Client;
use uuid::Uuid;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn pg_bin() -> String {
    std::env::var("PG_BIN").unwrap_or_else(|_| PG_BIN.to_string())
}

/// Puts the released install script of `version` into the extension directory of the
/// PostgreSQL under test, so that `CREATE EXTENSION … VERSION` can use it.
fn install_released_script(version: &str) {
    let file = format!("pg_tenancy--{version}.sql");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join(&file);
    let pg_config =
        std::env::var("PG_CONFIG").unwrap_or_else(|_| format!("{}/pg_config", pg_bin()));
    let out = Command::new(&pg_config)
        .arg("--sharedir")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {pg_config}: {e}"));
    let sharedir = String::from_utf8(out.stdout).unwrap();
    let target = std::path::Path::new(sharedir.trim())
        .join("extension")
        .join(&file);
    let wanted = std::fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    if std::fs::read(&target).ok().as_deref() != Some(&wanted[..]) {
        std::fs::write(&target, &wanted)
            .unwrap_or_else(|e| panic!("cannot install {}: {e}", target.display()));
    }
}

/// A database with the extension at `version` (None: the default, i.e. current, version).
fn database(label: &str, version: Option<&str>) -> TestDb {
    if let Some(v) = version {
        install_released_script(v);
    }
    let db = TestDb::new_without_extension(label);
    let sql = match version {
        Some(v) => format!("CREATE EXTENSION pg_tenancy VERSION '{v}'"),
        None => "CREATE EXTENSION pg_tenancy".to_string(),
    };
    db.admin().batch_execute(&sql).unwrap();
    db
}

/// Everything the extension consists of, in a comparable form: each member object with its
/// definition (functions), columns and constraints (tables), policies, view text, and ACLs.
fn extension_objects(c: &mut Client) -> BTreeSet<String> {
    let queries = [
        // Members of the extension.
        "SELECT pg_describe_object(classid, objid, objsubid)
           FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
          WHERE e.extname = 'pg_tenancy' AND d.deptype = 'e'",
        // Function signatures, bodies, attributes and grants.
        "SELECT p.oid::regprocedure::text || ' ' || pg_get_functiondef(p.oid) || ' acl=' ||
                coalesce(array_to_string(ARRAY(SELECT a::text FROM unnest(p.proacl) a ORDER BY 1), ','), '')
           FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prokind IN ('f', 'p')",
        // Columns.
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
                ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') ||
                ' identity=' || a.attidentity::text
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
           LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
          WHERE c.relnamespace = 'tenancy'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped",
        // Constraints and indexes.
        "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
           FROM pg_constraint WHERE connamespace = 'tenancy'::regnamespace",
        "SELECT indexrelid::regclass::text || ' ' || pg_get_indexdef(indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          WHERE c.relnamespace = 'tenancy'::regnamespace",
        // Relations: kind, RLS flags, options, ACLs; views' text.
        "SELECT c.relname || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity || ' force=' ||
                c.relforcerowsecurity || ' opts=' || coalesce(array_to_string(c.reloptions, ','), '') ||
                ' acl=' || coalesce(array_to_string(ARRAY(SELECT a::text FROM unnest(c.relacl) a ORDER BY 1), ','), '') ||
                ' def=' || coalesce(pg_get_viewdef(c.oid), '')
           FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S')",
        // Policies on pg_tenancy's tables.
        "SELECT tablename || ' ' || policyname || ' ' || permissive || ' ' || roles::text || ' ' ||
                cmd || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '')
           FROM pg_policies WHERE schemaname = 'tenancy'",
        // Triggers on pg_tenancy's tables (cache invalidation), with their firing mode.
        "SELECT c.relname || ' ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          WHERE c.relnamespace = 'tenancy'::regnamespace AND NOT t.tgisinternal",
        // Event triggers.
        "SELECT evtname || ' ' || evtevent || ' ' || evtfoid::regproc::text || ' ' || evtenabled::text || ' ' ||
                coalesce(array_to_string(evttags, ','), '')
           FROM pg_event_trigger",
    ];
    let mut out = BTreeSet::new();
    for q in queries {
        for row in c.query(q, &[]).unwrap() {
            out.insert(row.get::<_, String>(0));
        }
    }
    out
}

/// Tenants, members, an invitation, an API token, an isolated table and users' own grants.
struct Fixture {
    app: String,
    migrator: String,
    t: Tenants,
    token: String,
}

fn populate(db: &mut TestDb) -> Fixture {
    let app = db.login_role("app", "tenancy_app");
    let migrator = db.login_role("mig", "tenancy_app");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(&format!(
            "CREATE TABLE public.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                         tenant_id uuid NOT NULL, note text);
             SELECT tenancy.isolate('public.orders');
             -- A user's own grants on pg_tenancy objects must survive the update.
             GRANT EXECUTE ON FUNCTION tenancy.isolate(regclass, name, text, text) TO {migrator};
             GRANT SELECT ON tenancy.isolated_tables TO {migrator};"
        ))
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.orders (tenant_id, note) VALUES ($1, 'a-1'), ($2, 'b-1')",
            &[&t.a, &t.b],
        )
        .unwrap();
    let mut c = db.connect(&app);
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&t.a, &t.owner_a])
        .unwrap();
    tx.query(
        "SELECT * FROM tenancy.invite('ana@example.com', 'staff')",
        &[],
    )
    .unwrap();
    let token: String = tx
        .query_one(
            "SELECT token FROM tenancy.create_api_token('ci', ARRAY['orders:read'])",
            &[],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    Fixture {
        app,
        migrator,
        t,
        token,
    }
}

/// What an application sees: its tenant's rows through a context, and a token that works.
fn check_isolation(db: &TestDb, f: &Fixture) {
    let mut c = db.connect(&f.app);
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&f.t.a])
        .unwrap();
    let notes: Vec<String> = tx
        .query("SELECT note FROM public.orders", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes, vec!["a-1"]);
    tx.rollback().unwrap();
    assert_sqlstate(
        c.query("SELECT note FROM public.orders", &[]),
        &postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&f.token])
        .unwrap();
    let tenant: Uuid = tx
        .query_one("SELECT tenancy.current_tenant()", &[])
        .unwrap()
        .get(0);
    assert_eq!(tenant, f.t.a);
    tx.rollback().unwrap();
}

fn counts(admin: &mut Client) -> Vec<i64> {
    [
        "tenancy.tenants",
        "tenancy.users",
        "tenancy.memberships",
        "tenancy.invitations",
        "tenancy.api_tokens",
        "tenancy.signing_keys",
        "tenancy.isolation_registry",
        "public.orders",
    ]
    .iter()
    .map(|t| {
        admin
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0)
    })
    .collect()
}

#[test]
fn update_from_0_1_0_keeps_data_grants_and_isolation_and_equals_a_fresh_install() {
    update_keeps_data_grants_and_isolation_and_equals_a_fresh_install("0.1.0");
}

#[test]
fn update_from_0_2_0_keeps_data_grants_and_isolation_and_equals_a_fresh_install() {
    update_keeps_data_grants_and_isolation_and_equals_a_fresh_install("0.2.0");
}

fn update_keeps_data_grants_and_isolation_and_equals_a_fresh_install(from: &str) {
    let mut old = database("upgrade", Some(from));
    let f = populate(&mut old);
    let mut admin = old.admin();
    let before = counts(&mut admin);
    admin
        .batch_execute("ALTER EXTENSION pg_tenancy UPDATE")
        .unwrap();
    let version: String = admin
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'",
            &[],
        )
        .unwrap()
        .get(0);
    let default: String = admin
        .query_one(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_tenancy'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, default);
    assert_ne!(version, from);
    assert_eq!(counts(&mut admin), before, "rows changed in the update");

    // The users' grants survived.
    for (sql, what) in [
        ("SELECT has_function_privilege($1, 'tenancy.isolate(regclass, name, text, text)', 'EXECUTE')", "EXECUTE on isolate"),
        ("SELECT has_table_privilege($1, 'tenancy.isolated_tables', 'SELECT')", "SELECT on isolated_tables"),
    ] {
        let ok: bool = admin.query_one(sql, &[&f.migrator]).unwrap().get(0);
        assert!(ok, "{what} was lost in the update");
    }
    check_isolation(&old, &f);

    // The updated extension is the current version's, object for object. The user's grants
    // are the only difference, so they are revoked here before comparing.
    admin
        .batch_execute(&format!(
            "REVOKE EXECUTE ON FUNCTION tenancy.isolate(regclass, name, text, text) FROM {m};
             REVOKE SELECT ON tenancy.isolated_tables FROM {m};",
            m = f.migrator
        ))
        .unwrap();
    let fresh = database("fresh", None);
    let (updated, installed) = (
        extension_objects(&mut admin),
        extension_objects(&mut fresh.admin()),
    );
    let missing: Vec<_> = installed.difference(&updated).collect();
    let extra: Vec<_> = updated.difference(&installed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "after the update\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
}

#[test]
fn pg_tenancy_tables_survive_dump_and_restore() {
    let mut src = database("dump", None);
    let f = populate(&mut src);
    let before = counts(&mut src.admin());
    let dump = std::env::temp_dir().join(format!("tenancy_dump_{}.pgdump", src.suffix));
    let port = port().to_string();
    let status = Command::new(format!("{}/pg_dump", pg_bin()))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-Fc",
            "-f",
        ])
        .arg(&dump)
        .arg(&src.name)
        .status()
        .unwrap();
    assert!(status.success(), "pg_dump failed");

    let dst = TestDb::new_without_extension("restore");
    let output = Command::new(format!("{}/pg_restore", pg_bin()))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "--exit-on-error",
            "-d",
            &dst.name,
        ])
        .arg(&dump)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dump);
    assert!(
        output.status.success(),
        "pg_restore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        counts(&mut dst.admin()),
        before,
        "rows differ after the restore"
    );
    // Nothing was seeded twice, and isolation and tokens work in the restored database.
    let dup: i64 = dst
        .admin()
        .query_one(
            "SELECT count(*) - count(DISTINCT (role, permission)) FROM tenancy.role_permissions",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dup, 0);
    check_isolation(&dst, &f);
}
