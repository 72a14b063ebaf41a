#!/usr/bin/env python3
"""`make bench-citus`: a tenant's point select through a Citus coordinator (issue 14).

Starts a coordinator and two workers of its own on loopback ports (PORT, PORT+1, PORT+2), every
node preloading `citus,pg_tenancy` with one generated `tenancy.cluster_secret`, and distributes
three copies of the same orders by `tenant_id` (co-located, SHARDS shards):

    orders_limit    no row-level security; the query says WHERE tenant_id = ...   (the limit)
    orders_tenancy  tenancy.isolate(); the query does not name the tenant
    orders_hand     today's hand-written Citus pattern: ENABLE + FORCE RLS, the policy
                    tenant_id = current_setting('app.tenant_id')::uuid, the tenant sent to the
                    workers with SET LOCAL (citus.propagate_set_commands = 'local')

Each variant runs as a login role that owns nothing (RLS applies), through pgbench on the
coordinator, one statement per round trip: BEGIN; <context>; <point select>; COMMIT (Citus
mishandles a propagated SET LOCAL sent in one multi-statement query with the others). The
variants run interleaved (the order rotates every round) and each ratio to limit is computed
within its round. Before measuring, every variant's query is checked as its role: it finds its
row, a tenant sees only its own rows, and EXPLAIN's Task Count says how many shards it asks.

Then it counts instructions instead of time: each postmaster restarted under callgrind, each
variant run by one connection for COUNT_FIRST and for COUNT_FIRST + COUNT_DELTA transactions with
the same draws, and the difference per transaction taken on each node (see `counted`).

Results go to a JSON file and to the section between the bench-citus markers of BENCHMARKS.md
(the rest of the file is left as it is). Python 3.11 standard library only. Knobs from the
environment: TENANTS, ROWS_PER_TENANT, SHARDS, ROUNDS, DURATION, CLIENTS, WARMUP, COUNT_TENANTS,
COUNT_FIRST, COUNT_DELTA.
Needs citus.so in the PostgreSQL of PG_BIN; fails saying so when it is not there.
"""

import argparse
import datetime
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from bench import (OFFSET, PREFIX, git_info, ident, log, machine_info,  # noqa: E402
                   run_pgbench)
from instructions import parse_profile, total  # noqa: E402
import report  # noqa: E402

PG_BIN = Path(os.environ.get("PG_BIN") or "/usr/lib/postgresql/15/bin")
BEGIN, END = "<!-- bench-citus:begin -->", "<!-- bench-citus:end -->"
KNOBS = ["TENANTS", "ROWS_PER_TENANT", "SHARDS", "ROUNDS", "DURATION", "CLIENTS", "WARMUP",
         "COUNT_TENANTS", "COUNT_FIRST", "COUNT_DELTA"]
TARGET = 0.90  # pg_tenancy's throughput as a fraction of the limit's (issue 14)

TENANT = PREFIX["tenant"] + ":tid"
ROW = PREFIX["row"] + ":rid"
COLUMNS = "id, amount, status, created_at"
VARIANTS = {
    # name: (login role, table, context statement)
    "limit": ("bench_plain", "orders_limit", "SELECT 1"),
    "tenancy": ("bench_app", "orders_tenancy", f"SELECT tenancy.set_tenant('{TENANT}')"),
    "hand": ("bench_plain", "orders_hand", f"SET LOCAL app.tenant_id = '{TENANT}'"),
}
LABELS = {
    "limit": "limit (no RLS, WHERE tenant_id = …)",
    "tenancy": "pg_tenancy, set_tenant",
    "hand": "hand-written RLS, SET LOCAL propagated",
}
# Row r belongs to tenant (r - 1) / ROWS_PER_TENANT + 1; ids as in bench/bench.py.
PICK = ("\\set r random(1, :rows)\n\\set t (:r - 1) / :per + 1\n"
        "\\set rid 100000000000 + :r\n\\set tid 100000000000 + :t\n")


def config():
    env = os.environ

    def num(name, default):
        return int(float(env.get(name, default)))

    return dict(tenants=num("TENANTS", 1000), per=num("ROWS_PER_TENANT", 100),
                shards=num("SHARDS", 32), rounds=num("ROUNDS", 7),
                duration=num("DURATION", 10), clients=num("CLIENTS", 2),
                warmup=num("WARMUP", 2), count_tenants=num("COUNT_TENANTS", 20),
                count_first=num("COUNT_FIRST", 60), count_delta=num("COUNT_DELTA", 100))


