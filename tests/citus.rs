#![cfg(feature = "client-tests")]
//! pg_tenancy on Citus: a coordinator and two workers on loopback ports, started by this test,
//! every node preloading `citus,pg_tenancy` with the same `tenancy.cluster_secret`. Everything is
//! asserted as login roles in `tenancy_app` / `tenancy_client` through the coordinator (and,
//! where an attacker would try it, connected to a worker directly).
//!
//! Citus is not in the package registries: these tests run when `citus.so` is installed in the
//! PostgreSQL under test, and say that they were skipped otherwise (`make test-citus` sets
//! `TENANCY_REQUIRE_CITUS=1` and fails instead).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use uuid::Uuid;

const SECRET: &str = "citus-test-cluster-secret-0123456789abcdef";
const COORDINATOR: u16 = 29701;
const WORKERS: [u16; 2] = [29702, 29703];

fn pg_bin() -> PathBuf {
    PathBuf::from(std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()))
}

/// Whether citus.so is installed in the PostgreSQL under test.
fn citus_installed() -> bool {
    let out = Command::new(pg_bin().join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .expect("pg_config runs");
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    PathBuf::from(libdir).join("citus.so").exists()
}

fn as_postgres(program: &PathBuf) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

/// The three nodes, started once for the whole test binary and stopped at its end.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clusters/citus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        for port in std::iter::once(COORDINATOR).chain(WORKERS) {
            let data = dir.join(format!("node{port}"));
            let ok = as_postgres(&pg_bin().join("initdb"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "-D",
                ])
                .arg(&data)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "initdb failed for node {port}");
            let conf = format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
                 shared_preload_libraries = 'citus,pg_tenancy'\n\
                 tenancy.cluster_secret = '{SECRET}'\nmax_connections = 150\nfsync = off\n\
                 synchronous_commit = off\nmax_prepared_transactions = 100\n\
                 citus.shard_count = 8\n",
                data.display()
            );
            let path = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str(&conf);
            std::fs::write(&path, text).unwrap();
            let ok = as_postgres(&pg_bin().join("pg_ctl"))
                .args(["-w", "-t", "60", "-l"])
                .arg(data.join("server.log"))
                .arg("-D")
                .arg(&data)
                .arg("start")
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "node {port} did not start");
        }
        for port in std::iter::once(COORDINATOR).chain(WORKERS) {
            node(port, "postgres")
                .batch_execute("CREATE EXTENSION citus")
                .unwrap();
        }
        let mut c = node(COORDINATOR, "postgres");
        c.execute(
            "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
            &[&i32::from(COORDINATOR)],
        )
        .unwrap();
        for w in WORKERS {
            c.execute("SELECT citus_add_node('127.0.0.1', $1)", &[&i32::from(w)])
                .unwrap();
        }
        // Propagated to the workers by Citus.
        c.batch_execute("CREATE EXTENSION pg_tenancy").unwrap();
        Cluster { dir }
    }

    fn stop(&self) {
        for port in std::iter::once(COORDINATOR).chain(WORKERS) {
            let _ = as_postgres(&pg_bin().join("pg_ctl"))
                .args(["-w", "-m", "immediate", "-D"])
                .arg(self.dir.join(format!("node{port}")))
                .arg("stop")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A connection to a node as `user` (trust on loopback; the tests are about what the nodes
/// allow a role, not about passwords).
fn node(port: u16, user: &str) -> Client {
    Client::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname=postgres"),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("cannot connect to {port} as {user}: {e}"))
}

fn node_with_options(port: u16, user: &str, options: &str) -> Result<Client, postgres::Error> {
    let mut config: postgres::Config =
        format!("host=127.0.0.1 port={port} user={user} dbname=postgres")
            .parse()
            .unwrap();
    config.options(options);
    config.connect(NoTls)
}

static CLUSTER: OnceLock<Option<Mutex<Cluster>>> = OnceLock::new();

/// The cluster, or `None` (skipped, said on stdout) when Citus is not installed.
fn cluster() -> Option<&'static Mutex<Cluster>> {
    CLUSTER
        .get_or_init(|| {
            if !citus_installed() {
                assert!(
                    std::env::var("TENANCY_REQUIRE_CITUS").is_err(),
                    "citus.so is not installed in the PostgreSQL under test ({})",
                    pg_bin().display()
                );
                println!(
                    "citus: SKIPPED: citus.so is not installed in the PostgreSQL under test ({})",
                    pg_bin().display()
                );
                return None;
            }
            let cluster = Cluster::start();
            // Stopped when the test binary exits.
            extern "C" fn stop_at_exit() {
                if let Some(Some(c)) = CLUSTER.get() {
                    if let Ok(c) = c.lock() {
                        c.stop();
                    }
                }
            }
            // SAFETY: registering a plain extern "C" function with the C runtime.
            unsafe { atexit(stop_at_exit) };
            Some(Mutex::new(cluster))
        })
        .as_ref()
}

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// A shop on the cluster: its own schema, login roles and two tenants, so that tests share the
/// cluster without meeting.
struct Shop {
    schema: String,
    app: String,
    client: String,
    a: Uuid,
    b: Uuid,
    owner_a: Uuid,
}

fn shop(label: &str) -> Option<Shop> {
    cluster()?;
    let suffix = Uuid::new_v4().simple().to_string()[..10].to_string();
    let schema = format!("s_{label}_{suffix}");
    let app = format!("c_app_{label}_{suffix}");
    let client = format!("c_cli_{label}_{suffix}");
    let mut c = node(COORDINATOR, "postgres");
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE ROLE {app} LOGIN PASSWORD '{app}' IN ROLE tenancy_app;
         CREATE ROLE {client} LOGIN PASSWORD '{client}' IN ROLE tenancy_client;
         GRANT USAGE ON SCHEMA {schema} TO {app}, {client};"
    ))
    .unwrap();
    let owner_a: Uuid = c
        .query_one(
            "SELECT tenancy.create_user($1)",
            &[&format!("a-{suffix}@example.com")],
        )
        .unwrap()
        .get(0);
    let owner_b: Uuid = c
        .query_one(
            "SELECT tenancy.create_user($1)",
            &[&format!("b-{suffix}@example.com")],
        )
        .unwrap()
        .get(0);
    let a: Uuid = c
        .query_one("SELECT tenancy.create_tenant('A', $1)", &[&owner_a])
        .unwrap()
        .get(0);
    let b: Uuid = c
        .query_one("SELECT tenancy.create_tenant('B', $1)", &[&owner_b])
        .unwrap()
        .get(0);
    Some(Shop {
        schema,
        app,
        client,
        a,
        b,
        owner_a,
    })
}

