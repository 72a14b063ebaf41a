#!/usr/bin/env python3
"""The pg_tenancy benchmark harness (issue 5): `make bench` and `make bench-smoke`.

Starts a cluster of its own, generates the dataset in the database (bench/sql/setup.sql), and
measures with pgbench every variant of one transaction shape, sent in one round trip:

    BEGIN \\; <context> \\; <query> \\; COMMIT

so that only the server-side cost of the context and of the policies differs between variants.
Variants run interleaved (the order rotates every round) and each ratio to `limit` is computed
within its round. Then micro-benchmarks in one backend, the memory of one backend calling
authenticate() a million times, and the scaling runs. Results go to a JSON file, and through
bench/report.py to the terminal, BENCHMARKS.md and an SVG chart.

Python 3.11 standard library only. Settings come from the environment (see BENCHMARKS.md):
SCALE, TENANTS, ROWS, ROUNDS, DURATION, CLIENTS, JOBS, WARMUP, SCALING_ROUNDS, SCALING_DURATION,
MICRO_CALLS, AUTH_CALLS, MEMORY_CALLS, SHARED_BUFFERS, KEEP.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import report  # noqa: E402  (bench/report.py)

PG_BIN = Path(os.environ.get("PG_BIN") or "/usr/lib/postgresql/15/bin")
PSQL = str(PG_BIN / "psql")
PGBENCH = str(PG_BIN / "pgbench")
CLUSTER = str(ROOT / "scripts" / "cluster.sh")
LARGE_TENANT_ROWS = 10_000
TOKEN_TENANTS = 50  # API tokens and JWTs: this many tenants, one pgbench script each
KNOBS = ["SCALE", "TENANTS", "ROWS", "ROUNDS", "DURATION", "CLIENTS", "JOBS", "WARMUP",
         "SCALING_ROUNDS", "SCALING_DURATION", "MICRO_CALLS", "AUTH_CALLS", "MEMORY_CALLS",
         "SHARED_BUFFERS", "KEEP"]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Configuration


def config(smoke):
    env = os.environ
    scale = env.get("SCALE", "1")
    full = scale == "full"
    factor = 1.0 if full else float(scale)

    def num(name, default):
        return int(float(env.get(name, default)))

    if smoke:
        c = dict(tenants=50, rows=20_000, rounds=1, duration=1, warmup=0, clients=2, jobs=1,
                 scaling_rounds=1, scaling_duration=1,
                 tenant_ladder=[10, 50], row_ladder=[5_000, 20_000],
                 micro_calls=20_000, auth_calls=500, memory_calls=2_000,
                 shared_buffers="128MB")
    else:
        c = dict(tenants=num("TENANTS", 1000 * factor), rows=num("ROWS", 1_000_000 * factor),
                 rounds=num("ROUNDS", 5), duration=num("DURATION", 10), warmup=num("WARMUP", 2),
                 clients=num("CLIENTS", 2), jobs=num("JOBS", 1),
                 scaling_rounds=num("SCALING_ROUNDS", 3),
                 scaling_duration=num("SCALING_DURATION", 5),
                 tenant_ladder=[100, 1_000, 10_000, 100_000],
                 row_ladder=[100_000, 1_000_000, 10_000_000] if full
                 else [100_000, 1_000_000, 3_000_000],
                 micro_calls=num("MICRO_CALLS", 1_000_000), auth_calls=num("AUTH_CALLS", 20_000),
                 memory_calls=num("MEMORY_CALLS", 1_000_000),
                 shared_buffers=env.get("SHARED_BUFFERS", "6GB" if full else "3GB"))
    c["smoke"] = smoke
    c["scale"] = scale
    # The scaling ladders: tenants at the default row count, rows at the default tenant count.
    c["ladder_rows_fixed"] = 20_000 if smoke else 1_000_000
    c["ladder_tenants_fixed"] = 50 if smoke else 1_000
    c["point_variants"] = ["limit", "hand", "tenancy", "perm", "apitoken", "jwt"]
    c["agg_variants"] = ["limit", "hand", "helper", "tenancy"]
    c["insert_variants"] = ["limit", "hand", "tenancy"]
    # The point select again with prepared statements (contrast: no parsing or planning).
    c["prepared_variants"] = ["limit", "hand", "tenancy"]
    return c


def layout(tenants, rows):
    """Skewed tenant sizes: L large tenants of B rows (~30% of the rows), N - L small ones."""
    bsize = LARGE_TENANT_ROWS if rows >= 100_000 else max(1, rows // 10)
    large = max(1, min(tenants // 10, round(0.3 * rows / bsize)))
    if tenants - large < 1 or rows - large * bsize < tenants - large:
        sys.exit(f"bench: {rows} rows are too few for {tenants} tenants")
    ssize = (rows - large * bsize) // (tenants - large)
    total = large * bsize + (tenants - large) * ssize
    return dict(tenants=tenants, rows=total, large=large, bsize=bsize, ssize=ssize,
                big=large * bsize)


def tenant_rows(lay, k):
    """First and last row number of tenant k."""
    if k <= lay["large"]:
        return (k - 1) * lay["bsize"] + 1, k * lay["bsize"]
    lo = lay["big"] + (k - lay["large"] - 1) * lay["ssize"] + 1
    return lo, lo + lay["ssize"] - 1


# Ids are uuids whose last group is 100000000000 + n in decimal (valid hex), so that pgbench can
# write them into the SQL text from an integer (see setup.sql).
OFFSET = 100_000_000_000
PREFIX = {"tenant": "70000000-0000-4000-8000-", "user": "75000000-0000-4000-8000-",
          "admin": "7a000000-0000-4000-8000-", "row": "a0000000-0000-4000-8000-"}


def ident(kind, n):
    return f"{PREFIX[kind]}{OFFSET + n}"


def subst(sql, variables):
    """Replaces :name as pgbench does (not inside ::casts)."""
    return re.sub(r"(?<!:):([a-z]+)", lambda m: str(variables[m.group(1)]), sql)


# ---------------------------------------------------------------------------------------------
# Cluster and SQL


class Cluster:
    def __init__(self, directory, port):
        self.dir = Path(directory)
        self.port = str(port)

    def run_script(self, *args):
        subprocess.run([CLUSTER, *args], check=True, stdout=subprocess.DEVNULL)

    def start_fresh(self, settings):
        self.stop()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.run_script("start", str(self.dir), self.port)
        for name, value in settings.items():
            self.psql(f"ALTER SYSTEM SET {name} = '{value}'")
        self.run_script("start", str(self.dir), self.port)  # restarts with the settings

    def stop(self):
        if (self.dir / "PG_VERSION").exists():
            subprocess.run([CLUSTER, "stop", str(self.dir)], check=False)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        for extra in (Path(f"{self.dir}.initdb.log"),):
            extra.unlink(missing_ok=True)

    def psql(self, sql, db="postgres", user="postgres", variables=None, timing=False):
        """Runs SQL through psql; returns stdout (unaligned, tuples only)."""
        cmd = [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir), "-p", self.port,
               "-U", user, "-d", db]
        for k, v in (variables or {}).items():
            cmd += ["-v", f"{k}={v}"]
        env = dict(os.environ, PGOPTIONS="-c client_min_messages=error")
        if timing:
            sql = "\\timing on\n" + sql
        res = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"psql failed ({user}@{db}):\n{res.stderr.strip()[-3000:]}")
        return res.stdout

    def psql_file(self, path, db, variables):
        return self.psql(Path(path).read_text(), db=db, variables=variables)

    def pgbench(self, db, role, scripts, duration, clients, jobs, defines, protocol="simple"):
        cmd = [PGBENCH, "-n", "-h", str(self.dir), "-p", self.port, "-U", role,
               "-c", str(clients), "-j", str(jobs), "-T", str(duration), "-M", protocol]
        for k, v in defines.items():
            cmd += ["-D", f"{k}={v}"]
        for path, weight in scripts:
            cmd += ["-f", f"{path}@{weight}"]
        cmd.append(db)
        out, tps = run_pgbench(cmd, f"{role}@{db}, {scripts[0][0]}")
        lat = re.search(r"latency average = ([\d.]+) ms", out)
        return dict(tps=tps, latency_ms=float(lat.group(1)) if lat else None)


def run_pgbench(cmd, what):
    """Runs pgbench: its output and tps, or an error naming `what` when it failed, aborted a
    client or counted a failed transaction."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", res.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", res.stdout)
    if res.returncode != 0 or not tps or "aborted" in res.stderr or (
            failed and int(failed.group(1)) > 0):
        raise RuntimeError(f"pgbench failed ({what}):\n{res.stdout[-1500:]}\n"
                           f"{res.stderr[-1500:]}")
    return res.stdout, float(tps.group(1))


