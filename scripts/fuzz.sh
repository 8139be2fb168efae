#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a while each (60 s by default): `make fuzz`.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh handshake origin
#
# Needs the nightly toolchain (libFuzzer and the sanitizers are nightly-only); installs cargo-fuzz
# when missing. The committed seeds in fuzz/corpus/<target>/ are read but never written: what a run
# discovers goes to target/fuzz/corpus/<target>/, crashes to target/fuzz/artifacts/<target>/. A crash
# fails the run and is reproduced with the command printed; turn it into a regression test.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-60}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
out=target/fuzz

log() { echo "fuzz: $*" >&2; }

rustup toolchain list | grep -q "^$toolchain" || {
	log "error: the $toolchain toolchain is missing (cargo-fuzz needs it): rustup toolchain install $toolchain"
	exit 1
}
if ! cargo fuzz --version >/dev/null 2>&1; then
	log "installing cargo-fuzz"
	cargo install cargo-fuzz --locked
fi

# `fuzz SUBCOMMAND ARGS...`: everything after a `--` in ARGS goes to libFuzzer.
fuzz() {
	local sub=$1
	shift
	cargo "+$toolchain" fuzz "$sub" --fuzz-dir fuzz "$@"
}

if (($#)); then
	targets=("$@")
else
	mapfile -t targets < <(fuzz list)
fi

# One build for every target, with overflow checks and debug assertions on: an overflow in a parser is
# a finding even where release builds would wrap silently.
fuzz build --target-dir "$out/build" --debug-assertions

summary=()
crashed=0
for target in "${targets[@]}"; do
	work=$out/corpus/$target
	artifacts=$out/artifacts/$target
	rm -rf "$artifacts"
	mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"
	flags=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/")
	[[ -f fuzz/dict/$target.dict ]] && flags+=(-dict="fuzz/dict/$target.dict")
	log "$target: ${seconds} s"
	status=0
	fuzz run --target-dir "$out/build" --debug-assertions "$target" "$work" "fuzz/corpus/$target" -- "${flags[@]}" \
		>"$out/$target.log" 2>&1 || status=$?
	# libFuzzer's last status line: `#1234567 DONE cov: 321 ft: 654 corp: 89/1234b ...`.
	last=$(grep -E '^#[0-9]+' "$out/$target.log" | tail -n1 || true)
	runs=$(grep -oP '^stat::number_of_executed_units:\s*\K[0-9]+' "$out/$target.log" || echo "?")
	cov=$(grep -oP 'cov: \K[0-9]+' <<<"$last" || echo "?")
	ft=$(grep -oP 'ft: \K[0-9]+' <<<"$last" || echo "?")
	corp=$(grep -oP 'corp: \K[0-9]+' <<<"$last" || echo "?")
	if ((status)); then
		crashed=$((crashed + 1))
		found=$(find "$artifacts" -type f | head -n1)
		if [[ -n $found ]]; then
			for seed in "fuzz/corpus/$target"/*; do
				cmp -s "$seed" "$found" && log "$target: the committed seed $seed crashes (a regression)"
			done
		fi
		summary+=("$target: CRASHED after $runs runs (cov $cov, ft $ft): ${found:-see $out/$target.log}")
		grep -m3 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$out/$target.log" >&2 || true
		[[ -n $found ]] && log "reproduce: cargo +$toolchain fuzz run --fuzz-dir fuzz $target $found"
	else
		summary+=("$target: $runs runs in ${seconds} s, cov $cov, ft $ft, corpus $corp, no crash")
	fi
done

printf '%s\n' "${summary[@]}"
echo "$((${#targets[@]} - crashed)) passed, $crashed failed"
((crashed == 0))
