#!/usr/bin/env bash
# Browser tests: sidestream's page in Debian's headless Chromium, against the real gateway serving the
# embedded component. Installs Chromium and redis-server (apt) and playwright-core (npm ci) when
# missing; builds nothing: run after `make component gateway-release` (the Makefile's test-e2e target does that).
#
#   SIDESTREAM_GATEWAY_BIN  gateway binary   (default target/release/sidestream-gateway)
#   SIDESTREAM_COMPONENT    component .wasm  (default target/wasm32-wasip2/release/sidestream_component.wasm)
#   CHROMIUM_BIN            browser          (default /usr/bin/chromium)
#   REDIS_SERVER_BIN        redis-server     (default: the one on PATH, installed when missing)
# Screenshots and gateway logs: target/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."

export SIDESTREAM_GATEWAY_BIN="${SIDESTREAM_GATEWAY_BIN:-target/release/sidestream-gateway}"
export SIDESTREAM_COMPONENT="${SIDESTREAM_COMPONENT:-target/wasm32-wasip2/release/sidestream_component.wasm}"
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

for f in "$SIDESTREAM_GATEWAY_BIN" "$SIDESTREAM_COMPONENT"; do
    if [[ ! -f "$f" ]]; then
        echo "test-e2e: $f is missing; build it first (make component gateway-release)" >&2
        exit 1
    fi
done

if [[ ! -x "$CHROMIUM_BIN" ]]; then
    echo "test-e2e: installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run on the same machine holds the lock for a while: wait for it instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
fi
"$CHROMIUM_BIN" --version
# The Room panel's test runs two gateways on one real redis-server (e2e/lib/redis.mjs); redis.sh
# installs Debian's when it is missing and does nothing otherwise.
if [[ -n "${REDIS_SERVER_BIN:-}" ]]; then
    command -v "$REDIS_SERVER_BIN" >/dev/null || { echo "test-e2e: REDIS_SERVER_BIN=$REDIS_SERVER_BIN is not there" >&2; exit 1; }
else
    scripts/redis.sh
fi

# playwright-core only (it downloads no browser); the lock file pins it.
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

rm -rf target/e2e
mkdir -p target/e2e
# node's own runner; its closing summary ("tests N / pass N / fail N") is what CI reads.
node --test --test-reporter=spec e2e/tests/*.test.mjs
echo "test-e2e: screenshots in target/e2e/ ($(cd target/e2e && ls -- *.png | tr '\n' ' '))"