impl Shop {
    fn admin(&self) -> Client {
        node(COORDINATOR, "postgres")
    }

    /// `orders` distributed by tenant_id (isolated before or after distributing), with rows
    /// a-1..a-3 of A and b-1, b-2 of B.
    fn orders(&self, isolate_first: bool) {
        let s = &self.schema;
        let mut c = self.admin();
        c.batch_execute(&format!(
            "CREATE TABLE {s}.orders (id bigserial, tenant_id uuid NOT NULL, note text,
                                      PRIMARY KEY (tenant_id, id))"
        ))
        .unwrap();
        let distribute = format!("SELECT create_distributed_table('{s}.orders', 'tenant_id')");
        let isolate = format!("SELECT tenancy.isolate('{s}.orders')");
        if isolate_first {
            c.batch_execute(&isolate).unwrap();
            c.batch_execute(&distribute).unwrap();
        } else {
            c.batch_execute(&distribute).unwrap();
            c.batch_execute(&isolate).unwrap();
        }
        c.execute(
            &format!(
                "INSERT INTO {s}.orders (tenant_id, note)
                 VALUES ($1, 'a-1'), ($1, 'a-2'), ($1, 'a-3'), ($2, 'b-1'), ($2, 'b-2')"
            ),
            &[&self.a, &self.b],
        )
        .unwrap();
    }

    fn app(&self) -> Client {
        node(COORDINATOR, &self.app)
    }
}