# ---------------------------------------------------------------------------------------------
# Variants and scenarios: the pgbench scripts

# Which row and tenant a transaction uses. pgbench computes the tenant of a random row exactly as
# setup.sql assigned it, and writes both into uuid literals (:rid and :tid are 100000000000 + n).
IDS = "\\set rid 100000000000 + :r\n\\set tid 100000000000 + :t\n"
PICK_ROW = """\\set r random(1, :rows)
\\set t case when :r <= :big then (:r - 1) / :bsize + 1 else :large + 1 + (:r - 1 - :big) / :ssize end
""" + IDS
PICK_LARGE = "\\set r 0\n\\set t random(1, :large)\n" + IDS
PICK_ANY = "\\set r 0\n\\set t random(1, :tenants)\n\\set a random(1, 100000)\n" + IDS
TENANT = PREFIX["tenant"] + ":tid"
USER = PREFIX["user"] + ":tid"
ROW = PREFIX["row"] + ":rid"

SET_CONFIG = f"SELECT set_config('app.tenant_id', '{TENANT}', true)"
VARIANTS = {
    # name: (login role, table, context statement)
    "limit": ("bench_plain", "orders_limit", "SELECT 1"),
    "hand": ("bench_plain", "orders_hand", SET_CONFIG),
    "helper": ("bench_plain", "orders_helper", SET_CONFIG),
    "tenancy": ("bench_app", "orders_tenancy", f"SELECT tenancy.set_tenant('{TENANT}')"),
    "perm": ("bench_app", "orders_perm", f"SELECT tenancy.set_tenant('{TENANT}', '{USER}')"),
    # One script per token tenant, the token spelled out in it; see token_scripts().
    "apitoken": ("bench_client", "orders_tenancy", "SELECT tenancy.authenticate('{token}')"),
    "jwt": ("bench_client", "orders_tenancy", "SELECT tenancy.authenticate('{token}')"),
}
LABELS = {
    "limit": "limit (no RLS, WHERE tenant_id = …)",
    "hand": "hand-written RLS (current_setting)",
    "helper": "unwrapped helper (policy calls app.tenant_id())",
    "tenancy": "pg_tenancy, set_tenant",
    "perm": "pg_tenancy, set_tenant + user + read_permission",
    "apitoken": "pg_tenancy, authenticate(API token)",
    "jwt": "pg_tenancy, authenticate(JWT)",
}


