# syntax=docker/dockerfile:1
# zoomgate's container image: built with the Rust toolchain, run from a distroless base that
# holds glibc, CA certificates and nothing else (no shell, no package manager).
#
#   docker build -t zoomgate:0.1.0 .
#   docker run --read-only -v "$PWD/gateway.toml:/etc/zoomgate/gateway.toml:ro" zoomgate:0.1.0
#
# No config and no secret is baked in: the config file and the Zoom client secrets are mounted
# at run time (see deploy/kubernetes).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protox compiles the protos in pure Rust: no protoc is needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin zoomgate \
    && install -D -m 0755 target/release/zoomgate /out/zoomgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/zoomgate /usr/local/bin/zoomgate
# The distroless `nonroot` user, by number, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# gRPC, and the ops listener (/livez, /readyz, /metrics).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/zoomgate"]
CMD ["serve", "--config", "/etc/zoomgate/gateway.toml", "--log-format", "json"]
