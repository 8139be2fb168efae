#!/usr/bin/env bash
# Debian's redis-server (and redis-cli, from redis-tools, which it depends on), which the channel
# tests start on free ports of their own, alone or as a three-primary Redis Cluster (never a mock).
# `make redis`; `make test-rust` runs it first. Installs only when it is missing.
set -euo pipefail

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "redis: installing Debian's redis-server"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run on the same machine holds the lock for a while: wait for it instead of failing.
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
  # The package starts a system-wide server on 6379; the tests need none, so stop it if it runs.
  if command -v service >/dev/null; then "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true; fi
fi
redis-server --version