def query(scenario, variant):
    table = VARIANTS[variant][1]
    own = f" AND tenant_id = '{TENANT}'" if variant == "limit" else ""
    if scenario == "point":
        return f"SELECT id, amount, status, created_at FROM {table} WHERE id = '{ROW}'{own}"
    if scenario == "agg":
        where = f" WHERE tenant_id = '{TENANT}'" if variant == "limit" else ""
        return f"SELECT count(*), sum(amount) FROM {table}{where}"
    if scenario == "insert":
        if variant == "limit":
            return f"INSERT INTO {table} (tenant_id, amount) VALUES ('{TENANT}', :a)"
        return f"INSERT INTO {table} (amount) VALUES (:a)"
    raise ValueError(scenario)


def transaction(context, sql):
    return f"BEGIN \\;\n{context} \\;\n{sql} \\;\nCOMMIT;\n"


# The prepared contrast: pgbench -M prepared sends each statement through the extended protocol
# with the ids as parameters ($n), parsed and planned once per connection (a generic plan after
# five executions). Compound statements cannot be prepared, so it is one round trip per
# statement, the same four for every variant.
def uuid_param(kind, var):
    return f"('{PREFIX[kind]}' || :{var})::uuid"


PREPARED_CONTEXT = {
    "limit": "SELECT 1",
    "hand": f"SELECT set_config('app.tenant_id', '{PREFIX['tenant']}' || :tid, true)",
    "tenancy": f"SELECT tenancy.set_tenant({uuid_param('tenant', 'tid')})",
}
# The other variants' contexts with parameters (bench/instructions.py measures them all; the
# token variants bind the token itself, see there).
PREPARED_CONTEXT_ALL = dict(
    PREPARED_CONTEXT, helper=PREPARED_CONTEXT["hand"],
    perm=f"SELECT tenancy.set_tenant({uuid_param('tenant', 'tid')}, {uuid_param('user', 'tid')})")


def prepared_query(scenario, variant):
    """query(scenario, variant) with the ids as parameters."""
    table = VARIANTS[variant][1]
    tenant = uuid_param("tenant", "tid")
    if scenario == "point":
        own = f" AND tenant_id = {tenant}" if variant == "limit" else ""
        return (f"SELECT id, amount, status, created_at FROM {table} "
                f"WHERE id = {uuid_param('row', 'rid')}{own}")
    if scenario == "agg":
        where = f" WHERE tenant_id = {tenant}" if variant == "limit" else ""
        return f"SELECT count(*), sum(amount) FROM {table}{where}"
    if scenario == "insert":
        if variant == "limit":
            return f"INSERT INTO {table} (tenant_id, amount) VALUES ({tenant}, :a)"
        return f"INSERT INTO {table} (amount) VALUES (:a)"
    raise ValueError(scenario)


def prepared_transaction(variant, scenario="point", context=None):
    context = context or PREPARED_CONTEXT_ALL[variant]
    return f"BEGIN;\n{context};\n{prepared_query(scenario, variant)};\nCOMMIT;\n"


def write_scripts(workdir, lay, tokens):
    """Writes every pgbench script; returns {(scenario, variant): [(path, weight), ...]}."""
    out = {}
    sdir = workdir / "pgbench"
    sdir.mkdir(parents=True, exist_ok=True)
    pick = {"point": PICK_ROW, "agg": PICK_LARGE, "insert": PICK_ANY}
    for scenario in ("point", "agg", "insert"):
        for variant, (_, _, context) in VARIANTS.items():
            if variant in ("apitoken", "jwt"):
                continue
            path = sdir / f"{scenario}_{variant}.sql"
            path.write_text(pick[scenario] + transaction(context, query(scenario, variant)))
            out[(scenario, variant)] = [(path, 1)]
    for variant in PREPARED_CONTEXT:
        path = sdir / f"prepared_{variant}.sql"
        path.write_text(PICK_ROW + prepared_transaction(variant))
        out[("prepared", variant)] = [(path, 1)]
    # Token variants: one script per token tenant, weighted by the tenant's rows, so that rows
    # are drawn uniformly from those tenants (as the other variants draw them from all rows).
    for variant in ("apitoken", "jwt"):
        scripts = []
        for k, tok in tokens[variant].items():
            lo, hi = tenant_rows(lay, k)
            path = sdir / f"point_{variant}_{k}.sql"
            context = VARIANTS[variant][2].format(token=tok)
            path.write_text(f"\\set r random({lo}, {hi})\n\\set t {k}\n" + IDS
                            + transaction(context, query("point", variant)))
            scripts.append((path, hi - lo + 1))
        out[("point", variant)] = scripts
    return out


