#![cfg(feature = "client-tests")]
//! A major-version upgrade with `pg_upgrade`. A cluster of the old major (15) with pg_tenancy in
//! use (tenants, members, an invitation, API tokens, a signing key, isolated tables, users' own
//! grants, denials in the log) is upgraded with the new major's (18) `pg_upgrade`. The upgraded
//! cluster has every row, sequence, grant, role membership and policy of the old one; every
//! isolated table is still in sync; `audit()` finds nothing it did not find before; and the same
//! checks of access pass on both sides: a trusted backend sees exactly its tenant's rows and
//! nothing without a context, another tenant's rows cannot be written, the API token and a JWT
//! signed with the kept key open the right tenant, the revoked token stays refused, the pending
//! invitation can be accepted, and new denials reach `tenancy.auth_log` (the log writer runs on
//! the new major).
//!
//! The test starts and stops both clusters itself, as the `postgres` OS user, under
//! `TENANCY_UPGRADE_DIR`, and removes that directory at the end (also when it fails). It runs
//! only under `make pg-upgrade-test`, which installs the same build of pg_tenancy into both
//! majors and sets `TENANCY_UPGRADE_OLD_BIN`, `TENANCY_UPGRADE_NEW_BIN` and
//! `TENANCY_UPGRADE_DIR`. Without any of them it prints why it skipped; with some of them
//! unset or empty it fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls};
use serde_json::json;
use uuid::Uuid;

/// The old cluster's and the new cluster's ports (127.0.0.1), and the two that `pg_upgrade`
/// gives the servers it starts itself (on a Unix socket only).
const OLD_PORT: u16 = 29801;
const NEW_PORT: u16 = 29802;
const UPGRADE_OLD_PORT: u16 = 29803;
const UPGRADE_NEW_PORT: u16 = 29804;

const DB: &str = "shop";
const APP: &str = "shop_app";
const CLIENT: &str = "shop_client";
const MIGRATOR: &str = "shop_migrator";
const AUDITOR: &str = "shop_auditor";

/// The isolated tables of the application, and the schemas whose objects are compared.
const ISOLATED: [&str; 4] = [
    "public.orders",
    "public.products",
    "public.events",
    "app.notes",
];
const SCHEMAS: &str = "'tenancy', 'public', 'app'";

const NO_CONTEXT: SqlState = SqlState::INVALID_AUTHORIZATION_SPECIFICATION;
const DENIED: SqlState = SqlState::INSUFFICIENT_PRIVILEGE;

// ------------------------------------------------------------------------------------------
// Processes and clusters
// ------------------------------------------------------------------------------------------

/// A command run as the `postgres` OS user (initdb, pg_ctl and pg_upgrade refuse root), without
/// Rust's backtrace variables, so that the servers' errors read exactly as PostgreSQL's.
fn as_postgres(program: &Path) -> Command {
    let me = Command::new("id").arg("-un").output();
    let mut cmd = if me.is_ok_and(|o| o.stdout == b"postgres\n") {
        Command::new(program)
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    };
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    cmd
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and panics with its output when it fails.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        output_text(&out)
    );
    output_text(&out)
}

/// Makes `dir` (and its parents) and gives it to the postgres user.
fn postgres_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut chown = Command::new("chown");
    chown.arg("postgres:postgres").arg(dir);
    run(chown, "chown");
}

/// The major version of the server in `bin` (`postgres (PostgreSQL) 18.1` → 18).
fn major(bin: &Path) -> u32 {
    let out = run(
        {
            let mut c = Command::new(bin.join("postgres"));
            c.arg("--version");
            c
        },
        "postgres --version",
    );
    out.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the major from {out:?}"))
}