def as_postgres(*cmd):
    return ["runuser", "-u", "postgres", "--", *map(str, cmd)]


class Node:
    def __init__(self, base, port):
        self.port = port
        self.data = Path(base).resolve() / f"node{port}"

    def start(self, shards, secret):
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["chown", "postgres:postgres", str(self.data.parent)], check=True)
        # Trust on loopback: the nodes connect to each other as the application's roles, and
        # what is measured is the work of the servers, not of passwords.
        subprocess.run(as_postgres(PG_BIN / "initdb", "-U", "postgres", "--auth=trust",
                                   "--encoding=UTF8", "--locale=C.UTF-8", "-D", self.data),
                       check=True, stdout=subprocess.DEVNULL)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.data}'\n"
                    "shared_preload_libraries = 'citus,pg_tenancy'\n"
                    f"tenancy.cluster_secret = '{secret}'\n"
                    "max_connections = 200\nmax_prepared_transactions = 200\n"
                    "shared_buffers = '512MB'\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\njit = off\n"
                    f"citus.shard_count = {shards}\n")
        subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-w", "-t", "60", "-l",
                                   self.data / "server.log", "-D", self.data, "start"),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-w", "-m", "fast", "-D", self.data,
                                       "stop"), check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def start_counted(self, cgdir):
        """The node again, its postmaster under `valgrind --tool=callgrind`: every process it
        forks writes CGDIR/<port>.<pid> when it exits. Citus's periodic work that opens
        connections between nodes is off, so that what appears is the workload's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUST_")}
        cmd = as_postgres("valgrind", "--tool=callgrind", "--trace-children=yes",
                          f"--callgrind-out-file={cgdir}/{self.port}.%p",
                          f"--log-file={cgdir}/valgrind.{self.port}.log",
                          PG_BIN / "postgres", "-D", self.data, "-c", "autovacuum=off",
                          "-c", "citus.distributed_deadlock_detection_factor=-1",
                          "-c", "citus.recover_2pc_interval=-1")
        log_file = open(self.data / "callgrind-server.log", "a")
        return subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)

    def cpu_ticks(self):
        """CPU used by this node so far, in clock ticks: the postmaster's own and that of every
        process it has reaped (each backend is reaped when its connection ends)."""
        pid = (self.data / "postmaster.pid").read_text().split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime

    def psql(self, sql, user="postgres"):
        cmd = [str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
               "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", "postgres"]
        env = dict(os.environ, PGOPTIONS="-c client_min_messages=error")
        res = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"psql failed ({user}@{self.port}):\n{res.stderr.strip()[-3000:]}")
        return res.stdout

    def pgbench(self, role, script, cfg, duration, transactions=None):
        """`duration` seconds with the configured clients, or one client running exactly
        `transactions` (drawn from the first COUNT_TENANTS tenants, the same draws every time)."""
        if transactions is None:
            run = ["-c", str(cfg["clients"]), "-T", str(duration),
                   "-D", f"rows={cfg['tenants'] * cfg['per']}"]
        else:
            run = ["-c", "1", "-t", str(transactions), "--random-seed=7",
                   "-D", f"rows={cfg['count_tenants'] * cfg['per']}"]
        cmd = [str(PG_BIN / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(self.port),
               "-U", role, "-j", "1", *run, "-M", "simple",
               "-D", f"per={cfg['per']}", "-f", str(script), "postgres"]
        out, tps = run_pgbench(cmd, f"{role}, {script}")
        done = re.search(r"number of transactions actually processed: (\d+)", out)
        return tps, int(done.group(1))


SETUP = """
SET client_min_messages = warning;
CREATE ROLE bench_plain LOGIN;
CREATE ROLE bench_app LOGIN IN ROLE tenancy_app;
-- The hand-written pattern needs its SET LOCAL sent to the workers.
ALTER ROLE bench_plain SET citus.propagate_set_commands = 'local';
INSERT INTO tenancy.tenants (id, name, slug)
SELECT ('{tenant}' || (100000000000 + k))::uuid, 'tenant ' || k, 'tenant-' || k
  FROM generate_series(1, {tenants}) AS k;
