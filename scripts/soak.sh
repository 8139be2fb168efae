#!/usr/bin/env bash
# `make soak`: the channels' model workload (gateway/tests/model.rs) on two gateways and a durable
# Redis, with faults injected all along: a gateway SIGKILLed and replaced, Redis killed and
# restarted from its append-only file, the gateways' pub/sub connections killed, Redis paused past
# the lease. SOAK_SECONDS long (600 by default); prints its seed, each fault and the violation
# count, and fails on any violation. SIDESTREAM_MODEL_SEED=N replays a seed's choices.
set -euo pipefail
cd "$(dirname "$0")/.."
export SIDESTREAM_SOAK_SECONDS="${SOAK_SECONDS:-600}"
echo "soak: ${SIDESTREAM_SOAK_SECONDS}s on Redis with faults"
cargo test -p sidestream-gateway --test model -- --ignored --nocapture soak_redis_with_faults
