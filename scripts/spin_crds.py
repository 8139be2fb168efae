"""The SpinApps and SpinAppExecutors of a rendered kustomization, checked without a cluster.

    python scripts/spin_crds.py CRD_DIR RUNTIME_CLASS_YAML RENDERED.json

scripts/test-k8s.sh runs it (with the jsonschema of .venv-k8s) on the objects of k8s-overlays/spinapp/
that kubernetes-validate has no schema for. Three things, and a fourth that checks the first three:

  1. each object against the openAPIV3Schema of its CRD (CRD_DIR holds the spin-operator's CRDs), read
     the way an API server reads a structural schema: a field the schema does not name is an error
     (what `kubectl apply --validate=strict` reports, where the server would otherwise prune it), as
     is a field of `metadata` that ObjectMeta has not; int32 and int64 ranges; x-kubernetes-list-type
     `set` lists without duplicates;
  2. the references between the pieces: the SpinApp's executor is a SpinAppExecutor of the same
     rendering; that executor's runtimeClassName is the RuntimeClass of RUNTIME_CLASS_YAML and its
     handler is containerd-shim-spin's `spin`; the gateway's --upstream is the Service the operator
     creates for the SpinApp (named after it, port 80); the NetworkPolicies let the gateway reach
     the SpinApp's pods on port 80 and the SpinApp's pods admit it, selecting them by the label the
     operator puts on them;
     the SpinApp's variables reach the component's configuration: its publish_host names a Service of
     the gateway's admin port (where its publishes go in this topology), and its grip_key and
     publish_token come from the Secrets and keys the gateway reads its --grip-key-file and
     --publish-token-file from;
  3. the Service and Ingress of the rendering lead to the gateway, never to the SpinApp's pods;
  4. broken copies of the SpinApp (an unknown field, an executor that no SpinAppExecutor defines, a
     misspelt field of a probe, a string for replicas) must each fail 1 or 2: a checker that lets
     them through checks nothing.

Prints one line per finding and a last line that says what was checked; exits non-zero on a finding.
"""

import copy
import importlib.metadata
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml

GROUP = "core.spinkube.dev"
# What the spin-operator puts on the SpinApp's pods and names its Service and Deployment after
# (internal/controller/deployment.go and service.go of spinframework/spin-operator).
APP_NAME_LABEL = f"{GROUP}/app-name"
APP_PORT = 80
SHIM_HANDLER = "spin"

# The fields of ObjectMeta a manifest may set (the rest are the server's).
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}
RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def structural(node):
    """The CRD schema node as a JSON Schema that rejects what the API server would drop or refuse."""
    if isinstance(node, list):
        return [structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: structural(v) for k, v in node.items() if k not in ("description", "default")}
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("format") in RANGES and node.get("type") == "integer":
        out.setdefault("minimum", RANGES[node["format"]][0])
        out.setdefault("maximum", RANGES[node["format"]][1])
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def load_crds(crd_dir):
    """kind -> (apiVersion, validator) for every served version of every CRD in the directory."""
    validators = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = structural(version["schema"]["openAPIV3Schema"])
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schema["properties"]["apiVersion"] = {"const": api_version}
            schema["properties"]["kind"] = {"const": kind}
            schema["properties"]["metadata"] = OBJECT_META
            # Status is the operator's to write.
            schema["properties"].pop("status", None)
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
            schema["additionalProperties"] = False
            validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            validator_class.check_schema(schema)
            validators[(api_version, kind)] = validator_class(schema)
    return validators


def name_of(obj):
    return f"{obj.get('kind', '?')} {obj.get('metadata', {}).get('name', '?')}"


def schema_findings(objects, validators):
    findings = []
    for obj in objects:
        validator = validators.get((obj.get("apiVersion"), obj.get("kind")))
        if validator is None:
            findings.append(f"{name_of(obj)}: no CRD defines {obj.get('apiVersion')} {obj.get('kind')}")
            continue
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(the object)"
            findings.append(f"{name_of(obj)}: {where}: {error.message}")
    return findings


