# The gateway sidecar image: a static x86_64 musl build of sidestream-gateway without the embedded
# wasm host (`--no-default-features`: it only proxies to the Spin runtime in the same pod, so it
# needs `--upstream`), alone in an empty image, run as a numeric non-root user. From the repository
# root:
#
#   docker buildx build --platform linux/amd64 -f images/gateway.Dockerfile \
#     -t ghcr.io/sidestream/sidestream-gateway:0.1.0 --push .
#
# scripts/sidecar-build.sh runs the `cargo build` line below, word for word (for sidecar-smoke.sh,
# which tests the binary, and for bench.sh, which measures it).
FROM docker.io/library/rust:1.95-slim AS build
# musl-tools (musl-gcc) compiles any C in the dependency tree; Rust links its own bundled musl. Not
# version-pinned: the base image fixes the Debian release, and Debian drops superseded versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p sidestream-gateway --no-default-features --target x86_64-unknown-linux-musl

FROM scratch
LABEL org.opencontainers.image.title="sidestream-gateway" \
      org.opencontainers.image.description="sidestream's WebSocket gateway, the sidecar of the Spin app" \
      org.opencontainers.image.source="https://github.com/sidestream/sidestream" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/sidestream-gateway /sidestream-gateway
# Numeric, so Kubernetes can verify runAsNonRoot without an /etc/passwd (65532: distroless's nonroot).
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/sidestream-gateway"]