fn notes<C: postgres::GenericClient>(c: &mut C, sql: &str) -> Result<Vec<String>, postgres::Error> {
    Ok(c.query(sql, &[])?.iter().map(|r| r.get(0)).collect())
}

fn task_count<C: postgres::GenericClient>(c: &mut C, sql: &str) -> String {
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN (COSTS OFF) {sql}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    plan.iter()
        .find_map(|l| l.trim().strip_prefix("Task Count: ").map(str::to_string))
        .unwrap_or_else(|| panic!("no Task Count in the plan of {sql}: {plan:#?}"))
}

#[test]
fn each_tenant_sees_only_its_rows_across_shards_in_either_order() {
    for isolate_first in [true, false] {
        let Some(s) = shop(if isolate_first { "first" } else { "after" }) else {
            return;
        };
        s.orders(isolate_first);
        let orders = format!("SELECT note FROM {}.orders ORDER BY note", s.schema);
        let mut c = s.app();
        let mut tx = begin_as(&mut c, s.a, None);
        assert_eq!(notes(&mut tx, &orders).unwrap(), ["a-1", "a-2", "a-3"]);
        tx.commit().unwrap();
        let mut tx = begin_as(&mut c, s.b, None);
        assert_eq!(notes(&mut tx, &orders).unwrap(), ["b-1", "b-2"]);
        // Cross-tenant writes: an insert and a move refused, an update and a delete touch
        // nothing of A.
        let o = format!("{}.orders", s.schema);
        {
            let mut sp = tx.savepoint("insert").unwrap();
            assert_sqlstate(
                sp.execute(
                    &format!("INSERT INTO {o} (tenant_id, note) VALUES ($1, 'smuggled')"),
                    &[&s.a],
                ),
                &SqlState::INSUFFICIENT_PRIVILEGE,
            );
        }
        {
            // Citus refuses to change a distribution column (0A000) before the policy would.
            let mut sp = tx.savepoint("move").unwrap();
            let code = sqlstate(sp.execute(&format!("UPDATE {o} SET tenant_id = $1"), &[&s.a]));
            assert!(
                code == SqlState::INSUFFICIENT_PRIVILEGE || code == SqlState::FEATURE_NOT_SUPPORTED,
                "{code:?}"
            );
        }
        assert_eq!(
            tx.execute(
                &format!("UPDATE {o} SET note = 'x' WHERE note LIKE 'a-%'"),
                &[]
            )
            .unwrap(),
            0
        );
        assert_eq!(
            tx.execute(&format!("DELETE FROM {o} WHERE note LIKE 'a-%'"), &[])
                .unwrap(),
            0
        );
        // The default fills the tenant column; the row goes to B's shard.
        tx.execute(&format!("INSERT INTO {o} (note) VALUES ('b-3')"), &[])
            .unwrap();
        tx.commit().unwrap();
        let all: Vec<(Uuid, String)> = s
            .admin()
            .query(
                &format!("SELECT tenant_id, note FROM {o} ORDER BY note"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            all,
            [
                (s.a, "a-1".into()),
                (s.a, "a-2".into()),
                (s.a, "a-3".into()),
                (s.b, "b-1".into()),
                (s.b, "b-2".into()),
                (s.b, "b-3".into())
            ]
        );
        let in_sync: bool = s
            .admin()
            .query_one(
                "SELECT in_sync FROM tenancy.isolated_tables WHERE table_name = $1::text::regclass",
                &[&o],
            )
            .unwrap()
            .get(0);
        assert!(in_sync);
    }
}

#[test]
fn reference_and_citus_local_tables_are_isolated() {
    let Some(s) = shop("kinds") else {
        return;
    };
    let sc = &s.schema;
    let mut admin = s.admin();
    admin
        .batch_execute(&format!(
            "CREATE TABLE {sc}.settings (key text, tenant_id uuid NOT NULL, value text,
                                         PRIMARY KEY (tenant_id, key));
             SELECT tenancy.isolate('{sc}.settings');
             SELECT create_reference_table('{sc}.settings');
             CREATE TABLE {sc}.labels (key text, tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id, key));
             SELECT create_reference_table('{sc}.labels');
             SELECT tenancy.isolate('{sc}.labels');
             CREATE TABLE {sc}.notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, body text);
             SELECT citus_add_local_table_to_metadata('{sc}.notes');
             SELECT tenancy.isolate('{sc}.notes');"
        ))
        .unwrap();
    for (table, column) in [("settings", "key"), ("labels", "key"), ("notes", "body")] {
        admin
            .execute(
                &format!(
                    "INSERT INTO {sc}.{table} (tenant_id, {column}) VALUES ($1, 'a'), ($2, 'b')"
                ),
                &[&s.a, &s.b],
            )
            .unwrap();
        let mut c = s.app();
        let mut tx = begin_as(&mut c, s.a, None);
        assert_eq!(
            notes(&mut tx, &format!("SELECT {column} FROM {sc}.{table}")).unwrap(),
            ["a"],
            "{table}"
        );
        tx.rollback().unwrap();
        let mut tx = begin_as(&mut c, s.b, None);
        assert_eq!(
            notes(&mut tx, &format!("SELECT {column} FROM {sc}.{table}")).unwrap(),
            ["b"],
            "{table}"
        );
        tx.rollback().unwrap();
        assert_sqlstate(
            c.query(&format!("SELECT {column} FROM {sc}.{table}"), &[]),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        );
    }
}