/// One cluster: its binaries, data directory, port and server log.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Cluster {
    fn new(bin: &str, dir: &Path, name: &str, port: u16) -> Cluster {
        Cluster {
            bin: PathBuf::from(bin),
            data: dir.join(name),
            port,
            log: dir.join(format!("{name}.log")),
        }
    }

    /// initdb as scripts/cluster.sh does it (UTF8, C.UTF-8, trust for postgres on 127.0.0.1,
    /// scram for every other role), with the library preloaded.
    fn initdb(&self, extra: &[&str]) {
        let mut cmd = as_postgres(&self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ])
            .args(extra);
        run(cmd, "initdb");
        let socket_dir = self.data.parent().unwrap();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .unwrap();
        write!(
            conf,
            "
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
shared_preload_libraries = 'pg_tenancy'
max_connections = 50
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
logging_collector = off
",
            port = self.port,
            socket_dir = socket_dir.display()
        )
        .unwrap();
        let hba_path = self.data.join("pg_hba.conf");
        let hba = std::fs::read_to_string(&hba_path).unwrap();
        std::fs::write(
            &hba_path,
            format!("host all postgres 127.0.0.1/32 trust\n{hba}"),
        )
        .unwrap();
    }

    fn start(&self) {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "start"]);
        run(cmd, "pg_ctl start");
    }

    fn running(&self) -> bool {
        self.data.join("PG_VERSION").exists()
            && as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("status")
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// A clean (fast) shutdown, which pg_upgrade requires of the old cluster.
    fn stop(&self) {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "fast", "stop"]);
        run(cmd, "pg_ctl stop");
    }

    /// Stops the cluster if it runs, ignoring errors (clean-up).
    fn stop_quietly(&self) {
        if self.running() {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "-t", "30", "-m", "fast", "stop"])
                .output();
        }
        if self.running() {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "-m", "immediate", "stop"])
                .output();
        }
    }

    /// Whether the data directory has data checksums (pg_controldata).
    fn checksums(&self) -> bool {
        let mut cmd = as_postgres(&self.bin.join("pg_controldata"));
        cmd.arg("-D").arg(&self.data);
        let out = run(cmd, "pg_controldata");
        let line = out
            .lines()
            .find(|l| l.starts_with("Data page checksum version:"))
            .unwrap_or_else(|| panic!("no checksum line in pg_controldata's output:\n{out}"));
        !line.trim_end().ends_with(" 0")
    }

    /// The superuser (set-up and inspection only: it bypasses row-level security).
    fn admin(&self, db: &str) -> Client {
        self.connect("postgres", db)
    }

    /// A connection over TCP; every role but postgres logs in with its name as password.
    fn connect(&self, role: &str, db: &str) -> Client {
        let password = if role == "postgres" {
            String::new()
        } else {
            format!(" password={role}")
        };
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={role}{password} dbname={db}",
                self.port
            ),
            NoTls,
        )
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect as {role} to {db} on port {}: {e}",
                self.port
            )
        })
    }
}

/// The scratch directory and both clusters. Dropping it (also while a failed assertion
/// unwinds) stops whichever cluster runs, prints the servers' logs when the test failed, and
/// removes the directory.
struct Scratch {
    dir: PathBuf,
    old: Cluster,
    new: Cluster,
}

impl Scratch {
    fn new(dir: PathBuf, old_bin: &str, new_bin: &str) -> Scratch {
        let s = Scratch {
            old: Cluster::new(old_bin, &dir, "old", OLD_PORT),
            new: Cluster::new(new_bin, &dir, "new", NEW_PORT),
            dir,
        };
        // What an interrupted earlier run may have left behind.
        s.old.stop_quietly();
        s.new.stop_quietly();
        if s.dir.exists() {
            std::fs::remove_dir_all(&s.dir)
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", s.dir.display()));
        }
        for port in [OLD_PORT, NEW_PORT] {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} is in use: the test needs it for a cluster of its own"
            );
        }
        postgres_dir(&s.dir);
        s
    }

    /// pg_upgrade's own logs (`pg_upgrade_output.d/*/log/*.log`, kept in the new data directory
    /// when it fails): each file's error lines, then its last lines.
    fn pg_upgrade_logs(&self) -> String {
        let mut text = String::new();
        let Ok(runs) = std::fs::read_dir(self.new.data.join("pg_upgrade_output.d")) else {
            return text;
        };
        for run in runs.flatten() {
            let Ok(logs) = std::fs::read_dir(run.path().join("log")) else {
                continue;
            };
            for log in logs.flatten() {
                let Ok(body) = std::fs::read_to_string(log.path()) else {
                    continue;
                };
                let errors: Vec<&str> = body
                    .lines()
                    .filter(|l| l.contains("ERROR:") || l.contains("error:"))
                    .collect();
                text.push_str(&format!(
                    "==> {} <==
{}{}
",
                    log.path().display(),
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!("errors:\n{}\nlast lines:\n", errors.join("\n"))
                    },
                    tail(&body, 15)
                ));
            }
        }
        text
    }
}

