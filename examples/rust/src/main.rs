//! pg_tenancy from Rust (tokio-postgres): a tiny "orders" service without the web framework.
//!
//! Every request is one transaction: enter the context first (`set_tenant()` for a trusted
//! backend in `tenancy_app`, `authenticate()` with the caller's token for a `tenancy_client`
//! role), run the request's queries, then COMMIT; the context ends with the transaction (a
//! `Transaction` dropped without `commit()` rolls back). Errors are mapped to HTTP statuses by
//! SQLSTATE: 28000 -> 401, 42501 -> 403, 22023 -> 400.
//!
//! Configuration comes from the environment (scripts/examples.sh sets it up): PGHOST, PGPORT,
//! PGDATABASE, APP_ROLE/APP_PASSWORD (a member of tenancy_app), CLIENT_ROLE/CLIENT_PASSWORD (a
//! member of tenancy_client), TENANT_A, TENANT_B, ALICE (owner of A), VICTOR (viewer in A), BOB
//! (owner of B), API_TOKEN (a token of tenant A with scope orders:read), JWT_KID and JWT_SECRET
//! (from tenancy.create_signing_key()).

use std::env;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio_postgres::{Client, Error, NoTls, Transaction};
use uuid::Uuid;

/// The HTTP status of an SQLSTATE of pg_tenancy's error contract.
fn http_status(sqlstate: &str) -> Option<u16> {
    match sqlstate {
        "28000" => Some(401), // no context, or a token that does not verify
        "42501" => Some(403), // authenticated, but not allowed
        "22023" => Some(400), // bad argument
        _ => None,
    }
}

fn var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn uuid_var(name: &str) -> Uuid {
    var(name).parse().unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn connect(role: &str, password: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into()))
        .port(env::var("PGPORT").map_or(5432, |p| p.parse().expect("PGPORT")))
        .dbname(var("PGDATABASE"))
        .user(role)
        .password(password)
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

/// How a request enters its context.
enum Enter {
    /// A trusted backend that authenticated the user itself (`tenancy_app`).
    Member(Uuid, Option<Uuid>),
    /// An untrusted client: the token is a bind parameter, never spliced into the SQL.
    Token(String),
    Nothing,
}

