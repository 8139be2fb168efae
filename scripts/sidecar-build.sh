#!/usr/bin/env bash
# Builds the gateway sidecar exactly as images/gateway.Dockerfile builds it: its `RUN cargo build`
# line, word for word (static x86_64 musl, release, --no-default-features), after checking that the
# line and the binary the image copies out are what the sidecar is. Prints the binary's path on
# stdout (under CARGO_TARGET_DIR when set); everything else goes to stderr.
#
# Installs what is missing: Debian's musl-tools (musl-gcc, for any C in the dependency tree) and
# the rustup target x86_64-unknown-linux-musl. scripts/sidecar-smoke.sh and scripts/bench.sh call it.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKERFILE=images/gateway.Dockerfile
TARGET=x86_64-unknown-linux-musl

if ! command -v musl-gcc >/dev/null; then
  echo "installing musl-tools" >&2
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >&2

# The Dockerfile's build command, which must be one line starting with `RUN cargo build`.
mapfile -t lines < <(grep -E '^RUN cargo build ' "$DOCKERFILE")
if [[ ${#lines[@]} -ne 1 ]]; then
  echo "$DOCKERFILE: expected exactly one 'RUN cargo build ...' line, found ${#lines[@]}" >&2
  exit 1
fi
read -r -a build <<<"${lines[0]#RUN }"
for required in --release --no-default-features "--target $TARGET" "-p sidestream-gateway"; do
  if [[ " ${build[*]} " != *" $required "* ]]; then
    echo "$DOCKERFILE: the build line lacks '$required': ${lines[0]}" >&2
    exit 1
  fi
done

# The binary the image copies out of the build stage, relative to the build's WORKDIR (the image
# builds without CARGO_TARGET_DIR, so its path is always under target/).
workdir="$(sed -nE 's/^WORKDIR +//p' "$DOCKERFILE" | tail -1)"
copied="$(sed -nE "s#^COPY --from=build +${workdir}/([^ ]+) .*#\\1#p" "$DOCKERFILE")"
if [[ $copied != "target/$TARGET/release/sidestream-gateway" ]]; then
  echo "$DOCKERFILE copies '$copied' out of the build, but the build produces" \
    "'target/$TARGET/release/sidestream-gateway'" >&2
  exit 1
fi

echo "+ ${build[*]}" >&2
"${build[@]}" >&2
binary=${CARGO_TARGET_DIR:-target}/$TARGET/release/sidestream-gateway
[[ $binary = /* ]] || binary=$PWD/$binary
echo "built $binary ($(stat -c %s "$binary") bytes)" >&2
echo "$binary"
