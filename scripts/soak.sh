#!/usr/bin/env bash
# `make soak`: the channels' model workload (gateway/tests/model.rs) on two gateways, with faults
# injected all along, SOAK_SECONDS long each (600 by default), on each of SOAK_BROKERS (default
# "redis cluster"):
# - redis: one durable Redis; a gateway SIGKILLed and replaced, Redis killed and restarted from its
#   append-only file, the gateways' pub/sub connections killed, Redis paused past the lease;
# - cluster: a three-primary Redis Cluster with a replica per primary; a gateway SIGKILLed, a
#   primary SIGKILLed (its replica promoted, itself back as a replica), a graceful CLUSTER
#   FAILOVER, the gateways' sharded subscriptions killed.
# Prints its seed, each fault and the violation count, and fails on any violation.
# SIDESTREAM_MODEL_SEED=N replays a seed's choices.
set -euo pipefail
cd "$(dirname "$0")/.."
export SIDESTREAM_SOAK_SECONDS="${SOAK_SECONDS:-600}"
for broker in ${SOAK_BROKERS:-redis cluster}; do
  case $broker in
    redis) test=soak_redis_with_faults ;;
    cluster) test=soak_redis_cluster_with_faults ;;
    *) echo "soak: unknown broker $broker (redis or cluster)" >&2; exit 2 ;;
  esac
  echo "soak: ${SIDESTREAM_SOAK_SECONDS}s on $broker with faults"
  cargo test -p sidestream-gateway --test model -- --ignored --nocapture --exact "$test"
done
