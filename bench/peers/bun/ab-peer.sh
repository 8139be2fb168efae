#!/bin/sh
# Bun's echo peer as a build for `sidestream-bench ab`, which starts every build with the gateway's
# arguments: this ignores them and serves echo.ts on a free port (it prints the `listening addr=`
# line the bench reads). After `make bench` has installed Bun:
#   target/release/sidestream-bench ab --a bun=bench/peers/bun/ab-peer.sh --b gateway=target/release/sidestream-gateway
cd "$(dirname "$0")" && exec node_modules/.bin/bun echo.ts 0
