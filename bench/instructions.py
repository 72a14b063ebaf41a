#!/usr/bin/env python3
"""Instructions per transaction (issue 13): `make bench-instructions` and
`make bench-instructions-smoke`.

Throughput on a shared machine cannot show a 5 % change; the number of instructions a backend
executes for a transaction does not depend on the machine's load. This harness builds the
dataset of `make bench` (bench/sql/setup.sql, through bench/bench.py) on a cluster of its own,
then restarts that cluster with the postmaster under valgrind's callgrind tool: every backend
writes its own count of executed instructions when it exits (callgrind.out.<pid>).

A measurement is one pgbench connection (-c 1 -t T) running the transaction shapes of
`make bench` (variants and queries from bench/bench.py). Its script first visits every tenant
of the scenario once (the warm-up, on the same connection, so that per-connection caches are
warm), then draws transactions as `make bench` does. Callgrind dumps the backend's counts
whenever it enters pg_backend_pid() (--dump-before), and the script calls it as markers: twice
in a row after W + N transactions, once more D transactions later. The window between the last
two markers holds D transactions and one marker statement, the window between the first two
just the marker statement: their difference divided by D is one warm transaction (exactly those
D transactions: connection start-up, warm-up and the first N are outside both windows). Cold:
no warm-up, every transaction's tenant is new to the connection (tenant n for transaction n).
Not counted: the backend's reads of the client's socket (secure_read), whose count depends on
whether the client's next message has already arrived (a timing, not the transaction); every
variant of a protocol makes the same number of reads.

Where the instructions go comes from the same dumps: self and inclusive counts per function,
differenced the same way, compared between variants.

    bench/instructions.py [--smoke] --port PORT --dir DATADIR --out REPORT.md --json OUT.json
    bench/instructions.py --render OUT.json --out REPORT.md      (re-render a saved run)

Python 3.11 standard library only. Knobs from the environment (see BENCHMARKS.md): TENANTS,
ROWS, N, DELTA, COLD_N, COLD_DELTA, AGG_TENANTS, AGG_DELTA, SCAN_ROWS, SCAN_DELTA, REPEAT, KEEP.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as tp  # noqa: E402  (bench/bench.py: dataset, variants, cluster helpers)

PG_BIN = tp.PG_BIN
PGBENCH = tp.PGBENCH
SEED = 20240613
KNOBS = ["TENANTS", "ROWS", "N", "DELTA", "COLD_N", "COLD_DELTA", "AGG_TENANTS", "AGG_DELTA",
         "SCAN_ROWS", "SCAN_DELTA", "REPEAT", "KEEP"]
BEGIN, END = "<!-- bench-instructions:begin -->", "<!-- bench-instructions:end -->"

# Variants per scenario (names of bench.VARIANTS). The token variants are point selects only, as
# in `make bench`; every other variant runs every scenario.
VARIANTS = {
    "point": ["limit", "hand", "helper", "tenancy", "perm", "apitoken", "jwt"],
    "agg": ["limit", "hand", "helper", "tenancy", "perm"],
    "insert": ["limit", "hand", "helper", "tenancy", "perm"],
    "scan": ["limit", "hand", "helper", "tenancy", "perm"],
}
TITLES = {
    "point": "Point select by primary key",
    "agg": "Tenant aggregate over a 10,000-row tenant",
    "insert": "Single-row INSERT",
    "scan": "Sequential scan of a 10,000-row tenant",
}
PROTOCOLS = ["simple", "prepared"]
TOKENS = ("apitoken", "jwt")
TOKEN_WARM_ROUNDS = 6  # each token statement is prepared separately: past the 5 custom plans


def log(msg):
    print(f"[bench-instructions {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def config(smoke):
    env = os.environ

    def num(name, default):
        return int(float(env.get(name, default)))

    if smoke:
        # Fewer backends too (each one costs seconds under valgrind, whatever it runs): the
        # prepared protocol for point selects and INSERTs only, cold runs for limit and the
        # pg_tenancy variants, the library-not-loaded run for the point select only.
        c = dict(tenants=50, rows=20_000, n=20, delta=200, cold_n=10, cold_delta=40,
                 token_tenants=5, agg_tenants=2, agg_delta=2, scan_rows=1_000, scan_delta=1,
                 repeat=0, shared_buffers="256MB",
                 protocols=dict(point=PROTOCOLS, insert=PROTOCOLS, agg=["simple"],
                                scan=["simple"]),
                 cold_variants=["limit", "tenancy", "perm", "apitoken", "jwt"],
                 not_loaded=["point"])
    else:
        c = dict(tenants=num("TENANTS", 1_000), rows=num("ROWS", 1_000_000), n=num("N", 200),
                 delta=num("DELTA", 2_000), cold_n=num("COLD_N", 200),
                 cold_delta=num("COLD_DELTA", 800), token_tenants=tp.TOKEN_TENANTS,
                 agg_tenants=num("AGG_TENANTS", 10), agg_delta=num("AGG_DELTA", 4),
                 scan_rows=num("SCAN_ROWS", 10_000), scan_delta=num("SCAN_DELTA", 2),
                 repeat=num("REPEAT", 1), shared_buffers="2GB",
                 protocols={s: PROTOCOLS for s in VARIANTS}, cold_variants=VARIANTS["point"],
                 not_loaded=["point", "agg", "scan", "insert"])
    c["smoke"] = smoke
    if c["cold_n"] + c["cold_delta"] > c["tenants"]:
        sys.exit("bench-instructions: COLD_N + COLD_DELTA must not exceed TENANTS "
                 "(every cold transaction needs a tenant new to the connection)")
    return c


# ---------------------------------------------------------------------------------------------
# pgbench scripts

# Transaction 1 records the backend's pid; transaction :m1 starts with two markers, :m2 with one
# (callgrind dumps on entering pg_backend_pid(): see the module's docstring).
MARKER = "pg_backend_pid"
HEAD = ("\\set n :n + 1\n"
        "\\if :n = 1\n"
        f"SELECT {MARKER}() AS pid \\gset\n"
        "\\shell echo :pid > :pidfile\n"
        "\\endif\n"
        "\\if :n = :m1\n"
        f"SELECT {MARKER}();\nSELECT {MARKER}();\n"
        "\\endif\n"
        "\\if :n = :m2\n"
        f"SELECT {MARKER}();\n"
        "\\endif\n")
# A random row of tenant :t, by the formula that generated the data (setup.sql).
ROW_OF_TENANT = ("\\set r case when :t <= :large then (:t - 1) * :bsize + random(1, :bsize) "
                 "else :big + (:t - :large - 1) * :ssize + random(1, :ssize) end\n")
assert tp.PICK_ROW.endswith(tp.IDS)
RANDOM_ROW = tp.PICK_ROW[:-len(tp.IDS)]  # make bench's draw: a uniform row and its tenant


def pick(scenario, mode):
    """pgbench commands that set :r, :t (and :a) for transaction :n. Warm: transactions 1..:warm
    visit the scenario's tenants once each, the rest draw as make bench does; cold: transaction n
    is tenant n's first."""
    if scenario == "point":
        if mode == "cold":
            return "\\set t :n\n" + ROW_OF_TENANT
        return ("\\if :n <= :warm\n\\set t :n\n" + ROW_OF_TENANT + "\\else\n" + RANDOM_ROW
                + "\\endif\n")
    if scenario == "insert":
        head = "\\set r 0\n\\set a random(1, 100000)\n"
        if mode == "cold":
            return head + "\\set t :n\n"
        return head + "\\if :n <= :warm\n\\set t :n\n\\else\n\\set t random(1, :tenants)\n\\endif\n"
    if scenario in ("agg", "scan"):  # tenants 1..:warm (large tenants)
        return ("\\set r 0\n\\if :n <= :warm\n\\set t :n\n\\else\n\\set t random(1, :warm)\n"
                "\\endif\n")
    raise ValueError(scenario)


