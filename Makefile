# sidestream: `make run` runs the app, `make test` tests everything (installing what the tests need).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
COMPONENT := target/$(WASM_TARGET)/release/sidestream_component.wasm

.PHONY: run test lint fmt component wasm-target test-rust

## run: build the component (the next steps start the whole app here)
run: component
	@echo "built $(COMPONENT) ($$(stat -c %s $(COMPONENT)) bytes); serve it with: spin up"

## test: every test suite, after installing what it needs
test: fmt-check test-rust

## lint: formatting and clippy, for the native crates and the wasm component
lint: fmt-check wasm-target
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p sidestream-component --target $(WASM_TARGET) -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all --check

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

component: wasm-target
	$(CARGO) build -p sidestream-component --target $(WASM_TARGET) --release

test-rust: component
	$(CARGO) test --workspace