/// What a request does once it is in its context.
enum Handler {
    List,
    ListMinRole(&'static str),
    Create(&'static str, i32),
    Delete(&'static str),
}

async fn enter(tx: &Transaction<'_>, how: &Enter) -> Result<(), Error> {
    match how {
        Enter::Member(tenant, user) => {
            tx.execute("SELECT tenancy.set_tenant($1, $2)", &[tenant, user]).await?;
        }
        Enter::Token(token) => {
            tx.execute("SELECT tenancy.authenticate($1)", &[token]).await?;
        }
        Enter::Nothing => {}
    }
    Ok(())
}

async fn list(tx: &Transaction<'_>) -> Result<(u16, String), Error> {
    let ids: Vec<String> = tx
        .query("SELECT id FROM orders ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((200, format!("[{}]", ids.join(", "))))
}

async fn handle(tx: &Transaction<'_>, handler: &Handler) -> Result<(u16, String), Error> {
    match *handler {
        Handler::List => list(tx).await,
        Handler::ListMinRole(min_role) => {
            tx.execute("SELECT tenancy.require_role($1)", &[&min_role]).await?;
            list(tx).await
        }
        Handler::Create(id, total) => {
            tx.execute("SELECT tenancy.require_permission('orders:write')", &[]).await?;
            // tenant_id is not named: its DEFAULT is tenancy.current_tenant().
            tx.execute("INSERT INTO orders (id, total) VALUES ($1, $2)", &[&id, &total]).await?;
            Ok((201, id.to_string()))
        }
        Handler::Delete(id) => {
            tx.execute("SELECT tenancy.require_permission('orders:write')", &[]).await?;
            let n = tx.execute("DELETE FROM orders WHERE id = $1", &[&id]).await?;
            Ok((if n == 1 { 204 } else { 404 }, String::new()))
        }
    }
}

/// One request = one transaction. Prints `<route> as <who> -> <status> <body>`.
async fn request(
    client: &mut Client,
    route: &str,
    who: &str,
    how: Enter,
    handler: Handler,
) -> Result<(), Error> {
    let outcome = async {
        let tx = client.transaction().await?;
        // Copied into the authorization log; local (true) so it ends with the transaction.
        tx.execute("SELECT set_config('tenancy.request_label', $1, true)", &[&route]).await?;
        enter(&tx, &how).await?;
        let response = handle(&tx, &handler).await?;
        tx.commit().await?;
        Ok::<_, Error>(response)
    }
    .await;
    let (status, body) = match outcome {
        Ok(response) => response,
        Err(e) => match e.code().map(|c| c.code()) {
            Some(code) if http_status(code).is_some() => {
                (http_status(code).unwrap(), format!("({code})"))
            }
            _ => return Err(e),
        },
    };
    println!("{}", format!("{route} as {who} -> {status} {body}").trim_end());
    Ok(())
}

fn mint_jwt(tenant: Uuid, user: Uuid, scope: Option<&str>) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 300;
    let mut claims = json!({ "tid": tenant.to_string(), "sub": user.to_string(), "exp": exp });
    if let Some(scope) = scope {
        claims["scope"] = scope.into();
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(var("JWT_KID"));
    // The HMAC key is the secret string exactly as create_signing_key() returned it.
    let key = EncodingKey::from_secret(var("JWT_SECRET").as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).expect("JWT encoding")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (a, b) = (uuid_var("TENANT_A"), uuid_var("TENANT_B"));
    let (alice, victor, bob) = (uuid_var("ALICE"), uuid_var("VICTOR"), uuid_var("BOB"));
    let unknown_tenant: Uuid = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    let member = |tenant, user| Enter::Member(tenant, Some(user));

    let mut app = connect(&var("APP_ROLE"), &var("APP_PASSWORD")).await?;
    println!("# tenancy_app role: the backend authenticates users and calls set_tenant()");
    let requests = [
        ("GET /orders", "alice@A", member(a, alice), Handler::List),
        ("GET /orders", "bob@B", member(b, bob), Handler::List),
        ("POST /orders a-3", "alice@A", member(a, alice), Handler::Create("a-3", 30)),
        ("GET /orders", "alice@A", member(a, alice), Handler::List),
        ("GET /orders", "bob@B", member(b, bob), Handler::List),
        ("GET /orders", "nobody (no context)", Enter::Nothing, Handler::List),
        ("POST /orders a-9", "victor@A (viewer)", member(a, victor), Handler::Create("a-9", 90)),
        ("GET /orders", "alice@B (not a member)", member(b, alice), Handler::List),
        ("GET /orders", "alice@unknown-tenant", member(unknown_tenant, alice), Handler::List),
        (
            "GET /orders?min_role=chief",
            "alice@A (bad argument)",
            member(a, alice),
            Handler::ListMinRole("chief"),
        ),
        ("DELETE /orders/a-3", "alice@A", member(a, alice), Handler::Delete("a-3")),
    ];
    for (route, who, how, handler) in requests {
        request(&mut app, route, who, how, handler).await?;
    }

    let mut client = connect(&var("CLIENT_ROLE"), &var("CLIENT_PASSWORD")).await?;
    println!("# tenancy_client role: only a verified token enters a tenant");
    let token = var("API_TOKEN");
    let last = if token.ends_with('A') { "B" } else { "A" };
    let bad_token = format!("{}{last}", &token[..token.len() - 1]);
    let api_token = || Enter::Token(token.clone());
    let jwt = |scope| Enter::Token(mint_jwt(b, bob, scope));
    let requests = [
        ("GET /orders", "API token of A", api_token(), Handler::List),
        (
            "POST /orders a-9",
            "API token of A (orders:read)",
            api_token(),
            Handler::Create("a-9", 90),
        ),
        ("GET /orders", "bad token", Enter::Token(bad_token), Handler::List),
        ("GET /orders", "JWT bob@B", jwt(None), Handler::List),
        ("POST /orders b-2", "JWT bob@B", jwt(None), Handler::Create("b-2", 20)),
        (
            "DELETE /orders/b-2",
            "JWT bob@B (orders:read)",
            jwt(Some("orders:read")),
            Handler::Delete("b-2"),
        ),
        ("DELETE /orders/b-2", "JWT bob@B", jwt(None), Handler::Delete("b-2")),
        ("GET /orders", "client calling set_tenant(A)", Enter::Member(a, None), Handler::List),
    ];
    for (route, who, how, handler) in requests {
        request(&mut client, route, who, how, handler).await?;
    }
    Ok(())
}