CREATE TABLE orders_limit (
    id         uuid          NOT NULL,
    tenant_id  uuid          NOT NULL,
    amount     numeric(12,2) NOT NULL,
    status     text          NOT NULL DEFAULT 'open',
    created_at timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE orders_tenancy (LIKE orders_limit INCLUDING ALL);
CREATE TABLE orders_hand (LIKE orders_limit INCLUDING ALL);
SELECT create_distributed_table('orders_limit', 'tenant_id');
SELECT create_distributed_table('orders_tenancy', 'tenant_id', colocate_with => 'orders_limit');
SELECT create_distributed_table('orders_hand', 'tenant_id', colocate_with => 'orders_limit');
SELECT tenancy.isolate('orders_tenancy');
ALTER TABLE orders_hand ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders_hand FORCE ROW LEVEL SECURITY;
CREATE POLICY hand ON orders_hand USING (tenant_id = current_setting('app.tenant_id')::uuid);
INSERT INTO orders_limit (id, tenant_id, amount, status, created_at)
SELECT ('{row}' || (100000000000 + r))::uuid,
       ('{tenant}' || (100000000000 + (r - 1) / {per} + 1))::uuid,
       (r::bigint * 7919 % 100000) / 100.0,
       (ARRAY['open', 'paid', 'shipped', 'refunded'])[r % 4 + 1],
       timestamptz '2024-01-01 00:00:00+00' + r * interval '1 second'
  FROM generate_series(1, {rows}) AS r;
INSERT INTO orders_tenancy SELECT * FROM orders_limit;
INSERT INTO orders_hand SELECT * FROM orders_limit;
GRANT SELECT ON orders_limit, orders_hand TO bench_plain;
GRANT SELECT ON orders_tenancy TO bench_app;
VACUUM ANALYZE orders_limit;
VACUUM ANALYZE orders_tenancy;
VACUUM ANALYZE orders_hand;
"""


def where_tenant(variant):
    """The limit names its tenant in the query; the others leave it to their policies."""
    return f" AND tenant_id = '{TENANT}'" if variant == "limit" else ""


def point_query(variant):
    return f"SELECT {COLUMNS} FROM {VARIANTS[variant][1]} WHERE id = '{ROW}'{where_tenant(variant)}"


def fill(text, k, r):
    return text.replace(":tid", str(OFFSET + k)).replace(":rid", str(OFFSET + r))


def check(coordinator, cfg):
    """Each variant as its role: its row found, only its tenant's rows, and the Task Count."""
    per, out = cfg["per"], {}
    k, r = 2, per + 1  # tenant 2's first row
    for v, (role, table, context) in VARIANTS.items():
        query = point_query(v)
        count_sql = (f"SELECT count(*), count(DISTINCT tenant_id) FROM {table} WHERE true"
                     + where_tenant(v))
        sql = (f"BEGIN;\n{context} \\g /dev/null\n{query};\n{count_sql};\n"
               f"EXPLAIN (COSTS OFF) {query};\nROLLBACK;")
        lines = coordinator.psql(fill(sql, k, r), user=role).splitlines()
        if not lines[0].startswith(ident("row", r) + "|") or lines[1] != f"{per}|1":
            raise RuntimeError(f"check failed for {v}: {lines[:2]}")
        tasks = [ln.split(":")[1].strip() for ln in lines if ln.strip().startswith("Task Count:")]
        out[v] = dict(task_count=int(tasks[0]))
    # Without a context the isolated table is refused, not empty.
    try:
        coordinator.psql("SELECT count(*) FROM orders_tenancy", user="bench_app")
        raise RuntimeError("orders_tenancy answered without a tenant context")
    except RuntimeError as e:
        if "no tenant context" not in str(e):
            raise
    return out


def measured(nodes, role, script, cfg, duration):
    """pgbench through the coordinator: its tps, and the CPU all three servers spent per
    transaction (µs), counted once pgbench's backends and their worker connections ended."""
    before = sum(n.cpu_ticks() for n in nodes)
    tps, done = nodes[0].pgbench(role, script, cfg, duration)
    time.sleep(1.5)  # the backends exit and are reaped (Citus's worker connections with them)
    ticks = sum(n.cpu_ticks() for n in nodes) - before
    return dict(tps=tps, cpu_us=ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(done, 1))


def interleaved(nodes, cfg, scripts):
    names = list(VARIANTS)
    if cfg["warmup"]:
        for v in names:
            nodes[0].pgbench(VARIANTS[v][0], scripts[v], cfg, cfg["warmup"])
    runs = {v: [] for v in names}
    for rnd in range(cfg["rounds"]):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for v in order:
            runs[v].append(measured(nodes, VARIANTS[v][0], scripts[v], cfg, cfg["duration"]))
        log(f"  round {rnd + 1}/{cfg['rounds']}: " + ", ".join(
            f"{v} {runs[v][-1]['tps']:.0f} tps {runs[v][-1]['cpu_us']:.0f} µs" for v in names))
    out = {}
    for v in names:
        tps = [x["tps"] for x in runs[v]]
        cpu = [x["cpu_us"] for x in runs[v]]
        out[v] = dict(tps=tps, cpu_us=cpu,
                      ratio=[t / runs["limit"][i]["tps"] for i, t in enumerate(tps)],
                      cpu_ratio=[c / runs["limit"][i]["cpu_us"] for i, c in enumerate(cpu)])
    return out


def counted_run(nodes, cgdir, role, script, cfg, transactions):
    """Instructions per node (by port) of the processes that a pgbench connection running
    `transactions` started and ended: its backend on the coordinator, the backends serving it
    on the workers."""
    before = set(cgdir.iterdir())
    nodes[0].pgbench(role, script, cfg, None, transactions)
    # A file appears when its process has exited (the workers' backends after the
    # coordinator's): done when the new files are complete and none came for 3 seconds.
    deadline, seen, quiet = time.monotonic() + 600, None, 0
    while quiet < 3:
        time.sleep(1)
        new = {f for f in set(cgdir.iterdir()) - before if not f.name.startswith("valgrind.")}
        complete = new and all(total(f) is not None for f in new) and not any(
            Path(f"/proc/{f.name.split('.')[1]}").exists() for f in new)
        quiet = quiet + 1 if complete and new == seen else 0
        seen = new
        if time.monotonic() > deadline:
            raise RuntimeError(f"no complete callgrind output after {script}")
    out = {}
    for f in new:
        port = f.name.split(".")[0]
        out[port] = out.get(port, 0) + total(f)
    return out, sorted(new)


# Where the instructions go: inclusive counts (they overlap), summed over the three nodes.
WATCHED = [
    ("pg_tenancy::cluster::hand_over", "the context sealed and set with SET LOCAL (coordinator)"),
    ("tenancy_tokens::hmac_sha256", "HMAC-SHA-256: sealing and checking seals (all nodes)"),
    ("pg_tenancy::cluster::check_signed_context", "the setting's check of a sealed value"),
    ("ProcessUtility", "utility statements: BEGIN, SET, COMMIT (all nodes)"),
    ("planner", "planning (all nodes)"),
    ("ExecutorStart", "executor start (all nodes)"),
    ("ExecutorRun", "executor run (all nodes)"),
    ("CommitTransactionCommand", "commit (all nodes)"),
]


def watched_costs(files):
    names = {name for name, _ in WATCHED}
    out = dict.fromkeys(names, 0)
    for f in files:
        for (_, fn), v in parse_profile(f)["incl"].items():
            if fn in names:
                out[fn] += v
    return out


def counted(nodes, cfg, scripts, work):
    """Instructions per transaction on each node: every postmaster under callgrind, each variant
    run by one connection for FIRST (twice: the first run is not counted) and for FIRST + DELTA
    transactions with the same draws; the
    difference divided by DELTA is DELTA warm transactions (connection start-up, the first visit
    of each tenant and the connection's end cancel out). Counts repeat where timings do not."""
    cgdir = work / "callgrind"
    shutil.rmtree(cgdir, ignore_errors=True)
    cgdir.mkdir(parents=True)
    shutil.chown(cgdir, "postgres")
    for n in nodes:
        n.stop()
    procs = [n.start_counted(cgdir) for n in nodes]
    try:
        for n, proc in zip(nodes, procs):
            deadline = time.monotonic() + 600
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"node {n.port} under callgrind exited")
                try:
                    n.psql("SELECT 1")
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
        first, delta = cfg["count_first"], cfg["count_delta"]
        out = {}
        # The hand-written variant is left out: its fan-out to every shard opens connections
        # under callgrind for minutes, and its Task Count and CPU above say what it costs.
        for v in ("limit", "tenancy"):
            # A first run, not counted, takes in whatever else ended since the last one (the
            # nodes' start-up, the readiness checks).
            counted_run(nodes, cgdir, VARIANTS[v][0], scripts[v], cfg, first)
            a, files_a = counted_run(nodes, cgdir, VARIANTS[v][0], scripts[v], cfg, first)
            b, files_b = counted_run(nodes, cgdir, VARIANTS[v][0], scripts[v], cfg, first + delta)
            per = {str(n.port): (b.get(str(n.port), 0) - a.get(str(n.port), 0)) / delta
                   for n in nodes}
            out[v] = dict(coordinator=per[str(nodes[0].port)],
                          workers=sum(per[str(n.port)] for n in nodes[1:]))
            wa, wb = watched_costs(files_a), watched_costs(files_b)
            out[v]["functions"] = {fn: (wb[fn] - wa[fn]) / delta for fn in wa}
            log(f"  counted {v}: coordinator {out[v]['coordinator'] / 1e3:,.1f} k, workers "
                f"{out[v]['workers'] / 1e3:,.1f} k instructions per transaction")
        return out
    finally:
        for n in nodes:
            subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-D", n.data, "-m", "fast", "-w",
                                       "-t", "900", "stop"), check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for proc in procs:
            proc.wait(timeout=900)


