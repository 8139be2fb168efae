# sidestream: `make run` runs the app, `make test` tests everything (installing what the tests need).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080
WASM_TARGET := wasm32-wasip2
COMPONENT := target/$(WASM_TARGET)/release/sidestream_component.wasm
FAULT_COMPONENT := target/fault/$(WASM_TARGET)/release/sidestream_component.wasm
GATEWAY := target/release/sidestream-gateway
# The suites run the debug build that `cargo test` already made: no release build in `make test`.
TEST_GATEWAY := target/debug/sidestream-gateway

.PHONY: run test lint fmt fmt-check structure readme wasm-target component fault-component gateway test-gateway \
        grip-tools redis examples test-page test-rust test-k8s test-sidecar test-conformance test-e2e bench fuzz soak

## run: build the component and the gateway, serve both on http://$(LISTEN)/; `make component` in
## another terminal reloads the component into the running gateway (--watch) without closing a socket
run: component gateway
	@echo "sidestream: open http://$(LISTEN)/ (Ctrl-C stops it)"
	$(GATEWAY) --listen $(LISTEN) --component $(COMPONENT) --watch

## test: every suite, after installing what it needs
test: fmt-check structure test-page test-rust test-k8s test-sidecar test-conformance test-e2e

## lint: formatting and clippy, for the native crates and the wasm component
lint: fmt-check wasm-target
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p sidestream-component --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p sidestream-component --target $(WASM_TARGET) --features fault-injection --target-dir target/fault -- -D warnings
	$(CARGO) clippy -p sidestream-gateway --no-default-features --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all --check

## structure: the gateway's imports have no cycle and never reach up into the wiring, its files and functions stay small
structure:
	python3 scripts/structure.py --self-test
	python3 scripts/structure.py

## readme: refresh the gateway's flag list in README.md from --help
readme: test-gateway
	python3 scripts/readme_help.py target/debug/sidestream-gateway README.md

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

component: wasm-target
	$(CARGO) build -p sidestream-component --target $(WASM_TARGET) --release

# The component with fault-injection routes, for the host's containment tests only.
fault-component: wasm-target
	$(CARGO) build -p sidestream-component --target $(WASM_TARGET) --release --features fault-injection --target-dir target/fault

gateway:
	$(CARGO) build --release -p sidestream-gateway

# The debug gateway exactly as `cargo test --workspace` builds it: `cargo build -p` would resolve features
# differently and compile wasmtime a second time (a minute and hundreds of MB for nothing).
test-gateway:
	$(CARGO) test --workspace --no-run

test-rust: component fault-component grip-tools redis examples
	$(CARGO) test --workspace

## grip-tools: the GRIP libraries the tests drive sidestream with (Python gripcontrol in .venv-grip)
grip-tools:
	scripts/grip-tools.sh

## examples: the TypeScript and Python WebSocket apps in examples/, built from their lock files
## (npm ci, a venv with hashes pinned; nothing global), each only when its sources change
examples:
	scripts/examples.sh

## redis: Debian's redis-server, which the channel tests and the Room panel's e2e test run on ports of their own
redis:
	scripts/redis.sh

## test-page: the page's scripts without a browser, in seconds: tsc (strict) over their JSDoc types, node unit tests of their logic
# TypeScript comes from page/'s lock file: static/ holds only what is served.
test-page:
	cd page && npm ci --no-audit --no-fund --loglevel=error
	page/node_modules/.bin/tsc -p page/tsconfig.json
	node --test --test-reporter=spec page/tests/*.test.mjs

test-k8s:
	scripts/test-k8s.sh

test-sidecar:
	scripts/sidecar-smoke.sh

test-conformance: test-gateway
	SIDESTREAM_GATEWAY_BIN=$(TEST_GATEWAY) scripts/autobahn.sh

# redis: the Room panel's test runs two gateways on one real redis-server.
test-e2e: component test-gateway redis
	SIDESTREAM_GATEWAY_BIN=$(TEST_GATEWAY) SIDESTREAM_COMPONENT=$(COMPONENT) scripts/test-e2e.sh

## bench: the benchmark suite against the gateway and its peers (not part of test)
bench:
	scripts/bench.sh

## soak: the channels' model workload with faults on one Redis, then on a Redis Cluster, SOAK_SECONDS (600) each (SOAK_BROKERS="redis cluster") (not part of test)
soak: component redis
	scripts/soak.sh

## fuzz: every fuzz target for 60 s (not part of test)
fuzz:
	scripts/fuzz.sh
