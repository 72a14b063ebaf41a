//! Shared set-up of the client tests: a fresh database with pg_tenancy, login roles in
//! `tenancy_app` / `tenancy_client`, and connections made exactly as an application makes them
//! (TCP, password, no superuser).
//!
//! The cluster is the one `make test` starts (`TENANCY_TEST_PORT`, default 28901, on
//! 127.0.0.1, `postgres` trusted for set-up only). Every name is unique per run, so the suite
//! passes twice in a row on the same cluster; `Drop` removes the database and roles again.

#![allow(dead_code)] // each test binary uses a different part of the harness

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use uuid::Uuid;

pub fn port() -> u16 {
    std::env::var("TENANCY_TEST_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(28901)
}

/// A connection as the `postgres` superuser (set-up and inspection only, never for asserting
/// isolation: a superuser bypasses row-level security).
pub fn superuser(dbname: &str) -> Client {
    Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            port()
        ),
        NoTls,
    )
    .unwrap_or_else(|e| {
        panic!(
            "cannot connect as postgres to {dbname} on port {}: {e}",
            port()
        )
    })
}

/// A throwaway database with the extension installed, and the login roles of the test.
pub struct TestDb {
    pub name: String,
    pub suffix: String,
    roles: Vec<String>,
}

impl TestDb {
    pub fn new(label: &str) -> TestDb {
        // Built before the extension is created, so that Drop removes the database even when
        // CREATE EXTENSION fails (e.g. an installed library older than its SQL script).
        let db = TestDb::new_without_extension(label);
        superuser(&db.name)
            .batch_execute("CREATE EXTENSION pg_tenancy")
            .unwrap_or_else(|e| panic!("CREATE EXTENSION pg_tenancy failed in {}: {e}", db.name));
        db
    }

    /// A throwaway database without the extension (for installing a given version, or
    /// restoring a dump).
    pub fn new_without_extension(label: &str) -> TestDb {
        let suffix = Uuid::new_v4().simple().to_string()[..12].to_string();
        let name = format!("tenancy_{label}_{suffix}");
        superuser("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDb {
            name,
            suffix,
            roles: Vec::new(),
        }
    }

    /// A superuser connection to this database (set-up only).
    pub fn admin(&self) -> Client {
        superuser(&self.name)
    }