/// What a known failure of pg_upgrade means, when the output or the logs show one.
fn diagnosis(output: &str, logs: &str) -> &'static str {
    if output.contains("unrecognized parameter \"pg_attver\"")
        || logs.contains("unrecognized parameter \"pg_attver\"")
    {
        "DIAGNOSIS: the old server records an attribute version (the column option pg_attver) \
         on every column, as PostgreSQL 15.20 and later minor releases do, and the new major's \
         server does not know that option: its build is older than the old cluster's minor \
         release. This happens to every cluster, with or without pg_tenancy. Upgrade to a build \
         of the new major released together with or after the old cluster's minor release.\n"
    } else {
        ""
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.old.stop_quietly();
        self.new.stop_quietly();
        if std::thread::panicking() {
            for log in [&self.old.log, &self.new.log] {
                if let Ok(body) = std::fs::read_to_string(log) {
                    eprintln!("==> {} <==\n{}", log.display(), tail(&body, 80));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the new major's pg_upgrade (`--check` first, then the upgrade itself, in copy mode) in
/// a working directory the postgres user can write.
fn pg_upgrade(s: &Scratch) {
    let work = s.dir.join("pg_upgrade");
    postgres_dir(&work);
    for check in [true, false] {
        let mut cmd = as_postgres(&s.new.bin.join("pg_upgrade"));
        cmd.current_dir(&work)
            .arg("--old-bindir")
            .arg(&s.old.bin)
            .arg("--new-bindir")
            .arg(&s.new.bin)
            .arg("--old-datadir")
            .arg(&s.old.data)
            .arg("--new-datadir")
            .arg(&s.new.data)
            .arg(format!("--old-port={UPGRADE_OLD_PORT}"))
            .arg(format!("--new-port={UPGRADE_NEW_PORT}"))
            .arg("--socketdir")
            .arg(&work)
            .args(["--username", "postgres"]);
        if check {
            cmd.arg("--check");
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_upgrade: {e}"));
        let text = output_text(&out);
        let what = if check {
            "pg_upgrade --check"
        } else {
            "pg_upgrade"
        };
        if !out.status.success() {
            let logs = s.pg_upgrade_logs();
            panic!(
                "{what} failed ({}):\n{}{text}\n{logs}",
                out.status,
                diagnosis(&text, &logs)
            );
        }
        let outcome = text
            .lines()
            .find(|l| l.contains("Clusters are compatible") || l.contains("Upgrade Complete"))
            .unwrap_or("done");
        println!("{what}: {}", outcome.trim());
    }
}

// ------------------------------------------------------------------------------------------
// The database in use
// ------------------------------------------------------------------------------------------

/// What the test keeps of the database it populated: ids, and the secrets an application keeps
/// (the API token, the signing key, the invitation's token).
struct World {
    t: Tenants,
    /// A third tenant, suspended by a platform admin.
    c: Uuid,
    owner_c: Uuid,
    viewer_a: Uuid,
    /// A platform admin (not a member of any tenant).
    root: Uuid,
    token: String,
    revoked_token: String,
    kid: String,
    secret: Vec<u8>,
    invitation: String,
}

fn populate(old: &Cluster) -> World {
    old.admin("postgres")
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .unwrap();
    let mut admin = old.admin(DB);
    admin
        .batch_execute(&format!(
            "CREATE EXTENSION pg_tenancy;
             CREATE ROLE {APP} LOGIN PASSWORD '{APP}' IN ROLE tenancy_app;
             CREATE ROLE {CLIENT} LOGIN PASSWORD '{CLIENT}' IN ROLE tenancy_client;
             CREATE ROLE {MIGRATOR} LOGIN PASSWORD '{MIGRATOR}' IN ROLE tenancy_app;
             CREATE ROLE {AUDITOR} LOGIN PASSWORD '{AUDITOR}';
             GRANT USAGE ON SCHEMA public TO {APP}, {CLIENT}, {MIGRATOR};
             CREATE SCHEMA app;
             GRANT USAGE ON SCHEMA app TO {APP}, {CLIENT}, {MIGRATOR};
             SELECT tenancy.auto_isolate('app');

             CREATE TABLE public.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                         tenant_id uuid NOT NULL, note text);
             SELECT tenancy.isolate('public.orders');
             -- Read and write each need a permission.
             CREATE TABLE public.products (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                           tenant_id uuid NOT NULL, name text NOT NULL);
             SELECT tenancy.isolate('public.products', 'tenant_id', 'products:read', 'products:write');
             -- A partitioned table.
             CREATE TABLE public.events (id uuid NOT NULL DEFAULT gen_random_uuid(),
                                         tenant_id uuid NOT NULL, kind text NOT NULL,
                                         PRIMARY KEY (tenant_id, id, kind)) PARTITION BY LIST (kind);
             CREATE TABLE public.events_click PARTITION OF public.events FOR VALUES IN ('click');
             CREATE TABLE public.events_other PARTITION OF public.events DEFAULT;
             SELECT tenancy.isolate('public.events');
             -- Isolated by the event trigger of auto_isolate().
             CREATE TABLE app.notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                     tenant_id uuid NOT NULL, body text);

             -- Users' own grants on pg_tenancy objects.
             GRANT EXECUTE ON FUNCTION tenancy.isolate(regclass, name, text, text) TO {MIGRATOR};
             GRANT SELECT ON tenancy.isolated_tables TO {MIGRATOR};
             GRANT SELECT ON tenancy.auth_log TO {AUDITOR};
             GRANT EXECUTE ON FUNCTION tenancy.audit() TO {AUDITOR};"
        ))
        .unwrap();
    let in_sync: bool = admin
        .query_one(
            "SELECT bool_and(in_sync) AND count(*) = 4 FROM tenancy.isolated_tables",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        in_sync,
        "the four tables are not isolated before the upgrade"
    );

    // Tenants and members.
    let t = two_tenants(&mut admin);
    let viewer_a = add_member(&mut admin, t.a, "viewer-a@example.com", "viewer");
    add_member(&mut admin, t.a, "staff-a@example.com", "staff");
    add_member(&mut admin, t.a, "manager-a@example.com", "manager");
    add_member(&mut admin, t.b, "staff-b@example.com", "staff");
    let owner_c: Uuid = admin
        .query_one("SELECT tenancy.create_user('owner-c@example.com')", &[])
        .unwrap()
        .get(0);
    let c: Uuid = admin
        .query_one("SELECT tenancy.create_tenant('Store C', $1)", &[&owner_c])
        .unwrap()
        .get(0);
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

    // Rows of both tenants in every isolated table (and one of C).
    for (tenant, tag) in [(t.a, "a"), (t.b, "b"), (c, "c")] {
        admin
            .execute(
                "INSERT INTO public.orders (tenant_id, note)
                 SELECT $1, $2 || '-' || i FROM generate_series(1, 3) i",
                &[&tenant, &tag],
            )
            .unwrap();
        admin
            .execute(
                "INSERT INTO public.products (tenant_id, name) VALUES ($1, 'widget-' || $2), ($1, 'gadget-' || $2)",
                &[&tenant, &tag],
            )
            .unwrap();
        admin
            .execute(
                "INSERT INTO public.events (tenant_id, kind) VALUES ($1, 'click'), ($1, 'view'), ($1, 'click')",
                &[&tenant],
            )
            .unwrap();
        admin
            .execute(
                "INSERT INTO app.notes (tenant_id, body) VALUES ($1, 'note of ' || $2)",
                &[&tenant, &tag],
            )
            .unwrap();
    }

    // A signing key: an application keeps its kid and secret to mint JWTs.
    let key = admin
        .query_one("SELECT kid, secret FROM tenancy.create_signing_key()", &[])
        .unwrap();
    let (kid, secret): (String, String) = (key.get(0), key.get(1));

    // As the trusted backend: an invitation, two API tokens (one revoked), a row written
    // through the context, and the suspension of C by the platform admin.
    let mut app = old.connect(APP, DB);
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&t.a, &t.owner_a])
        .unwrap();
    let invitation: String = tx
        .query_one(
            "SELECT token FROM tenancy.invite('new-staff@example.com', 'staff')",
            &[],
        )
        .unwrap()
        .get(0);
    tx.query(
        "SELECT * FROM tenancy.invite('never-comes@example.com', 'viewer')",
        &[],
    )
    .unwrap();
    let token: String = tx
        .query_one(
            "SELECT token FROM tenancy.create_api_token('ci', ARRAY['orders:read', 'products:read'])",
            &[],
        )
        .unwrap()
        .get(0);
    let revoked = tx
        .query_one(
            "SELECT token_id, token FROM tenancy.create_api_token('old', ARRAY['orders:read'])",
            &[],
        )
        .unwrap();
    let (revoked_id, revoked_token): (Uuid, String) = (revoked.get(0), revoked.get(1));
    tx.execute("SELECT tenancy.revoke_api_token($1)", &[&revoked_id])
        .unwrap();
    tx.execute(
        "INSERT INTO public.orders (note) VALUES ('a-through-context')",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&t.b, &root])
        .unwrap();
    tx.execute("SELECT tenancy.suspend_tenant($1, 'unpaid invoice')", &[&c])
        .unwrap();
    tx.commit().unwrap();

    World {
        t,
        c,
        owner_c,
        viewer_a,
        root,
        token,
        revoked_token,
        kid,
        secret: secret.into_bytes(),
        invitation,
    }
}

