"""pg_tenancy from Python (psycopg 3): a tiny "orders" service without the web framework.

Every request is one transaction: enter the context first (set_tenant() for a trusted backend
in tenancy_app, authenticate() with the caller's token for a tenancy_client role), then run the
request's queries, then COMMIT; the context ends with the transaction. Errors are mapped to
HTTP statuses by SQLSTATE: 28000 -> 401, 42501 -> 403, 22023 -> 400.

Configuration comes from the environment (scripts/examples.sh sets it up): PGHOST, PGPORT,
PGDATABASE, APP_ROLE/APP_PASSWORD (a member of tenancy_app), CLIENT_ROLE/CLIENT_PASSWORD (a
member of tenancy_client), TENANT_A, TENANT_B, ALICE (owner of A), VICTOR (viewer in A), BOB
(owner of B), API_TOKEN (a token of tenant A with scope orders:read), JWT_KID and JWT_SECRET
(from tenancy.create_signing_key()).
"""

import os
import time
import uuid

import jwt
import psycopg

HTTP_STATUS = {"28000": 401, "42501": 403, "22023": 400}

env = os.environ
TENANT_A, TENANT_B = uuid.UUID(env["TENANT_A"]), uuid.UUID(env["TENANT_B"])
ALICE, VICTOR, BOB = uuid.UUID(env["ALICE"]), uuid.UUID(env["VICTOR"]), uuid.UUID(env["BOB"])
UNKNOWN_TENANT = uuid.UUID("00000000-0000-4000-8000-000000000000")


def connect(role, password):
    # autocommit: nothing runs outside the explicit per-request transactions (which matters
    # behind PgBouncer in transaction mode, and keeps the context's lifetime obvious).
    # prepare_threshold=None: psycopg would otherwise turn a query run 5 times into a named
    # prepared statement kept on the server connection, which PgBouncer < 1.21 in transaction
    # mode hands to other clients ("prepared statement "_pg3_0" already exists").
    return psycopg.connect(
        host=env.get("PGHOST", "127.0.0.1"),
        port=env.get("PGPORT", "5432"),
        dbname=env["PGDATABASE"],
        user=role,
        password=password,
        autocommit=True,
        prepare_threshold=None,
    )


# --- how a request enters its context ------------------------------------------------------


def as_member(tenant, user):
    """A trusted backend that authenticated the user itself (tenancy_app)."""
    return lambda conn: conn.execute("SELECT tenancy.set_tenant(%s, %s)", (tenant, user))


def with_token(token):
    """An untrusted client: the token is a bind parameter, never spliced into the SQL."""
    return lambda conn: conn.execute("SELECT tenancy.authenticate(%s)", (token,))


def no_context(conn):
    pass


def mint_jwt(tenant, user, scope=None):
    claims = {"tid": str(tenant), "sub": str(user), "exp": int(time.time()) + 300}
    if scope is not None:
        claims["scope"] = scope
    return jwt.encode(claims, env["JWT_SECRET"], algorithm="HS256", headers={"kid": env["JWT_KID"]})


# --- the handlers ----------------------------------------------------------------------------


def list_orders(conn):
    rows = conn.execute("SELECT id FROM orders ORDER BY id").fetchall()
    return 200, "[" + ", ".join(r[0] for r in rows) + "]"


def list_orders_min_role(min_role):
    def handler(conn):
        conn.execute("SELECT tenancy.require_role(%s)", (min_role,))
        return list_orders(conn)

    return handler


def create_order(order_id, total):
    def handler(conn):
        conn.execute("SELECT tenancy.require_permission('orders:write')")
        # tenant_id is not named: its DEFAULT is tenancy.current_tenant().
        conn.execute("INSERT INTO orders (id, total) VALUES (%s, %s)", (order_id, total))
        return 201, order_id

    return handler


def delete_order(order_id):
    def handler(conn):
        conn.execute("SELECT tenancy.require_permission('orders:write')")
        cur = conn.execute("DELETE FROM orders WHERE id = %s", (order_id,))
        return (204, "") if cur.rowcount == 1 else (404, "")

    return handler


def request(conn, route, who, enter, handler):
    """One request = one transaction. Prints '<route> as <who> -> <status> <body>'."""
    try:
        with conn.transaction():
            # Copied into the authorization log; LOCAL (is_local = true) so it ends with the
            # transaction like the context does.
            conn.execute("SELECT set_config('tenancy.request_label', %s, true)", (route,))
            enter(conn)
            status, body = handler(conn)
    except psycopg.Error as e:
        if e.sqlstate not in HTTP_STATUS:
            raise
        status, body = HTTP_STATUS[e.sqlstate], f"({e.sqlstate})"
    print(f"{route} as {who} -> {status} {body}".rstrip(), flush=True)


def main():
    with connect(env["APP_ROLE"], env["APP_PASSWORD"]) as app:
        print("# tenancy_app role: the backend authenticates users and calls set_tenant()")
        request(app, "GET /orders", "alice@A", as_member(TENANT_A, ALICE), list_orders)
        request(app, "GET /orders", "bob@B", as_member(TENANT_B, BOB), list_orders)
        request(app, "POST /orders a-3", "alice@A", as_member(TENANT_A, ALICE), create_order("a-3", 30))
        request(app, "GET /orders", "alice@A", as_member(TENANT_A, ALICE), list_orders)
        request(app, "GET /orders", "bob@B", as_member(TENANT_B, BOB), list_orders)
        request(app, "GET /orders", "nobody (no context)", no_context, list_orders)
        request(app, "POST /orders a-9", "victor@A (viewer)", as_member(TENANT_A, VICTOR), create_order("a-9", 90))
        request(app, "GET /orders", "alice@B (not a member)", as_member(TENANT_B, ALICE), list_orders)
        request(app, "GET /orders", "alice@unknown-tenant", as_member(UNKNOWN_TENANT, ALICE), list_orders)
        request(app, "GET /orders?min_role=chief", "alice@A (bad argument)", as_member(TENANT_A, ALICE),
                list_orders_min_role("chief"))
        request(app, "DELETE /orders/a-3", "alice@A", as_member(TENANT_A, ALICE), delete_order("a-3"))

    with connect(env["CLIENT_ROLE"], env["CLIENT_PASSWORD"]) as client:
        print("# tenancy_client role: only a verified token enters a tenant")
        token = env["API_TOKEN"]
        bad_token = token[:-1] + ("B" if token.endswith("A") else "A")
        request(client, "GET /orders", "API token of A", with_token(token), list_orders)
        request(client, "POST /orders a-9", "API token of A (orders:read)", with_token(token), create_order("a-9", 90))
        request(client, "GET /orders", "bad token", with_token(bad_token), list_orders)
        request(client, "GET /orders", "JWT bob@B", with_token(mint_jwt(TENANT_B, BOB)), list_orders)
        request(client, "POST /orders b-2", "JWT bob@B", with_token(mint_jwt(TENANT_B, BOB)), create_order("b-2", 20))
        request(client, "DELETE /orders/b-2", "JWT bob@B (orders:read)",
                with_token(mint_jwt(TENANT_B, BOB, scope="orders:read")), delete_order("b-2"))
        request(client, "DELETE /orders/b-2", "JWT bob@B", with_token(mint_jwt(TENANT_B, BOB)), delete_order("b-2"))
        request(client, "GET /orders", "client calling set_tenant(A)", as_member(TENANT_A, None), list_orders)


if __name__ == "__main__":
    main()
