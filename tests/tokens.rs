#![cfg(feature = "client-tests")]
//! Invitations, API tokens and JWTs, exercised the way an attacker would: as `tenancy_client`
//! and `tenancy_app` login roles over their own connections, with tampered, replayed, expired,
//! malleable and hostile tokens. The superuser only sets up and inspects.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use postgres::error::SqlState;
use postgres::Client;
use serde_json::json;
use uuid::Uuid;

/// Two tenants, an app role (trusted backend) and a client role (untrusted).
struct Setup {
    db: TestDb,
    app: String,
    client: String,
    t: Tenants,
}

fn setup(label: &str) -> Setup {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let client = db.login_role("cli", "tenancy_client");
    let t = two_tenants(&mut db.admin());
    Setup { db, app, client, t }
}

impl Setup {
    /// Runs `f` in a transaction of the app role with the context (tenant, user).
    fn as_member<R>(
        &self,
        tenant: Uuid,
        user: Uuid,
        f: impl FnOnce(&mut postgres::Transaction) -> R,
    ) -> R {
        let mut c = self.db.connect(&self.app);
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&tenant, &user])
            .unwrap();
        let r = f(&mut tx);
        tx.commit().unwrap();
        r
    }

    fn invite(&self, email: &str, role: &str) -> (Uuid, String) {
        self.as_member(self.t.a, self.t.owner_a, |tx| {
            let row = tx
                .query_one("SELECT * FROM tenancy.invite($1, $2)", &[&email, &role])
                .unwrap();
            (row.get(0), row.get(1))
        })
    }

    fn api_token(&self, scopes: &[&str]) -> (Uuid, String) {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.as_member(self.t.a, self.t.owner_a, |tx| {
            let row = tx
                .query_one(
                    "SELECT * FROM tenancy.create_api_token('test token', $1)",
                    &[&scopes],
                )
                .unwrap();
            (row.get(0), row.get(1))
        })
    }

    fn client(&self) -> Client {
        self.db.connect(&self.client)
    }

    /// A user who is a member of tenant A with `role`.
    fn member_of_a(&self, email: &str, role: &str) -> Uuid {
        let mut admin = self.db.admin();
        let user: Uuid = admin
            .query_one("SELECT tenancy.create_user($1)", &[&email])
            .unwrap()
            .get(0);
        admin
            .execute(
                "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)",
                &[&self.t.a, &user, &role],
            )
            .unwrap();
        user
    }

    /// A new signing key: (kid, HMAC key). The key is the secret string exactly as
    /// `create_signing_key()` returns it (a JWT library's string secret), 256 random bits in
    /// base64url.
    fn signing_key(&self) -> (String, Vec<u8>) {
        let row = self
            .db
            .admin()
            .query_one("SELECT * FROM tenancy.create_signing_key()", &[])
            .unwrap();
        let secret: String = row.get(1);
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        (row.get(0), secret.into_bytes())
    }
}

/// Accepts an invitation as the client role.
fn accept(
    c: &mut Client,
    token: &str,
    user: Option<Uuid>,
) -> Result<(Uuid, Uuid, String), postgres::Error> {
    let row = c.query_one(
        "SELECT * FROM tenancy.accept_invitation($1, $2)",
        &[&token, &user],
    )?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Authenticates in a fresh transaction and returns `current_tenant()` inside it.
fn authenticate(c: &mut Client, token: &str) -> Result<Uuid, postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT tenancy.authenticate($1)", &[&token])?;
    let tenant: Uuid = tx.query_one("SELECT tenancy.current_tenant()", &[])?.get(0);
    tx.rollback()?;
    Ok(tenant)
}

/// Authenticates in a transaction that commits (the last-use time is written with it).
fn use_and_commit(c: &mut Client, token: &str) {
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&token])
        .unwrap();
    tx.commit().unwrap();
}

/// The server's wall clock in Unix seconds.
fn db_now(c: &mut Client) -> i64 {
    c.query_one(
        "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
        &[],
    )
    .unwrap()
    .get(0)
}

/// An HS256 JWT made with an ordinary JWT library, as an application would.
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

/// A JWT with an arbitrary header, signed with HMAC-SHA256 by hand.
fn forge_jwt(header: &serde_json::Value, claims: &serde_json::Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = hmac_sha256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// HMAC-SHA256 with an arbitrary key (to forge tags the extension must refuse).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// Every token failure must look the same to the caller.
#[track_caller]
fn assert_auth_failed(result: Result<Uuid, postgres::Error>) {
    let err = result.expect_err("authentication should have failed");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        db.code(),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "{err}"
    );
    assert_eq!(db.message(), "tenancy: authentication failed");
}

#[track_caller]
fn assert_invitation_failed<T: std::fmt::Debug>(result: Result<T, postgres::Error>) {
    let err = result.expect_err("accepting should have failed");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        db.code(),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "{err}"
    );
    assert_eq!(db.message(), "tenancy: invalid invitation");
}