    /// Creates a LOGIN role that is a member of `group` (`tenancy_app` or `tenancy_client`)
    /// and returns its name. The password is the name.
    pub fn login_role(&mut self, label: &str, group: &str) -> String {
        let role = format!("t_{label}_{}", self.suffix);
        self.admin()
            .batch_execute(&format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{role}' IN ROLE {group};
                 GRANT USAGE ON SCHEMA public TO {role};"
            ))
            .unwrap();
        self.roles.push(role.clone());
        role
    }

    /// A connection as `role`, made like an application's: TCP and a password.
    pub fn connect(&self, role: &str) -> Client {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={role} password={role} dbname={}",
                port(),
                self.name
            ),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("cannot connect as {role}: {e}"))
    }

    /// A superuser connection, or the error (while the server restarts, say).
    pub fn admin_retry(&self) -> Result<Client, postgres::Error> {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={}",
                port(),
                self.name
            ),
            NoTls,
        )
    }

    /// Like `connect`, returning the error instead of panicking.
    pub fn try_connect(&self, role: &str) -> Result<Client, postgres::Error> {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={role} password={role} dbname={}",
                port(),
                self.name
            ),
            NoTls,
        )
    }

    /// Like `connect`, with extra libpq `options` (what PGOPTIONS sends).
    pub fn connect_with_options(
        &self,
        role: &str,
        options: &str,
    ) -> Result<Client, postgres::Error> {
        let mut config: postgres::Config = format!(
            "host=127.0.0.1 port={} user={role} password={role} dbname={}",
            port(),
            self.name
        )
        .parse()
        .unwrap();
        config.options(options);
        config.connect(NoTls)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut admin = superuser("postgres");
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        for role in &self.roles {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// Two tenants (A and B), each with an owner, created as the superuser.
pub struct Tenants {
    pub a: Uuid,
    pub b: Uuid,
    pub owner_a: Uuid,
    pub owner_b: Uuid,
}

pub fn two_tenants(admin: &mut Client) -> Tenants {
    let owner_a: Uuid = admin
        .query_one("SELECT tenancy.create_user('owner-a@example.com')", &[])
        .unwrap()
        .get(0);
    let owner_b: Uuid = admin
        .query_one("SELECT tenancy.create_user('owner-b@example.com')", &[])
        .unwrap()
        .get(0);
    let a: Uuid = admin
        .query_one("SELECT tenancy.create_tenant('Store A', $1)", &[&owner_a])
        .unwrap()
        .get(0);
    let b: Uuid = admin
        .query_one("SELECT tenancy.create_tenant('Store B', $1)", &[&owner_b])
        .unwrap()
        .get(0);
    Tenants {
        a,
        b,
        owner_a,
        owner_b,
    }
}

/// The SQLSTATE of a failed statement; panics when it succeeded.
pub fn sqlstate<T: std::fmt::Debug>(result: Result<T, postgres::Error>) -> SqlState {
    match result {
        Ok(v) => panic!("expected an error, got success: {v:?}"),
        Err(e) => e
            .code()
            .cloned()
            .unwrap_or_else(|| panic!("error without SQLSTATE: {e}")),
    }
}

/// Asserts that `result` failed with exactly `expected`.
#[track_caller]
pub fn assert_sqlstate<T: std::fmt::Debug>(
    result: Result<T, postgres::Error>,
    expected: &SqlState,
) {
    let got = sqlstate(result);
    assert_eq!(
        &got,
        expected,
        "wrong SQLSTATE: got {}, expected {}",
        got.code(),
        expected.code()
    );
}

/// Creates a user (the email must be unique in this database) and makes it a member of
/// `tenant` with `role`, as the superuser. Returns the user's id.
pub fn add_member(admin: &mut Client, tenant: Uuid, email: &str, role: &str) -> Uuid {
    let user: Uuid = admin
        .query_one("SELECT tenancy.create_user($1)", &[&email])
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)",
            &[&tenant, &user, &role],
        )
        .unwrap();
    user
}

/// Opens a transaction on `client` and sets the tenant context (and acting user) in it, as a
/// trusted backend does at the start of each request.
pub fn begin_as(
    client: &mut Client,
    tenant: Uuid,
    user: Option<Uuid>,
) -> postgres::Transaction<'_> {
    let mut tx = client.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &user])
        .unwrap_or_else(|e| panic!("set_tenant({tenant}, {user:?}) failed: {e}"));
    tx
}

/// The tenant of the current context as the connection sees it; `Err` (28000) without one.
pub fn current_tenant<C: postgres::GenericClient>(client: &mut C) -> Result<Uuid, postgres::Error> {
    client
        .query_one("SELECT tenancy.current_tenant()", &[])
        .map(|r| r.get(0))
}

/// Collects every NOTICE / WARNING the server sends on a connection.
pub type Notices = std::sync::Arc<std::sync::Mutex<Vec<postgres::error::DbError>>>;

/// Connects with `config` plus a notice callback that records every notice.
pub fn connect_capturing_notices(mut config: postgres::Config) -> (Client, Notices) {
    let notices: Notices = Default::default();
    let sink = notices.clone();
    config.notice_callback(move |n| sink.lock().unwrap().push(n));
    let client = config
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("cannot connect: {e}"));
    (client, notices)
}

impl TestDb {
    /// The connection settings of `role` (password = name), e.g. to add a notice callback.
    pub fn config(&self, role: &str) -> postgres::Config {
        format!(
            "host=127.0.0.1 port={} user={role} password={role} dbname={}",
            port(),
            self.name
        )
        .parse()
        .unwrap()
    }

    /// The connection settings of the `postgres` superuser for this database (set-up only).
    pub fn admin_config(&self) -> postgres::Config {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            port(),
            self.name
        )
        .parse()
        .unwrap()
    }
}
