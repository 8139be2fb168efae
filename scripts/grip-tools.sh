#!/usr/bin/env bash
# The GRIP libraries the tests use to show that sidestream speaks their protocols: Python's
# gripcontrol (pinned in scripts/grip-requirements.txt) in .venv-grip, rebuilt only when that file
# changes. `make grip-tools`; `make test-rust` runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-grip
REQUIREMENTS=scripts/grip-requirements.txt
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $(python3 --version 2>&1)"
have=""
[[ -f $VENV/.stamp ]] && have="$(cat "$VENV/.stamp")"
if [[ $want != "$have" || ! -x $VENV/bin/python ]]; then
  echo "grip-tools: installing gripcontrol into $VENV (once per change of $REQUIREMENTS)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  "$VENV/bin/python" -c 'import gripcontrol, pubcontrol'
  echo "$want" >"$VENV/.stamp"
fi
