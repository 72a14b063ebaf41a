#![cfg(feature = "client-tests")]
//! What an adversarial review found, each as the attack that worked, run as a login role in
//! `tenancy_client` / `tenancy_app` on a real server, and what happens now. Attacks on pooled
//! connections run on one server connection that the attacker and the victim share one after
//! the other, as PgBouncer in transaction mode shares it between clients of the same login role.

mod common;

use std::time::Duration;

use common::*;
use postgres::error::SqlState;
use postgres::Client;
use uuid::Uuid;

struct Shop {
    db: TestDb,
    /// A trusted backend (tenancy_app) and an untrusted client (tenancy_client) login role.
    app: String,
    client: String,
    t: Tenants,
}

/// Two tenants with a row each in the isolated table public.orders.
fn shop(label: &str) -> Shop {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let client = db.login_role("cli", "tenancy_client");
    let mut admin = db.admin();
    let t = two_tenants(&mut admin);
    admin
        .batch_execute(
            "CREATE TABLE public.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                         tenant_id uuid NOT NULL, note text);
             SELECT tenancy.isolate('public.orders');",
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.orders (tenant_id, note) VALUES ($1, 'a-secret'), ($2, 'b-secret')",
            &[&t.a, &t.b],
        )
        .unwrap();
    Shop { db, app, client, t }
}

impl Shop {
    /// An API token of tenant `tenant` (made by its owner) with `scopes`.
    fn token(&self, tenant: Uuid, owner: Uuid, scopes: &[&str]) -> (Uuid, String) {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let mut c = self.db.connect(&self.app);
        let mut tx = begin_as(&mut c, tenant, Some(owner));
        let row = tx
            .query_one(
                "SELECT * FROM tenancy.create_api_token('t', $1)",
                &[&scopes],
            )
            .unwrap();
        tx.commit().unwrap();
        (row.get(0), row.get(1))
    }
}