fn memberships_of(admin: &mut Client, tenant: Uuid, email: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM tenancy.memberships m JOIN tenancy.users u ON u.id = m.user_id
              WHERE m.tenant_id = $1 AND lower(u.email) = lower($2)",
            &[&tenant, &email],
        )
        .unwrap()
        .get(0)
}

#[test]
fn accepted_invitation_cannot_be_replayed() {
    let s = setup("replay");
    let (_, token) = s.invite("ana@example.com", "staff");
    let mut c = s.client();
    let (tenant, ana, role) = accept(&mut c, &token, None).unwrap();
    assert_eq!((tenant, role.as_str()), (s.t.a, "staff"));
    // Again, by the same user and by another one: the invitation is used up.
    assert_invitation_failed(accept(&mut c, &token, None));
    assert_invitation_failed(accept(&mut c, &token, Some(ana)));
    assert_invitation_failed(accept(&mut c, &token, Some(s.t.owner_b)));
    assert_eq!(
        memberships_of(&mut s.db.admin(), s.t.a, "ana@example.com"),
        1
    );
}

#[test]
fn concurrent_accepts_exactly_one_wins() {
    let s = setup("race");
    for round in 0..5 {
        let email = format!("racer{round}@example.com");
        let (_, token) = s.invite(&email, "viewer");
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let mut c = s.client();
                let (token, barrier) = (token.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    accept(&mut c, &token, None)
                        .map(|_| ())
                        .map_err(|e| e.code().cloned())
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert_eq!(
                r.as_ref().unwrap_err(),
                &Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
            );
        }
        assert_eq!(memberships_of(&mut s.db.admin(), s.t.a, &email), 1);
    }
}