def transaction(scenario, variant, protocol, token_var=None, token=None):
    """The transaction of make bench: one compound statement (simple protocol), or four prepared
    statements with the ids as parameters."""
    q = "agg" if scenario == "scan" else scenario
    if protocol == "simple":
        context = tp.VARIANTS[variant][2]
        if variant in TOKENS:
            context = context.format(token=token)
        return tp.transaction(context, tp.query(q, variant))
    context = f"SELECT tenancy.authenticate(:{token_var})" if variant in TOKENS else None
    return tp.prepared_transaction(variant, q, context)


def script_text(scenario, variant, protocol, mode, token_list=None):
    if variant not in TOKENS:
        return HEAD + pick(scenario, mode) + tp.IDS + transaction(scenario, variant, protocol)
    # One branch per token tenant, the token spelled out (simple) or bound (prepared), chosen by
    # :k (warm: TOKEN_WARM_ROUNDS rounds over the tenants first; cold: k = n).
    if mode == "cold":
        out = HEAD + "\\set k :n\n"
    else:
        out = (HEAD + "\\if :n <= :warm\n\\set k (:n - 1) % :ktok + 1\n\\else\n"
               "\\set k random(1, :ktok)\n\\endif\n")
    for i, (tenant, tok) in enumerate(token_list, start=1):
        out += ("\\if" if i == 1 else "\\elif") + f" :k = {i}\n\\set t {tenant}\n"
        out += ROW_OF_TENANT + tp.IDS + transaction(scenario, variant, protocol, f"tok{i}", tok)
    return out + "\\endif\n"


# ---------------------------------------------------------------------------------------------
# The server under callgrind


def as_postgres(cmd):
    if subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip() == "postgres":
        return cmd
    return ["runuser", "-u", "postgres", "--"] + cmd


class Callgrind:
    """The cluster's postmaster under `valgrind --tool=callgrind`; every process it forks writes
    DIR/callgrind.out.<pid> when it exits."""

    def __init__(self, cl, cgdir):
        self.cl, self.cgdir, self.proc = cl, Path(cgdir), None

    def start(self, preload):
        self.cgdir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.cgdir, "postgres")
        cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
               f"--dump-before={MARKER}",
               f"--callgrind-out-file={self.cgdir}/callgrind.out.%p",
               f"--log-file={self.cgdir}/valgrind.log",
               str(PG_BIN / "postgres"), "-D", str(self.cl.dir)]
        if not preload:
            cmd += ["-c", "shared_preload_libraries="]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUST_")}
        log_file = open(f"{self.cl.dir}.callgrind-server.log", "a")
        self.proc = subprocess.Popen(as_postgres(cmd), stdout=log_file, stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.monotonic() + 600
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server under callgrind exited; see {log_file.name}")
            try:
                got = self.cl.psql("SHOW shared_preload_libraries").strip()
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        if got != ("pg_tenancy" if preload else ""):
            raise RuntimeError(f"shared_preload_libraries = '{got}' under callgrind")

    def stop(self):
        if self.proc is None:
            return
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.cl.dir), "-m", "fast",
                                    "-w", "-t", "900", "stop"]), check=False,
                       stdout=subprocess.DEVNULL)
        self.proc.wait(timeout=900)
        self.proc = None


def total(path):
    with open(path, errors="replace") as f:
        text = f.read()
    m = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def wait_for_profile(cgdir, pid, timeout=600):
    """The dumps of a backend that has exited: callgrind.out.<pid>.<part> for parts 1..4 (the
    markers) and callgrind.out.<pid> (the rest, written at its exit)."""
    final = Path(cgdir) / f"callgrind.out.{pid}"
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() or not final.exists() or total(final) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no complete callgrind output for backend {pid}")
        time.sleep(0.2)
    parts = sorted(Path(cgdir).glob(f"callgrind.out.{pid}.*"),
                   key=lambda p: int(p.name.rsplit(".", 1)[1]))
    if len(parts) != 4:
        raise RuntimeError(f"backend {pid}: {len(parts)} dumps instead of 4 (is {MARKER}() "
                           "called by anything else?)")
    return parts + [final]


def run_backend(cl, cgdir, workdir, db, role, script, protocol, first, delta, defines):
    """One pgbench connection running `script` first + delta + 1 times, the markers before
    transactions first + 1 and first + delta + 1; returns (pid, the two windows' files)."""
    pidfile = workdir / "backend.pid"
    pidfile.unlink(missing_ok=True)
    cmd = [PGBENCH, "-n", "-h", str(cl.dir), "-p", cl.port, "-U", role, "-c", "1", "-j", "1",
           "-t", str(first + delta + 1), "-M", protocol, f"--random-seed={SEED}",
           "-f", str(script), "-D", "n=0", "-D", f"pidfile={pidfile}",
           "-D", f"m1={first + 1}", "-D", f"m2={first + delta + 1}"]
    for k, v in defines.items():
        cmd += ["-D", f"{k}={v}"]
    cmd.append(db)
    res = subprocess.run(cmd, capture_output=True, text=True)
    done = re.search(r"number of transactions actually processed: (\d+)/", res.stdout)
    if res.returncode != 0 or not done or int(done.group(1)) != first + delta + 1 or \
            "aborted" in res.stderr:
        raise RuntimeError(f"pgbench failed ({role}@{db}, {script}):\n{res.stdout[-1500:]}\n"
                           f"{res.stderr[-1500:]}")
    pid = int(pidfile.read_text().strip())
    files = wait_for_profile(cgdir, pid)
    return pid, files[2], files[3]


# ---------------------------------------------------------------------------------------------
# Reading callgrind files

NAME = re.compile(r"\((\d+)\)(?: (.*))?")


RECURSION = re.compile(r"'\d+$")  # callgrind's names for deeper levels of a recursion: f'2


def chained(name):
    """PostgreSQL's standard functions a hook calls on to (not the hook's own cost)."""
    return name.startswith("standard_")


def parse_profile(path):
    """Self and inclusive instructions per function ((object, name) -> count) and self per object,
    from a callgrind output file (name compression resolved; a call's cost line is the callee's
    inclusive cost; direct recursion is not counted twice). Self counts of a recursion's deeper
    levels (f'2) go to f; inclusive counts are f's outermost level. `hook` is the inclusive count
    of pg_tenancy's functions without the standard functions they chain to."""
    names = {"ob": {}, "fn": {}}
    self_cost, called, objects = defaultdict(int), defaultdict(int), defaultdict(int)
    chain, raw_self = defaultdict(int), defaultdict(int)
    ob = cob = fn = cfn = None
    after_calls = False

    def resolve(kind, value):
        m = NAME.fullmatch(value)
        if not m:
            return value
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), value)

    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if after_calls:
                    if (cob, cfn) != (ob, fn):
                        called[(ob, fn)] += cost
                        if chained(cfn) and short_obj(ob) == OWN:
                            chain[(ob, fn)] += cost
                    after_calls = False
                else:
                    raw_self[(ob, fn)] += cost
                    objects[ob] += cost
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key == "fn":
                fn = resolve("fn", value)
                cob = ob
            elif key == "ob":
                ob = resolve("ob", value)
                cob = ob
            elif key == "cob":
                cob = resolve("ob", value)
            elif key == "cfn":
                cfn = resolve("fn", value)
            elif key in ("cfi", "cfl"):
                pass
            elif key == "calls":
                after_calls = True
                if cob is None:
                    cob = ob
    for (o, f), v in raw_self.items():
        self_cost[(o, RECURSION.sub("", f))] += v
    incl = {k: raw_self.get(k, 0) + called.get(k, 0) for k in set(raw_self) | set(called)
            if not RECURSION.search(k[1])}
    hook = {k: v - chain.get(k, 0) for k, v in incl.items() if short_obj(k[0]) == OWN}
    return dict(self=dict(self_cost), incl=incl, hook=hook, objects=dict(objects))


def short_obj(ob):
    return Path(ob).name if ob else "?"