# ---------------------------------------------------------------------------------------------
# Dataset


def token_tenants(lay):
    n, k = lay["tenants"], min(lay["tenants"], TOKEN_TENANTS)
    if k == 1:
        return [1]
    return sorted({1 + (i * (n - 1)) // (k - 1) for i in range(k)})


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_jwt(kid, secret, tenant, user, now):
    header = b64url(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"},
                               separators=(",", ":")).encode())
    claims = b64url(json.dumps({"tid": tenant, "sub": user, "iat": now, "exp": now + 86_400},
                               separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    # The HMAC key is the secret string create_signing_key() returned, as bytes (docs/api.md).
    sig = b64url(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}.{claims}.{sig}"


def make_dataset(cl, db, lay, full, with_tokens):
    cl.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    cl.psql(f"CREATE DATABASE {db} TEMPLATE bench_template")
    t = time.monotonic()
    cl.psql_file(BENCH / "sql" / "setup.sql", db,
                 dict(lay, all=1 if full else 0))
    tokens = {"apitoken": {}, "jwt": {}}
    if with_tokens:
        # API tokens are created by an admin of each token tenant; JWTs name the staff member.
        ks = token_tenants(lay)
        sql = []
        for k in ks:
            sql.append(f"INSERT INTO tenancy.users (id, email) VALUES ('{ident('admin', k)}', "
                       f"'admin{k}@bench.example');\n"
                       f"INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES "
                       f"('{ident('tenant', k)}', '{ident('admin', k)}', 'admin');\n"
                       f"BEGIN; SELECT tenancy.set_tenant('{ident('tenant', k)}', "
                       f"'{ident('admin', k)}') \\g /dev/null\nSELECT '{k}', token FROM "
                       f"tenancy.create_api_token('bench', ARRAY['orders:read']); COMMIT;")
        for line in cl.psql("\n".join(sql), db=db).splitlines():
            k, tok = line.split("|")
            tokens["apitoken"][int(k)] = tok
        kid, secret = cl.psql("SELECT kid, secret FROM tenancy.create_signing_key()",
                              db=db).strip().split("|")
        now = int(time.time())
        for k in ks:
            tokens["jwt"][k] = mint_jwt(kid, secret, ident("tenant", k), ident("user", k), now)
    sizes = cl.psql("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                    "WHERE c.relname LIKE 'orders\\_%' AND c.relkind = 'r' ORDER BY 1", db=db)
    return tokens, round(time.monotonic() - t, 1), dict(
        (name, int(size)) for name, size in (l.split("|") for l in sizes.split()))


def prewarm(cl, db):
    cl.psql("SELECT sum(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'tenancy') "
            "AND c.relkind IN ('r', 'i')", db=db)


PLANS = {}


def sanity(cl, db, lay, tokens):
    """Each variant as its own role: RLS applies (a tenant aggregate sees that tenant's rows
    only), the point select finds its row, and the INSERT default fills the tenant column."""
    t = 1  # a large tenant: rows 1..bsize
    checks = {}
    for variant, (role, table, context) in VARIANTS.items():
        if variant in ("apitoken", "jwt"):
            context = context.format(token=tokens[variant][t])
        ids = dict(rid=OFFSET + 1, tid=OFFSET + t, a=1)
        ctx = subst(context, ids)
        point = subst(query("point", variant), ids)
        agg = subst(query("agg", variant), ids)
        out = cl.psql(f"BEGIN;\n{ctx} \\g /dev/null\n{point};\n{agg};\nROLLBACK;",
                      db=db, user=role).splitlines()
        if len(out) != 2 or out[0].split("|")[0] != ident("row", 1) or \
                int(out[1].split("|")[0]) != lay["bsize"]:
            raise RuntimeError(f"sanity check failed for {variant}: {out}")
        if variant not in ("apitoken", "jwt"):
            ins = subst(query("insert", variant), ids)
            got = cl.psql(f"BEGIN;\n{ctx} \\g /dev/null\n{ins} RETURNING tenant_id;\nROLLBACK;",
                          db=db, user=role).splitlines()
            if got[-1] != ident("tenant", t):
                raise RuntimeError(f"sanity check (insert) failed for {variant}: {got}")
        checks[variant] = "ok"
        plans = cl.psql(f"BEGIN;\n{ctx} \\g /dev/null\nEXPLAIN (COSTS OFF) {point};\n"
                        f"\\echo @@\nEXPLAIN (COSTS OFF) {agg};\nROLLBACK;", db=db,
                        user=role).split("@@\n")
        PLANS[variant] = dict(point=plans[0].rstrip(), agg=plans[1].rstrip())
    # Without a context, pg_tenancy fails closed rather than returning nothing.
    try:
        cl.psql("SELECT count(*) FROM orders_tenancy", db=db, user="bench_app")
        raise RuntimeError("sanity check failed: a query without context succeeded")
    except RuntimeError as e:
        if "28000" not in str(e) and "no tenant context" not in str(e):
            raise
    return checks


# ---------------------------------------------------------------------------------------------
# Measurements


def interleaved(cl, db, cfg, scripts, scenario, variants, defines, rounds, duration, warmup):
    """Runs the variants A B C, B C A, ... for `rounds` rounds; ratios to limit per round."""
    protocol = "prepared" if scenario == "prepared" else "simple"
    if warmup:
        for v in variants:
            cl.pgbench(db, VARIANTS[v][0], scripts[(scenario, v)], warmup, cfg["clients"],
                       cfg["jobs"], defines, protocol)
    runs = {v: [] for v in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            res = cl.pgbench(db, VARIANTS[v][0], scripts[(scenario, v)], duration,
                             cfg["clients"], cfg["jobs"], defines, protocol)
            runs[v].append(res)
        log(f"  {scenario} round {r + 1}/{rounds}: " + ", ".join(
            f"{v} {runs[v][-1]['tps']:.0f}" for v in variants))
    out = {}
    for v in variants:
        tps = [x["tps"] for x in runs[v]]
        ratios = [x["tps"] / runs["limit"][i]["tps"] for i, x in enumerate(runs[v])]
        out[v] = dict(tps=tps, ratio=ratios,
                      latency_ms=[x["latency_ms"] for x in runs[v]])
    return out


# Times one query inside the backend (EXECUTE, clock_timestamp() before and after), so that a
# function's loop and the empty loop can alternate within one statement.
TIMER_SQL = """CREATE OR REPLACE FUNCTION public.bench_time(q text) RETURNS float8
LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; n bigint;
BEGIN
    t0 := clock_timestamp();
    EXECUTE q INTO n;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $f$;"""


def micro(cl, db, cfg, tokens):
    """Calls inside one query, in one backend: calls/s and ns per call.

    The function's loop (SELECT count(f()) FROM generate_series(1, n)) and the empty loop
    (SELECT count(*) FROM generate_series(1, n)) alternate 1 + `reps` times in one statement of
    one transaction that has the context; the first pair warms up. Raw = median time of the
    function's loop; net = median of the paired differences, the function's own cost."""
    n, na = cfg["micro_calls"], cfg["auth_calls"]
    tok_api, tok_jwt = tokens["apitoken"][1], tokens["jwt"][1]
    reps = 5
    cl.psql(TIMER_SQL, db=db)
    cases = [
        ("current_tenant", "bench_app", n,
         f"BEGIN; SELECT tenancy.set_tenant('{ident('tenant', 1)}') \\g /dev/null",
         "tenancy.current_tenant()"),
        ("has_permission", "bench_app", n,
         f"BEGIN; SELECT tenancy.set_tenant('{ident('tenant', 1)}', '{ident('user', 1)}') "
         "\\g /dev/null", "tenancy.has_permission('orders:read')"),
        ("authenticate_api", "bench_client", na, "BEGIN;", f"tenancy.authenticate('{tok_api}')"),
        ("authenticate_jwt", "bench_client", na, "BEGIN;", f"tenancy.authenticate('{tok_jwt}')"),
    ]
    res = {}
    for name, role, calls, setup, call in cases:
        loop_q = f"SELECT count(*) FROM generate_series(1, {calls})"
        f_q = f"SELECT count({call}) FROM generate_series(1, {calls})"
        out = cl.psql(f"{setup}\nSELECT public.bench_time($q${loop_q}$q$), "
                      f"public.bench_time($q${f_q}$q$) FROM generate_series(1, {reps + 1});\n"
                      "COMMIT;", db=db, user=role)
        pairs = [tuple(map(float, line.split("|"))) for line in out.split()][1:]
        loop_ms = [a for a, _ in pairs]
        f_ms = [b for _, b in pairs]
        diff = statistics.median(b - a for a, b in pairs)
        r = res[name] = dict(calls=calls, ms=statistics.median(f_ms), ms_all=f_ms,
                             loop_ms=statistics.median(loop_ms), loop_ms_all=loop_ms)
        r["ns_raw"] = r["ms"] * 1e6 / calls
        r["ns_loop"] = r["loop_ms"] * 1e6 / calls
        r["ns_net"] = diff * 1e6 / calls
        r["per_s_raw"] = 1e9 / r["ns_raw"]
        r["per_s_net"] = 1e9 / r["ns_net"] if r["ns_net"] > 0 else float("inf")
    return res


def memory(cl, db, cfg, tokens, workdir):
    """One backend (a bench_client session) calls authenticate() `memory_calls` times, in
    transactions of 10,000 calls; RSS of that backend from /proc/<pid>/status before and after
    (after a warm-up of one such transaction)."""
    out = {}
    calls = cfg["memory_calls"]
    batch = min(10_000, calls)
    for kind in ("apitoken", "jwt"):
        tok = tokens[kind][1]
        tx = (f"BEGIN; SELECT count(tenancy.authenticate('{tok}')) "
              f"FROM generate_series(1, {batch}) \\g /dev/null\nCOMMIT;\n")
        files = {w: workdir / f"memory_{kind}_{w}.txt" for w in ("before", "after")}

        def grep(when):
            return f"\\! grep -E '^(VmRSS|RssAnon|VmHWM):' /proc/$BENCH_PID/status > {files[when]}\n"

        sql = ("SELECT pg_backend_pid() AS pid \\gset\n\\setenv BENCH_PID :pid\n" + tx
               + grep("before") + "SELECT clock_timestamp() AS t0 \\gset\n"
               + tx * (calls // batch)
               + "SELECT extract(epoch FROM clock_timestamp() - :'t0');\n" + grep("after"))
        seconds = float(cl.psql(sql, db=db, user="bench_client").strip())
        before, after = files["before"].read_text(), files["after"].read_text()

        def kb(block, field):
            return int(re.search(rf"{field}:\s+(\d+) kB", block).group(1))

        out[kind] = dict(calls=(calls // batch) * batch, seconds=seconds,
                         rss_before_kb=kb(before, "VmRSS"), rss_after_kb=kb(after, "VmRSS"),
                         anon_before_kb=kb(before, "RssAnon"), anon_after_kb=kb(after, "RssAnon"),
                         hwm_after_kb=kb(after, "VmHWM"))
        o = out[kind]
        o["growth_kb"] = o["rss_after_kb"] - o["rss_before_kb"]
        o["anon_growth_kb"] = o["anon_after_kb"] - o["anon_before_kb"]
    return out


def scaling(cl, cfg, main_db, main_lay, workdir):
    """pg_tenancy (set_tenant) / limit, point select, across tenant counts and row counts.

    Every point has a database of its own, all generated first; then each round visits every
    point (in rotating order) and runs limit and pg_tenancy back to back, so that throughputs of
    different points are also compared within the same minutes."""
    fixed_n, fixed_m = cfg["ladder_tenants_fixed"], cfg["ladder_rows_fixed"]
    wanted = [(n, fixed_m) for n in cfg["tenant_ladder"]] + \
             [(fixed_n, m) for m in cfg["row_ladder"]]
    points = []
    for n, m in dict.fromkeys(wanted):
        lay = layout(n, m)
        if (n, lay["rows"]) == (main_lay["tenants"], main_lay["rows"]):
            db, gen = main_db, None
        else:
            db = f"bench_scale_{n}_{m}"
            log(f"scaling: generating {n:,} tenants, {m:,} rows")
            _, gen, _ = make_dataset(cl, db, lay, full=False, with_tokens=False)
        scripts = write_scripts(workdir / f"scale_{n}_{m}", lay, {"apitoken": {}, "jwt": {}})
        points.append(dict(key=f"{n}x{m}", db=db, lay=lay, scripts=scripts,
                           out=dict(tenants=n, rows_requested=m, rows=lay["rows"],
                                    generate_s=gen, limit=dict(tps=[], ratio=[]),
                                    tenancy=dict(tps=[], ratio=[]))))
    for pt in points:
        prewarm(cl, pt["db"])
    for r in range(cfg["scaling_rounds"]):
        order = points[r % len(points):] + points[:r % len(points)]
        for pt in order:
            variants = ["limit", "tenancy"] if r % 2 == 0 else ["tenancy", "limit"]
            tps = {}
            for v in variants:
                tps[v] = cl.pgbench(pt["db"], VARIANTS[v][0], pt["scripts"][("point", v)],
                                    cfg["scaling_duration"], cfg["clients"], cfg["jobs"],
                                    pt["lay"])["tps"]
            for v in variants:
                pt["out"][v]["tps"].append(tps[v])
                pt["out"][v]["ratio"].append(tps[v] / tps["limit"])
        log(f"  scaling round {r + 1}/{cfg['scaling_rounds']}: " + ", ".join(
            f"{pt['key']} {pt['out']['tenancy']['ratio'][-1]:.3f}" for pt in points))
    for pt in points:
        if pt["db"] != main_db:
            cl.psql(f"DROP DATABASE {pt['db']} WITH (FORCE)")
    return {pt["key"]: pt["out"] for pt in points}


# ---------------------------------------------------------------------------------------------
# Machine, settings, build


def machine_info():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return dict(nproc=os.cpu_count(), cpu=cpu,
                mem_gib=round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
                kernel=platform.release(), loadavg_start=os.getloadavg())


SETTINGS_SHOWN = ["server_version", "shared_buffers", "work_mem", "maintenance_work_mem",
                  "effective_cache_size", "max_connections", "max_wal_size", "checkpoint_timeout",
                  "fsync", "synchronous_commit", "full_page_writes", "jit", "autovacuum",
                  "random_page_cost", "shared_preload_libraries", "dynamic_library_path",
                  "tenancy.log_allowed"]


def pg_config(flag):
    return subprocess.run([str(PG_BIN / "pg_config"), flag], capture_output=True,
                          text=True, check=True).stdout.strip()


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def extension_files():
    ext = Path(pg_config("--sharedir")) / "extension"
    return sorted(ext.glob("pg_tenancy.control")) + sorted(ext.glob("pg_tenancy--*.sql"))


def pin_release(libdir):
    """Copies the release build into a directory of the bench's own: the shared library, which
    the cluster then loads through dynamic_library_path (other engineers may install a debug
    build into the system directories at any time), and the extension's control and SQL files,
    put back just before CREATE EXTENSION."""
    shutil.rmtree(libdir, ignore_errors=True)
    (libdir / "extension").mkdir(parents=True)
    release = ROOT / "target" / "release" / "libpg_tenancy.so"
    shutil.copy2(release, libdir / "pg_tenancy.so")
    for f in extension_files():
        shutil.copy2(f, libdir / "extension" / f.name)
    installed = Path(pg_config("--pkglibdir")) / "pg_tenancy.so"
    return dict(pinned=str(libdir), release_sha256=sha(release),
                installed_matches_release=installed.exists() and sha(installed) == sha(release))


def restore_extension_files(libdir):
    """Puts the pinned control and SQL files back into the system's extension directory
    (atomically, like install(1)); returns whether they were still there unchanged."""
    ext = Path(pg_config("--sharedir")) / "extension"
    unchanged = True
    for f in sorted((libdir / "extension").iterdir()):
        dest = ext / f.name
        if dest.exists() and sha(dest) == sha(f):
            continue
        unchanged = False
        tmp = ext / f".{f.name}.bench"
        shutil.copy2(f, tmp)
        os.replace(tmp, dest)
    return unchanged


def library_info(cl):
    """The pg_tenancy library the running postmaster has mapped."""
    pid = (cl.dir / "postmaster.pid").read_text().split()[0]
    path = None
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if line.rstrip().endswith("pg_tenancy.so") or "pg_tenancy.so (deleted)" in line:
            path = line.split(None, 5)[5]
            break
    info = dict(path=path)
    if path and Path(path).exists():
        data = Path(path).read_bytes()
        info.update(size=len(data), sha256=hashlib.sha256(data).hexdigest()[:16])
        # Debug builds of pg_tenancy are tens of MB (debug info); release builds ~1-2 MB.
        info["profile"] = "release" if len(data) < 10_000_000 else "debug"
    return info


def git_info():
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "src", "sql", "crates", "Cargo.toml", "Cargo.lock")
    return dict(commit=git("rev-parse", "--short", "HEAD"), dirty=bool(dirty),
                subject=git("log", "-1", "--format=%s"))


def prepare_cluster(cl, settings, libdir, results):
    """Starts a fresh cluster with `settings` and creates the template every database is copied
    from (so the extension's SQL is read once). With `libdir`, the cluster loads a pinned copy of
    the release build (pin_release). Records the library, the extension's version and the
    settings in `results`."""
    if libdir:
        results["pin"] = pin_release(libdir)
        settings = dict(settings, dynamic_library_path=f"{libdir}:$libdir")
    cl.start_fresh(settings)
    results["library"] = library_info(cl)
    for attempt in range(3):
        if libdir:
            restore_extension_files(libdir)
        cl.psql("DROP DATABASE IF EXISTS bench_template")
        cl.psql("CREATE DATABASE bench_template")
        cl.psql("CREATE EXTENSION pg_tenancy; CREATE EXTENSION pg_prewarm;",
                db="bench_template")
        if not libdir or restore_extension_files(libdir):
            break
        log("the extension's SQL files changed during CREATE EXTENSION (another install); again")
    if libdir and results["library"].get("sha256") != results["pin"]["release_sha256"]:
        raise RuntimeError(f"the cluster did not load the pinned release build: "
                           f"{results['library']}")
    results["extension_version"] = cl.psql(
        "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'",
        db="bench_template").strip()
    shown = cl.psql("SELECT name || '|' || current_setting(name) FROM unnest(ARRAY[%s]) AS name"
                    % ",".join(f"'{s}'" for s in SETTINGS_SHOWN))
    results["settings"] = dict(l.split("|", 1) for l in shown.splitlines())
    if results["settings"].get("shared_preload_libraries") != "pg_tenancy":
        raise RuntimeError("pg_tenancy is not preloaded")


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="seconds-long end-to-end check")
    ap.add_argument("--port", required=True)
    ap.add_argument("--dir", required=True, help="cluster data directory")
    ap.add_argument("--out", required=True, help="markdown report to write")
    ap.add_argument("--svg", required=True, help="scaling chart to write")
    ap.add_argument("--json", help="results file (default: next to the cluster)")
    ap.add_argument("--pin-release", action="store_true",
                    help="load target/release's library from a copy of the bench's own")
    args = ap.parse_args()

    started = time.monotonic()
    cfg = config(args.smoke)
    cl = Cluster(args.dir, args.port)
    workdir = Path(f"{args.dir}.work")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    results = dict(config={k: v for k, v in cfg.items()}, machine=machine_info(),
                   date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   git=git_info(), timings={})
    knobs = " ".join(f"{k}={os.environ[k]}" for k in KNOBS if k in os.environ)
    results["command"] = (knobs + " " if knobs else "") + \
        ("make bench-smoke" if args.smoke else "make bench")
    if os.environ.get("BENCH_BUILD_SECONDS"):
        results["timings"]["build_s"] = int(os.environ["BENCH_BUILD_SECONDS"])

    results["load"] = {}

    def phase(name, t0):
        results["timings"][name] = round(time.monotonic() - t0, 1)
        results["load"][name] = round(os.getloadavg()[0], 1)  # 1-minute load at its end

    settings = {"shared_buffers": cfg["shared_buffers"], "work_mem": "16MB",
                "maintenance_work_mem": "512MB", "effective_cache_size": "8GB",
                "max_wal_size": "16GB", "checkpoint_timeout": "30min", "jit": "off",
                "random_page_cost": "1.1"}
    libdir = Path(f"{args.dir}.lib")
    try:
        t = time.monotonic()
        log(f"cluster: {cl.dir} on port {cl.port}")
        prepare_cluster(cl, settings, libdir if args.pin_release else None, results)
        phase("cluster_s", t)

        t = time.monotonic()
        lay = layout(cfg["tenants"], cfg["rows"])
        results["layout"] = lay
        log(f"dataset: {lay['tenants']:,} tenants ({lay['large']} of {lay['bsize']:,} rows, "
            f"{lay['tenants'] - lay['large']:,} of {lay['ssize']:,}), {lay['rows']:,} rows, "
            "5 copies")
        tokens, gen_s, sizes = make_dataset(cl, "bench", lay, full=True, with_tokens=True)
        results["table_bytes"] = sizes
        results["token_tenants"] = sorted(tokens["apitoken"])
        prewarm(cl, "bench")
        results["sanity"] = sanity(cl, "bench", lay, tokens)
        results["plans"] = PLANS
        scripts = write_scripts(workdir, lay, tokens)
        phase("setup_s", t)
        log(f"dataset ready in {gen_s:.0f} s; sanity checks passed")

        t = time.monotonic()
        log("micro-benchmarks")
        results["micro"] = micro(cl, "bench", cfg, tokens)
        phase("micro_s", t)
        t = time.monotonic()
        log(f"memory: {cfg['memory_calls']:,} authenticate() calls per token kind")
        results["memory"] = memory(cl, "bench", cfg, tokens, workdir)
        phase("memory_s", t)

        results["scenarios"] = {}
        for scenario, key in (("point", "point_variants"), ("prepared", "prepared_variants"),
                              ("agg", "agg_variants")):
            t = time.monotonic()
            log(f"{scenario}: {', '.join(cfg[key])} x {cfg['rounds']} rounds x "
                f"{cfg['duration']} s")
            results["scenarios"][scenario] = interleaved(
                cl, "bench", cfg, scripts, scenario, cfg[key], lay, cfg["rounds"],
                cfg["duration"], cfg["warmup"])
            phase(f"{scenario}_s", t)

        t = time.monotonic()
        log("scaling runs")
        results["scaling"] = scaling(cl, cfg, "bench", lay, workdir)
        phase("scaling_s", t)

        # INSERTs last: they add rows (other scenarios and the scaling base point are done).
        t = time.monotonic()
        log(f"insert: {', '.join(cfg['insert_variants'])} x {cfg['rounds']} rounds")
        results["scenarios"]["insert"] = interleaved(
            cl, "bench", cfg, scripts, "insert", cfg["insert_variants"], lay, cfg["rounds"],
            cfg["duration"], cfg["warmup"])
        phase("insert_s", t)

    finally:
        results["machine"]["loadavg_end"] = os.getloadavg()
        if os.environ.get("KEEP") == "1":
            log(f"KEEP=1: the cluster keeps running ({cl.dir}, port {cl.port})")
        else:
            cl.stop()
            cl.remove()
            shutil.rmtree(libdir, ignore_errors=True)
    results["timings"]["harness_s"] = round(time.monotonic() - started, 1)

    out_json = Path(args.json) if args.json else workdir / "results.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=1, default=str))
    report.render(results, Path(args.out), Path(args.svg), LABELS)
    log(f"results: {out_json}; report: {args.out}; chart: {args.svg}; "
        f"harness time {results['timings']['harness_s']:.0f} s")


if __name__ == "__main__":
    main()