// ------------------------------------------------------------------------------------------
// What is compared: rows, sequences, policies, grants, roles, the linter, the registry
// ------------------------------------------------------------------------------------------

/// One text column of every row of `sql`, as a set.
fn strings(c: &mut Client, sql: &str) -> BTreeSet<String> {
    c.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

struct Snapshot {
    version: String,
    /// Every table's row count and a digest of its rows; every sequence's state.
    rows: BTreeMap<String, (i64, String)>,
    policies: BTreeSet<String>,
    grants: BTreeSet<String>,
    roles: BTreeSet<String>,
    audit: BTreeSet<String>,
    isolated: BTreeSet<String>,
}

fn snapshot(c: &Cluster) -> Snapshot {
    let mut admin = c.admin(DB);
    // Rows as text, the same on both servers.
    admin
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET IntervalStyle = 'postgres'")
        .unwrap();
    let version: String = admin
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'",
            &[],
        )
        .unwrap()
        .get(0);
    let relations = admin
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname IN ({SCHEMAS}) AND c.relkind IN ('r', 'p', 'S')
                  ORDER BY 1"
            ),
            &[],
        )
        .unwrap();
    let mut rows = BTreeMap::new();
    for r in relations {
        let (name, kind): (String, String) = (r.get(0), r.get(1));
        let sql = if kind == "S" {
            format!("SELECT 1::bigint, last_value::text || ' ' || is_called::text FROM {name}")
        } else {
            format!(
                "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')
                   FROM {name} t"
            )
        };
        let row = admin
            .query_one(&sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.insert(name, (row.get(0), row.get(1)));
    }
    let policies = strings(
        &mut admin,
        "SELECT concat_ws(' | ', schemaname, tablename, policyname, permissive, roles::text, cmd,
                          coalesce(qual, '-'), coalesce(with_check, '-'))
           FROM pg_policies",
    );
    // The privileges in effect: an ACL that is NULL stands for the default ACL of its kind
    // (pg_upgrade may leave NULL where the old cluster had the same privileges spelled out),
    // one entry per grantee, privilege and grantor. The owner's MAINTAIN is left out: PostgreSQL
    // 17 and later give it to every table's owner.
    let acl = |acl: &str, kind: &str, owner: &str| {
        format!(
            "coalesce((SELECT string_agg(e, ',' ORDER BY e) FROM (
                 SELECT format('%s:%s:%s%s',
                               CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                               a.privilege_type, pg_get_userbyid(a.grantor),
                               CASE WHEN a.is_grantable THEN '+grant' ELSE '' END) AS e
                   FROM aclexplode(coalesce({acl}, acldefault({kind}, {owner}))) a
                  WHERE NOT (a.privilege_type = 'MAINTAIN' AND a.grantee = {owner})) x), 'none')"
        )
    };
    let mut grants = strings(
        &mut admin,
        &format!(
            "SELECT format('relation %s (%s) owner=%s acl=%s', c.oid::regclass, c.relkind,
                           pg_get_userbyid(c.relowner), {})
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ({SCHEMAS}) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
            acl(
                "c.relacl",
                "CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::\"char\"",
                "c.relowner"
            )
        ),
    );
    grants.extend(strings(
        &mut admin,
        &format!(
            "SELECT format('column %s.%I acl=%s', a.attrelid::regclass, a.attname, {})
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ({SCHEMAS}) AND a.attacl IS NOT NULL",
            acl("a.attacl", "'c'::\"char\"", "c.relowner")
        ),
    ));
    grants.extend(strings(
        &mut admin,
        &format!(
            "SELECT format('function %s owner=%s definer=%s acl=%s', p.oid::regprocedure,
                           pg_get_userbyid(p.proowner), p.prosecdef, {})
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname IN ({SCHEMAS})",
            acl("p.proacl", "'f'::\"char\"", "p.proowner")
        ),
    ));
    grants.extend(strings(
        &mut admin,
        &format!(
            "SELECT format('schema %I owner=%s acl=%s', n.nspname, pg_get_userbyid(n.nspowner), {})
               FROM pg_namespace n WHERE n.nspname IN ({SCHEMAS})",
            acl("n.nspacl", "'n'::\"char\"", "n.nspowner")
        ),
    ));
    grants.extend(strings(
        &mut admin,
        &format!(
            "SELECT format('database %I acl=%s', d.datname, {})
               FROM pg_database d WHERE d.datname = current_database()",
            acl("d.datacl", "'d'::\"char\"", "d.datdba")
        ),
    ));
    let roles = strings(
        &mut admin,
        "SELECT format('role %I login=%s super=%s bypassrls=%s createrole=%s inherit=%s member of %s',
                       r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolinherit,
                       coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                                   FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                                  WHERE m.member = r.oid), '-'))
           FROM pg_roles r WHERE r.rolname !~ '^pg_'",
    );
    let audit = strings(
        &mut admin,
        "SELECT concat_ws(' | ', severity, code, object, message) FROM tenancy.audit()",
    );
    let isolated = strings(
        &mut admin,
        "SELECT format('%s column=%s read=%s write=%s in_sync=%s drift=%s', table_name, tenant_column,
                       coalesce(read_permission, '-'), coalesce(write_permission, '-'), in_sync, drift)
           FROM tenancy.isolated_tables",
    );
    Snapshot {
        version,
        rows,
        policies,
        grants,
        roles,
        audit,
        isolated,
    }
}