def profile_diff(path_a, path_b, delta):
    """Per-transaction costs by function: (B - A) / delta, keyed 'name [object]'."""
    a, b = parse_profile(path_a), parse_profile(path_b)

    def diff(x, y, keyf):
        out = {}
        for k in set(x) | set(y):
            v = (y.get(k, 0) - x.get(k, 0)) / delta
            if abs(v) >= 1:
                kk = keyf(k)
                out[kk] = out.get(kk, 0) + v
        return out

    label = lambda k: f"{k[1]} [{short_obj(k[0])}]"  # noqa: E731
    return dict(self=diff(a["self"], b["self"], label),
                incl=diff(a["incl"], b["incl"], label),
                hook=diff(a["hook"], b["hook"], label),
                objects=diff(a["objects"], b["objects"], short_obj),
                objects_loaded=sorted({short_obj(o) for o in b["objects"]}))


# PostgreSQL's phases of a transaction, as inclusive costs of exported functions (named even in a
# stripped binary). They overlap where a phase calls another (planning inside the plan cache).
PHASES = [
    ("parse", ["pg_parse_query"]),
    ("analyze", ["parse_analyze_fixedparams", "parse_analyze_varparams"]),
    ("rewrite", ["QueryRewrite"]),
    ("… row-level security policies", ["get_row_security_policies"]),
    ("plan", ["planner"]),
    ("plan cache (bind)", ["GetCachedPlan"]),
    ("executor start", ["ExecutorStart"]),
    ("executor run", ["ExecutorRun"]),
    ("executor finish + end", ["ExecutorFinish", "ExecutorEnd"]),
    ("utility (BEGIN, COMMIT, SET)", ["ProcessUtility"]),
    ("transaction start + commit", ["StartTransactionCommand", "CommitTransactionCommand"]),
]
OWN = "pg_tenancy.so"
# The backend's reads of the client's socket, waits for the next message included: not counted.
CLIENT_READS = "secure_read"


def phase_costs(prof):
    """Per-transaction cost of every phase, and of pg_tenancy's own code (self, all functions)."""
    incl = prof["incl"]
    out = {}
    for label, fns in PHASES:
        out[label] = sum(v for k, v in incl.items()
                         if k.rsplit(" [", 1)[0] in fns and not k.endswith(f"[{OWN}]"))
    out[f"{OWN}, own code"] = prof["objects"].get(OWN, 0)
    return out


def compact(prof, keep=5):
    """What the JSON keeps of a profile difference: functions worth at least `keep` instructions
    per transaction (self), 20 times that (inclusive), pg_tenancy's functions and the phases."""
    phase_fns = {f for _, fns in PHASES for f in fns}
    return dict(self={k: round(v, 1) for k, v in prof["self"].items() if abs(v) >= keep},
                incl={k: round(v, 1) for k, v in prof["incl"].items()
                      if k.endswith(f"[{OWN}]") or k.rsplit(" [", 1)[0] in phase_fns
                      or abs(v) >= 20 * keep},
                hook={k: round(v, 1) for k, v in prof["hook"].items() if abs(v) >= keep},
                objects={k: round(v, 1) for k, v in prof["objects"].items()},
                objects_loaded=prof["objects_loaded"], phases=phase_costs(prof))


# ---------------------------------------------------------------------------------------------
# Measurements