def selects(selector, labels):
    """Whether a matchLabels selector (a non-empty map) picks pods carrying these labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def gateway_args(rendered):
    deployments = [o for o in rendered if o.get("kind") == "Deployment" and o["metadata"]["name"] == "sidestream"]
    if len(deployments) != 1:
        return None, None, ["the gateway's Deployment `sidestream` is missing"]
    template = deployments[0]["spec"]["template"]
    containers = template["spec"]["containers"]
    names = [c["name"] for c in containers]
    if names != ["gateway"]:
        return None, None, [f"the gateway's Deployment runs {names}, not the gateway alone (a SpinApp cannot carry a sidecar)"]
    findings = []
    if "runtimeClassName" in template["spec"]:
        findings.append("the gateway is a Linux binary: its pod must not run on the shim's RuntimeClass")
    gateway = dict(containers[0], volumes=template["spec"].get("volumes", []))
    return gateway, template["metadata"].get("labels", {}), findings


def mounted_secret(gateway, path):
    """(Secret, key) whose file the gateway reads at `path`, through a volume mounted read-only."""
    directory, _, file_name = path.rpartition("/")
    for mount in gateway.get("volumeMounts", []):
        if mount["mountPath"].rstrip("/") != directory or not mount.get("readOnly"):
            continue
        volume = next((v for v in gateway["volumes"] if v["name"] == mount["name"]), {})
        secret = volume.get("secret", {})
        for item in secret.get("items", []):
            if item["path"] == file_name:
                return secret["secretName"], item["key"]
    return None


def variable_findings(app, gateway, gateway_labels, rendered, admin_port):
    """The SpinApp's variables against what the gateway reads and where it listens."""
    findings = []
    variables = {v["name"]: v for v in app["spec"].get("variables", [])}
    host, _, port = variables.get("publish_host", {}).get("value", "").rpartition(":")
    admin = [
        o for o in rendered
        if o.get("kind") == "Service" and o["metadata"]["name"] == host and selects(o["spec"].get("selector", {}), gateway_labels)
        and any(str(p.get("port")) == port and p.get("targetPort") in ("admin", admin_port) for p in o["spec"].get("ports", []))
    ]
    if not admin:
        findings.append(f"the SpinApp's publish_host {host}:{port} is not a Service of the gateway's admin port: its publishes would reach no gateway")
    args = dict(a.split("=", 1) for a in gateway.get("args", []) if "=" in a)
    for variable, flag in [("grip_key", "--grip-key-file"), ("publish_token", "--publish-token-file")]:
        ref = variables.get(variable, {}).get("valueFrom", {}).get("secretKeyRef", {})
        source = mounted_secret(gateway, args.get(flag, ""))
        if source is None:
            findings.append(f"the gateway reads no {flag} from a read-only Secret volume")
        elif (ref.get("name"), ref.get("key")) != source:
            findings.append(f"the SpinApp's {variable} comes from {ref.get('name')}/{ref.get('key')}, the gateway's {flag} from {source[0]}/{source[1]}")
    return findings


