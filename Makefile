# pg_tenancy task runner. Every target installs what it is missing first (scripts/install-deps.sh).
#
#   make demo      build, install, start a throwaway cluster and walk through the quickstart
#   make test      lint, in-database tests, pg_regress suite, client tests, client examples, on
#                  every tested PostgreSQL major (PG_MAJORS) one after the other, then the
#                  pg_upgrade test from the oldest to the newest
#   make install   install into the PostgreSQL that PG_CONFIG names
#   make bench     (see BENCHMARKS.md; also bench-instructions, bench-citus)
#
# PG_MAJOR picks one major for every target (`PG_MAJOR=18 make test`). Without it, `make test`
# runs them all and the other targets use PostgreSQL 15 (Debian's, the one a Debian server
# has). scripts/pg-config.sh knows where each major is installed.

PG_MAJORS   := 15 18
PG_MAJOR    ?= 15
PG_CONFIG   ?= $(shell scripts/pg-config.sh $(PG_MAJOR))
PG_BIN      := $(shell $(PG_CONFIG) --bindir 2>/dev/null)
PGRX_VERSION := $(shell sed -n 's/^pgrx = "=\(.*\)"/\1/p' Cargo.toml)
FEATURES    := pg$(PG_MAJOR)
# Each major has its own clusters and ports, so that runs of two majors never meet.
CLUSTERS    := $(CURDIR)/target/clusters/pg$(PG_MAJOR)
TEST_PORT   ?= 289$(PG_MAJOR)
DEMO_PORT   ?= 289$(shell expr $(PG_MAJOR) + 50)
CLIENT_TESTS := $(patsubst tests/%.rs,--test %,$(filter-out tests/pg_upgrade.rs,$(wildcard tests/*.rs)))

export PG_BIN PG_CONFIG

.PHONY: deps build install install-dev lint lint-major pgrx-test unit-test regress client-test \
        examples test test-major pg-upgrade-test test-citus demo clean cluster-start cluster-stop \
        fuzz fuzz-smoke

deps:
	@scripts/install-deps.sh

build: deps
	cargo build --no-default-features --features $(FEATURES)

# Release build, for users: the library, the control file, this version's install script and
# every upgrade script in sql/ (cargo-pgrx installs sql/pg_tenancy--FROM--TO.sql by itself).
install: deps
	cargo pgrx install --release --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES)

# Debug build, faster to compile; what the test clusters run.
install-dev: deps
	cargo pgrx install --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES)

# What does not depend on the major: frozen releases, modules that stack, formatting.
lint: deps
	scripts/check-releases.sh
	scripts/check-modules.py
	cargo fmt --check

# What does: clippy on this major's bindings, and the Dockerfile's package for it.
lint-major: deps
	scripts/check-dockerfile.sh
	cargo clippy --all-targets --no-default-features --features "$(FEATURES) client-tests" -- -D warnings

# In-database #[pg_test]s and Rust unit tests. initdb refuses root, so the test cluster runs as
# the postgres user.
pgrx-test: deps
	install -d -o postgres -g postgres $(CLUSTERS)/pgrx-test
	cargo pgrx test pg$(PG_MAJOR) --runas postgres --pgdata $(CLUSTERS)/pgrx-test

# The pure-Rust token crate (formats, tampering, hostile input, known-answer vectors).
unit-test: deps
	cargo test -p tenancy_tokens

# Fuzz the token parsers (cargo-fuzz needs the nightly toolchain). FUZZ_RUNS inputs per target.
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS := api_token_parse invite_verify jwt_verify
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_RUNS) $(FUZZ_TARGETS)

# A short run of every fuzz target, part of `make test`.
fuzz-smoke: deps
	@scripts/fuzz.sh 20000 $(FUZZ_TARGETS)

cluster-start: install-dev
	scripts/cluster.sh start $(CLUSTERS)/test $(TEST_PORT)

cluster-stop:
	scripts/cluster.sh stop $(CLUSTERS)/test

regress:
	scripts/regress.sh $(TEST_PORT)

client-test:
	TENANCY_TEST_PORT=$(TEST_PORT) cargo test --no-default-features \
	    --features "$(FEATURES) client-tests" $(CLIENT_TESTS) -- --test-threads=2

# The client examples in three languages (examples/; dependencies pinned by their lock files),
# against the test cluster, which must be running (make cluster-start).
examples:
	scripts/examples.sh $(TEST_PORT)

# Everything on one major, timed.
test-major: lint-major pgrx-test cluster-start
	@status=0; \
	$(MAKE) --no-print-directory regress || status=$$?; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory client-test || status=$$?; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory examples || status=$$?; \
	scripts/cluster.sh stop $(CLUSTERS)/test; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory bench-smoke || status=$$?; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory bench-instructions-smoke || status=$$?; \
	exit $$status

ifeq ($(origin PG_MAJOR),file)
test: lint unit-test fuzz-smoke
	@for m in $(PG_MAJORS); do \
	    start=$$(date +%s); \
	    $(MAKE) --no-print-directory test-major PG_MAJOR=$$m PG_CONFIG=$$(scripts/pg-config.sh $$m) || exit $$?; \
	    echo "make test: PostgreSQL $$m passed in $$(( $$(date +%s) - start )) s"; \
	done
	@start=$$(date +%s); $(MAKE) --no-print-directory pg-upgrade-test && \
	    echo "make test: pg_upgrade $(firstword $(PG_MAJORS)) → $(lastword $(PG_MAJORS)) passed in $$(( $$(date +%s) - start )) s"
else
test: lint unit-test fuzz-smoke test-major
endif

# The Citus tests (tests/citus.rs: a coordinator and two workers it starts itself), failing when
# citus.so is not installed in PostgreSQL $(PG_MAJOR) (make test runs them when it is, and says
# so when it skips them). Citus is not in the package registries: build it from its source for
# this major (docs/scaling.md).
test-citus: install-dev
	TENANCY_REQUIRE_CITUS=1 cargo test --no-default-features --features "$(FEATURES) client-tests" \
	    --test citus -- --test-threads=2 --nocapture

# A cluster of the oldest tested major with pg_tenancy in use, upgraded with the newest
# major's pg_upgrade (tests/pg_upgrade.rs). Both builds are installed first. The old side runs
# Debian's 15.18 server (scripts/pg-config.sh says why), with this build of pg_tenancy for 15.
PG_UPGRADE_FROM := $(firstword $(PG_MAJORS))
PG_UPGRADE_TO   := $(lastword $(PG_MAJORS))
pg-upgrade-test: deps
	$(MAKE) --no-print-directory install-dev PG_MAJOR=$(PG_UPGRADE_FROM) PG_CONFIG=$$(scripts/pg-config.sh $(PG_UPGRADE_FROM))
	$(MAKE) --no-print-directory install-dev PG_MAJOR=$(PG_UPGRADE_TO) PG_CONFIG=$$(scripts/pg-config.sh $(PG_UPGRADE_TO))
	old=$$(scripts/pg-config.sh 15-upgrade-source-prefix); \
	from=$$(scripts/pg-config.sh $(PG_UPGRADE_FROM)); \
	install -m 755 $$($$from --pkglibdir)/pg_tenancy.so $$old/usr/lib/postgresql/15/lib/ && \
	install -m 644 $$($$from --sharedir)/extension/pg_tenancy* $$old/usr/share/postgresql/15/extension/ && \
	TENANCY_UPGRADE_OLD_BIN=$$(scripts/pg-config.sh 15-upgrade-source) \
	TENANCY_UPGRADE_NEW_BIN=$$($$(scripts/pg-config.sh $(PG_UPGRADE_TO)) --bindir) \
	TENANCY_UPGRADE_DIR=$(CURDIR)/target/clusters/pg_upgrade \
	    cargo test --no-default-features --features "pg$(PG_UPGRADE_TO) client-tests" \
	    --test pg_upgrade -- --test-threads=1

# The benchmark harness (issue 5; see BENCHMARKS.md). `make bench` installs a release build, runs
# every scenario on a cluster of its own (port BENCH_PORT) and rewrites BENCHMARKS.md and
# bench/scaling.svg; ~20-25 minutes with the defaults. Knobs: SCALE, ROUNDS, DURATION, ... (see
# BENCHMARKS.md). `make bench-smoke` (part of `make test`) runs it end to end in seconds on a tiny
# dataset with whatever build is installed, and writes its report under target/bench-smoke.
BENCH_PORT       ?= 28960
BENCH_SMOKE_PORT ?= 289$(shell expr $(PG_MAJOR) + 60)
.PHONY: bench bench-smoke

bench: deps
	start=$$(date +%s); \
	cargo pgrx install --release --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES) && \
	BENCH_BUILD_SECONDS=$$(( $$(date +%s) - start )) bench/run.sh --pin-release --port $(BENCH_PORT) \
	    --dir $(CLUSTERS)/bench --out BENCHMARKS.md --svg bench/scaling.svg \
	    --json target/bench-results.json

bench-smoke:
	bench/run.sh --smoke --port $(BENCH_SMOKE_PORT) --dir $(CLUSTERS)/bench-smoke \
	    --out target/bench-smoke/pg$(PG_MAJOR)/BENCHMARKS.md --svg target/bench-smoke/pg$(PG_MAJOR)/scaling.svg \
	    --json target/bench-smoke/pg$(PG_MAJOR)/results.json

# Instructions per transaction under callgrind (issue 13; BENCHMARKS.md, "Instructions per
# transaction"). `make bench-instructions` installs a release build, counts every variant on a
# cluster of its own (port INSTR_PORT), rewrites that section of BENCHMARKS.md and writes
# target/bench-instructions.json; ~15 minutes. `make bench-instructions-smoke` (part of
# `make test`) runs it end to end in a couple of minutes on a tiny dataset with whatever build is
# installed, and writes its report under target/bench-instructions-smoke.
INSTR_PORT       ?= 28961
INSTR_SMOKE_PORT ?= 289$(shell expr $(PG_MAJOR) + 70)
.PHONY: bench-instructions bench-instructions-smoke

bench-instructions: deps
	start=$$(date +%s); \
	cargo pgrx install --release --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES) && \
	BENCH_BUILD_SECONDS=$$(( $$(date +%s) - start )) bench/run.sh --instructions --pin-release \
	    --port $(INSTR_PORT) --dir $(CLUSTERS)/bench-instructions --out BENCHMARKS.md \
	    --json target/bench-instructions.json

bench-instructions-smoke:
	bench/run.sh --instructions --smoke --port $(INSTR_SMOKE_PORT) \
	    --dir $(CLUSTERS)/bench-instructions-smoke \
	    --out target/bench-instructions-smoke/pg$(PG_MAJOR)/BENCHMARKS.md \
	    --json target/bench-instructions-smoke/pg$(PG_MAJOR)/results.json

# A tenant's point select through a Citus coordinator with two workers (issue 14; BENCHMARKS.md,
# "Citus"): pg_tenancy against the same query with WHERE tenant_id = … and no RLS, and against
# the hand-written pattern, in one run. Not part of make test: it needs citus.so, which is in no
# package registry (docs/scaling.md), and fails saying so without it. Ports BENCH_CITUS_PORT..+2;
# ~6 minutes with the defaults (throughput rounds, then instruction counts under callgrind).
BENCH_CITUS_PORT ?= 28980
.PHONY: bench-citus

bench-citus: deps
	cargo pgrx install --release --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES) && \
	bench/run.sh --citus --port $(BENCH_CITUS_PORT) \
	    --dir $(CLUSTERS)/bench-citus --out BENCHMARKS.md --json target/bench-citus.json

demo: install-dev
	scripts/cluster.sh start $(CLUSTERS)/demo $(DEMO_PORT)
	@status=0; scripts/demo.sh $(DEMO_PORT) || status=$$?; \
	if [ "$(KEEP)" = 1 ]; then \
	    echo; echo "The demo cluster keeps running. Connect with:"; \
	    echo "  psql 'host=127.0.0.1 port=$(DEMO_PORT) user=postgres dbname=tenancy_demo'"; \
	    echo "Stop it with: scripts/cluster.sh stop $(CLUSTERS)/demo"; \
	else scripts/cluster.sh stop $(CLUSTERS)/demo; fi; \
	exit $$status

clean:
	-for m in $(PG_MAJORS); do \
	    PG_BIN=$$($$(scripts/pg-config.sh $$m) --bindir) scripts/cluster.sh stop target/clusters/pg$$m/test; \
	    PG_BIN=$$($$(scripts/pg-config.sh $$m) --bindir) scripts/cluster.sh stop target/clusters/pg$$m/demo; \
	done
	rm -rf target/clusters target/pg_regress