#[test]
fn without_a_context_coordinator_and_workers_fail_closed() {
    let Some(s) = shop("closed") else {
        return;
    };
    s.orders(true);
    let mut c = s.app();
    assert_sqlstate(
        c.query(&format!("SELECT note FROM {}.orders", s.schema), &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    let mut tx = c.transaction().unwrap();
    assert_sqlstate(
        tx.query(&format!("SELECT count(*) FROM {}.orders", s.schema), &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    drop(tx);
    // Connected to a worker directly, on its shards.
    for w in WORKERS {
        let mut wc = node(w, &s.app);
        // Citus hides shards from clients that are not its own unless asked.
        wc.batch_execute("SET citus.override_table_visibility = off")
            .unwrap();
        let shards: Vec<String> = wc
            .query(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname LIKE 'orders\\_%' AND c.relkind = 'r'",
                &[&s.schema],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!shards.is_empty(), "worker {w} holds shards");
        for shard in shards {
            let mut tx = wc.transaction().unwrap();
            assert_sqlstate(
                tx.query(&format!("SELECT note FROM {shard}"), &[]),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );
        }
    }
}

#[test]
fn a_planted_forged_or_copied_context_opens_nothing() {
    let Some(s) = shop("forged") else {
        return;
    };
    s.orders(true);
    let orders = format!("SELECT note FROM {}.orders", s.schema);
    // A value the coordinator made for A, read back by the role in its own transaction, which
    // also reaches every worker (a table that is not isolated is asked on every shard).
    let spread = format!("{}.spread", s.schema);
    s.admin()
        .batch_execute(&format!(
            "CREATE TABLE {spread} (id int PRIMARY KEY);
             SELECT create_distributed_table('{spread}', 'id');
             GRANT SELECT ON {spread} TO {};",
            s.app
        ))
        .unwrap();
    let mut c = s.app();
    let mut tx = begin_as(&mut c, s.a, None);
    notes(&mut tx, &orders).unwrap();
    tx.query(&format!("SELECT count(*) FROM {spread}"), &[])
        .unwrap();
    let copied: String = tx
        .query_one("SELECT current_setting('tenancy.signed_context')", &[])
        .unwrap()
        .get(0);
    assert!(copied.starts_with("v1."), "{copied}");
    tx.commit().unwrap();

    for port in std::iter::once(COORDINATOR).chain(WORKERS) {
        let mut n = node(port, &s.client);
        // The context itself cannot be set.
        for sql in [
            format!("SET tenancy.context = 't={};s=set_tenant'", s.a),
            format!(
                "SELECT set_config('tenancy.context', 't={};s=set_tenant', true)",
                s.a
            ),
        ] {
            let mut tx = n.transaction().unwrap();
            assert_sqlstate(tx.batch_execute(&sql), &SqlState::INSUFFICIENT_PRIVILEGE);
        }
        // A forged or tampered signed value is refused when set.
        let tampered = format!("{}A", &copied[..copied.len() - 1]);
        for value in ["v1.AAAA.BBBB", tampered.as_str(), "garbage"] {
            let mut tx = n.transaction().unwrap();
            assert_sqlstate(
                tx.batch_execute(&format!("SET LOCAL tenancy.signed_context = '{value}'")),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );
        }
        // The copied value, in another transaction, opens nothing (also claiming the
        // distributed transaction it was made for, which has ended).
        let (initiator, number, stamp) = {
            let mut admin = node(COORDINATOR, "postgres");
            let payload = String::from_utf8(
                base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    copied.split('.').nth(1).unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
            let binding = payload
                .split(';')
                .find_map(|f| f.strip_prefix("b="))
                .unwrap()
                .to_string();
            let mut parts = binding.split(':');
            let (i, nr, ts): (i32, i64, i64) = (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().parse().unwrap(),
            );
            let stamp: String = admin
                .query_one(
                    "SELECT (timestamptz 'epoch' + interval '946684800 seconds' + $1 * interval '1 microsecond')::text",
                    &[&(ts as f64)],
                )
                .map(|r| r.get(0))
                .unwrap_or_default();
            (i, nr, stamp)
        };
        let mut app = node(port, &s.app);
        app.batch_execute("SET citus.override_table_visibility = off")
            .unwrap();
        for claim in [false, true] {
            let mut tx = app.transaction().unwrap();
            tx.batch_execute(&format!("SET LOCAL tenancy.signed_context = '{copied}'"))
                .unwrap();
            if claim {
                tx.batch_execute("SAVEPOINT claim").unwrap();
                if tx
                    .execute(
                        "SELECT assign_distributed_transaction_id($1, $2, $3::timestamptz)",
                        &[&initiator, &number, &stamp],
                    )
                    .is_err()
                {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT claim").unwrap();
                }
            }
            let shard_or_table = if port == COORDINATOR {
                orders.clone()
            } else {
                let shard: String = tx
                    .query_one(
                        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = $1 AND c.relname LIKE 'orders\\_%' AND c.relkind = 'r' LIMIT 1",
                        &[&s.schema],
                    )
                    .unwrap()
                    .get(0);
                format!("SELECT note FROM {shard}")
            };
            let result = tx.query(&shard_or_table, &[]);
            match result {
                Ok(rows) => panic!("node {port}: a copied context read {} rows", rows.len()),
                Err(e) => assert_eq!(
                    e.code(),
                    Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
                    "node {port}: {e}"
                ),
            }
        }
        // Nor through connection options.
        assert!(
            node_with_options(port, &s.app, &format!("-c tenancy.signed_context={copied}"))
                .is_err()
        );
    }
}

#[test]
fn one_tenant_one_shard() {
    let Some(s) = shop("route") else {
        return;
    };
    s.orders(true);
    let o = format!("{}.orders", s.schema);
    let mut c = s.app();
    let mut tx = begin_as(&mut c, s.a, None);
    for sql in [
        format!("SELECT note FROM {o} WHERE id = 1"),
        format!("SELECT count(*) FROM {o}"),
        format!("UPDATE {o} SET note = note WHERE id = 1"),
        format!("DELETE FROM {o} WHERE note = 'none'"),
        format!("INSERT INTO {o} (note) VALUES ('a-9')"),
    ] {
        assert_eq!(task_count(&mut tx, &sql), "1", "{sql}");
    }
    tx.rollback().unwrap();
}

#[test]
fn prepared_statements_follow_the_tenant() {
    let Some(s) = shop("prepared") else {
        return;
    };
    s.orders(true);
    let mut c = s.app();
    c.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan;
         PREPARE all_notes AS SELECT string_agg(note, ',' ORDER BY note) FROM {0}.orders;
         PREPARE some_notes(text) AS SELECT string_agg(note, ',' ORDER BY note) FROM {0}.orders WHERE note > $1;",
        s.schema
    ))
    .unwrap();
    let run = |c: &mut Client, tenant: Uuid| -> (String, String) {
        let mut tx = begin_as(c, tenant, None);
        let all: String = tx.query_one("EXECUTE all_notes", &[]).unwrap().get(0);
        let some: String = tx.query_one("EXECUTE some_notes('')", &[]).unwrap().get(0);
        tx.commit().unwrap();
        (all, some)
    };
    for _ in 0..3 {
        assert_eq!(
            run(&mut c, s.a),
            ("a-1,a-2,a-3".into(), "a-1,a-2,a-3".into())
        );
        assert_eq!(run(&mut c, s.b), ("b-1,b-2".into(), "b-1,b-2".into()));
    }
    // Switching tenants inside one transaction.
    let mut tx = begin_as(&mut c, s.a, None);
    let a: String = tx.query_one("EXECUTE all_notes", &[]).unwrap().get(0);
    tx.execute("SELECT tenancy.clear_context()", &[]).unwrap();
    tx.execute("SELECT tenancy.set_tenant($1)", &[&s.b])
        .unwrap();
    let b: String = tx.query_one("EXECUTE all_notes", &[]).unwrap().get(0);
    assert_eq!((a.as_str(), b.as_str()), ("a-1,a-2,a-3", "b-1,b-2"));
}

#[test]
fn permissions_and_a_downgrade_are_honoured_on_the_shards() {
    let Some(s) = shop("perm") else {
        return;
    };
    let sc = &s.schema;
    let mut admin = s.admin();
    admin
        .batch_execute(&format!(
            "CREATE TABLE {sc}.payments (id bigserial, tenant_id uuid NOT NULL, amount int,
                                         PRIMARY KEY (tenant_id, id));
             SELECT tenancy.isolate('{sc}.payments', read_permission => 'payments:read',
                                    write_permission => 'payments:write');
             SELECT create_distributed_table('{sc}.payments', 'tenant_id');"
        ))
        .unwrap();
    admin
        .execute(
            &format!(
                "INSERT INTO {sc}.payments (tenant_id, amount) VALUES ($1, 10), ($1, 20), ($2, 99)"
            ),
            &[&s.a, &s.b],
        )
        .unwrap();
    let admin_user = add_member(&mut admin, s.a, &format!("adm-{sc}@example.com"), "admin");
    let staff = add_member(&mut admin, s.a, &format!("stf-{sc}@example.com"), "staff");
    let count = format!("SELECT count(*)::text FROM {sc}.payments");
    let mut c = s.app();
    // The admin reads and writes its tenant's rows (a permission never widens the tenant: B's
    // row stays out); staff reads nothing and writes nothing.
    let mut tx = begin_as(&mut c, s.a, Some(admin_user));
    assert_eq!(notes(&mut tx, &count).unwrap(), ["2"]);
    assert_eq!(
        notes(
            &mut tx,
            &format!("SELECT amount::text FROM {sc}.payments WHERE amount = 99")
        )
        .unwrap(),
        Vec::<String>::new()
    );
    tx.execute(
        &format!("INSERT INTO {sc}.payments (amount) VALUES (30)"),
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    let mut tx = begin_as(&mut c, s.a, Some(staff));
    assert_eq!(notes(&mut tx, &count).unwrap(), ["0"]);
    assert_sqlstate(
        tx.execute(
            &format!("INSERT INTO {sc}.payments (amount) VALUES (40)"),
            &[],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    drop(tx);
    // The admin is downgraded to viewer by another session while a transaction is open: the
    // shards honour it at the next statement.
    let mut tx = begin_as(&mut c, s.a, Some(admin_user));
    assert_eq!(notes(&mut tx, &count).unwrap(), ["3"]);
    admin
        .execute(
            "UPDATE tenancy.memberships SET role = 'staff' WHERE user_id = $1",
            &[&admin_user],
        )
        .unwrap();
    assert_eq!(notes(&mut tx, &count).unwrap(), ["0"]);
    tx.rollback().unwrap();
    // Denials on the workers are on the workers' own record.
    let mut recorded = 0i64;
    for _ in 0..100 {
        recorded = WORKERS
            .iter()
            .map(|w| {
                node(*w, "postgres")
                    .query_one(
                        "SELECT count(*) FROM tenancy.auth_log
                          WHERE tenant_id = $1 AND action = 'write' AND reason = 'permission_missing'",
                        &[&s.a],
                    )
                    .unwrap()
                    .get::<_, i64>(0)
            })
            .sum();
        if recorded >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recorded >= 1, "the refused insert is on a worker's record");
}

#[test]
fn permissions_of_your_own_reach_the_shards() {
    let Some(s) = shop("ownperm") else {
        return;
    };
    let sc = &s.schema;
    let perm = format!("ledger_{}:read", &sc[sc.len() - 10..]);
    let mut admin = s.admin();
    // A permission the application adds on the coordinator, granted to admins: the workers'
    // copy of tenancy.permissions never holds it.
    admin
        .execute(
            "INSERT INTO tenancy.permissions (name, description) VALUES ($1, 'read the ledger')",
            &[&perm],
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO tenancy.role_permissions (role, permission) VALUES ('admin', $1)",
            &[&perm],
        )
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE TABLE {sc}.ledger (id bigserial, tenant_id uuid NOT NULL, amount int,
                                       PRIMARY KEY (tenant_id, id));
             SELECT create_distributed_table('{sc}.ledger', 'tenant_id');
             SELECT tenancy.isolate('{sc}.ledger', read_permission => '{perm}');"
        ))
        .unwrap();
    admin
        .execute(
            &format!(
                "INSERT INTO {sc}.ledger (tenant_id, amount) VALUES ($1, 1), ($1, 2), ($2, 9)"
            ),
            &[&s.a, &s.b],
        )
        .unwrap();
    let admin_user = add_member(&mut admin, s.a, &format!("adm-{sc}@example.com"), "admin");
    let viewer = add_member(&mut admin, s.a, &format!("vwr-{sc}@example.com"), "viewer");
    let count = format!("SELECT count(*)::text FROM {sc}.ledger");
    let mut c = s.app();
    let mut tx = begin_as(&mut c, s.a, Some(admin_user));
    assert_eq!(notes(&mut tx, &count).unwrap(), ["2"]);
    tx.commit().unwrap();
    let mut tx = begin_as(&mut c, s.a, Some(viewer));
    assert_eq!(notes(&mut tx, &count).unwrap(), ["0"]);
    tx.commit().unwrap();
}

#[test]
fn set_role_and_definer_functions_reach_the_shards() {
    let Some(s) = shop("roles") else {
        return;
    };
    s.orders(false);
    let sc = &s.schema;
    let other = format!("{}_other", s.app);
    let owner = format!("{}_owner", s.app);
    let mut admin = s.admin();
    // Another application role the login role may act as, and a role outside the application
    // roles that owns a SECURITY DEFINER function reading the distributed table (Citus connects
    // to the workers as the function's owner while it runs).
    admin
        .batch_execute(&format!(
            "CREATE ROLE {other} LOGIN IN ROLE tenancy_app;
             GRANT {other} TO {app};
             CREATE ROLE {owner} LOGIN;
             GRANT USAGE ON SCHEMA {sc} TO {other}, {owner};
             GRANT SELECT ON {sc}.orders TO {owner};
             CREATE FUNCTION {sc}.order_count() RETURNS bigint LANGUAGE sql STABLE
                 SECURITY DEFINER SET search_path = pg_catalog
                 AS 'SELECT count(*) FROM {sc}.orders';
             ALTER FUNCTION {sc}.order_count() OWNER TO {owner};
             GRANT EXECUTE ON FUNCTION {sc}.order_count() TO {app};",
            app = s.app
        ))
        .unwrap();
    let orders = format!("SELECT note FROM {sc}.orders ORDER BY note");
    let counted = format!("SELECT {sc}.order_count()::text");
    let mut c = s.app();
    // SET ROLE after the context was entered: the next statement hands it over for the new role.
    let mut tx = begin_as(&mut c, s.a, None);
    assert_eq!(notes(&mut tx, &orders).unwrap(), ["a-1", "a-2", "a-3"]);
    tx.batch_execute(&format!("SET LOCAL ROLE {other}"))
        .unwrap();
    assert_eq!(notes(&mut tx, &orders).unwrap(), ["a-1", "a-2", "a-3"]);
    tx.batch_execute("RESET ROLE").unwrap();
    assert_eq!(notes(&mut tx, &orders).unwrap(), ["a-1", "a-2", "a-3"]);
    tx.commit().unwrap();
    // The definer function sees the context's tenant only, and the caller's statements after
    // it still reach the shards.
    for (tenant, expected) in [(s.a, "3"), (s.b, "2")] {
        let mut tx = begin_as(&mut c, tenant, None);
        assert_eq!(notes(&mut tx, &counted).unwrap(), [expected]);
        assert_eq!(notes(&mut tx, &orders).unwrap().len().to_string(), expected);
        assert_eq!(notes(&mut tx, &counted).unwrap(), [expected]);
        tx.commit().unwrap();
    }
    // Without a context the function's statement fails closed on the coordinator.
    assert_sqlstate(
        c.query_one(&counted, &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn tokens_and_jwts_reach_the_shards() {
    let Some(s) = shop("tokens") else {
        return;
    };
    s.orders(true);
    let orders = format!("SELECT note FROM {}.orders ORDER BY note", s.schema);
    let mut app = s.app();
    let mut tx = begin_as(&mut app, s.a, Some(s.owner_a));
    let token: String = tx
        .query_one(
            "SELECT token FROM tenancy.create_api_token('t', ARRAY['orders:read'])",
            &[],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    let (kid, secret): (String, String) = {
        let row = s
            .admin()
            .query_one("SELECT * FROM tenancy.create_signing_key()", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let jwt = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"tid": s.a.to_string(), "sub": s.owner_a.to_string(), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let mut client = node(COORDINATOR, &s.client);
    for credential in [&token, &jwt] {
        let mut tx = client.transaction().unwrap();
        tx.execute("SELECT tenancy.authenticate($1)", &[credential])
            .unwrap();
        assert_eq!(notes(&mut tx, &orders).unwrap(), ["a-1", "a-2", "a-3"]);
        tx.rollback().unwrap();
    }
}

#[test]
fn pgbouncer_in_front_of_the_coordinator() {
    let Some(s) = shop("bouncer") else {
        return;
    };
    s.orders(true);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pgbouncer/citus");
    let port: u16 = 29704;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pgbouncer.sh");
    let ok = Command::new(&script)
        .arg("start")
        .arg(&dir)
        .arg(port.to_string())
        .arg(COORDINATOR.to_string())
        .arg(&s.app)
        .args(["--", "default_pool_size=2"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "pgbouncer did not start");
    struct Stop(PathBuf, PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(&self.0).arg("stop").arg(&self.1).status();
        }
    }
    let _stop = Stop(script, dir);
    let orders = format!("SELECT note FROM {}.orders ORDER BY note", s.schema);
    let connect = || {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={port} user={0} password={0} dbname=postgres",
                s.app
            ),
            NoTls,
        )
        .unwrap()
    };
    let mut clients: Vec<Client> = (0..6).map(|_| connect()).collect();
    for round in 0..4 {
        for (i, c) in clients.iter_mut().enumerate() {
            let (tenant, want): (Uuid, &[&str]) = if (i + round) % 2 == 0 {
                (s.a, &["a-1", "a-2", "a-3"])
            } else {
                (s.b, &["b-1", "b-2"])
            };
            let mut tx = begin_as(c, tenant, None);
            assert_eq!(notes(&mut tx, &orders).unwrap(), want);
            tx.commit().unwrap();
            // Between transactions the pooled server connection holds no context.
            assert_sqlstate(
                c.query(&orders, &[]),
                &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            );
        }
    }
}