def reference_findings(rendered, runtime_classes):
    findings = []
    apps = [o for o in rendered if o.get("kind") == "SpinApp"]
    executors = {o["metadata"]["name"]: o for o in rendered if o.get("kind") == "SpinAppExecutor"}
    if len(apps) != 1:
        return [f"{len(apps)} SpinApps rendered, expected one"]
    app = apps[0]
    app_name = app["metadata"]["name"]
    app_labels = {**app["spec"].get("podLabels", {}), APP_NAME_LABEL: app_name}

    executor = executors.get(app["spec"].get("executor"))
    if executor is None:
        findings.append(f"SpinApp {app_name}: executor {app['spec'].get('executor')!r} is no SpinAppExecutor of this rendering (there are {sorted(executors)})")
    else:
        config = executor["spec"].get("deploymentConfig", {})
        if executor["spec"].get("createDeployment") is not True:
            findings.append(f"SpinAppExecutor {executor['metadata']['name']}: createDeployment must be true, or nothing runs the app")
        class_name = config.get("runtimeClassName")
        if class_name not in runtime_classes:
            findings.append(f"SpinAppExecutor {executor['metadata']['name']}: runtimeClassName {class_name!r} is not in runtime-class.yaml ({sorted(runtime_classes)})")
        elif runtime_classes[class_name] != SHIM_HANDLER:
            findings.append(f"RuntimeClass {class_name}: handler {runtime_classes[class_name]!r}, containerd-shim-spin registers {SHIM_HANDLER!r}")
    namespace = app["metadata"].get("namespace")
    if executor is not None and executor["metadata"].get("namespace") != namespace:
        findings.append("the SpinApp's executor must live in the SpinApp's namespace")

    image = app["spec"].get("image", "")
    if "/" not in image or ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        findings.append(f"SpinApp {app_name}: image {image!r} is a placeholder, not a registry reference (the overlay's images: sets it)")

    gateway, gateway_labels, more = gateway_args(rendered)
    findings += more
    if gateway is None:
        return findings
    upstreams = [a.split("=", 1)[1] for a in gateway.get("args", []) if a.startswith("--upstream=")]
    if len(upstreams) != 1:
        findings.append(f"the gateway has {len(upstreams)} --upstream, expected one")
    else:
        url = urlsplit(upstreams[0])
        service_names = {app_name, f"{app_name}.{namespace}", f"{app_name}.{namespace}.svc", f"{app_name}.{namespace}.svc.cluster.local"}
        if url.hostname not in service_names or (url.port or 80) != APP_PORT:
            findings.append(f"--upstream {upstreams[0]} is not the SpinApp's Service ({app_name}, port {APP_PORT}, which the operator creates)")
    if any(o.get("kind") == "Service" and o["metadata"]["name"] == app_name for o in rendered):
        findings.append(f"a Service named {app_name} is rendered: the operator creates that one, and would fight over it")

    # NetworkPolicies: the gateway may reach the app's pods on APP_PORT, and the app's pods admit it.
    policies = [o for o in rendered if o.get("kind") == "NetworkPolicy"]
    gateway_policies = [p for p in policies if selects(p["spec"]["podSelector"].get("matchLabels"), gateway_labels)]
    app_policies = [p for p in policies if selects(p["spec"]["podSelector"].get("matchLabels"), app_labels)]
    if not app_policies:
        findings.append(f"no NetworkPolicy selects the SpinApp's pods (by {APP_NAME_LABEL}={app_name})")

    def rule_allows(rule, peer_key, labels, port):
        ports = [p.get("port") for p in rule.get("ports", [])]
        peers = rule.get(peer_key)
        peer_ok = peers is None or any(
            "namespaceSelector" not in peer and selects(peer.get("podSelector", {}).get("matchLabels"), labels) for peer in peers
        )
        return peer_ok and (not ports or port in ports)

    def allowed(policies, direction, peer_key, labels, port):
        return all(
            direction.capitalize() not in p["spec"].get("policyTypes", []) or any(rule_allows(r, peer_key, labels, port) for r in p["spec"].get(direction, []))
            for p in policies
        )

    gateway_ports = {p["name"]: p["containerPort"] for p in gateway.get("ports", [])}
    admin_port = next((int(a.rsplit(":", 1)[1]) for a in gateway.get("args", []) if a.startswith("--admin-listen=")), None)
    checks = [
        (gateway_policies, "egress", "to", app_labels, APP_PORT, "the gateway's pods may not reach the SpinApp's pods on port 80 (--upstream)"),
        (app_policies, "ingress", "from", gateway_labels, APP_PORT, "the SpinApp's pods do not admit the gateway's on port 80"),
        (app_policies, "egress", "to", gateway_labels, admin_port, "the SpinApp's pods may not reach the gateway's admin port (publish API)"),
    ]
    for pols, direction, peer_key, labels, port, message in checks:
        if not allowed(pols, direction, peer_key, labels, port):
            findings.append(message)
    findings += variable_findings(app, gateway, gateway_labels, rendered, admin_port)
    admin_names = {n for n, p in gateway_ports.items() if p == admin_port} | {admin_port}
    if not all(
        any(rule_allows(r, "from", app_labels, port) for r in p["spec"].get("ingress", []) for port in admin_names)
        for p in gateway_policies
    ):
        findings.append("the gateway's pods do not admit the SpinApp's on the admin port (publish API)")

    # 3. What the outside reaches leads to the gateway.
    for service in (o for o in rendered if o.get("kind") == "Service"):
        selector = service["spec"].get("selector", {})
        if selects(selector, app_labels):
            findings.append(f"Service {service['metadata']['name']} selects the SpinApp's pods: only the operator's internal Service may")
    for ingress in (o for o in rendered if o.get("kind") == "Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]["name"]
                target = next((s for s in rendered if s.get("kind") == "Service" and s["metadata"]["name"] == backend), None)
                if target is None or not selects(target["spec"].get("selector", {}), gateway_labels):
                    findings.append(f"Ingress {ingress['metadata']['name']}: backend {backend} is not a Service of the gateway's pods")
    return findings


def all_findings(rendered, validators, runtime_classes):
    crd_objects = [o for o in rendered if o.get("apiVersion", "").startswith(GROUP + "/")]
    return schema_findings(crd_objects, validators) + reference_findings(rendered, runtime_classes)


# 4. Broken SpinApps that must be refused: (what is broken, how it is broken).
def break_unknown_field(app):
    app["spec"]["replica"] = 2


def break_executor(app):
    app["spec"]["executor"] = "containerd-shim-spin-v2"


def break_probe_field(app):
    app["spec"]["checks"]["readiness"]["httpGet"]["port"] = 80


def break_type(app):
    app["spec"]["replicas"] = "2"


def break_publish_host(app):
    next(v for v in app["spec"]["variables"] if v["name"] == "publish_host")["value"] = "127.0.0.1:9090"


def break_grip_key(app):
    ref = next(v for v in app["spec"]["variables"] if v["name"] == "grip_key")["valueFrom"]["secretKeyRef"]
    ref["key"] = "password"


BROKEN = [
    ("unknown field spec.replica", break_unknown_field),
    ("executor no SpinAppExecutor defines", break_executor),
    ("unknown field spec.checks.readiness.httpGet.port", break_probe_field),
    ("spec.replicas a string", break_type),
    ("publish_host on its own loopback, where no gateway listens", break_publish_host),
    ("grip_key from another key than the gateway's", break_grip_key),
]


def main():
    crd_dir, runtime_class_yaml, rendered_json = sys.argv[1:4]
    validators = load_crds(crd_dir)
    runtime_classes = {
        o["metadata"]["name"]: o.get("handler")
        for o in yaml.safe_load_all(Path(runtime_class_yaml).read_text())
        if o and o.get("kind") == "RuntimeClass"
    }
    rendered = json.loads(Path(rendered_json).read_text())
    findings = all_findings(rendered, validators, runtime_classes)
    for finding in findings:
        print(finding)
    if findings:
        sys.exit(1)

    let_through = []
    for what, breakage in BROKEN:
        broken = copy.deepcopy(rendered)
        breakage(next(o for o in broken if o.get("kind") == "SpinApp"))
        caught = all_findings(broken, validators, runtime_classes)
        if caught:
            print(f"      refused as it must be, a SpinApp with {what}: {caught[0]}")
        else:
            let_through.append(what)
    for what in let_through:
        print(f"a SpinApp with {what} passed: the checks are blind to it")
    if let_through:
        sys.exit(1)
    kinds = sorted({o["kind"] for o in rendered if o.get("apiVersion", "").startswith(GROUP + "/")})
    print(
        f"{len([o for o in rendered if o.get('apiVersion', '').startswith(GROUP + '/')])} objects ({', '.join(kinds)}) against "
        f"{crd_dir} (strict, jsonschema {importlib.metadata.version('jsonschema')}), references ok, "
        f"{len(BROKEN)} broken SpinApps refused"
    )


if __name__ == "__main__":
    main()