/// Flips every character of `token` to another character of the base64url alphabet (and the
/// prefix to another letter), one at a time.
fn flipped(token: &str) -> Vec<String> {
    (0..token.len())
        .map(|i| {
            let mut bytes = token.as_bytes().to_vec();
            bytes[i] = match bytes[i] {
                b'A' => b'B',
                b'_' => b'-',
                b'-' => b'_',
                _ => b'A',
            };
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

#[test]
fn every_tampered_byte_is_refused() {
    let s = setup("tamper");
    let mut c = s.client();
    let (_, invite) = s.invite("ana@example.com", "staff");
    for bad in flipped(&invite) {
        assert_invitation_failed(accept(&mut c, &bad, None));
    }
    let (_, api) = s.api_token(&["orders:read"]);
    for bad in flipped(&api) {
        assert_auth_failed(authenticate(&mut c, &bad));
    }
    // Both still work untouched: the refusals were not a side effect.
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
    assert!(accept(&mut c, &invite, None).is_ok());
}

#[test]
fn swapped_truncated_and_foreign_tags_are_refused() {
    let s = setup("tags");
    let mut c = s.client();
    let (_, one) = s.invite("one@example.com", "staff");
    let (_, two) = s.invite("two@example.com", "staff");
    let (b1, b2) = (
        URL_SAFE_NO_PAD.decode(&one).unwrap(),
        URL_SAFE_NO_PAD.decode(&two).unwrap(),
    );
    let (body1, tag1) = b1.split_at(b1.len() - 32);
    let (body2, tag2) = b2.split_at(b2.len() - 32);
    let mut candidates = vec![
        URL_SAFE_NO_PAD.encode([body1, tag2].concat()),
        URL_SAFE_NO_PAD.encode([body2, tag1].concat()),
    ];
    for keep in [0, 1, 16, 31] {
        candidates.push(URL_SAFE_NO_PAD.encode([body1, &tag1[..keep]].concat()));
    }
    // A tag made with another key over the very same payload.
    let foreign = hmac_sha256(
        &[7u8; 32],
        &[b"pg_tenancy invitation v1\0".as_slice(), body1].concat(),
    );
    candidates.push(URL_SAFE_NO_PAD.encode([body1, &foreign].concat()));
    for bad in &candidates {
        assert_invitation_failed(accept(&mut c, bad, None));
    }
    // API tokens: the secret part swapped between two tokens, truncated, or replaced.
    let (_, t1) = s.api_token(&["orders:read"]);
    let (_, t2) = s.api_token(&["orders:read"]);
    let (r1, r2) = (
        URL_SAFE_NO_PAD.decode(&t1[4..]).unwrap(),
        URL_SAFE_NO_PAD.decode(&t2[4..]).unwrap(),
    );
    let mut api_candidates = vec![format!(
        "tnc_{}",
        URL_SAFE_NO_PAD.encode([&r1[..16], &r2[16..]].concat())
    )];
    for keep in [0, 1, 16, 31] {
        api_candidates.push(format!(
            "tnc_{}",
            URL_SAFE_NO_PAD.encode([&r1[..16], &r1[16..16 + keep]].concat())
        ));
    }
    api_candidates.push(format!(
        "tnc_{}",
        URL_SAFE_NO_PAD.encode([&r1[..16], &[9u8; 32][..]].concat())
    ));
    for bad in &api_candidates {
        assert_auth_failed(authenticate(&mut c, bad));
    }
}

/// Other spellings of the same bytes: padding, non-canonical trailing bits, the standard
/// alphabet, whitespace, a trailing newline.
fn respellings(token: &str, encoded_from: usize) -> Vec<String> {
    let body = &token[encoded_from..];
    let prefix = &token[..encoded_from];
    let mut out = vec![
        format!("{token}="),
        format!("{token}=="),
        format!(" {token}"),
        format!("{token} "),
        format!("{token}\n"),
        format!("{prefix}{}", body.replace('-', "+").replace('_', "/")),
        format!("{prefix}{}\t", body),
    ];
    // Non-canonical trailing bits: the last character carries unused low bits; set them.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match body.len() % 4 {
        2 => 4,
        3 => 2,
        _ => 0,
    };
    if unused_bits > 0 {
        let last = body.chars().last().unwrap();
        let v = alphabet.find(last).unwrap();
        let noncanonical = alphabet.as_bytes()[v | 1] as char;
        out.push(format!("{prefix}{}{noncanonical}", &body[..body.len() - 1]));
    }
    if !body.contains(['-', '_']) {
        out.remove(5);
    }
    out
}

#[test]
fn malleable_spellings_are_refused() {
    let s = setup("malleable");
    let mut c = s.client();
    let (_, invite) = s.invite("ana@example.com", "staff");
    for bad in respellings(&invite, 0) {
        assert_invitation_failed(accept(&mut c, &bad, None));
    }
    let (_, api) = s.api_token(&["orders:read"]);
    for bad in respellings(&api, 4) {
        assert_auth_failed(authenticate(&mut c, &bad));
    }
    let (kid, secret) = s.signing_key();
    let now = db_now(&mut c);
    let jwt = mint_jwt(&kid, &secret, &json!({"tid": s.t.a, "exp": now + 300}));
    assert_eq!(authenticate(&mut c, &jwt).unwrap(), s.t.a);
    let sig_at = jwt.rfind('.').unwrap() + 1;
    for bad in respellings(&jwt, sig_at) {
        assert_auth_failed(authenticate(&mut c, &bad));
    }
    assert!(accept(&mut c, &invite, None).is_ok());
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
}

#[test]
fn expiry_boundaries_hold_in_any_time_zone() {
    let s = setup("expiry");
    let mut c = s.client();
    let (kid, secret) = s.signing_key();
    for zone in ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"] {
        c.batch_execute(&format!("SET timezone = '{zone}'"))
            .unwrap();
        let now = db_now(&mut c);
        let jwt = |exp: i64| mint_jwt(&kid, &secret, &json!({"tid": s.t.a, "exp": exp}));
        assert_auth_failed(authenticate(&mut c, &jwt(now - 1)));
        assert_auth_failed(authenticate(&mut c, &jwt(now)));
        assert_eq!(
            authenticate(&mut c, &jwt(now + 5)).unwrap(),
            s.t.a,
            "in {zone}"
        );
    }
    // API tokens: expires_at one second ago, a minute ahead.
    let (id, api) = s.api_token(&["orders:read"]);
    let mut admin = s.db.admin();
    admin.execute("UPDATE tenancy.api_tokens SET expires_at = clock_timestamp() + interval '1 minute' WHERE id = $1", &[&id]).unwrap();
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
    admin.execute("UPDATE tenancy.api_tokens SET expires_at = clock_timestamp() - interval '1 second' WHERE id = $1", &[&id]).unwrap();
    assert_auth_failed(authenticate(&mut c, &api));
    // Invitations: past their expiry.
    let (inv_id, invite) = s.invite("late@example.com", "viewer");
    admin
        .execute(
            "UPDATE tenancy.invitations SET issued_at = issued_at - interval '3 days',
                    expires_at = clock_timestamp() - interval '1 second' WHERE id = $1",
            &[&inv_id],
        )
        .unwrap();
    assert_invitation_failed(accept(&mut c, &invite, None));
}

#[test]
fn token_that_expires_mid_transaction_is_refused_on_the_next_call() {
    let s = setup("midtx");
    let mut c = s.client();
    let (kid, secret) = s.signing_key();
    let now = db_now(&mut c);
    let jwt = mint_jwt(&kid, &secret, &json!({"tid": s.t.a, "exp": now + 2}));
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&jwt])
        .unwrap();
    std::thread::sleep(Duration::from_millis(3100));
    let err = tx
        .execute("SELECT tenancy.authenticate($1)", &[&jwt])
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
}