#[track_caller]
fn assert_same_set(what: &str, before: &BTreeSet<String>, after: &BTreeSet<String>) {
    let lost: Vec<_> = before.difference(after).collect();
    let new: Vec<_> = after.difference(before).collect();
    assert!(
        lost.is_empty() && new.is_empty(),
        "{what} changed in the upgrade\nbefore only: {lost:#?}\nafter only: {new:#?}"
    );
}

fn compare(before: &Snapshot, after: &Snapshot) {
    assert_eq!(after.version, before.version, "the extension's version");
    let changed: Vec<_> = before
        .rows
        .iter()
        .filter(|(name, v)| after.rows.get(*name) != Some(*v))
        .map(|(name, v)| format!("{name}: before {v:?}, after {:?}", after.rows.get(name)))
        .chain(
            after
                .rows
                .keys()
                .filter(|name| !before.rows.contains_key(*name))
                .map(|name| format!("{name}: only after")),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "rows or sequences changed in the upgrade:\n{changed:#?}"
    );
    assert_same_set("pg_policies", &before.policies, &after.policies);
    assert_same_set("grants and owners", &before.grants, &after.grants);
    assert_same_set("roles and memberships", &before.roles, &after.roles);
    assert_same_set("tenancy.isolated_tables", &before.isolated, &after.isolated);
    let new_findings: Vec<_> = after.audit.difference(&before.audit).collect();
    assert!(
        new_findings.is_empty(),
        "audit() has findings it did not have before the upgrade:\n{new_findings:#?}"
    );
}

