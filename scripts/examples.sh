#!/usr/bin/env bash
# Builds the example WebSocket apps in examples/ from their lock files, installing nothing
# globally: TypeScript with `npm ci` into examples/typescript/node_modules, Python in a venv at
# examples/python/.venv from requirements.txt (every file's hash pinned). Each is rebuilt only when
# its sources or lock file change (a stamp beside it). Prints each build's time and .wasm size.
# `make examples`; `make test-rust` runs it first.
set -euo pipefail
cd "$(dirname "$0")/../examples"

# The hash of everything a build reads, and whether the stamp says it was built from exactly that.
sources() { find "$@" -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1; }
fresh() { [[ -s $2 && -f $1.stamp && $(cat "$1.stamp") == "$3" ]]; }

report() {
  local name=$1 wasm=$2 started=$3
  [[ -s $wasm ]] || { echo "examples: $name: $wasm was not built" >&2; exit 1; }
  printf 'examples: %s built in %ss: %s (%s bytes)\n' "$name" "$(($(date +%s) - started))" "$wasm" "$(stat -c %s "$wasm")"
}

typescript() {
  local wasm=typescript/dist/sidestream-typescript.wasm
  local want
  want="$(node --version) $(sources typescript/src typescript/wit typescript/package.json typescript/package-lock.json typescript/build.mjs typescript/tsconfig.json)"
  fresh typescript "$wasm" "$want" && { echo "examples: typescript is up to date ($wasm)"; return; }
  local started
  started=$(date +%s)
  (cd typescript && npm ci --no-audit --no-fund --loglevel=error && rm -rf build dist && npm run --silent build)
  report typescript "$wasm" "$started"
  echo "$want" >typescript.stamp
}

python() {
  local wasm=python/sidestream-python.wasm venv=python/.venv
  local want
  want="$(python3 --version 2>&1) $(sources python/*.py python/requirements.txt)"
  fresh python "$wasm" "$want" && { echo "examples: python is up to date ($wasm)"; return; }
  local started
  started=$(date +%s)
  rm -rf "$venv" "$wasm"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r python/requirements.txt
  # componentize-py finds spin-sdk in the venv it runs in.
  (cd python && VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" \
    componentize-py -w spin-http componentize app -o sidestream-python.wasm >/dev/null)
  report python "$wasm" "$started"
  echo "$want" >python.stamp
}

typescript
python
