#!/usr/bin/env bash
# Builds the gateway sidecar exactly as images/gateway.Dockerfile builds it (scripts/sidecar-build.sh
# runs its `RUN cargo build` line, word for word: static x86_64 musl, release,
# --no-default-features) and runs that binary once through gateway/tests/sidecar.rs: against an
# upstream the test starts, it must serve /livez and /readyz, proxy the component's /health, echo
# over a WebSocket, and drain on SIGTERM.
#
# Installs what is missing (musl-tools, the rustup target x86_64-unknown-linux-musl; see
# sidecar-build.sh). `make test-sidecar` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=$(scripts/sidecar-build.sh)

# --workspace: the same feature resolution as `cargo test --workspace`, so nothing is compiled again.
SIDESTREAM_SIDECAR_BIN="$binary" cargo test --workspace --test sidecar --test memory -- --ignored