// ------------------------------------------------------------------------------------------
// What an application sees (run on both sides of the upgrade)
// ------------------------------------------------------------------------------------------

/// The ids of `tenant`'s rows of `table`, as the superuser sees them.
fn ids_of(admin: &mut Client, table: &str, tenant: Uuid) -> BTreeSet<String> {
    admin
        .query(
            &format!("SELECT id::text FROM {table} WHERE tenant_id = $1"),
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The ids of the rows of `table` that the connection sees.
fn visible<C: GenericClient>(c: &mut C, table: &str) -> BTreeSet<String> {
    c.query(&format!("SELECT id::text FROM {table}"), &[])
        .unwrap_or_else(|e| panic!("SELECT from {table}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn mint_jwt(kid: &str, secret: &[u8], claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

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

/// Waits until the log has no event waiting and no writer at work, so that nothing is written
/// after the snapshot is taken.
fn wait_for_quiet_log(admin: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = admin
            .query_one(
                "SELECT durable, queued, writers FROM tenancy.log_status()",
                &[],
            )
            .unwrap();
        let (durable, queued, writers): (bool, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert!(durable, "the durable log is off: is pg_tenancy preloaded?");
        if queued == 0 && writers == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the log is still busy after 30 s: {queued} queued, {writers} writers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every check of access, as application roles, on one cluster. `phase` labels the denial that
/// must reach the log.
fn check_access(c: &Cluster, w: &World, phase: &str) {
    let mut admin = c.admin(DB);

    // A trusted backend sees exactly its tenant's rows of each isolated table.
    let mut app = c.connect(APP, DB);
    for (tenant, owner) in [(w.t.a, w.t.owner_a), (w.t.b, w.t.owner_b)] {
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &owner])
            .unwrap();
        for table in ISOLATED {
            let expected = ids_of(&mut admin, table, tenant);
            assert!(!expected.is_empty(), "{phase}: {table} has no rows");
            assert_eq!(
                visible(&mut tx, table),
                expected,
                "{phase}: {table} as {APP} in tenant {tenant}"
            );
        }
        tx.rollback().unwrap();
    }

    // No context: 28000 on every isolated table.
    for table in ISOLATED {
        assert_sqlstate(
            app.query(&format!("SELECT count(*) FROM {table}"), &[]),
            &NO_CONTEXT,
        );
    }

    // Another tenant's rows: not inserted (42501), not updated.
    for table in ["public.orders", "app.notes"] {
        let column = if table == "public.orders" {
            "note"
        } else {
            "body"
        };
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&w.t.a, &w.t.owner_a])
            .unwrap();
        assert_sqlstate(
            tx.execute(
                &format!("INSERT INTO {table} (tenant_id, {column}) VALUES ($1, 'forged')"),
                &[&w.t.b],
            ),
            &DENIED,
        );
        tx.rollback().unwrap();
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&w.t.a, &w.t.owner_a])
            .unwrap();
        let updated = tx
            .execute(
                &format!("UPDATE {table} SET {column} = 'forged' WHERE tenant_id = $1"),
                &[&w.t.b],
            )
            .unwrap();
        assert_eq!(
            updated, 0,
            "{phase}: {table}: another tenant's rows updated"
        );
        tx.rollback().unwrap();
    }

    // The write permission of products: a viewer reads them but cannot write them.
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&w.t.a, &w.viewer_a])
        .unwrap();
    assert_eq!(
        visible(&mut tx, "public.products"),
        ids_of(&mut admin, "public.products", w.t.a)
    );
    assert_sqlstate(
        tx.execute(
            "INSERT INTO public.products (name) VALUES ('viewer''s product')",
            &[],
        ),
        &DENIED,
    );
    tx.rollback().unwrap();

    // The suspended tenant cannot be entered; the platform admin's flag still counts.
    assert_sqlstate(
        app.transaction()
            .unwrap()
            .execute("SELECT tenancy.set_tenant($1, $2)", &[&w.c, &w.owner_c]),
        &NO_CONTEXT,
    );
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&w.t.b, &w.root])
        .unwrap();
    let admin_passes: bool = tx
        .query_one("SELECT tenancy.has_permission('billing:write')", &[])
        .unwrap()
        .get(0);
    assert!(admin_passes, "{phase}: the platform admin lost its flag");
    tx.rollback().unwrap();

    // An untrusted client: the API token opens tenant A, a JWT signed with the kept key opens
    // tenant B, the revoked token fails, and set_tenant() is not its to call.
    let mut cli = c.connect(CLIENT, DB);
    let mut tx = cli.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&w.token])
        .unwrap_or_else(|e| panic!("{phase}: the API token does not verify: {e}"));
    assert_eq!(current_tenant(&mut tx).unwrap(), w.t.a);
    for table in ["public.orders", "public.products"] {
        assert_eq!(
            visible(&mut tx, table),
            ids_of(&mut admin, table, w.t.a),
            "{phase}: {table} through the API token"
        );
    }
    tx.rollback().unwrap();

    let now: i64 = cli
        .query_one(
            "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    let jwt = mint_jwt(
        &w.kid,
        &w.secret,
        &json!({"tid": w.t.b, "sub": w.t.owner_b, "exp": now + 300, "iat": now}),
    );
    let mut tx = cli.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&jwt])
        .unwrap_or_else(|e| panic!("{phase}: the JWT does not verify: {e}"));
    let row = tx
        .query_one(
            "SELECT tenancy.current_tenant(), tenancy.current_user_id()",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, Uuid>(0), row.get::<_, Uuid>(1)),
        (w.t.b, w.t.owner_b)
    );
    for table in ISOLATED {
        assert_eq!(
            visible(&mut tx, table),
            ids_of(&mut admin, table, w.t.b),
            "{phase}: {table} through the JWT"
        );
    }
    tx.rollback().unwrap();

    assert_sqlstate(
        cli.execute("SELECT tenancy.authenticate($1)", &[&w.revoked_token]),
        &NO_CONTEXT,
    );
    assert_sqlstate(
        cli.execute("SELECT tenancy.set_tenant($1)", &[&w.t.a]),
        &DENIED,
    );

    // A denial of this phase reaches the log, written by the log writer of this server.
    let mut tx = app.transaction().unwrap();
    tx.execute(
        "SELECT set_config('tenancy.request_label', $1, true)",
        &[&phase],
    )
    .unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&w.t.a, &w.viewer_a])
        .unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('billing:write')", &[]),
        &DENIED,
    );
    tx.rollback().unwrap();
    let label = phase.replace('\'', "''");
    let logged = wait_for_count(
        &mut admin,
        &format!(
            "SELECT count(*) FROM tenancy.auth_log
              WHERE request_label = '{label}' AND outcome = 'deny' AND permission = 'billing:write'"
        ),
        1,
        30,
    );
    assert_eq!(
        logged, 1,
        "{phase}: the denial did not reach tenancy.auth_log"
    );
}