/// A connection keeps what a token it verified said (so that a token presented again skips
/// the hashing): the kept answer must give way as soon as the row or the key it matched
/// changes.
#[test]
fn a_token_verified_before_is_decided_again_when_its_row_or_key_changes() {
    let s = setup("again");
    let mut c = s.client();
    let (id, api) = s.api_token(&["orders:read"]);
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
    s.db.admin()
        .execute(
            "UPDATE tenancy.api_tokens SET token_hash = sha256('another token') WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_auth_failed(authenticate(&mut c, &api));

    let (kid, secret) = s.signing_key();
    let now = db_now(&mut c);
    let jwt = mint_jwt(&kid, &secret, &json!({"tid": s.t.a, "exp": now + 300}));
    assert_eq!(authenticate(&mut c, &jwt).unwrap(), s.t.a);
    assert_eq!(authenticate(&mut c, &jwt).unwrap(), s.t.a);
    s.db.admin()
        .execute(
            "UPDATE tenancy.signing_keys SET secret = decode(repeat('ab', 32), 'hex') WHERE kid = $1",
            &[&kid],
        )
        .unwrap();
    assert_auth_failed(authenticate(&mut c, &jwt));
}

#[test]
fn invitation_binds_the_exact_email() {
    let s = setup("binding");
    let mut c = s.client();
    let mut admin = s.db.admin();
    let other: Uuid = admin
        .query_one("SELECT tenancy.create_user('bob@example.com')", &[])
        .unwrap()
        .get(0);
    let (_, token) = s.invite("ana@example.com", "staff");
    assert_sqlstate(
        accept(&mut c, &token, Some(other)),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );

    // Differs only in case, or by a trailing dot (rows made directly: create_user() would
    // refuse or merge them).
    let upper: Uuid = admin
        .query_one(
            "INSERT INTO tenancy.users (email) VALUES ('Cleo@Example.com') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let (_, token_c) = s.invite("cleo@example.com", "staff");
    assert_sqlstate(
        accept(&mut c, &token_c, Some(upper)),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    let dotted: Uuid = admin
        .query_one(
            "INSERT INTO tenancy.users (email) VALUES ('dan@example.com.') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let (_, token_d) = s.invite("dan@example.com", "staff");
    assert_sqlstate(
        accept(&mut c, &token_d, Some(dotted)),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // The refused invitations stay usable by the right person.
    let (_, ana, _) = accept(&mut c, &token, None).unwrap();
    let email: String = admin
        .query_one("SELECT email FROM tenancy.users WHERE id = $1", &[&ana])
        .unwrap()
        .get(0);
    assert_eq!(email, "ana@example.com");

    // A manager cannot invite an admin, nor hand out a scope they do not hold.
    let manager = s.member_of_a("mia@example.com", "manager");
    let mut app = s.db.connect(&s.app);
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&s.t.a, &manager])
        .unwrap();
    assert_sqlstate(
        tx.query_one(
            "SELECT * FROM tenancy.invite('x@example.com', 'admin')",
            &[],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    tx.rollback().unwrap();
    let admin_user = s.member_of_a("ada@example.com", "admin");
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&s.t.a, &admin_user])
        .unwrap();
    assert_sqlstate(
        tx.query_one(
            "SELECT * FROM tenancy.create_api_token('x', ARRAY['billing:write'])",
            &[],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    tx.rollback().unwrap();
}

#[test]
fn no_column_and_no_error_holds_a_plaintext_token() {
    let s = setup("storage");
    let mut c = s.client();
    let (_, invite) = s.invite("ana@example.com", "staff");
    let (_, api) = s.api_token(&["orders:read"]);
    let (_, api_secret_part) = api.split_at(4);
    let mut secrets = vec![invite.clone(), api.clone(), api_secret_part.to_string()];

    // Failures whose text might echo the input.
    let mut messages = Vec::new();
    for bad in [
        format!("{api}x"),
        format!("{invite}x"),
        api.replace('A', "B"),
    ] {
        for result in [
            authenticate(&mut c, &bad).map(|_| ()),
            accept(&mut c, &bad, None).map(|_| ()),
        ] {
            if let Err(e) = result {
                let db = e.as_db_error().unwrap();
                messages.push(format!(
                    "{} {:?} {:?}",
                    db.message(),
                    db.detail(),
                    db.hint()
                ));
            }
        }
    }
    accept(&mut c, &invite, None).unwrap();
    authenticate(&mut c, &api).unwrap();

    let mut admin = s.db.admin();
    let columns = admin
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), a.attname
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                AND a.atttypid IN ('text'::regtype, 'bytea'::regtype, 'jsonb'::regtype,
                                   'json'::regtype, 'varchar'::regtype, 'text[]'::regtype)",
            &[],
        )
        .unwrap();
    assert!(
        columns.len() > 10,
        "the scan found too few columns to mean anything"
    );
    secrets.push(URL_SAFE_NO_PAD.encode(invite.as_bytes()));
    for row in &columns {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        for secret in &secrets {
            let hits: i64 = admin
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {table} WHERE position(convert_to($1, 'UTF8') IN
                           CASE pg_typeof({col})::text WHEN 'bytea' THEN {col}::text::bytea
                                ELSE convert_to({col}::text, 'UTF8') END) > 0
                           OR position(convert_to($1, 'UTF8') IN convert_to({col}::text, 'UTF8')) > 0",
                        col = format!("\"{column}\"")
                    ),
                    &[secret],
                )
                .unwrap()
                .get(0);
            assert_eq!(hits, 0, "{table}.{column} holds a plaintext token");
        }
    }
    for m in &messages {
        for secret in &secrets {
            assert!(!m.contains(secret.as_str()), "an error echoes a token: {m}");
        }
    }
    // Nor does the server log (the decision log included).
    let log: String = admin
        .query_one("SELECT pg_read_file('server.log')", &[])
        .unwrap()
        .get(0);
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the server log holds a plaintext token"
        );
    }
}

