# PostgreSQL with pg_tenancy installed and preloaded. PG_MAJOR picks the major (15 or 18, the
# ones `make test` tests; 18 by default, the postgres image's current major).
#   docker build -t pg_tenancy .                         # PostgreSQL 18
#   docker build --build-arg PG_MAJOR=15 -t pg_tenancy:pg15 .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 pg_tenancy
ARG PG_MAJOR=18

# Build stage: the pinned toolchain and cargo-pgrx, then `cargo pgrx package`.
FROM postgres:${PG_MAJOR}-bookworm AS build
ARG PG_MAJOR
ARG RUST_VERSION=1.95.0
ARG PGRX_VERSION=0.18.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential clang libclang-dev pkg-config \
        ca-certificates curl postgresql-server-dev-${PG_MAJOR} \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "$RUST_VERSION"
ENV PATH=/root/.cargo/bin:$PATH
RUN cargo install cargo-pgrx --version "$PGRX_VERSION" --locked \
 && cargo pgrx init --pg${PG_MAJOR} /usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
WORKDIR /src
COPY . .
RUN cargo pgrx package --pg-config /usr/lib/postgresql/${PG_MAJOR}/bin/pg_config \
        --no-default-features --features pg${PG_MAJOR} --out-dir /pkg

# Runtime: the official image plus the installed files only (the same files `make install`
# installs: the library, the control file, this version's install script and the upgrade
# scripts; scripts/check-dockerfile.sh checks it).
FROM postgres:${PG_MAJOR}-bookworm
ARG PG_MAJOR
COPY --from=build /pkg/usr/share/postgresql/${PG_MAJOR}/extension/ /usr/share/postgresql/${PG_MAJOR}/extension/
COPY --from=build /pkg/usr/lib/postgresql/${PG_MAJOR}/lib/ /usr/lib/postgresql/${PG_MAJOR}/lib/
CMD ["postgres", "-c", "shared_preload_libraries=pg_tenancy"]