fn notes<C: postgres::GenericClient>(c: &mut C) -> Result<Vec<String>, postgres::Error> {
    Ok(
        c.query("SELECT note FROM public.orders ORDER BY note", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

/// Denials recorded so far with `reason`, counting merged repeats (waits for the log writer).
fn recorded(admin: &mut Client, action: &str, reason: &str, at_least: i64) -> i64 {
    let mut n = 0;
    for _ in 0..200 {
        n = admin
            .query_one(
                "SELECT coalesce(sum(repeats), 0)::bigint FROM tenancy.auth_log
                  WHERE action = $1 AND reason = $2 AND outcome = 'deny'",
                &[&action, &reason],
            )
            .unwrap()
            .get(0);
        if n >= at_least {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    n
}

/// Finding 1: Temporary objects: a client with no token tried to leave objects on the shared server
/// connection that capture the next client's rows, tokens and context. Every way of making
/// one is refused, and the next client of the connection meets the real objects.
#[test]
fn temporary_objects_cannot_poison_a_pooled_connection() {
    let s = shop("tempobj");
    let mut shared = s.db.connect(&s.client);
    for sql in [
        "CREATE TEMP TABLE orders (note text)",
        "CREATE TEMP VIEW orders AS SELECT 'x'::text AS note",
        "SET search_path = pg_temp; CREATE VIEW orders AS SELECT 'x'::text AS note",
        "SET search_path = pg_temp; CREATE TABLE orders (note text)",
        "SET search_path = pg_temp; CREATE SEQUENCE s",
        "SELECT 'x'::text AS note INTO TEMP TABLE orders",
        "SET search_path = pg_temp; SELECT 'x'::text AS note INTO orders",
        "CREATE FUNCTION pg_temp.spy(text) RETURNS text LANGUAGE sql AS 'SELECT $1'",
        "CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (VALUE IS NOT NULL)",
        "CREATE DOMAIN pg_temp.json AS pg_catalog.json",
        "CREATE OPERATOR pg_temp.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)",
        "CREATE TYPE pg_temp.t AS (a int)",
        "DO $$ BEGIN EXECUTE 'CREATE TEMP TABLE orders (note text)'; END $$",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "CREATE SCHEMA mine",
    ] {
        let result = shared.batch_execute(sql);
        assert_sqlstate(result, &SqlState::INSUFFICIENT_PRIVILEGE);
        shared.batch_execute("RESET search_path").unwrap();
    }
    let temp_objects: i64 =
        s.db.admin()
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname LIKE 'pg_temp%'",
                &[],
            )
            .unwrap()
            .get(0);
    assert_eq!(temp_objects, 0);

    // The next client of the same server connection: tenant B's token, and the real table.
    let (_, token_b) = s.token(s.t.b, s.t.owner_b, &["orders:read"]);
    let mut tx = shared.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1::text)", &[&token_b])
        .unwrap();
    assert_eq!(notes(&mut tx).unwrap(), vec!["b-secret"]);
    tx.commit().unwrap();
}

/// Finding 2: A statistics oracle: an index scan fetches other tenants' rows before the policy drops
/// them, and the per-index fetch counters told whether another tenant had a value in a range.
/// Application roles cannot read statistics, other sessions' queries, notifications or
/// large objects.
#[test]
fn statistics_and_shared_channels_are_refused() {
    let s = shop("stats");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, None);
    let index: String = tx
        .query_one(
            "SELECT 'public.orders_tenant_id_idx'::regclass::oid::text",
            &[],
        )
        .unwrap()
        .get(0);
    tx.rollback().unwrap();
    for sql in [
        format!("SELECT pg_stat_get_xact_tuples_fetched({index})"),
        format!("SELECT pg_stat_get_tuples_fetched({index})"),
        "SELECT * FROM pg_stat_user_tables".to_string(),
        "SELECT * FROM pg_statio_user_indexes".to_string(),
        "SELECT * FROM pg_stat_xact_user_tables".to_string(),
        "SELECT query FROM pg_stat_activity".to_string(),
        "SELECT pg_notify('orders', 'x')".to_string(),
        "SELECT lo_create(0)".to_string(),
        "SELECT lo_get(1)".to_string(),
    ] {
        let mut tx = begin_as(&mut c, s.t.a, None);
        assert_sqlstate(tx.query(&sql, &[]), &SqlState::INSUFFICIENT_PRIVILEGE);
        tx.rollback().unwrap();
    }
    for sql in ["LISTEN orders", "NOTIFY orders, 'x'"] {
        assert_sqlstate(c.batch_execute(sql), &SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // The refusals are on record.
    let mut admin = s.db.admin();
    assert!(recorded(&mut admin, "execute", "not_allowed", 9) >= 9);
    // A role that is not an application role keeps its statistics.
    let n: i64 = admin
        .query_one("SELECT count(*) FROM pg_stat_user_tables", &[])
        .unwrap()
        .get(0);
    assert!(n >= 1);
}

/// Finding 3: Denials caught in PL/pgSQL were never recorded (they were logged from the error report,
/// which a caught error never reaches). Now each refused row is recorded when it is refused.
#[test]
fn caught_denials_are_recorded() {
    let s = shop("caught");
    let mut c = s.db.connect(&s.app);
    let mut tx = begin_as(&mut c, s.t.a, None);
    tx.execute(
        "DO $$
         BEGIN
           FOR i IN 1..50 LOOP
             BEGIN
               INSERT INTO public.orders (tenant_id, note) VALUES ($1::uuid, 'smuggled');
             EXCEPTION WHEN insufficient_privilege THEN NULL;
             END;
           END LOOP;
         END $$"
            .replace("$1::uuid", &format!("'{}'::uuid", s.t.b))
            .as_str(),
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    let mut admin = s.db.admin();
    assert_eq!(
        recorded(&mut admin, "write", "row_level_security", 50),
        50,
        "every caught refusal is on record"
    );
    let smuggled: i64 = admin
        .query_one(
            "SELECT count(*) FROM public.orders WHERE note = 'smuggled'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(smuggled, 0);
}

/// Finding 5: Access outlived a revocation inside an open transaction. Now the next statement of the
/// open transaction is refused: a revoked token, a suspended tenant, a retired signing key,
/// a removed member.
#[test]
fn revocations_end_access_at_the_next_statement() {
    let s = shop("revoke");
    let mut admin = s.db.admin();

    // A revoked token.
    let (id, token) = s.token(s.t.a, s.t.owner_a, &["orders:read"]);
    let mut thief = s.db.connect(&s.client);
    let mut tx = thief.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&token])
        .unwrap();
    assert_eq!(notes(&mut tx).unwrap(), vec!["a-secret"]);
    admin
        .execute(
            "UPDATE tenancy.api_tokens SET revoked_at = now() WHERE id = $1",
            &[&id],
        )
        .unwrap();
    {
        let mut sp = tx.savepoint("reading").unwrap();
        assert_sqlstate(
            notes(&mut sp),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        );
    }
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('orders:read')", &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    drop(tx);

    // A suspended tenant.
    let mut app = s.db.connect(&s.app);
    let mut tx = begin_as(&mut app, s.t.a, None);
    assert_eq!(notes(&mut tx).unwrap(), vec!["a-secret"]);
    admin
        .execute(
            "UPDATE tenancy.tenants SET status = 'suspended' WHERE id = $1",
            &[&s.t.a],
        )
        .unwrap();
    assert_sqlstate(
        notes(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    drop(tx);
    admin
        .execute(
            "UPDATE tenancy.tenants SET status = 'active' WHERE id = $1",
            &[&s.t.a],
        )
        .unwrap();

    // A retired signing key (the JWT was minted with it).
    let (kid, secret): (String, String) = {
        let row = admin
            .query_one("SELECT * FROM tenancy.create_signing_key()", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let jwt = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"tid": s.t.a.to_string(), "sub": s.t.owner_a.to_string(), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let mut tx = thief.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&jwt])
        .unwrap();
    assert_eq!(notes(&mut tx).unwrap(), vec!["a-secret"]);
    admin
        .execute("SELECT tenancy.retire_signing_key($1)", &[&kid])
        .unwrap();
    assert_sqlstate(
        notes(&mut tx),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    drop(tx);

    // A removed member, named by a trusted backend: 42501, as set_tenant() would say.
    let staff = add_member(&mut admin, s.t.a, "staff@example.com", "staff");
    let mut tx = begin_as(&mut app, s.t.a, Some(staff));
    assert_eq!(notes(&mut tx).unwrap(), vec!["a-secret"]);
    admin
        .execute(
            "DELETE FROM tenancy.memberships WHERE user_id = $1",
            &[&staff],
        )
        .unwrap();
    assert_sqlstate(notes(&mut tx), &SqlState::INSUFFICIENT_PRIVILEGE);
    drop(tx);

    assert!(recorded(&mut admin, "query", "revoked", 1) >= 1);
    assert!(recorded(&mut admin, "query", "tenant_unknown_or_suspended", 1) >= 1);
    assert!(recorded(&mut admin, "query", "key_retired", 1) >= 1);
    assert!(recorded(&mut admin, "query", "not_a_member", 1) >= 1);
}

/// Finding 7a: A short-lived token with tokens:write minted a token without expiry that kept working
/// after its parent was revoked and expired. A token made by a token expires no later and
/// dies with it.
#[test]
fn a_token_made_by_a_token_dies_with_it() {
    let s = shop("child");
    let (parent, parent_token) = s.token(s.t.a, s.t.owner_a, &["tokens:write", "orders:read"]);
    let mut admin = s.db.admin();
    admin
        .execute(
            "UPDATE tenancy.api_tokens SET expires_at = now() + interval '1 hour' WHERE id = $1",
            &[&parent],
        )
        .unwrap();
    let mut c = s.db.connect(&s.client);
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&parent_token])
        .unwrap();
    let row = tx
        .query_one(
            "SELECT * FROM tenancy.create_api_token('child', ARRAY['orders:read'])",
            &[],
        )
        .unwrap();
    let (child, child_token): (Uuid, String) = (row.get(0), row.get(1));
    tx.commit().unwrap();
    let (capped, parent_expiry): (bool, bool) = admin
        .query_one(
            "SELECT c.expires_at = p.expires_at, c.parent_id = p.id
               FROM tenancy.api_tokens c, tenancy.api_tokens p WHERE c.id = $1 AND p.id = $2",
            &[&child, &parent],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(capped && parent_expiry, "the child expires with its parent");

    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&child_token])
        .unwrap();
    tx.rollback().unwrap();
    // The parent revoked: the child no longer authenticates.
    admin
        .execute(
            "UPDATE tenancy.api_tokens SET revoked_at = now() WHERE id = $1",
            &[&parent],
        )
        .unwrap();
    let mut tx = c.transaction().unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.authenticate($1)", &[&child_token]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

/// Finding 7b: After SET ROLE a denial named only the role set, not the one that logged in.
#[test]
fn denials_name_the_login_role_too() {
    let s = shop("setrole");
    let mut c = s.db.connect(&s.app);
    let label = format!("setrole-{}", s.db.suffix);
    let mut tx = c.transaction().unwrap();
    tx.batch_execute(&format!(
        "SET LOCAL tenancy.request_label = '{label}'; SET LOCAL ROLE tenancy_client;"
    ))
    .unwrap();
    assert_sqlstate(
        tx.query("SELECT note FROM public.orders", &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    drop(tx);
    let mut admin = s.db.admin();
    let mut row = None;
    for _ in 0..200 {
        row = admin
            .query_opt(
                "SELECT db_role, login_role FROM tenancy.auth_log WHERE request_label = $1",
                &[&label],
            )
            .unwrap();
        if row.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let row = row.expect("the denial is recorded");
    assert_eq!(row.get::<_, String>(0), "tenancy_client");
    assert_eq!(row.get::<_, String>(1), s.app);
}

/// Finding 7c: A manager invited the email of another tenant's owner and accepted the invitation
/// with the token it held, enrolling that user without consent and learning their id.
/// Finding 9: Emails are compared as users.email is: case-insensitively.
#[test]
fn an_existing_user_joins_only_by_their_own_consent() {
    let s = shop("consent");
    let mut admin = s.db.admin();
    let manager = add_member(&mut admin, s.t.a, "mia@example.com", "manager");
    let mut app = s.db.connect(&s.app);
    let mut tx = begin_as(&mut app, s.t.a, Some(manager));
    let token: String = tx
        .query_one(
            "SELECT token FROM tenancy.invite('OWNER-B@example.com', 'viewer')",
            &[],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    // The manager (or anyone holding the token) cannot accept it for the existing user.
    let mut client = s.db.connect(&s.client);
    assert_sqlstate(
        client.query("SELECT * FROM tenancy.accept_invitation($1)", &[&token]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        client.query(
            "SELECT * FROM tenancy.accept_invitation($1, $2)",
            &[&token, &s.t.owner_b],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    let joined: i64 = admin
        .query_one(
            "SELECT count(*) FROM tenancy.memberships WHERE tenant_id = $1 AND user_id = $2",
            &[&s.t.a, &s.t.owner_b],
        )
        .unwrap()
        .get(0);
    assert_eq!(joined, 0);
    // The user, signed in (here: a trusted backend naming them), accepts; the email matches
    // although its case differs.
    let row = app
        .query_one(
            "SELECT * FROM tenancy.accept_invitation($1, $2)",
            &[&token, &s.t.owner_b],
        )
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(1), s.t.owner_b);
}

/// Finding 8: member_rows() (SECURITY DEFINER) was executable by PUBLIC; only application roles need it.
#[test]
fn member_rows_is_for_application_roles_only() {
    let s = shop("memberrows");
    let mut admin = s.db.admin();
    let outsider = format!("t_outsider_{}", s.db.suffix);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {outsider} LOGIN PASSWORD '{outsider}'"
        ))
        .unwrap();
    let mut c = s.db.connect(&outsider);
    assert_sqlstate(
        c.query("SELECT * FROM tenancy.member_rows()", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    drop(c);
    admin
        .batch_execute(&format!("DROP ROLE {outsider}"))
        .unwrap();
    let mut app = s.db.connect(&s.app);
    let mut tx = begin_as(&mut app, s.t.a, Some(s.t.owner_a));
    let n = tx
        .query("SELECT * FROM tenancy.members", &[])
        .unwrap()
        .len();
    assert_eq!(n, 1);
}