#[test]
fn every_failure_looks_the_same() {
    let s = setup("uniform");
    let mut c = s.client();
    let (revoked_id, revoked) = s.api_token(&["orders:read"]);
    let (expired_id, expired) = s.api_token(&["orders:read"]);
    let (_, good) = s.api_token(&["orders:read"]);
    s.as_member(s.t.a, s.t.owner_a, |tx| {
        tx.execute("SELECT tenancy.revoke_api_token($1)", &[&revoked_id])
            .unwrap();
    });
    s.db.admin()
        .execute("UPDATE tenancy.api_tokens SET expires_at = clock_timestamp() - interval '1 hour' WHERE id = $1", &[&expired_id])
        .unwrap();
    let unknown = format!("tnc_{}", URL_SAFE_NO_PAD.encode([7u8; 48]));
    let wrong_secret = format!(
        "{}{}",
        &good[..4 + 22],
        URL_SAFE_NO_PAD.encode([1u8; 32]).get(..42).unwrap()
    );
    let mut seen = Vec::new();
    for bad in [&unknown, &wrong_secret, &revoked, &expired] {
        let err = authenticate(&mut c, bad).unwrap_err();
        let db = err.as_db_error().unwrap().clone();
        seen.push((
            db.code().clone(),
            db.message().to_string(),
            db.hint().map(str::to_string),
            db.detail().map(str::to_string),
        ));
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "failures differ: {seen:?}"
    );
    assert_eq!(seen[0].0, SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    assert_eq!(authenticate(&mut c, &good).unwrap(), s.t.a);
}

#[test]
fn hostile_input_gets_a_clear_error_never_a_crash() {
    let s = setup("hostile");
    let mut c = s.client();
    let mut inputs: Vec<String> = vec![
        String::new(),
        "x".into(),
        "tnc_".into(),
        "a.b.c".into(),
        "..".into(),
        format!("tnc_{}", "A".repeat(4097 - 4)),
        "A".repeat(4097),
        "A".repeat(1 << 20),
        "tnc_\u{fffd}\u{fffd}".into(),
        "é.é.é".into(),
    ];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in [3usize, 17, 68, 120, 500] {
        let s: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from_u32((x % 0x7e + 1) as u32).unwrap_or('?')
            })
            .collect();
        inputs.push(s.clone());
        inputs.push(format!("tnc_{s}"));
    }
    for input in &inputs {
        assert_auth_failed(authenticate(&mut c, input));
        assert_invitation_failed(accept(&mut c, input, None));
    }
    // NULL is a failure like any other.
    let null: Option<String> = None;
    let err = c
        .execute("SELECT tenancy.authenticate($1)", &[&null])
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    let err = c
        .query("SELECT * FROM tenancy.accept_invitation(NULL)", &[])
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    // NUL bytes and invalid UTF-8 are refused by the server before they reach pg_tenancy.
    for sql in [
        "SELECT tenancy.authenticate(convert_from('\\x746e635f00'::bytea, 'UTF8'))",
        "SELECT tenancy.authenticate(convert_from('\\x746e635fff'::bytea, 'UTF8'))",
    ] {
        let code = c.execute(sql, &[]).unwrap_err().code().cloned().unwrap();
        assert_ne!(code, SqlState::INTERNAL_ERROR);
        assert_eq!(code.code().get(..2), Some("22"), "{sql}: {code:?}");
    }
    // The connection is healthy afterwards.
    assert_eq!(c.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0), 1);
}

