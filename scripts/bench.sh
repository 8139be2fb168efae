#!/usr/bin/env bash
# make bench: installs the peers' toolchains when missing, builds the gateway, the shipped sidecar
# (the image's static musl build, through scripts/sidecar-build.sh), the component, the load
# generator and the peers, then runs `sidestream-bench suite` (every workload against the gateway,
# the sidecar and each peer), prints one table with ratios to the gateway, writes bench/charts/*.svg
# and the results section of BENCHMARKS.md. Builds go to CARGO_TARGET_DIR (default target/).
#
# Knobs (environment):
#   BENCH_QUICK=1      smoke run: 3 s echo runs, 2,000 instead of 19,000 connections (~3 min)
#   BENCH_WASMTIME=1   `cargo install wasmtime-cli --version 48.0.8 --locked` when missing (slow:
#                      15-30 min on 2 cores), for the `http` reference; without it an installed
#                      `wasmtime` is used if there is one, else that row is skipped
#   BENCH_ONLY=echo,idle,fanout,http,app-echo,publish,rooms   workloads to run (default: all)
#   BENCH_ROOMS_CONNECTIONS=2000 BENCH_ROOMS_RATE=400   the rooms workload's subscribers and publications/s
#   BENCH_ROUNDS=N     echo rounds over all servers, best round counts (default 2)
#   BENCH_NO_WRITE=1   print the table, leave BENCHMARKS.md and the charts alone
#   CARGO_TARGET_DIR   where cargo builds (and target/bench's results go); default target/
# Extra arguments are passed to `sidestream-bench suite` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
WASM_TARGET=wasm32-wasip2
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")
OUT=$TARGET_DIR/bench
mkdir -p "$OUT"
log() { printf '\n== %s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

log "peer toolchains"
# (c) Go + gorilla/websocket from Debian: no module download, GOPATH is where Debian keeps sources.
if ! command -v go >/dev/null || ! dpkg -s golang-github-gorilla-websocket-dev >/dev/null 2>&1; then
    apt_install golang-go golang-github-gorilla-websocket-dev
fi
gorilla_src=$(dpkg -L golang-github-gorilla-websocket-dev | grep -m1 '/src/github.com/gorilla/websocket$')
GOPATH_DEBIAN=${gorilla_src%/src/github.com/gorilla/websocket}

# (b) Bun from npm (the `bun` package ships the native binary through its platform packages).
BUN=bench/peers/bun/node_modules/.bin/bun
if ! "$BUN" --version >/dev/null 2>&1; then
    command -v npm >/dev/null || apt_install npm
    (cd bench/peers/bun && npm ci --no-audit --no-fund --loglevel=error)
    # npm may skip the package's postinstall; it only links the platform binary into place.
    "$BUN" --version >/dev/null 2>&1 || (cd bench/peers/bun && node node_modules/bun/install.js)
fi

# The peer for app-echo and publish: Pushpin (Debian's 1.36), run as this user with the bench's own
# config in a temp dir; and redis-server for publish through Redis with two gateways.
command -v pushpin >/dev/null || apt_install pushpin
command -v redis-server >/dev/null || apt_install redis-server

# The `http` reference: wasmtime 48 (same runtime as the gateway's embedded host).
WASMTIME=$(command -v wasmtime || true)
[ -z "$WASMTIME" ] && [ -x "$HOME/.cargo/bin/wasmtime" ] && WASMTIME=$HOME/.cargo/bin/wasmtime
if [ -z "$WASMTIME" ] && [ "${BENCH_WASMTIME:-0}" = 1 ]; then
    log "installing wasmtime-cli 48.0.8 (BENCH_WASMTIME=1; takes a while)"
    "$CARGO" install wasmtime-cli --version 48.0.8 --locked
    WASMTIME=$HOME/.cargo/bin/wasmtime
fi

log "building (release)"
rustup target list --installed | grep -qx "$WASM_TARGET" || rustup target add "$WASM_TARGET"
"$CARGO" build --release -p sidestream-gateway
"$CARGO" build --release -p sidestream-component --target "$WASM_TARGET"
"$CARGO" build --release -p sidestream-bench --bins
# The sidecar as the image ships it: the Dockerfile's own build line (installs musl-tools and the
# musl target when missing).
SIDECAR=$(scripts/sidecar-build.sh)
# The example apps (TypeScript, Python) for app-echo beside the Rust component: from their lock files.
scripts/examples.sh >&2
GO111MODULE=off GOPATH="$GOPATH_DEBIAN" GOCACHE="$OUT/go-cache" GOFLAGS= \
    go build -o "$OUT/gorilla-echo" ./bench/peers/gorilla/main.go

# Up to 19,000 connections held by one server: make sure the soft limit is the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
args=()
if [ "$limit" != unlimited ] && [ "$limit" -lt 20000 ]; then
    n=$((limit - 1000))
    echo "open-file limit is $limit: holding $n connections instead of 19,000" >&2
    args+=(--idle-connections "$n" --fanout-connections "$n" --publish-connections "1000,$n")
fi
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
[ -n "${BENCH_ONLY:-}" ] && args+=(--only "$BENCH_ONLY")
[ -n "${BENCH_ROUNDS:-}" ] && args+=(--rounds "$BENCH_ROUNDS")
[ "${BENCH_NO_WRITE:-0}" = 1 ] && args+=(--no-write)
[ -n "$WASMTIME" ] && args+=(--wasmtime "$WASMTIME")

log "measuring"
# rooms (issue 25): the publish workload in rooms of 100 on two gateways, first on one Redis, then
# on a three-primary Redis Cluster, in one run; its two rows are printed, not written to the table.
if [ -z "${BENCH_ONLY:-}" ] || [[ ,$BENCH_ONLY, == *,rooms,* ]]; then
    "$TARGET_DIR/release/sidestream-bench" rooms \
        --gateway "$TARGET_DIR/release/sidestream-gateway" \
        --component "$TARGET_DIR/$WASM_TARGET/release/sidestream_component.wasm" \
        --redis-server "$(command -v redis-server)" -n "${BENCH_ROOMS_CONNECTIONS:-2000}" \
        --rate "${BENCH_ROOMS_RATE:-400}" | tee "$OUT/rooms.txt"
    [ "${BENCH_ONLY:-}" = rooms ] && exit 0
fi
exec "$TARGET_DIR/release/sidestream-bench" suite \
    --gateway "$TARGET_DIR/release/sidestream-gateway" --sidecar "$SIDECAR" \
    --component "$TARGET_DIR/$WASM_TARGET/release/sidestream_component.wasm" \
    --tungstenite "$TARGET_DIR/release/tungstenite-echo" \
    --bun "$BUN" --bun-script bench/peers/bun/echo.ts \
    --gorilla "$OUT/gorilla-echo" \
    --pushpin "$(command -v pushpin)" --redis-server "$(command -v redis-server)" \
    --example typescript=examples/typescript/dist/sidestream-typescript.wasm \
    --example python=examples/python/sidestream-python.wasm \
    --results "$OUT/results.json" "${args[@]}" "$@"
