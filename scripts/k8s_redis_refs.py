#!/usr/bin/env python3
"""An overlay that points the gateway at a Redis of yours, checked in its rendering.

    python3 scripts/k8s_redis_refs.py single RENDERED.json    # k8s-overlays/external-redis
    python3 scripts/k8s_redis_refs.py cluster RENDERED.json   # k8s-overlays/external-redis-cluster

Both: none of k8s/'s own Redis is left, the Redis password comes from a read-only mounted Secret
file (never the environment), and the gateway's NetworkPolicy lets it reach port 6379. `single`:
`--redis` names another host, with no password in it. `cluster`: `--redis` is no argument; the
gateway reads it (`SIDESTREAM_REDIS`) from the key `url` of the Secret `sidestream-redis-cluster`.
Prints one line saying what it found, or each problem; exits 1 on any problem.
"""

import json
import sys
from urllib.parse import urlsplit


def check(mode: str, docs: list) -> tuple:
    problems = [f"{d['kind']} {d['metadata']['name']} is still rendered"
                for d in docs if d["metadata"]["name"] == "sidestream-redis"]
    pod = next(d["spec"]["template"]["spec"] for d in docs
               if d["kind"] == "Deployment" and d["metadata"]["name"] == "sidestream")
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    args = dict(a.split("=", 1) for a in gateway.get("args", []) if "=" in a)
    env = {e["name"]: e for e in gateway.get("env", [])}

    if mode == "single":
        url = urlsplit(args.get("--redis", ""))
        if url.scheme != "redis" or url.hostname in (None, "sidestream-redis") or url.password:
            problems.append(f"the gateway's --redis is not another Redis, without a password: {args.get('--redis')}")
        if any(name.startswith(("SIDESTREAM_REDIS", "REDIS")) for name in env):
            problems.append("the gateway takes Redis settings from its environment")
        found = f"--redis {url.hostname}"
    else:
        if "--redis" in args:
            problems.append(f"--redis is still an argument: {args['--redis']}")
        ref = env.get("SIDESTREAM_REDIS", {}).get("valueFrom", {}).get("secretKeyRef", {})
        if ref.get("name") != "sidestream-redis-cluster" or ref.get("key") != "url":
            problems.append(f"SIDESTREAM_REDIS is not the key url of the Secret sidestream-redis-cluster: {env.get('SIDESTREAM_REDIS')}")
        if any(name.startswith(("SIDESTREAM_REDIS_PASSWORD", "REDIS")) for name in env):
            problems.append("a Redis password in the environment")
        found = f"--redis from Secret {ref.get('name')} key {ref.get('key')}"

    password = args.get("--redis-password-file", "")
    mount = next((m for m in gateway.get("volumeMounts", []) if password.startswith(m["mountPath"] + "/")), None)
    volume = next((v for v in pod.get("volumes", []) if mount and v["name"] == mount["name"]), {})
    if not mount or not mount.get("readOnly") or "secret" not in volume:
        problems.append(f"--redis-password-file {password!r} is not a read-only mounted Secret")
    egress = [rule for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "sidestream"
              for rule in d["spec"]["egress"]]
    if not any(p.get("port") == 6379 for rule in egress for p in rule.get("ports", [])):
        problems.append("the gateway's NetworkPolicy lets it reach no port 6379")
    secret = volume.get("secret", {}).get("secretName")
    return problems, f"no in-cluster Redis; {found}, its password from Secret {secret}; egress to 6379"


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("single", "cluster"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    problems, found = check(sys.argv[1], json.load(open(sys.argv[2])))
    print("\n".join(problems) or found)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