// ------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------

#[test]
fn pg_upgrade_keeps_rows_grants_policies_tokens_isolation_and_the_log() {
    let names = [
        "TENANCY_UPGRADE_OLD_BIN",
        "TENANCY_UPGRADE_NEW_BIN",
        "TENANCY_UPGRADE_DIR",
    ];
    if names.iter().all(|v| std::env::var_os(v).is_none()) {
        println!(
            "SKIPPED: pg_upgrade test: TENANCY_UPGRADE_OLD_BIN, TENANCY_UPGRADE_NEW_BIN and \
             TENANCY_UPGRADE_DIR are not set (run it with `make pg-upgrade-test`)"
        );
        return;
    }
    // Set but empty (a failed look-up of a bindir) is an error, never a skip.
    let [old_bin, new_bin, dir] = names.map(|v| {
        std::env::var(v)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| panic!("{v} is empty or not set, but the other variables are"))
    });
    let s = Scratch::new(PathBuf::from(dir), &old_bin, &new_bin);
    let (old_major, new_major) = (major(&s.old.bin), major(&s.new.bin));
    println!("pg_upgrade test: PostgreSQL {old_major} → {new_major}");
    assert!(new_major > old_major, "the new major must be newer");

    // The old cluster, in use.
    s.old.initdb(&[]);
    s.old.start();
    let w = populate(&s.old);
    let mut admin = s.old.admin(DB);

    // A few denials, which must be in the log before the cluster stops.
    let mut app = s.old.connect(APP, DB);
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&w.t.a, &w.viewer_a])
        .unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('members:write')", &[]),
        &DENIED,
    );
    tx.rollback().unwrap();
    let mut cli = s.old.connect(CLIENT, DB);
    assert_sqlstate(
        cli.execute(
            "SELECT tenancy.authenticate($1)",
            &[&format!("tnc_{}", "A".repeat(64))],
        ),
        &NO_CONTEXT,
    );
    assert_sqlstate(
        cli.query(
            "SELECT * FROM tenancy.accept_invitation('not-an-invitation')",
            &[],
        ),
        &NO_CONTEXT,
    );
    check_access(&s.old, &w, "before pg_upgrade");
    let denials = wait_for_count(
        &mut admin,
        "SELECT coalesce(sum(repeats), 0)::bigint FROM tenancy.auth_log WHERE outcome = 'deny'",
        6,
        30,
    );
    assert!(
        denials >= 6,
        "only {denials} denials reached the log before the upgrade"
    );
    wait_for_quiet_log(&mut admin);
    drop((admin, app, cli));
    let before = snapshot(&s.old);
    assert!(
        before.isolated.iter().all(|l| l.contains(" in_sync=t ")),
        "drift before the upgrade: {:#?}",
        before.isolated
    );
    println!(
        "before: {} tables and sequences ({} rows), {} policies, {} grants, {} roles, {} audit findings, {} isolated tables",
        before.rows.len(),
        before.rows.values().map(|(n, _)| n).sum::<i64>(),
        before.policies.len(),
        before.grants.len(),
        before.roles.len(),
        before.audit.len(),
        before.isolated.len()
    );
    s.old.stop();

    // The new cluster: same locale and encoding, the same data checksum setting (18's initdb
    // turns them on by default), the library preloaded.
    let checksums = if s.old.checksums() {
        "--data-checksums"
    } else if new_major >= 18 {
        "--no-data-checksums"
    } else {
        ""
    };
    s.new.initdb(
        &[checksums]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>(),
    );
    pg_upgrade(&s);
    s.new.start();

    // Everything is there, and nothing changed.
    let after = snapshot(&s.new);
    compare(&before, &after);
    let default: String = s
        .new
        .admin(DB)
        .query_one(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_tenancy'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        default, after.version,
        "the new major's pg_tenancy is another version"
    );

    // And it works as before.
    check_access(&s.new, &w, "after pg_upgrade");

    // The invitation made before the upgrade is accepted after it.
    let mut cli = s.new.connect(CLIENT, DB);
    let row = cli
        .query_one(
            "SELECT tenant_id, role FROM tenancy.accept_invitation($1)",
            &[&w.invitation],
        )
        .unwrap_or_else(|e| panic!("the invitation does not verify after the upgrade: {e}"));
    assert_eq!(
        (row.get::<_, Uuid>(0), row.get::<_, String>(1)),
        (w.t.a, "staff".to_string())
    );

    // auto_isolate()'s event trigger still fires.
    let mut admin = s.new.admin(DB);
    admin
        .batch_execute(
            "CREATE TABLE app.tasks (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                     tenant_id uuid NOT NULL, title text)",
        )
        .unwrap();
    let tasks: bool = admin
        .query_one(
            "SELECT coalesce(bool_and(in_sync), false) FROM tenancy.isolated_tables
              WHERE table_name = 'app.tasks'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        tasks,
        "a new table in app was not isolated after the upgrade"
    );
    let in_sync: bool = admin
        .query_one("SELECT bool_and(in_sync) FROM tenancy.isolated_tables", &[])
        .unwrap()
        .get(0);
    assert!(in_sync);
    println!(
        "after: rows, sequences, policies, grants, roles and isolated tables equal; no new audit finding; access checks passed"
    );
    drop(admin);
    drop(cli);
    s.new.stop();
}