class Harness:
    def __init__(self, cl, cfg, workdir, results):
        self.cl, self.cfg, self.workdir, self.res = cl, cfg, workdir, results
        self.cgdir = workdir / "callgrind"
        self.server = Callgrind(cl, self.cgdir)

    def write_script(self, scenario, variant, protocol, mode, token_list=None):
        path = self.workdir / "pgbench" / f"{scenario}_{variant}_{protocol}_{mode}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script_text(scenario, variant, protocol, mode, token_list))
        return path

    def measure(self, key, db, role, script, protocol, base, delta, defines):
        """One backend: base transactions, then the D = delta measured ones between markers."""
        t = time.monotonic()
        pid, fa, fb = run_backend(self.cl, self.cgdir, self.workdir, db, role, script, protocol,
                                  base, delta, defines)
        ca, cb = total(fa), total(fb)
        prof = profile_diff(fa, fb, delta)
        reads = sum(v for f, v in prof["incl"].items() if f.startswith(f"{CLIENT_READS} ["))
        out = dict(per_tx=(cb - ca) / delta - reads, per_tx_raw=(cb - ca) / delta,
                   client_reads=reads, marker=ca, window=cb, base=base, delta=delta, pid=pid,
                   files=[fa.name, fb.name], seconds=round(time.monotonic() - t, 1),
                   profile=compact(prof))
        log(f"  {key}: {out['per_tx']:,.0f} instructions/tx ({out['seconds']:.0f} s)")
        return out

    def defines(self, lay, warm, extra=None):
        d = {k: lay[k] for k in ("tenants", "rows", "large", "bsize", "ssize", "big")}
        d["warm"] = warm
        d.update(extra or {})
        return d

    def scenario(self, scenario, db, lay, variants, modes, tokens=None, store=None):
        cfg = self.cfg
        store = self.res["measurements"] if store is None else store
        # In this order for every variant (INSERTs: the same insert history for every table).
        for variant in variants:
            role = tp.VARIANTS[variant][0]
            for mode in modes:
                for protocol in cfg["protocols"][scenario]:
                    if mode == "cold" and variant not in cfg["cold_variants"]:
                        continue
                    token_list = extra = None
                    if variant in TOKENS:
                        if mode == "cold" and protocol == "prepared":
                            continue  # one prepared statement per token: each would be parsed once
                        token_list = sorted(tokens[variant].items())
                        k = len(token_list)
                        extra = {"ktok": k}
                        if protocol == "prepared":
                            extra.update({f"tok{i}": tok for i, (_, tok) in
                                          enumerate(token_list, start=1)})
                    script = self.write_script(scenario, variant, protocol, mode, token_list)
                    if scenario in ("agg", "scan"):
                        # Prepared: past the plan cache's five custom plans, as everywhere else.
                        warm, delta = lay["warm"], lay["delta"]
                        base = max(warm, 6) if protocol == "prepared" else warm
                    elif variant in TOKENS and mode == "warm":
                        warm = TOKEN_WARM_ROUNDS * k
                        base, delta = warm + cfg["n"], cfg["delta"]
                    elif variant in TOKENS:
                        warm = 0
                        base = max(1, k // 5)
                        delta = k - base - 1  # the transaction after the last marker: tenant k
                    elif mode == "warm":
                        warm, base, delta = lay["tenants"], lay["tenants"] + cfg["n"], cfg["delta"]
                    else:
                        warm, base, delta = 0, cfg["cold_n"], cfg["cold_delta"] - 1
                    key = f"{scenario}/{variant}/{protocol}/{mode}"
                    store[key] = self.measure(key, db, role, script, protocol, base, delta,
                                              self.defines(lay, warm, extra))
                    store[key]["warm"] = warm


def scan_layout(rows):
    """Two tenants of `rows` rows each in one table (the sequential scan reads both)."""
    return dict(tenants=2, rows=2 * rows, large=1, bsize=rows, ssize=rows, big=rows)


def check_scan_plans(cl, db, lay):
    """Every variant's tenant aggregate is a sequential scan that sees one tenant's rows."""
    plans = {}
    for variant in VARIANTS["scan"]:
        role, _, context = tp.VARIANTS[variant]
        ids = dict(rid=0, tid=tp.OFFSET + 1, a=1)
        ctx = tp.subst(context, ids)
        agg = tp.subst(tp.query("agg", variant), ids)
        out = cl.psql(f"BEGIN;\n{ctx} \\g /dev/null\n{agg};\n\\echo @@\nEXPLAIN (COSTS OFF) {agg};"
                      "\nROLLBACK;", db=db, user=role).split("@@\n")
        if int(out[0].split("|")[0]) != lay["bsize"] or "Seq Scan" not in out[1]:
            raise RuntimeError(f"sequential scan check failed for {variant}: {out}")
        plans[variant] = out[1].rstrip()
    return plans


def check_all_visible(cl, db):
    """setup.sql VACUUMs every table: a scan must not pay for visibility checks in one variant
    and not in another."""
    bad = cl.psql("SELECT relname || ' ' || relallvisible || '/' || relpages FROM pg_class "
                  "WHERE relname LIKE 'orders\\_%' AND relkind = 'r' "
                  "AND relallvisible < relpages", db=db).split("\n")
    bad = [b for b in bad if b]
    if bad:
        raise RuntimeError(f"{db}: tables not all-visible after setup: {bad}")


def settings_for(major):
    s = {"shared_buffers": None, "work_mem": "16MB", "maintenance_work_mem": "512MB",
         "effective_cache_size": "8GB", "max_wal_size": "16GB", "checkpoint_timeout": "30min",
         "jit": "off", "random_page_cost": "1.1",
         # Deterministic counts: no autovacuum or parallel workers, every read in the backend.
         "autovacuum": "off", "max_parallel_workers_per_gather": "0"}
    if major >= 18:
        s["io_method"] = "sync"
    return s


SHOWN = ["server_version", "shared_buffers", "work_mem", "effective_cache_size", "jit",
         "autovacuum", "max_parallel_workers_per_gather", "random_page_cost", "fsync",
         "synchronous_commit", "shared_preload_libraries", "dynamic_library_path"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few hundred transactions per variant")
    ap.add_argument("--port")
    ap.add_argument("--dir", help="cluster data directory")
    ap.add_argument("--out", required=True, help="markdown report: its section is (re)written")
    ap.add_argument("--json", help="results file (default: next to the cluster)")
    ap.add_argument("--pin-release", action="store_true",
                    help="load target/release's library from a copy of the harness's own")
    ap.add_argument("--render", metavar="JSON", help="only re-render a saved run")
    args = ap.parse_args()
    if args.render:
        res = json.loads(Path(args.render).read_text())
        write_section(Path(args.out), res)
        return
    if not (args.port and args.dir):
        ap.error("--port and --dir are required")
    if not shutil.which("valgrind"):
        sys.exit("bench-instructions: valgrind is missing (scripts/install-deps.sh installs it)")

    started = time.monotonic()
    cfg = config(args.smoke)
    tp.TOKEN_TENANTS = cfg["token_tenants"]
    cl = tp.Cluster(args.dir, args.port)
    workdir = Path(f"{args.dir}.work")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    shutil.chown(workdir, "postgres")
    major = int(tp.pg_config("--version").split()[1].split(".")[0])
    knobs = " ".join(f"{k}={os.environ[k]}" for k in KNOBS if k in os.environ)
    target = "bench-instructions-smoke" if args.smoke else "bench-instructions"
    res = dict(config=cfg, machine=tp.machine_info(), git=tp.git_info(), major=major,
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               command=(knobs + " " if knobs else "") + f"PG_MAJOR={major} make {target}",
               valgrind=subprocess.run(["valgrind", "--version"], capture_output=True,
                                       text=True).stdout.strip(),
               timings={}, measurements={}, not_loaded={}, repeat={})
    if os.environ.get("BENCH_BUILD_SECONDS"):
        res["timings"]["build_s"] = int(os.environ["BENCH_BUILD_SECONDS"])

    def phase(name, t0):
        res["timings"][name] = round(time.monotonic() - t0, 1)

    settings = settings_for(major)
    settings["shared_buffers"] = cfg["shared_buffers"]
    libdir = Path(f"{args.dir}.lib")
    h = Harness(cl, cfg, workdir, res)
    try:
        # 1. The dataset, on the cluster running normally.
        t = time.monotonic()
        log(f"cluster: {cl.dir} on port {cl.port}")
        tp.prepare_cluster(cl, settings, libdir if args.pin_release else None, res)
        lay = tp.layout(cfg["tenants"], cfg["rows"])
        res["layout"] = lay
        log(f"dataset: {lay['tenants']:,} tenants ({lay['large']} of {lay['bsize']:,} rows, "
            f"{lay['tenants'] - lay['large']:,} of {lay['ssize']:,}), {lay['rows']:,} rows; "
            f"sequential scans: 2 tenants of {cfg['scan_rows']:,} rows")
        tokens, _, _ = tp.make_dataset(cl, "bench", lay, full=True, with_tokens=True)
        res["token_tenants"] = sorted(tokens["apitoken"])
        res["sanity"] = tp.sanity(cl, "bench", lay, tokens)
        res["plans"] = tp.PLANS
        slay = scan_layout(cfg["scan_rows"])
        tp.make_dataset(cl, "bench_scan", slay, full=True, with_tokens=False)
        cl.psql("ALTER DATABASE bench_scan SET enable_indexscan = off; "
                "ALTER DATABASE bench_scan SET enable_indexonlyscan = off; "
                "ALTER DATABASE bench_scan SET enable_bitmapscan = off")
        res["scan_plans"] = check_scan_plans(cl, "bench_scan", slay)
        # The same orders_limit again, for the INSERTs without the library: an INSERT's count
        # depends on what was inserted into the table before (B-tree page splits, deduplication).
        tp.make_dataset(cl, "bench_nl", lay, full=False, with_tokens=False)
        for db in ("bench", "bench_scan", "bench_nl"):
            check_all_visible(cl, db)
        res["scan_layout"] = slay
        shown = cl.psql("SELECT name || '|' || current_setting(name) FROM unnest(ARRAY[%s]) AS name"
                        % ",".join(f"'{s}'" for s in SHOWN + (["io_method"] if major >= 18
                                                               else [])))
        res["settings"] = dict(l.split("|", 1) for l in shown.splitlines())
        cl.stop()
        phase("setup_s", t)

        lay_agg = dict(lay, warm=min(cfg["agg_tenants"], lay["large"]), delta=cfg["agg_delta"])
        slay_m = dict(slay, warm=2, delta=cfg["scan_delta"])

        # 2. Under callgrind, library loaded: point selects, aggregates, sequential scans.
        t = time.monotonic()
        log("callgrind: server with pg_tenancy preloaded")
        h.server.start(preload=True)
        for db in ("bench", "bench_scan"):
            tp.prewarm(cl, db)
        phase("start_prewarm_s", t)
        t = time.monotonic()
        log(f"point select: {len(VARIANTS['point'])} variants x simple/prepared x warm/cold")
        h.scenario("point", "bench", lay, VARIANTS["point"], ["warm", "cold"], tokens)
        if cfg["repeat"]:
            log("point select again (limit, pg_tenancy), for the spread between repeats")
            h.scenario("point", "bench", lay, ["limit", "tenancy"], ["warm"], store=res["repeat"])
        phase("point_s", t)
        t = time.monotonic()
        log(f"tenant aggregate: {lay_agg['warm']} large tenants")
        h.scenario("agg", "bench", lay_agg, VARIANTS["agg"], ["warm"])
        phase("agg_s", t)
        t = time.monotonic()
        log("sequential scan")
        h.scenario("scan", "bench_scan", slay_m, VARIANTS["scan"], ["warm"])
        phase("scan_s", t)
        h.server.stop()

        # 3. Library not loaded: the limit variant (tables pg_tenancy does not isolate).
        t = time.monotonic()
        log("callgrind: server without pg_tenancy (limit only)")
        h.server.start(preload=False)
        for db in ("bench", "bench_scan", "bench_nl"):
            tp.prewarm(cl, db)
        for scenario, db, l in (("point", "bench", lay), ("agg", "bench", lay_agg),
                                ("scan", "bench_scan", slay_m), ("insert", "bench_nl", lay)):
            if scenario in cfg["not_loaded"]:
                h.scenario(scenario, db, l, ["limit"], ["warm"], store=res["not_loaded"])
        for key, m in res["not_loaded"].items():
            if OWN in m["profile"]["objects_loaded"]:
                raise RuntimeError(f"{key}: the backend loaded pg_tenancy ({m['files']})")
        h.server.stop()
        phase("not_loaded_s", t)

        # 4. Library loaded again: INSERTs last (they add rows).
        t = time.monotonic()
        log("callgrind: server with pg_tenancy preloaded; single-row INSERTs")
        h.server.start(preload=True)
        tp.prewarm(cl, "bench")
        h.scenario("insert", "bench", lay, VARIANTS["insert"], ["warm", "cold"])
        if cfg["repeat"]:
            log("INSERT again (limit), after more inserts into its table")
            h.scenario("insert", "bench", lay, ["limit"], ["warm"], store=res["repeat"])
        h.server.stop()
        phase("insert_s", t)
        for key, m in res["measurements"].items():
            if m["profile"]["objects_loaded"] and OWN not in m["profile"]["objects_loaded"]:
                raise RuntimeError(f"{key}: pg_tenancy was not loaded in the backend")
    finally:
        h.server.stop()
        if os.environ.get("KEEP") == "1":
            log(f"KEEP=1: the cluster and every callgrind file stay ({cl.dir}, {h.cgdir})")
        else:
            cl.stop()
            cl.remove()
            shutil.rmtree(libdir, ignore_errors=True)
            prune_profiles(h.cgdir, res)
    res["timings"]["harness_s"] = round(time.monotonic() - started, 1)

    out_json = Path(args.json) if args.json else workdir / "results.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1, default=str))
    write_section(Path(args.out), res)
    print()
    print(terminal_summary(res))
    log(f"results: {out_json}; report: {args.out}; harness time "
        f"{res['timings']['harness_s']:.0f} s")


def prune_profiles(cgdir, res):
    """Keeps the callgrind files of the warm point selects (to read with callgrind_annotate)."""
    keep = set()
    for key, m in res["measurements"].items():
        if key.startswith("point/") and key.endswith("/warm"):
            keep.update(m["files"])
    res["profiles_kept"] = str(cgdir)
    if not cgdir.exists():
        return
    for f in cgdir.iterdir():
        if f.name.startswith("callgrind.out.") and f.name not in keep:
            f.unlink()


# ---------------------------------------------------------------------------------------------
# The report

# Targets of issue 13 (warm caches unless said otherwise). kind "ratio": variant / comparator
# <= threshold; "plus": variant - comparator <= threshold instructions; "cold": cold - warm of
# the variant <= threshold; "loaded": limit with the library loaded / not loaded.
TARGETS = [
    ("point", "tenancy", "prepared", "ratio", "limit", 1.10),
    ("point", "tenancy", "prepared", "ratio", "hand", 0.95),
    ("point", "tenancy", "simple", "ratio", "limit", 1.20),
    ("point", "tenancy", "simple", "ratio", "hand", 0.88),
    ("point", "perm", "prepared", "ratio", "limit", 1.14),
    ("point", "perm", "simple", "ratio", "limit", 1.25),
    ("point", "apitoken", "prepared", "plus", "tenancy", 6_000),
    ("point", "apitoken", "simple", "plus", "tenancy", 6_000),
    ("point", "jwt", "prepared", "plus", "tenancy", 12_000),
    ("point", "jwt", "simple", "plus", "tenancy", 12_000),
    ("insert", "tenancy", "prepared", "ratio", "limit", 1.10),
    ("insert", "tenancy", "simple", "ratio", "limit", 1.20),
    ("scan", "tenancy", "prepared", "ratio", "hand", 1.00),
    ("scan", "tenancy", "simple", "ratio", "hand", 1.00),
    ("point", "tenancy", "prepared", "cold", "tenancy", 8_000),
    ("point", "tenancy", "simple", "cold", "tenancy", 8_000),
    ("point", "limit", "simple", "loaded", "limit", 1.003),
    ("point", "limit", "prepared", "loaded", "limit", 1.003),
    ("agg", "limit", "simple", "loaded", "limit", 1.003),
    ("agg", "limit", "prepared", "loaded", "limit", 1.003),
    ("scan", "limit", "simple", "loaded", "limit", 1.003),
    ("scan", "limit", "prepared", "loaded", "limit", 1.003),
    ("insert", "limit", "simple", "loaded", "limit", 1.003),
    ("insert", "limit", "prepared", "loaded", "limit", 1.003),
]
# What it would take to meet a target that is missed: what the profiles of the last runs
# showed, written down once (by scenario, variant and kind of target).
TAKES = {
    ("point", "tenancy", "ratio"):
        "what is left is mostly PostgreSQL's price for calling an extension function that "
        "writes a setting. `set_tenant()` is executable by `tenancy_app` only, so every "
        "execution checks the grant (`object_aclcheck`, ~3.4 k; `set_config()`, which the "
        "hand-written variant calls, is PUBLIC's and costs a fraction of that); the function "
        "manager finds the C function (~1 k); `set_config_option()` stores the context with its "
        "save-and-restore stack (~1.6 k). Granting `set_tenant()` to PUBLIC and checking "
        "membership inside would save the first, but the grant is what the contract and "
        "`audit()` rely on; keeping the context outside PostgreSQL's settings would save most of "
        "the third, at the price of redoing their revert on ROLLBACK TO SAVEPOINT and their copy "
        "into parallel workers. Neither was done.",
    ("point", "perm", "ratio"):
        "on top of `set_tenant`'s cost: the user's membership and role looked up in the "
        "connection's caches when the context is entered, and the statement's first "
        "`has_permission()` (the name checked, the actor fixed, the grants walked: ~2.5 k; every "
        "later row of the statement is a string comparison); the second uuid parameter costs "
        "~2.6 k in `uuid_in`, as in any query. Keeping the actor from one transaction to the "
        "next (until an invalidation) would save ~1 k.",
    ("insert", "tenancy", "ratio"):
        "as for the point select, plus two more C functions initialised per execution: the "
        "column default `current_tenant()` and the WITH CHECK `check_row_tenant()` (mostly "
        "`fmgr_info` and the grant check, ~1.5 k each).",
    ("point", "tenancy", "cold"):
        "the first `set_tenant()` of a tenant on a connection reads its status straight from "
        "the primary key index of `tenancy.tenants`, without the executor: opening and locking "
        "the table and its index, a fresh snapshot, a B-tree descent and a heap fetch. Halving "
        "it would take a cache of tenant statuses in shared memory, kept consistent across "
        "backends; not built.",
    ("point", "limit", "loaded"):
        "the hooks' work on every statement: executor start looks each relation up in the "
        "relation cache to see whether it is isolated, the object-access hook runs for every "
        "function a query calls, the utility, run and finish hooks count statements, and Rust "
        "reaches its thread-locals through `__tls_get_addr`. Meeting 0.3 % would take no work "
        "at all per statement on tables that are not isolated (for instance, which relations "
        "are isolated kept in a map cleared by relation-cache invalidations).",
}
TAKES[("insert", "limit", "loaded")] = TAKES[("point", "limit", "loaded")]

SHORT = {"limit": "limit", "hand": "hand-written", "helper": "unwrapped helper",
         "tenancy": "`set_tenant`", "perm": "`set_tenant` + user + `read_permission`",
         "apitoken": "`authenticate()` API token", "jwt": "`authenticate()` JWT"}


def get(res, scenario, variant, protocol, mode="warm"):
    m = res["measurements"].get(f"{scenario}/{variant}/{protocol}/{mode}")
    return m["per_tx"] if m else None


def evaluate(res):
    """Every target: measured value, the value it is compared with, passed."""
    rows = []
    for scenario, variant, protocol, kind, comp, thr in TARGETS:
        v = get(res, scenario, variant, protocol)
        if kind == "ratio":
            c = get(res, scenario, comp, protocol)
            value = v / c if v and c else None
            text = f"≤ {thr:.2f} × {SHORT[comp]}"
        elif kind == "plus":
            c = get(res, scenario, comp, protocol)
            value = v - c if v and c else None
            text = f"≤ +{thr / 1000:.0f} k over {SHORT[comp]}"
        elif kind == "cold":
            c = v
            v = get(res, scenario, variant, protocol, "cold")
            value = v - c if v and c else None
            text = f"cold ≤ +{thr / 1000:.0f} k over warm"
        else:  # loaded
            m = res["not_loaded"].get(f"{scenario}/limit/{protocol}/warm")
            c = m["per_tx"] if m else None
            value = v / c if v and c else None
            text = f"≤ {thr:.3f} × not loaded"
        rows.append(dict(scenario=scenario, variant=variant, protocol=protocol, kind=kind,
                         comparator=comp, threshold=thr, value=value, measured=v, compared=c,
                         text=text, passed=None if value is None else value <= thr))
    return rows


def k(x, digits=1):
    return "—" if x is None else f"{x / 1000:,.{digits}f} k"


def signed_k(x):
    return "—" if x is None else f"{x / 1000:+,.1f} k"


def fmt_value(t):
    if t["value"] is None:
        return "—"
    if t["kind"] in ("plus", "cold"):
        return signed_k(t["value"])
    return f"{t['value']:.3f}" if t["kind"] == "loaded" else f"{t['value']:.2f}"


def status(passed, smoke):
    if passed is None:
        return "—"
    if smoke:
        return "(smoke)"
    return "met" if passed else "**MISS**"


def target_label(t):
    what = {"point": "point select", "insert": "single-row INSERT",
            "scan": "sequential scan, per row", "agg": "tenant aggregate"}[t["scenario"]]
    if t["kind"] == "loaded":
        return f"{what}, limit, library loaded vs not ({t['protocol']})"
    if t["kind"] == "cold":
        return f"{what}, {SHORT[t['variant']]}, cold cache ({t['protocol']})"
    return f"{what}, {SHORT[t['variant']]} ({t['protocol']})"


def scenario_table(res, scenario, targets, smoke):
    """variant | simple | prepared | ratio to limit | ratio to hand-written | target | met?"""
    L = ["| variant | simple | prepared | ratio to limit (simple / prepared) | "
         "ratio to hand-written (simple / prepared) | target | met? |",
         "|---|---|---|---|---|---|---|"]
    per_row = scenario == "scan"
    rows = res["scan_layout"]["rows"] if per_row else 1
    for v in VARIANTS[scenario]:
        vals = {p: get(res, scenario, v, p) for p in PROTOCOLS}
        if not any(vals.values()):
            continue

        def cell(p):
            x = vals[p]
            if x is None:
                return "—"
            return f"{k(x)} ({x / rows:,.1f} per row)" if per_row else k(x)

        def ratio(comp):
            return " / ".join("—" if not (vals[p] and get(res, scenario, comp, p)) else
                              f"{vals[p] / get(res, scenario, comp, p):.3f}" for p in PROTOCOLS)

        mine = [t for t in targets if t["scenario"] == scenario and t["variant"] == v
                and t["kind"] in ("ratio", "plus")]
        tgt = "; ".join(f"{t['protocol']} {t['text']}" for t in mine) or "—"
        met = "; ".join(f"{t['protocol']}: {status(t['passed'], smoke)}" for t in mine) or "—"
        L.append(f"| {SHORT[v]} | {cell('simple')} | {cell('prepared')} | {ratio('limit')} | "
                 f"{ratio('hand')} | {tgt} | {met} |")
    return L


def inclusive(prof):
    """Inclusive counts, pg_tenancy's hooks without the standard functions they chain to."""
    return {**prof["incl"], **prof.get("hook", {})}


# Functions every statement passes through (the phases above show them): left out of the
# inclusive differences, which would otherwise repeat the total down the call chain.
PASS_THROUGH = {
    "main", "(below main)", "__libc_start_main@@GLIBC_2.34", "__libc_start_main", "PostmasterMain",
    "ServerLoop", "ServerLoop.isra.0", "BackendMain", "BackendStartup", "postmaster_child_launch",
    "PostgresMain", "exec_simple_query", "exec_bind_message", "exec_execute_message",
    "PortalRun", "PortalRunSelect", "PortalRunMulti", "PortalRunUtility", "ProcessQuery",
    "PortalStart", "ExecutorStart", "standard_ExecutorStart", "ExecutorRun",
    "standard_ExecutorRun", "ExecProcNodeFirst", "pg_plan_queries", "pg_plan_query", "planner",
    "standard_planner", "ProcessUtility", "standard_ProcessUtility",
    "pgrx_pg_sys::submodules::panic::run_guarded",
    "cee_scape::asm_based::call_with_sigsetjmp",
    "cee_scape::asm_based::call_with_sigsetjmp::call_from_c_to_rust",
}


# Under the client reads, which are not counted (CLIENT_READS): left out of the lists too.
READS = {"secure_read", "secure_raw_read", "pq_recvbuf", "pq_getbyte", "pq_getbytes",
         "pq_peekbyte", "pq_getmessage", "SocketBackend", "ReadCommand", "WaitEventSetWait",
         "WaitEventSetWaitBlock", "WaitEventSetWaitBlock.isra.0", "epoll_wait", "__libc_recv",
         "recv", "__GI___recv", "pq_startmsgread"}


def top_incl(prof_v, prof_c, n=8, least=200):
    """The largest inclusive differences, without the pass-through callers and without a
    function whose difference is within 1 % of the one listed before it (its caller or callee:
    the same instructions)."""
    out = []
    for f, x in top_diff(prof_v, prof_c, 200, "incl"):
        name = f.rsplit(" [", 1)[0]
        if name in PASS_THROUGH or name in READS or name.startswith("0x") or abs(x) < least:
            continue
        if out and abs(x - out[-1][1]) <= 0.01 * abs(out[-1][1]):
            continue
        out.append((f, x))
        if len(out) == n:
            break
    return out


def top_diff(prof_v, prof_c, n=12, kind="self"):
    if kind == "incl":
        a, b = inclusive(prof_v), inclusive(prof_c)
    else:
        a, b = prof_v[kind], prof_c[kind]
    d = {f: a.get(f, 0) - b.get(f, 0) for f in set(a) | set(b)
         if f.rsplit(" [", 1)[0] not in READS}
    return sorted(d.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:n]


def phase_diff(pv, pc):
    return {ph: pv["phases"].get(ph, 0) - pc["phases"].get(ph, 0) for ph in pv["phases"]}


def explain_miss(res, t):
    """Where the instructions of a missed target go, from the profiles."""
    mode = "cold" if t["kind"] == "cold" else "warm"
    key_v = f"{t['scenario']}/{t['variant']}/{t['protocol']}/{mode}"
    if t["kind"] == "loaded":
        pv = res["measurements"].get(f"{t['scenario']}/limit/{t['protocol']}/warm")
        pc = res["not_loaded"].get(f"{t['scenario']}/limit/{t['protocol']}/warm")
        against = "the server that does not load pg_tenancy"
    else:
        pv = res["measurements"].get(key_v)
        pc = res["measurements"].get(f"{t['scenario']}/{t['comparator']}/{t['protocol']}/warm")
        against = "warm" if t["kind"] == "cold" else SHORT[t["comparator"]]
    if not (pv and pc and "profile" in pv and "profile" in pc):
        return ""
    pv, pc = pv["profile"], pc["profile"]
    total = t["measured"] - t["compared"]
    phases = ", ".join(f"{ph} {signed_k(x)}" for ph, x in phase_diff(pv, pc).items()
                       if abs(x) >= 500)
    fns = ", ".join(f"`{f.rsplit(' [', 1)[0]}` {signed_k(x)}" for f, x in top_diff(pv, pc, 6)
                    if abs(x) >= 200)
    incl = ", ".join(f"`{f.rsplit(' [', 1)[0]}` {signed_k(x)}" for f, x in top_incl(pv, pc))
    return (f"{total / 1000:+,.1f} k per transaction against {against}. By phase (inclusive): "
            f"{phases or 'none above 0.5 k'}. Largest differences by function, inclusive: "
            f"{incl or 'none above 0.2 k'}; self: {fns or 'none above 0.2 k'}.")


def fn_table(rows, header):
    L = [f"| {header} | instructions per transaction |", "|---|---|"]
    for f, x in rows:
        name, _, obj = f.rpartition(" [")
        L.append(f"| `{name}` ({obj.rstrip(']')}) | {x:+,.0f} |")
    return L


def section(res):
    cfg, lay, slay = res["config"], res["layout"], res["scan_layout"]
    smoke = cfg["smoke"]
    targets = evaluate(res)
    lib = res.get("library", {})
    L = []
    a = L.append
    a(BEGIN)
    a("## Instructions per transaction")
    a("")
    if smoke:
        a("> **Smoke run** (`make bench-instructions-smoke`, part of `make test`): a tiny dataset "
          "and a few hundred transactions per variant, with whatever build is installed; it "
          "checks the harness end to end. Its numbers mean nothing.")
        a("")
    a("`make bench-instructions` counts the instructions the server executes for one "
      "transaction, which does not depend on the machine's load (issue 13): the throughput "
      "tables above spread by more than the differences they are meant to show. The harness "
      "(`bench/instructions.py`) builds the dataset of `make bench` on a cluster of its own, "
      "then restarts the cluster with its postmaster under `valgrind --tool=callgrind "
      "--trace-children=yes --dump-before=pg_backend_pid`, so that every backend writes its own "
      "counts, and does so whenever it enters `pg_backend_pid()`. One measurement is one "
      "pgbench connection (`-c 1`, `-M simple` or `-M prepared`) running the transaction of "
      "`make bench` (`BEGIN \\; <context> \\; <query> \\; COMMIT` in one round trip; "
      "prepared: the four statements with the ids as parameters). Its script first visits every "
      "tenant of the scenario once on that connection (the warm-up, W transactions), runs N "
      "transactions drawn as `make bench` draws them, calls `SELECT pg_backend_pid()` twice, runs "
      "D more transactions and calls it once more. The window between the last two calls holds "
      "the D transactions and one marker statement, the window between the first two the marker "
      "statement alone: their difference divided by D is one warm transaction, and nothing "
      "else (connection start-up and warm-up fall outside both windows). **Cold**: no warm-up, "
      "transaction n is tenant n's first on the connection. Not counted: the backend's reads of "
      "the client's socket (`secure_read`), whose count depends on whether the client's next "
      "message has already arrived (a matter of timing, up to ~1 k per prepared transaction, "
      "four round trips); every variant of a protocol makes the same reads. Nor are PostgreSQL's "
      "other processes (checkpointer, WAL writer). Ratios are between counts of the same run.")
    a("")
    a("```sh")
    a("make bench-instructions                # release build, PostgreSQL 15 (PG_MAJOR=18 for 18)")
    a("N=200 DELTA=4000 make bench-instructions  # knobs: see bench/instructions.py")
    a("```")
    a("")
    t = res["timings"]
    rep = res.get("repeat") or {}
    spreads = []
    for key, m in rep.items():
        first = res["measurements"].get(key)
        if first:
            spreads.append((key, (m["per_tx"] - first["per_tx"]) / first["per_tx"]))
    reads = [(key, x) for key, x in spreads if not key.startswith("insert/")]
    inserts = [(key, x) for key, x in spreads if key.startswith("insert/")]
    a("### The run")
    a("")
    a(f"- Command: `{res['command']}`")
    a(f"- Date: {res['date']}; code: commit `{res['git']['commit']}`"
      + (" (with uncommitted changes)" if res["git"]["dirty"] else "")
      + f" ({res['git']['subject']})")
    a(f"- Build: {lib.get('profile', '?')} (`{tp.report.in_repo(lib.get('path', '?'))}`, "
      f"sha256 {lib.get('sha256', '?')}…), pg_tenancy {res.get('extension_version', '?')}, "
      "`shared_preload_libraries = 'pg_tenancy'`")
    st = res["settings"]
    a(f"- PostgreSQL {st.get('server_version', '?')} (major {res['major']}), "
      f"{res['valgrind']}; settings: "
      + ", ".join(f"`{n} = {st[n]}`" for n in ("shared_buffers", "work_mem", "jit", "autovacuum",
                                                "max_parallel_workers_per_gather", "io_method",
                                                "fsync", "synchronous_commit") if n in st)
      + " (no autovacuum, no parallel workers, no I/O workers: every instruction of a statement "
      "is in its backend; every relation preloaded with `pg_prewarm` after each start)")
    a(f"- Dataset: {lay['tenants']:,} tenants, {lay['rows']:,} rows per variant's table "
      f"({lay['large']} tenants of {lay['bsize']:,} rows, {lay['tenants'] - lay['large']:,} of "
      f"{lay['ssize']:,}); token variants: {len(res.get('token_tenants', []))} tenants with an "
      f"API token and a JWT. Sequential scans: a database of its own, a table of "
      f"{slay['rows']:,} rows (2 tenants of {slay['bsize']:,}) per variant, index and bitmap "
      "scans disabled for that database")
    a(f"- Sizes: point select and INSERT W = {lay['tenants']:,} (every tenant once), "
      f"N = {cfg['n']:,}, D = {cfg['delta']:,}; token variants W = {TOKEN_WARM_ROUNDS} × the "
      f"token tenants (each token's prepared statement past its custom plans); cold "
      f"N = {cfg['cold_n']:,}, D = {cfg['cold_delta'] - 1:,} (token variants: 1/5 and 4/5 of the "
      f"token tenants, simple protocol only); aggregate: W = "
      f"{min(cfg['agg_tenants'], lay['large'])} large tenants, N = 0, D = {cfg['agg_delta']}; "
      f"sequential scan: W = 2, N = 0, D = {cfg['scan_delta']} (prepared: W + N = 6 at least, "
      "past the plan cache's five custom plans, as everywhere)")
    if reads:
        a("- Repeats: the same measurement again on a new connection later in the run, point "
          "select: " + "; ".join(f"{key.split('/')[1]} {key.split('/')[2]} {100 * x:+.3f} %"
                                 for key, x in reads))
    if inserts:
        more = (lay["tenants"] + cfg["n"] + cfg["delta"] + 1
                + 2 * (cfg["cold_n"] + cfg["cold_delta"]))
        a("- INSERTs depend on what was inserted into the table before (B-tree page splits and "
          "deduplication passes as leaf pages fill up): every variant's table is measured after "
          "the same inserts (warm simple, warm prepared, then cold), the library-not-loaded "
          "INSERTs go into an identical copy of `orders_limit` in a database of its own. The "
          "limit INSERT measured again at the end, after another "
          f"{more:,} rows in its table, differs by " + "; ".join(
              f"{key.split('/')[2]} {100 * x:+.2f} %" for key, x in inserts))
    a("- Time: " + ", ".join(f"{name[:-2].replace('_', ' ')} {v:.0f} s" for name, v in t.items())
      + f" ({t.get('harness_s', 0) / 60:.1f} min for the harness)")
    a("")
    a("### Targets")
    a("")
    a("Instructions per transaction, warm caches unless said otherwise; ratios within this run.")
    a("")
    a("| target | measured | compared with | value | limit | met? |")
    a("|---|---|---|---|---|---|")
    for tt in targets:
        comp = ("not loaded" if tt["kind"] == "loaded" else
                "warm" if tt["kind"] == "cold" else SHORT[tt["comparator"]])
        a(f"| {target_label(tt)} | {k(tt['measured'])} | {comp} {k(tt['compared'])} | "
          f"{fmt_value(tt)} | {tt['text']} | {status(tt['passed'], smoke)} |")
    a("")
    missed = [tt for tt in targets if tt["passed"] is False]
    if missed and not smoke:
        a("#### Missed targets: where the instructions go")
        a("")
        for tt in missed:
            takes = TAKES.get((tt["scenario"], tt["variant"], tt["kind"]))
            takes = f" What it would take: {takes}" if takes else ""
            a(f"- **{target_label(tt)}** ({fmt_value(tt)}; {tt['text']}): "
              f"{explain_miss(res, tt)}{takes}")
        a("")
    for scenario in ("point", "agg", "insert", "scan"):
        a(f"### {TITLES[scenario]}")
        a("")
        if scenario == "scan":
            a(f"`SELECT count(*), sum(amount) FROM orders_x` as in the aggregate, on a table of "
              f"{slay['rows']:,} rows of which the tenant has {slay['bsize']:,}, planned as a "
              "sequential scan: the policy's condition is evaluated for every row of the table. "
              "Per row: the transaction's count divided by the rows scanned.")
            a("")
        a("\n".join(scenario_table(res, scenario, targets, smoke)))
        a("")
        if scenario == "point":
            sha = {}
            for v in TOKENS:
                for pr in PROTOCOLS:
                    m = res["measurements"].get(f"point/{v}/{pr}/warm")
                    if m:
                        sha[(v, pr)] = sum(x for f, x in m["profile"]["self"].items()
                                           if f.startswith("sha2::sha256::compress"))
            if any(sha.values()):
                a("Valgrind's virtual CPU has no SHA extensions (it does not emulate them), so "
                  "under callgrind the `sha2` crate computes SHA-256 in software, where a CPU "
                  "with SHA-NI runs it natively in a fraction of the instructions: "
                  "`sha2::sha256::compress256` is " + ", ".join(
                      f"{k(x)} of {SHORT[v]} ({pr})" for (v, pr), x in sha.items())
                  + " per transaction. The `authenticate()` targets above are judged with it.")
                a("")
        if scenario in ("point", "insert"):
            cold = [v for v in VARIANTS[scenario] if any(
                get(res, scenario, v, p, "cold") for p in PROTOCOLS)]
            a("Cold: every transaction's tenant new to the connection.")
            a("")
            a("| variant | simple cold | cold − warm | prepared cold | cold − warm |")
            a("|---|---|---|---|---|")
            for v in cold:
                cells = []
                for p in PROTOCOLS:
                    c, w = get(res, scenario, v, p, "cold"), get(res, scenario, v, p)
                    cells += [k(c), signed_k(c - w) if c and w else "—"]
                a(f"| {SHORT[v]} | " + " | ".join(cells) + " |")
            a("")
    a("### Library loaded or not")
    a("")
    a("The limit variant (a table pg_tenancy does not isolate, no context) on the same data, "
      "with `shared_preload_libraries = 'pg_tenancy'` and after a restart without it (the "
      "measured backends then map no pg_tenancy code; the harness checks their profiles). "
      "INSERTs without the library go into an identical copy of the table that has seen the "
      "same inserts before (see above).")
    a("")
    a("| scenario | loaded simple | not loaded simple | ratio | loaded prepared | "
      "not loaded prepared | ratio |")
    a("|---|---|---|---|---|---|---|")
    for scenario in ("point", "agg", "insert", "scan"):
        cells = []
        for p in PROTOCOLS:
            lo = get(res, scenario, "limit", p)
            m = res["not_loaded"].get(f"{scenario}/limit/{p}/warm")
            nl = m["per_tx"] if m else None
            cells += [k(lo), k(nl), f"{lo / nl:.4f}" if lo and nl else "—"]
        a(f"| {TITLES[scenario].lower()} | " + " | ".join(cells) + " |")
    a("")
    a("### Where the instructions go")
    a("")
    a("From the same callgrind dumps: per function, the difference between the two windows "
      "divided by D, so per warm transaction. Phases are inclusive counts of "
      "PostgreSQL's functions for them (`pg_parse_query`, `parse_analyze_*`, `QueryRewrite`, "
      "`get_row_security_policies`, `planner`, `GetCachedPlan`, `ExecutorStart`, `ExecutorRun`, "
      "`ExecutorFinish` + `ExecutorEnd`, `ProcessUtility`, `Start`/`CommitTransactionCommand`); "
      "they overlap where one calls another (the context function runs inside the executor; "
      "planning of a prepared statement's custom plans inside the plan cache). "
      f"`{OWN}, own code`: instructions in pg_tenancy's library itself (self counts). The dumps "
      "of the warm point selects stay in "
      f"`{tp.report.in_repo(res.get('profiles_kept', 'the work directory'))}` for "
      "`callgrind_annotate` (a measurement's two windows are `callgrind.out.<pid>.3` and `.4`; "
      "the pid of each is in the JSON).")
    stripped = any(f.startswith("0x") and f.endswith("[postgres]")
                   for m in res["measurements"].values()
                   for f in m.get("profile", {}).get("self", {}))
    if stripped:
        a("")
        a("This PostgreSQL binary is stripped (Debian's packages): its static functions appear "
          "as addresses; the exported ones, which name the phases, keep their names.")
    a("")
    for p in PROTOCOLS:
        vs = [v for v in VARIANTS["point"] if f"point/{v}/{p}/warm" in res["measurements"]]
        if not vs:
            continue
        profs = {v: res["measurements"][f"point/{v}/{p}/warm"]["profile"] for v in vs}
        a(f"Point select, {p} protocol, by phase (thousands of instructions per transaction):")
        a("")
        a("| phase | " + " | ".join(SHORT[v] for v in vs) + " |")
        a("|---|" + "---|" * len(vs))
        for ph in list(profs[vs[0]]["phases"]):
            a(f"| {ph} | " + " | ".join(f"{profs[v]['phases'].get(ph, 0) / 1000:,.1f}"
                                        for v in vs) + " |")
        a("| **total** | " + " | ".join(f"**{get(res, 'point', v, p) / 1000:,.1f}**"
                                       for v in vs) + " |")
        a("")
        if "tenancy" in profs and "limit" in profs:
            a(f"`set_tenant` − limit, {p} protocol: the largest differences by function, self "
              "(instructions in the function itself) and inclusive (with what it calls; "
              "PostgreSQL's dispatch functions every statement passes through, and pgrx's "
              "guard frames, left out, as are callers whose difference is their callee's):")
            a("")
            a("\n".join(fn_table(top_diff(profs["tenancy"], profs["limit"], 15),
                                  "function (self)")))
            a("")
            incl = top_incl(profs["tenancy"], profs["limit"], 20, 100)
            a("\n".join(fn_table(incl, "function (inclusive)")))
            a("")
            hooks = profs["tenancy"].get("hook", {})
            own = sorted(hooks.items(), key=lambda kv: (-kv[1], kv[0]))[:14]
            own += [(f, x) for f, x in sorted(hooks.items()) if f not in dict(own) and
                    any(h in f for h in ("executor_", "process_utility", "emit_log"))]
            if own:
                a(f"pg_tenancy's functions and hooks in the `set_tenant` variant, {p} protocol "
                  "(inclusive: with the PostgreSQL functions they call, but not the "
                  "`standard_*` functions a hook chains to; nested entries overlap):")
                a("")
                a("\n".join(fn_table(own, "function")))
                a("")
    cold_t = res["measurements"].get("point/tenancy/simple/cold")
    warm_t = res["measurements"].get("point/tenancy/simple/warm")
    if cold_t and warm_t:
        a("Cold − warm, `set_tenant`, simple protocol: the largest differences by function "
          "(self):")
        a("")
        a("\n".join(fn_table(top_diff(cold_t["profile"], warm_t["profile"], 12), "function")))
        a("")
    if res.get("scan_plans"):
        a("<details><summary>Sequential scan plans</summary>")
        a("")
        for v, plan in res["scan_plans"].items():
            a(f"{SHORT[v]}:")
            a("")
            a("```")
            a(plan)
            a("```")
            a("")
        a("</details>")
        a("")
    a(END)
    return "\n".join(L) + "\n"


def write_section(path, res):
    """Replaces the section between the markers in `path` (or appends it)."""
    tp.report.replace_section(path, section(res), BEGIN, END)


def terminal_summary(res):
    smoke = res["config"]["smoke"]
    lines = ["instructions per transaction (warm):"]
    for scenario in ("point", "agg", "insert", "scan"):
        for v in VARIANTS[scenario]:
            vals = [get(res, scenario, v, p) for p in PROTOCOLS]
            if any(vals):
                lines.append(f"  {scenario:7s} {v:9s} simple {k(vals[0]):>12s}  "
                             f"prepared {k(vals[1]):>12s}")
    lines.append("targets:")
    for t in evaluate(res):
        lines.append(f"  {status(t['passed'], smoke):9s} {target_label(t)}: {fmt_value(t)} "
                     f"({t['text']})")
    return "\n".join(lines).replace("**", "").replace("`", "")


if __name__ == "__main__":
    main()
