# syntax=docker/dockerfile:1
#
# paygate's production image: `docker build -t paygate:$(git rev-parse --short HEAD) .`
#
# The image has no PostgreSQL server: it expects DATABASE_URL (in Kubernetes, from the Secret
# `paygate-db-app` that CloudNativePG generates; see k8s/). The embedded cluster is for
# development on a workstation only.

# ---- build ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# The whole workspace is needed to resolve Cargo.lock (`integration-tests` is a member); the
# SQL migrations are compiled into the binary (include_str!). .dockerignore keeps target/,
# data/ and .git/ out of the context.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY integration-tests ./integration-tests

# BuildKit cache mounts keep the registry and the target directory between builds; the binary
# is copied out of the cached target directory, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin paygate \
    && install -D -m 0755 target/release/paygate /out/paygate

# ---- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# The binary links only against glibc; TLS (agency notifications) is rustls, which needs the
# system's CA certificates. tzdata gives the reconciliation CronJob's `date` Vietnam time.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged account with fixed ids, matching runAsUser/runAsGroup in k8s/.
RUN groupadd --system --gid 10001 paygate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin paygate

WORKDIR /app
COPY --from=build /out/paygate /usr/local/bin/paygate
# The migrations are compiled into the binary too; this copy is for operators to read what a
# release applies (`kubectl exec ... -- ls /app/migrations`).
COPY migrations ./migrations

ENV PAYGATE_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
USER 10001:10001
EXPOSE 8080

# Exec form: paygate is PID 1 and receives SIGTERM itself (it installs its own handler, stops
# accepting, and gives in-flight requests 25 s).
ENTRYPOINT ["/usr/local/bin/paygate"]
CMD ["serve"]
