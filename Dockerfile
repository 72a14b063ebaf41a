# PostgreSQL 15 with pg_tenancy installed and preloaded.
#   docker build -t pg_tenancy .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 pg_tenancy
# Build stage: the pinned toolchain and cargo-pgrx, then `cargo pgrx package`.
FROM postgres:15-bookworm AS build
ARG RUST_VERSION=1.95.0
ARG PGRX_VERSION=0.18.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential clang libclang-dev pkg-config \
        ca-certificates curl postgresql-server-dev-15 \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "$RUST_VERSION"
ENV PATH=/root/.cargo/bin:$PATH
RUN cargo install cargo-pgrx --version "$PGRX_VERSION" --locked \
 && cargo pgrx init --pg15 /usr/lib/postgresql/15/bin/pg_config
WORKDIR /src
COPY . .
RUN cargo pgrx package --pg-config /usr/lib/postgresql/15/bin/pg_config \
        --no-default-features --features pg15 --out-dir /pkg \
 && cp sql/releases/*.sql sql/upgrades/*.sql /pkg/usr/share/postgresql/15/extension/

# Runtime: the official image plus the installed files only (the same files `make install`
# installs: the library, the control file, this version's install script, the released install
# scripts and the upgrade scripts; scripts/check-dockerfile.sh checks it).
FROM postgres:15-bookworm
COPY --from=build /pkg/usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/
COPY --from=build /pkg/usr/lib/postgresql/15/lib/ /usr/lib/postgresql/15/lib/
CMD ["postgres", "-c", "shared_preload_libraries=pg_tenancy"]
