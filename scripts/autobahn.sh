#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client (every case, 1.* to 13.*) against the gateway's pure
# echo route and fails unless every case passes: `make test-conformance`.
#
#   scripts/autobahn.sh                       # gateway binary: target/release/sidestream-gateway
#   SIDESTREAM_GATEWAY_BIN=path scripts/autobahn.sh
#
# The suite (`wstest`, PyPI autobahntestsuite) runs only on Python 2.7: it is installed once into
# .venv-autobahn from pyenv's 2.7.18, with the pins of conformance/requirements-py27.txt, and reused
# until that file changes. Reports land in target/autobahn/reports/servers/ (index.html to browse).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

gateway=${SIDESTREAM_GATEWAY_BIN:-target/release/sidestream-gateway}
requirements=conformance/requirements-py27.txt
spec_template=conformance/fuzzingclient.json
venv=.venv-autobahn
boot=.venv-autobahn-boot # Python 3 venv holding the last virtualenv that can still create 2.7 envs
out=target/autobahn
# The whole run takes well under a minute; this only stops a hung suite from hanging `make test`.
suite_timeout=${AUTOBAHN_TIMEOUT:-600}

log() { echo "autobahn: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

find_python27() {
	local candidate
	for candidate in \
		"${AUTOBAHN_PYTHON27:-}" \
		"$(pyenv root 2>/dev/null || true)/versions/2.7.18/bin/python" \
		"${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python" \
		/root/.pyenv/versions/2.7.18/bin/python; do
		if [[ -n $candidate && -x $candidate ]] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
			echo "$candidate"
			return
		fi
	done
	die "Python 2.7 not found: Autobahn|Testsuite needs it. Expected pyenv's 2.7.18 (\`pyenv versions\`; \`pyenv install 2.7.18\`) or set AUTOBAHN_PYTHON27=/path/to/python2.7"
}

ensure_venv() {
	local py27 stamp want
	py27=$(find_python27)
	stamp=$venv/.sidestream-stamp
	want="$("$py27" --version 2>&1) $py27 $(sha256sum "$requirements" | cut -d' ' -f1)"
	if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/wstest ]]; then
		return
	fi
	log "installing Autobahn|Testsuite into $venv (Python 2.7, once)"
	command -v python3 >/dev/null || die "python3 not found: it creates the Python 2.7 env and runs the checker"
	if [[ ! -x $boot/bin/virtualenv ]]; then
		python3 -m venv "$boot"
		"$boot/bin/pip" install --quiet --disable-pip-version-check 'virtualenv<20.22'
	fi
	rm -rf "$venv"
	"$boot/bin/virtualenv" --quiet -p "$py27" "$venv"
	# Every dependency is pinned in the file; --no-deps would hide a missing pin, so it is not used.
	PIP_NO_PYTHON_VERSION_WARNING=1 "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
	"$venv/bin/wstest" --autobahnversion >/dev/null
	echo "$want" >"$stamp"
}

ensure_venv

[[ -x $gateway ]] || die "gateway binary $gateway not found: build it with \`cargo build -p sidestream-gateway --release\` or set SIDESTREAM_GATEWAY_BIN"

rm -rf "$out"
mkdir -p "$out"
gateway_log=$out/gateway.log

# The 9.* cases echo messages of up to 16 MiB (9.1.6, 9.2.6), so the message limit is raised to
# exactly that. Pings are pushed out of any case's reach: an unsolicited Ping is an event the suite
# does not expect, and the longest case takes a few seconds. The suite only uses /ws, so the
# component's paths point at an upstream that is never contacted: no component build needed, and
# the same flags work for a build without the embedded host. A SIDESTREAM_COMPONENT left in the
# environment would conflict with --upstream, and the address is read from the text log format.
# An upstream needs the key the gateway signs its requests to it with; nothing is ever signed here.
openssl rand -hex 32 >"$out/grip.key" 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$out/grip.key"
env -u SIDESTREAM_COMPONENT "$gateway" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --no-push --log-format text \
	--max-message-size 16777216 \
	--ping-interval 1h --idle-timeout 2h \
	--upstream http://127.0.0.1:9 --grip-key-file "$out/grip.key" \
	>"$gateway_log" 2>&1 &
gateway_pid=$!
cleanup() {
	kill -TERM "$gateway_pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		kill -0 "$gateway_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$gateway_pid" 2>/dev/null || true
	wait "$gateway_pid" 2>/dev/null || true
}
trap cleanup EXIT

addr=
for _ in $(seq 1 300); do
	addr=$(grep -oP 'listening addr=\K\S+' "$gateway_log" | head -n1 || true)
	[[ -n $addr ]] && break
	kill -0 "$gateway_pid" 2>/dev/null || {
		cat "$gateway_log" >&2
		die "the gateway exited before listening"
	}
	sleep 0.1
done
[[ -n $addr ]] || {
	cat "$gateway_log" >&2
	die "no 'listening addr=' line from the gateway within 30 s"
}
log "gateway listening on $addr; running every case against ws://$addr/ws?push=off"

sed "s|@ADDR@|$addr|" "$spec_template" >"$out/fuzzingclient.json"
start=$SECONDS
# wstest resolves the spec's outdir against its working directory: reports go to $out/reports.
if ! (cd "$out" && timeout "$suite_timeout" "$root/$venv/bin/wstest" -m fuzzingclient -s fuzzingclient.json >wstest.log 2>&1); then
	tail -n 20 "$out/wstest.log" >&2
	die "wstest did not finish (log: $out/wstest.log)"
fi
log "suite finished in $((SECONDS - start)) s"

# A crash would show as failed cases too, but say it plainly.
kill -0 "$gateway_pid" 2>/dev/null || die "the gateway exited during the suite (log: $gateway_log)"
if grep -q 'panicked' "$gateway_log"; then
	grep -m5 'panicked' "$gateway_log" >&2
	die "the gateway panicked during the suite (log: $gateway_log)"
fi

python3 conformance/autobahn_check.py "$out/reports/servers/index.json"