#[test]
fn revoked_tokens_and_tokens_of_removed_members_fail() {
    let s = setup("revoke");
    let mut c = s.client();
    let (id, api) = s.api_token(&["orders:read"]);
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
    s.as_member(s.t.a, s.t.owner_a, |tx| {
        tx.execute("SELECT tenancy.revoke_api_token($1)", &[&id])
            .unwrap();
    });
    assert_auth_failed(authenticate(&mut c, &api));

    // A token made by an admin who is then removed from the tenant.
    let admin_user = s.member_of_a("ada@example.com", "admin");
    let token: String = s.as_member(s.t.a, admin_user, |tx| {
        tx.query_one(
            "SELECT token FROM tenancy.create_api_token('ada', ARRAY['orders:read'])",
            &[],
        )
        .unwrap()
        .get(0)
    });
    assert_eq!(authenticate(&mut c, &token).unwrap(), s.t.a);
    s.as_member(s.t.a, s.t.owner_a, |tx| {
        tx.execute("SELECT tenancy.remove_member($1)", &[&admin_user])
            .unwrap();
    });
    assert_auth_failed(authenticate(&mut c, &token));
}

#[test]
fn token_scopes_bound_permissions_and_writes() {
    let s = setup("scope");
    let mut admin = s.db.admin();
    admin
        .batch_execute(
            "CREATE TABLE public.orders (id serial PRIMARY KEY, tenant_id uuid NOT NULL, note text);
             SELECT tenancy.isolate('public.orders', read_permission => 'orders:read',
                                    write_permission => 'orders:write');",
        )
        .unwrap();
    admin
        .batch_execute(&format!("GRANT USAGE ON SCHEMA public TO {}", s.client))
        .unwrap();
    admin
        .execute(
            "INSERT INTO public.orders (tenant_id, note) VALUES ($1, 'a-1'), ($2, 'b-1')",
            &[&s.t.a, &s.t.b],
        )
        .unwrap();
    let admin_user = s.member_of_a("ada@example.com", "admin");
    let token: String = s.as_member(s.t.a, admin_user, |tx| {
        tx.query_one("SELECT token FROM tenancy.create_api_token('reader', ARRAY['orders:read', 'inventory:write'])", &[])
            .unwrap()
            .get(0)
    });
    let mut c = s.client();
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&token])
        .unwrap();
    let notes: Vec<String> = tx
        .query("SELECT note FROM public.orders", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes, vec!["a-1"]);
    let ctx: serde_json::Value = tx
        .query_one("SELECT tenancy.context()", &[])
        .unwrap()
        .get(0);
    assert_eq!(ctx["source"], "api_token");
    assert_eq!(ctx["user_id"], serde_json::Value::Null);
    assert!(tx
        .query_one("SELECT tenancy.has_permission('inventory:write')", &[])
        .unwrap()
        .get::<_, bool>(0));
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.execute("SELECT tenancy.require_permission('orders:write')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    let mut sp = tx.transaction().unwrap();
    assert_sqlstate(
        sp.execute("INSERT INTO public.orders (note) VALUES ('forged')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    sp.rollback().unwrap();
    tx.rollback().unwrap();

    // The creator is downgraded to viewer: the token's write scope goes with it, at once.
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&token])
        .unwrap();
    assert!(tx
        .query_one("SELECT tenancy.has_permission('inventory:write')", &[])
        .unwrap()
        .get::<_, bool>(0));
    s.as_member(s.t.a, s.t.owner_a, |o| {
        o.execute(
            "SELECT tenancy.set_member_role($1, 'viewer')",
            &[&admin_user],
        )
        .unwrap();
    });
    assert!(!tx
        .query_one("SELECT tenancy.has_permission('inventory:write')", &[])
        .unwrap()
        .get::<_, bool>(0));
    assert!(tx
        .query_one("SELECT tenancy.has_permission('orders:read')", &[])
        .unwrap()
        .get::<_, bool>(0));
    tx.rollback().unwrap();
}

