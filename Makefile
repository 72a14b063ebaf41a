# pg_tenancy task runner. Every target installs what it is missing first (scripts/install-deps.sh).
#
#   make demo      build, install, start a throwaway cluster and walk through the quickstart
#   make test      lint, in-database tests, pg_regress suite, client tests, client examples
#   make install   install into the PostgreSQL that PG_CONFIG names
#   make bench     (see BENCHMARKS.md)

PG_MAJOR    ?= 15
PG_CONFIG   ?= /usr/lib/postgresql/$(PG_MAJOR)/bin/pg_config
PG_BIN      := $(shell $(PG_CONFIG) --bindir 2>/dev/null)
PGRX_VERSION := $(shell sed -n 's/^pgrx = "=\(.*\)"/\1/p' Cargo.toml)
FEATURES    := pg$(PG_MAJOR)
CLUSTERS    := $(CURDIR)/target/clusters
TEST_PORT   ?= 28901
DEMO_PORT   ?= 28950
CLIENT_TESTS := $(patsubst tests/%.rs,--test %,$(wildcard tests/*.rs))

export PG_BIN

.PHONY: deps build install install-dev lint pgrx-test unit-test regress client-test examples test demo \
        clean cluster-start cluster-stop fuzz fuzz-smoke

deps:
	@scripts/install-deps.sh

build: deps
	cargo build --no-default-features --features $(FEATURES)

EXTENSION_DIR = $(shell $(PG_CONFIG) --sharedir)/extension

# Release build, for users. Also installs the install scripts of released versions and the
# upgrade scripts, so that `ALTER EXTENSION pg_tenancy UPDATE` works from any release.
install: deps
	cargo pgrx install --release --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES)
	install -m 644 sql/releases/*.sql sql/upgrades/*.sql $(EXTENSION_DIR)/

# Debug build, faster to compile; what the test clusters run.
install-dev: deps
	cargo pgrx install --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES)
	install -m 644 sql/releases/*.sql sql/upgrades/*.sql $(EXTENSION_DIR)/

lint: deps
	scripts/check-releases.sh
	scripts/check-dockerfile.sh
	cargo fmt --check
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

test: lint unit-test fuzz-smoke pgrx-test cluster-start
	@status=0; \
	$(MAKE) --no-print-directory regress || status=$$?; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory client-test || status=$$?; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory examples || status=$$?; \
	scripts/cluster.sh stop $(CLUSTERS)/test; \
	[ $$status -ne 0 ] || $(MAKE) --no-print-directory bench-smoke || status=$$?; \
	exit $$status

# The benchmark harness (issue 5; see BENCHMARKS.md). `make bench` installs a release build, runs
# every scenario on a cluster of its own (port BENCH_PORT) and rewrites BENCHMARKS.md and
# bench/scaling.svg; ~20-25 minutes with the defaults. Knobs: SCALE, ROUNDS, DURATION, ... (see
# BENCHMARKS.md). `make bench-smoke` (part of `make test`) runs it end to end in seconds on a tiny
# dataset with whatever build is installed, and writes its report under target/bench-smoke.
BENCH_PORT       ?= 28960
BENCH_SMOKE_PORT ?= 28961
.PHONY: bench bench-smoke

bench: deps
	start=$$(date +%s); \
	cargo pgrx install --release --pg-config $(PG_CONFIG) --no-default-features --features $(FEATURES) && \
	BENCH_BUILD_SECONDS=$$(( $$(date +%s) - start )) bench/run.sh --pin-release --port $(BENCH_PORT) \
	    --dir $(CLUSTERS)/bench --out BENCHMARKS.md --svg bench/scaling.svg \
	    --json target/bench-results.json

bench-smoke:
	bench/run.sh --smoke --port $(BENCH_SMOKE_PORT) --dir $(CLUSTERS)/bench-smoke \
	    --out target/bench-smoke/BENCHMARKS.md --svg target/bench-smoke/scaling.svg \
	    --json target/bench-smoke/results.json

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
	-scripts/cluster.sh stop $(CLUSTERS)/test
	-scripts/cluster.sh stop $(CLUSTERS)/demo
	rm -rf $(CLUSTERS) target/pg_regress
