// pg_tenancy from Node.js (pg): a tiny "orders" service without the web framework.
//
// Every request is one transaction on a client checked out of the pool: enter the context first
// (set_tenant() for a trusted backend in tenancy_app, authenticate() with the caller's token for
// a tenancy_client role), run the request's queries, COMMIT (or ROLLBACK), release the client.
// The context ends with the transaction. Errors are mapped to HTTP statuses by SQLSTATE:
// 28000 -> 401, 42501 -> 403, 22023 -> 400.
//
// Configuration comes from the environment (scripts/examples.sh sets it up): PGHOST, PGPORT,
// PGDATABASE, APP_ROLE/APP_PASSWORD (a member of tenancy_app), CLIENT_ROLE/CLIENT_PASSWORD (a
// member of tenancy_client), TENANT_A, TENANT_B, ALICE (owner of A), VICTOR (viewer in A), BOB
// (owner of B), API_TOKEN (a token of tenant A with scope orders:read), JWT_KID and JWT_SECRET
// (from tenancy.create_signing_key()).
'use strict';

const { Pool } = require('pg');
const jwt = require('jsonwebtoken');

const HTTP_STATUS = { '28000': 401, '42501': 403, '22023': 400 };

const env = process.env;
const { TENANT_A, TENANT_B, ALICE, VICTOR, BOB } = env;
const UNKNOWN_TENANT = '00000000-0000-4000-8000-000000000000';

function pool(user, password) {
  return new Pool({
    host: env.PGHOST || '127.0.0.1',
    port: Number(env.PGPORT || 5432),
    database: env.PGDATABASE,
    user,
    password,
    max: 4,
  });
}

// --- how a request enters its context ------------------------------------------------------

// A trusted backend that authenticated the user itself (tenancy_app).
const asMember = (tenant, user) => (c) =>
  c.query('SELECT tenancy.set_tenant($1, $2)', [tenant, user]);

// An untrusted client: the token is a bind parameter, never spliced into the SQL.
const withToken = (token) => (c) => c.query('SELECT tenancy.authenticate($1)', [token]);

const noContext = async () => {};

function mintJwt(tenant, user, scope) {
  const claims = { tid: tenant, sub: user, exp: Math.floor(Date.now() / 1000) + 300 };
  if (scope !== undefined) claims.scope = scope;
  return jwt.sign(claims, env.JWT_SECRET, { algorithm: 'HS256', keyid: env.JWT_KID });
}

// --- the handlers ----------------------------------------------------------------------------

async function listOrders(c) {
  const { rows } = await c.query('SELECT id FROM orders ORDER BY id');
  return [200, '[' + rows.map((r) => r.id).join(', ') + ']'];
}

const listOrdersMinRole = (minRole) => async (c) => {
  await c.query('SELECT tenancy.require_role($1)', [minRole]);
  return listOrders(c);
};

const createOrder = (id, total) => async (c) => {
  await c.query("SELECT tenancy.require_permission('orders:write')");
  // tenant_id is not named: its DEFAULT is tenancy.current_tenant().
  await c.query('INSERT INTO orders (id, total) VALUES ($1, $2)', [id, total]);
  return [201, id];
};

const deleteOrder = (id) => async (c) => {
  await c.query("SELECT tenancy.require_permission('orders:write')");
  const { rowCount } = await c.query('DELETE FROM orders WHERE id = $1', [id]);
  return rowCount === 1 ? [204, ''] : [404, ''];
};

// One request = one transaction. Prints '<route> as <who> -> <status> <body>'.
async function request(db, route, who, enter, handler) {
  let status;
  let body;
  const c = await db.connect();
  try {
    await c.query('BEGIN');
    // Copied into the authorization log; local (true) so it ends with the transaction.
    await c.query("SELECT set_config('tenancy.request_label', $1, true)", [route]);
    await enter(c);
    [status, body] = await handler(c);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK');
    if (!(e.code in HTTP_STATUS)) throw e;
    [status, body] = [HTTP_STATUS[e.code], `(${e.code})`];
  } finally {
    c.release();
  }
  console.log(`${route} as ${who} -> ${status} ${body}`.trimEnd());
}

async function main() {
  const app = pool(env.APP_ROLE, env.APP_PASSWORD);
  console.log('# tenancy_app role: the backend authenticates users and calls set_tenant()');
  await request(app, 'GET /orders', 'alice@A', asMember(TENANT_A, ALICE), listOrders);
  await request(app, 'GET /orders', 'bob@B', asMember(TENANT_B, BOB), listOrders);
  await request(app, 'POST /orders a-3', 'alice@A', asMember(TENANT_A, ALICE), createOrder('a-3', 30));
  await request(app, 'GET /orders', 'alice@A', asMember(TENANT_A, ALICE), listOrders);
  await request(app, 'GET /orders', 'bob@B', asMember(TENANT_B, BOB), listOrders);
  await request(app, 'GET /orders', 'nobody (no context)', noContext, listOrders);
  await request(app, 'POST /orders a-9', 'victor@A (viewer)', asMember(TENANT_A, VICTOR), createOrder('a-9', 90));
  await request(app, 'GET /orders', 'alice@B (not a member)', asMember(TENANT_B, ALICE), listOrders);
  await request(app, 'GET /orders', 'alice@unknown-tenant', asMember(UNKNOWN_TENANT, ALICE), listOrders);
  await request(app, 'GET /orders?min_role=chief', 'alice@A (bad argument)', asMember(TENANT_A, ALICE),
    listOrdersMinRole('chief'));
  await request(app, 'DELETE /orders/a-3', 'alice@A', asMember(TENANT_A, ALICE), deleteOrder('a-3'));
  await app.end();

  const client = pool(env.CLIENT_ROLE, env.CLIENT_PASSWORD);
  console.log('# tenancy_client role: only a verified token enters a tenant');
  const token = env.API_TOKEN;
  const badToken = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
  await request(client, 'GET /orders', 'API token of A', withToken(token), listOrders);
  await request(client, 'POST /orders a-9', 'API token of A (orders:read)', withToken(token), createOrder('a-9', 90));
  await request(client, 'GET /orders', 'bad token', withToken(badToken), listOrders);
  await request(client, 'GET /orders', 'JWT bob@B', withToken(mintJwt(TENANT_B, BOB)), listOrders);
  await request(client, 'POST /orders b-2', 'JWT bob@B', withToken(mintJwt(TENANT_B, BOB)), createOrder('b-2', 20));
  await request(client, 'DELETE /orders/b-2', 'JWT bob@B (orders:read)',
    withToken(mintJwt(TENANT_B, BOB, 'orders:read')), deleteOrder('b-2'));
  await request(client, 'DELETE /orders/b-2', 'JWT bob@B', withToken(mintJwt(TENANT_B, BOB)), deleteOrder('b-2'));
  await request(client, 'GET /orders', 'client calling set_tenant(A)', asMember(TENANT_A, null), listOrders);
  await client.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