#[test]
fn jwt_rules() {
    let s = setup("jwt");
    let mut c = s.client();
    let (kid, secret) = s.signing_key();
    let staff = s.member_of_a("sam@example.com", "staff");
    let now = db_now(&mut c);
    let ok_claims =
        json!({"tid": s.t.a, "sub": staff, "exp": now + 300, "iat": now, "nbf": now - 10});
    let good = mint_jwt(&kid, &secret, &ok_claims);
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&good])
        .unwrap();
    let row = tx.query_one("SELECT tenancy.current_tenant(), tenancy.current_user_id(), tenancy.context()->>'source'", &[]).unwrap();
    assert_eq!(
        (
            row.get::<_, Uuid>(0),
            row.get::<_, Uuid>(1),
            row.get::<_, String>(2)
        ),
        (s.t.a, staff, "jwt".to_string())
    );
    assert!(tx
        .query_one("SELECT tenancy.has_permission('orders:write')", &[])
        .unwrap()
        .get::<_, bool>(0));
    tx.rollback().unwrap();

    // A scope claim narrows the user's permissions.
    let narrowed = mint_jwt(
        &kid,
        &secret,
        &json!({"tid": s.t.a, "sub": staff, "exp": now + 300, "scope": "orders:read"}),
    );
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&narrowed])
        .unwrap();
    assert!(tx
        .query_one("SELECT tenancy.has_permission('orders:read')", &[])
        .unwrap()
        .get::<_, bool>(0));
    assert!(!tx
        .query_one("SELECT tenancy.has_permission('orders:write')", &[])
        .unwrap()
        .get::<_, bool>(0));
    tx.rollback().unwrap();

    let h = |alg: &str| json!({"alg": alg, "typ": "JWT", "kid": kid});
    let stranger: Uuid =
        s.db.admin()
            .query_one("SELECT tenancy.create_user('stranger@example.com')", &[])
            .unwrap()
            .get(0);
    let bad = vec![
        ("alg none", forge_jwt(&h("none"), &ok_claims, &secret)),
        ("alg RS256", forge_jwt(&h("RS256"), &ok_claims, &secret)),
        ("alg HS512", forge_jwt(&h("HS512"), &ok_claims, &secret)),
        (
            "alg lower case",
            forge_jwt(&h("hs256"), &ok_claims, &secret),
        ),
        (
            "no kid",
            forge_jwt(&json!({"alg": "HS256", "typ": "JWT"}), &ok_claims, &secret),
        ),
        (
            "unknown kid",
            forge_jwt(&json!({"alg": "HS256", "kid": "nope"}), &ok_claims, &secret),
        ),
        (
            "no exp",
            mint_jwt(&kid, &secret, &json!({"tid": s.t.a, "sub": staff})),
        ),
        (
            "no tid",
            mint_jwt(&kid, &secret, &json!({"sub": staff, "exp": now + 300})),
        ),
        (
            "tid not a uuid",
            mint_jwt(&kid, &secret, &json!({"tid": "store-a", "exp": now + 300})),
        ),
        (
            "unknown tenant",
            mint_jwt(
                &kid,
                &secret,
                &json!({"tid": Uuid::new_v4(), "exp": now + 300}),
            ),
        ),
        (
            "sub not a member",
            mint_jwt(
                &kid,
                &secret,
                &json!({"tid": s.t.a, "sub": stranger, "exp": now + 300}),
            ),
        ),
        (
            "expired",
            mint_jwt(&kid, &secret, &json!({"tid": s.t.a, "exp": now - 1})),
        ),
        (
            "not yet valid",
            mint_jwt(
                &kid,
                &secret,
                &json!({"tid": s.t.a, "exp": now + 300, "nbf": now + 120}),
            ),
        ),
        (
            "issued in the future",
            mint_jwt(
                &kid,
                &secret,
                &json!({"tid": s.t.a, "exp": now + 900, "iat": now + 600}),
            ),
        ),
        ("another key", mint_jwt(&kid, &[5u8; 32], &ok_claims)),
    ];
    for (what, token) in &bad {
        let result = authenticate(&mut c, token);
        assert!(result.is_err(), "{what} was accepted");
        assert_auth_failed(result);
    }
}