def section(res):
    cfg = res["config"]
    lines = [BEGIN, "## Citus: a tenant's point select through the coordinator", "",
             f"Command: `{res['command']}` (PostgreSQL {res['server_version']}, Citus "
             f"{res['citus_version']}; {res['date']}, commit {res['git']['commit']}"
             f"{' with uncommitted changes' if res['git']['dirty'] else ''}). A coordinator and "
             f"two workers on this machine ({res['machine']['nproc']} cores, shared with "
             f"pgbench), {cfg['tenants']:,} tenants of {cfg['per']:,} rows distributed by "
             f"tenant over {cfg['shards']} shards, {cfg['clients']} clients, "
             f"{cfg['rounds']} interleaved rounds of {cfg['duration']} s, one round trip per "
             "statement (`BEGIN`, the context, the `SELECT`, `COMMIT`). Throughput is what the "
             "target is about; the CPU the three servers spent per transaction (their "
             "postmasters' own and reaped children's time, so every backend on every node) "
             "depends much less on what else the machine is doing. Ratios are to the limit "
             "within each round: median (lowest–highest).", "",
             "| variant | shards asked (Task Count) | tps, median | tps ratio to limit | target "
             "| server CPU per transaction, median | CPU ratio to limit |",
             "|---|---|---|---|---|---|---|"]

    def spread(xs):
        return f"{statistics.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})"

    for v, label in LABELS.items():
        r = res["results"][v]
        target = ""
        if v == "tenancy":
            met = statistics.median(r["ratio"]) >= TARGET
            target = f"≥ {TARGET:.2f} × limit: {'met' if met else 'missed'}"
        lines.append(f"| {label} | {res['checks'][v]['task_count']} | "
                     f"{statistics.median(r['tps']):,.0f} | "
                     f"{'1.000' if v == 'limit' else spread(r['ratio'])} | {target} | "
                     f"{statistics.median(r['cpu_us']):,.0f} µs | "
                     f"{'1.000' if v == 'limit' else spread(r['cpu_ratio'])} |")
    ins = res.get("instructions")
    if ins:
        lim = ins["limit"]["coordinator"] + ins["limit"]["workers"]
        lines += ["", f"Instructions per transaction, every node's postmaster under callgrind: "
                  f"one connection, {cfg['count_tenants']} tenants visited before counting, "
                  f"the difference between runs of {cfg['count_first']} and "
                  f"{cfg['count_first'] + cfg['count_delta']} transactions with the same draws, "
                  f"divided by {cfg['count_delta']} (workers: both, each serving the "
                  "transactions whose shard it holds). Under valgrind SHA-256 runs without the "
                  "CPU's SHA instructions, so the seal's share is larger here than on the "
                  "machine.", "",
                  "| variant | coordinator | workers | all three nodes | ratio to limit |",
                  "|---|---|---|---|---|"]
        for v, label in LABELS.items():
            if v not in ins:
                continue
            c = ins[v]
            both = c["coordinator"] + c["workers"]
            lines.append(f"| {label} | {c['coordinator'] / 1e3:,.1f} k | "
                         f"{c['workers'] / 1e3:,.1f} k | {both / 1e3:,.1f} k | "
                         f"{both / lim:.3f} |")
        fl, ft = ins["limit"].get("functions"), ins["tenancy"].get("functions")
        if fl and ft:
            lines += ["", "Where pg_tenancy's extra instructions go, per transaction, from the same "
                      "files (inclusive counts, summed over the three nodes; they overlap: the "
                      "hand-over contains its SET's utility statement and its seal):", "",
                      "| function | what | limit | pg_tenancy | difference |",
                      "|---|---|---|---|---|"]
            for fn, what in WATCHED:
                lines.append(f"| `{fn}` | {what} | {fl[fn] / 1e3:,.1f} k | "
                             f"{ft[fn] / 1e3:,.1f} k | {(ft[fn] - fl[fn]) / 1e3:+,.1f} k |")
    lines += ["", "What pg_tenancy adds to the limit's transaction: `set_tenant()` on the "
              "coordinator; the context sealed there (HMAC-SHA-256) and set with a `SET LOCAL` "
              "run through Citus's utility hook, which Citus sends to the worker with the "
              "remote `BEGIN`; the worker parsing it and checking the seal; the policy's "
              "`current_tenant()` on the shard; and the planner hook adding the tenant as a "
              "constant on the coordinator. The callgrind files stay in the work directory "
              "(`<port>.<pid>`) for `callgrind_annotate`. The throughput rounds "
              "spread widely on this shared machine, so a median near the target can land on "
              "either side of it in another run. The hand-written pattern asks every shard, "
              "because Citus prunes shards only on a constant in the query, never on a "
              "policy.", END, ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="coordinator; workers +1, +2")
    ap.add_argument("--dir", required=True, help="directory for the three data directories")
    ap.add_argument("--out", required=True, help="markdown report (its bench-citus section)")
    ap.add_argument("--json", required=True, help="results file")
    args = ap.parse_args()

    libdir = subprocess.run([str(PG_BIN / "pg_config"), "--pkglibdir"], capture_output=True,
                            text=True, check=True).stdout.strip()
    if not (Path(libdir) / "citus.so").exists():
        sys.exit(f"bench-citus: citus.so is not installed in {libdir}; build Citus 13.x for "
                 "this PostgreSQL first (see docs/scaling.md)")
    cfg = config()
    nodes = [Node(args.dir, args.port + i) for i in range(3)]
    coordinator, workers = nodes[0], nodes[1:]
    knobs = " ".join(f"{k}={os.environ[k]}" for k in KNOBS if k in os.environ)
    res = dict(config=cfg, machine=machine_info(), git=git_info(),
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               command=(knobs + " " if knobs else "") + "make bench-citus")
    try:
        secret = secrets.token_hex(32)
        for n in nodes:
            n.start(cfg["shards"], secret)
            n.psql("CREATE EXTENSION citus")
        coordinator.psql(f"SELECT citus_set_coordinator_host('127.0.0.1', {coordinator.port})")
        for w in workers:
            coordinator.psql(f"SELECT citus_add_node('127.0.0.1', {w.port})")
        coordinator.psql("CREATE EXTENSION pg_tenancy")  # Citus creates it on the workers
        res["server_version"] = coordinator.psql("SHOW server_version").strip().split()[0]
        res["citus_version"] = coordinator.psql(
            "SELECT extversion FROM pg_extension WHERE extname = 'citus'").strip()
        t = time.monotonic()
        rows = cfg["tenants"] * cfg["per"]
        coordinator.psql(SETUP.format(tenant=PREFIX["tenant"], row=PREFIX["row"],
                                      tenants=cfg["tenants"], per=cfg["per"], rows=rows))
        log(f"dataset: {cfg['tenants']:,} tenants x {cfg['per']:,} rows, 3 copies, "
            f"{time.monotonic() - t:.0f} s")
        res["checks"] = check(coordinator, cfg)
        log("checks: " + ", ".join(f"{v} Task Count {c['task_count']}"
                                   for v, c in res["checks"].items()))
        work = Path(f"{args.dir}.work")
        work.mkdir(parents=True, exist_ok=True)
        scripts = {}
        for v, (_, _, context) in VARIANTS.items():
            scripts[v] = work / f"{v}.sql"
            scripts[v].write_text(f"{PICK}BEGIN;\n{context};\n{point_query(v)};\nCOMMIT;\n")
        res["results"] = interleaved(nodes, cfg, scripts)
        log("counting instructions (every node under callgrind)")
        res["instructions"] = counted(nodes, cfg, scripts, work)
    finally:
        for n in nodes:
            n.stop()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    text = section(res)
    report.replace_section(Path(args.out), text, BEGIN, END)
    print(text)


if __name__ == "__main__":
    main()