#[test]
fn signing_keys_rotate_and_retire_and_stay_secret() {
    let s = setup("keys");
    let mut c = s.client();
    let (k1, s1) = s.signing_key();
    let (k2, s2) = s.signing_key();
    let now = db_now(&mut c);
    let claims = json!({"tid": s.t.a, "exp": now + 300});
    let (j1, j2) = (mint_jwt(&k1, &s1, &claims), mint_jwt(&k2, &s2, &claims));
    assert_eq!(authenticate(&mut c, &j1).unwrap(), s.t.a);
    assert_eq!(authenticate(&mut c, &j2).unwrap(), s.t.a);
    s.db.admin()
        .execute("SELECT tenancy.retire_signing_key($1)", &[&k1])
        .unwrap();
    assert_auth_failed(authenticate(&mut c, &j1));
    assert_eq!(authenticate(&mut c, &j2).unwrap(), s.t.a);

    // Invitations signed with a retired key die with it.
    let (_, invite) = s.invite("ana@example.com", "staff");
    let active: Vec<String> =
        s.db.admin()
            .query(
                "SELECT kid FROM tenancy.signing_keys WHERE retired_at IS NULL",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    for kid in &active {
        s.db.admin()
            .execute("SELECT tenancy.retire_signing_key($1)", &[kid])
            .unwrap();
    }
    assert_invitation_failed(accept(&mut c, &invite, None));

    // Application roles can neither read secrets nor make keys.
    let mut app = s.db.connect(&s.app);
    for (conn, who) in [(&mut c, "client"), (&mut app, "app")] {
        assert_sqlstate(
            conn.query("SELECT secret FROM tenancy.signing_keys", &[]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
        assert_sqlstate(
            conn.query("SELECT * FROM tenancy.create_signing_key()", &[]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
        assert_sqlstate(
            conn.query("SELECT token_hash FROM tenancy.api_tokens", &[]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
        assert_sqlstate(
            conn.query("SELECT token_hash FROM tenancy.invitations", &[]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
        let _ = who;
    }
}

/// `last_used_at` of `id`, as the log writer left it once the queue is drained.
fn settled_last_used(admin: &mut Client, id: Uuid) -> Option<std::time::SystemTime> {
    for _ in 0..200 {
        let queued: i64 = admin
            .query_one("SELECT queued FROM tenancy.log_status()", &[])
            .unwrap()
            .get(0);
        if queued == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The writer may still be committing the batch it took.
    std::thread::sleep(Duration::from_millis(300));
    admin
        .query_one(
            "SELECT last_used_at FROM tenancy.api_tokens WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
}

/// Waits until `last_used_at` of `id` is later than `than` (or set at all).
fn last_used_after(
    admin: &mut Client,
    id: Uuid,
    than: Option<std::time::SystemTime>,
) -> std::time::SystemTime {
    for _ in 0..200 {
        let at: Option<std::time::SystemTime> = admin
            .query_one(
                "SELECT last_used_at FROM tenancy.api_tokens WHERE id = $1",
                &[&id],
            )
            .unwrap()
            .get(0);
        if let Some(at) = at.filter(|at| than.is_none_or(|t| *at > t)) {
            return at;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("last_used_at of {id} was not written after {than:?}");
}

#[test]
fn last_used_at_is_written_at_most_once_a_minute() {
    let s = setup("lastused");
    let mut c = s.client();
    let (id, api) = s.api_token(&["orders:read"]);
    let mut admin = s.db.admin();
    assert_eq!(settled_last_used(&mut admin, id), None);
    use_and_commit(&mut c, &api);
    let first = last_used_after(&mut admin, id, None);
    std::thread::sleep(Duration::from_millis(20));
    use_and_commit(&mut c, &api);
    assert_eq!(
        settled_last_used(&mut admin, id),
        Some(first),
        "rewritten within a minute"
    );
    // A minute later (simulated by moving last_used_at back, seen by a backend that has not
    // handed a use over itself: each backend remembers its own) it is written again.
    let age = |admin: &mut Client| {
        admin.execute("UPDATE tenancy.api_tokens SET last_used_at = now() - interval '61 seconds' WHERE id = $1", &[&id]).unwrap();
        settled_last_used(admin, id).unwrap()
    };
    let old = age(&mut admin);
    let mut c2 = s.client();
    use_and_commit(&mut c2, &api);
    last_used_after(&mut admin, id, Some(old));
    // A use is a use whether its transaction commits or not, and in a read-only transaction
    // too: the log writer records it in a transaction of its own.
    let old = age(&mut admin);
    let mut c3 = s.client();
    let mut tx = c3.transaction().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&api])
        .unwrap();
    tx.rollback().unwrap();
    last_used_after(&mut admin, id, Some(old));
    let old = age(&mut admin);
    let mut c4 = s.client();
    let mut tx = c4.build_transaction().read_only(true).start().unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&api])
        .unwrap();
    tx.rollback().unwrap();
    last_used_after(&mut admin, id, Some(old));
}

/// authenticate() holds no lock on the token's row: a transaction that used a stolen token and
/// stays open cannot make the owner's revocation wait, and workers sharing one token do not
/// queue behind each other.
#[test]
fn using_a_token_holds_no_row_lock() {
    let s = setup("nolock");
    let (id, api) = s.api_token(&["orders:read"]);
    let mut thief = s.client();
    let mut held = thief.transaction().unwrap();
    held.execute("SELECT tenancy.authenticate($1)", &[&api])
        .unwrap();
    // A second worker with the same token, and the owner revoking it, while the thief's
    // transaction is open: neither waits.
    let mut worker = s.client();
    let mut tx = worker.transaction().unwrap();
    tx.batch_execute("SET LOCAL lock_timeout = '200ms'")
        .unwrap();
    tx.execute("SELECT tenancy.authenticate($1)", &[&api])
        .unwrap();
    tx.commit().unwrap();
    let mut owner = s.db.connect(&s.app);
    let mut tx = begin_as(&mut owner, s.t.a, Some(s.t.owner_a));
    tx.batch_execute("SET LOCAL lock_timeout = '200ms'")
        .unwrap();
    tx.execute("SELECT tenancy.revoke_api_token($1)", &[&id])
        .unwrap();
    tx.commit().unwrap();
    // The thief's open transaction loses the token at its next statement.
    assert_sqlstate(
        held.query("SELECT tenancy.require_permission('orders:read')", &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn a_client_role_enters_a_tenant_only_with_a_valid_token() {
    let s = setup("clientonly");
    let mut c = s.client();
    assert_sqlstate(
        c.execute("SELECT tenancy.set_tenant($1)", &[&s.t.a]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        c.query_one("SELECT tenancy.current_tenant()", &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    let (_, api) = s.api_token(&["orders:read"]);
    assert_eq!(authenticate(&mut c, &api).unwrap(), s.t.a);
    // The context ends with the transaction.
    assert_sqlstate(
        c.query_one("SELECT tenancy.current_tenant()", &[]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}
