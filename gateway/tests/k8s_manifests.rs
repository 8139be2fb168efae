//! The Kubernetes deployment (`runtime-class.yaml`, `k8s/` with its Redis, the optional
//! `k8s/monitoring/`, `images/`) agrees with itself, with the gateway's real configuration and routes,
//! with the component's `spin.toml`, and with the README. The overlays in `k8s-overlays/` are rendered
//! and checked by `make test-k8s` (scripts/spin_crds.py for the SpinKube topology's references).
//! Schemas and policies are checked by `make test-k8s` (scripts/test-k8s.sh); this checks what no
//! schema can: that the pieces point at each other.
//!
//! `cargo test -p sidestream-gateway --test k8s_manifests`; the probe test serves the release
//! component, which `make test` builds first (or
//! `cargo build -p sidestream-component --target wasm32-wasip2 --release`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::StatusCode;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::Value;
use sidestream_gateway::config::{ComponentSource, Config};
use sidestream_gateway::{Gateway, routes};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every YAML document of a file, as JSON values.
fn yaml_documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The optional kustomization, applied after k8s/ on clusters with the Prometheus operator.
const MONITORING: &str = "k8s/monitoring";

fn kustomization_in(dir: &str) -> Value {
    let mut docs = yaml_documents(&format!("{dir}/kustomization.yaml"));
    assert_eq!(docs.len(), 1, "one kustomization in {dir}/");
    docs.remove(0)
}

fn kustomization() -> Value {
    kustomization_in("k8s")
}

/// The objects `kubectl apply -k DIR/` creates, read from the files its kustomization lists.
fn objects_in(dir: &str) -> Vec<Value> {
    let kustomization = kustomization_in(dir);
    let resources = kustomization["resources"].as_array().expect("resources");
    resources
        .iter()
        .flat_map(|file| yaml_documents(&format!("{dir}/{}", file.as_str().expect("a file name"))))
        .collect()
}

/// The objects `kubectl apply -k k8s/` creates.
fn objects() -> Vec<Value> {
    objects_in("k8s")
}

/// The gateway's object of this kind: the one named `sidestream` (Redis's are `sidestream-redis`).
fn object(kind: &str) -> Value {
    named(kind, "sidestream")
}

/// The one object of this kind and name in k8s/.
fn named(kind: &str, name: &str) -> Value {
    let mut found: Vec<Value> =
        objects().into_iter().filter(|o| o["kind"] == kind && o["metadata"]["name"] == name).collect();
    assert_eq!(found.len(), 1, "exactly one {kind} {name} in k8s/");
    found.remove(0)
}

/// The name of Redis's objects in k8s/.
const REDIS: &str = "sidestream-redis";

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} is a string, not {value}"))
}

fn u64_of(value: &Value, what: &str) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("{what} is a number, not {value}"))
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("labels are a map, not {value}"))
        .iter()
        .map(|(k, v)| (k.clone(), str_of(v, k).to_owned()))
        .collect()
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn containers(deployment: &Value) -> &Vec<Value> {
    pod_spec(deployment)["containers"].as_array().expect("containers")
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    containers(deployment)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("a container named {name}"))
}

/// A port reference (a number or the name of a container port) resolved among `candidates`:
/// the container that declares it and the port number.
fn resolve_port<'a>(candidates: impl IntoIterator<Item = &'a Value>, port: &Value) -> (String, u64) {
    for c in candidates {
        for p in c["ports"].as_array().into_iter().flatten() {
            let number = u64_of(&p["containerPort"], "containerPort");
            if p["name"] == *port || port.as_u64() == Some(number) {
                return (str_of(&c["name"], "container name").to_owned(), number);
            }
        }
    }
    panic!("no container declares port {port}");
}

/// The gateway container's arguments, parsed and validated by the gateway's own config.
fn gateway_config(deployment: &Value) -> Config {
    let args: Vec<&str> = container(deployment, "gateway")["args"]
        .as_array()
        .expect("gateway args")
        .iter()
        .map(|a| str_of(a, "an argument"))
        .collect();
    let config = Config::try_parse_from(std::iter::once("sidestream-gateway").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("the gateway's args {args:?} do not parse:\n{e}"));
    config.validate().unwrap_or_else(|e| panic!("the gateway's args {args:?} are invalid: {e}"));
    config
}

fn pre_stop_sleep(container: &Value) -> u64 {
    container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0)
}

/// `source` of the one component in spin.toml.
fn spin_source() -> String {
    let manifest: toml::Table = read("spin.toml").parse().expect("spin.toml is TOML");
    let components = manifest["component"].as_table().expect("[component]");
    assert_eq!(components.len(), 1, "one component");
    let component = components.values().next().unwrap();
    component["source"].as_str().expect("source is a path").to_owned()
}

/// Instructions of a Dockerfile, one string per logical line (continuations joined, comments out).
fn dockerfile(path: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in read(path).lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                lines.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
            }
        }
    }
    lines
}

/// The instructions of the last stage (the image that ships).
fn final_stage(lines: &[String]) -> &[String] {
    let from = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("a FROM line");
    &lines[from..]
}

/// The resources a kustomization lists, against the manifests beside it: one that is not listed is
/// never applied.
fn assert_lists_every_manifest(dir: &str) {
    let listed: BTreeSet<String> = kustomization_in(dir)["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r, "a resource").to_owned())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk, "a manifest in {dir}/ that the kustomization does not list is never applied");
}

#[test]
fn kustomization_applies_every_manifest_in_k8s() {
    assert_lists_every_manifest("k8s");

    let namespace = object("Namespace");
    assert_eq!(
        kustomization()["namespace"],
        namespace["metadata"]["name"],
        "everything goes to the namespace it creates"
    );
}

/// `selector` (matchLabels) picks the Deployment's pods.
fn assert_selects_pods(deployment: &Value, selector: &Value, who: &str) {
    let template = labels(&deployment["spec"]["template"]["metadata"]["labels"]);
    let selector = labels(selector);
    assert!(!selector.is_empty(), "{who} selects nothing");
    for (key, value) in &selector {
        assert_eq!(
            template.get(key),
            Some(value),
            "{who} selects {key}={value}, which the pods do not carry"
        );
    }
}

#[test]
fn deployment_selects_its_own_pods_and_everything_else_selects_them_too() {
    let deployment = object("Deployment");
    let selects_pods = |selector: &Value, who: &str| assert_selects_pods(&deployment, selector, who);
    selects_pods(&deployment["spec"]["selector"]["matchLabels"], "the Deployment");
    selects_pods(&object("Service")["spec"]["selector"], "the Service");
    selects_pods(
        &object("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "the PodDisruptionBudget",
    );
    selects_pods(&object("NetworkPolicy")["spec"]["podSelector"]["matchLabels"], "the NetworkPolicy");
    for spread in pod_spec(&deployment)["topologySpreadConstraints"].as_array().into_iter().flatten() {
        selects_pods(&spread["labelSelector"]["matchLabels"], "a topology spread constraint");
    }

    let hpa = object("HorizontalPodAutoscaler");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!((&target["kind"], &target["name"]), (&deployment["kind"], &deployment["metadata"]["name"]));
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the HPA owns the replica count; `apply` would reset it"
    );
    let pdb = object("PodDisruptionBudget");
    let min_replicas = u64_of(&hpa["spec"]["minReplicas"], "minReplicas");
    let max_unavailable = u64_of(&pdb["spec"]["maxUnavailable"], "maxUnavailable");
    assert!(max_unavailable < min_replicas, "a disruption must leave a pod serving");
}

#[test]
fn containers_and_their_ports_have_unique_names() {
    let deployment = object("Deployment");
    let names: Vec<&str> =
        containers(&deployment).iter().map(|c| str_of(&c["name"], "container name")).collect();
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len(), "container names: {names:?}");
    assert_eq!(BTreeSet::from_iter(names.iter().copied()), BTreeSet::from(["app", "gateway"]));
    // Named ports are resolved pod-wide (Service targetPort, probes, NetworkPolicy): one owner each.
    let ports: Vec<(String, u64)> = containers(&deployment)
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .map(|p| (str_of(&p["name"], "port name").to_owned(), u64_of(&p["containerPort"], "containerPort")))
        .collect();
    let names: BTreeSet<_> = ports.iter().map(|(n, _)| n).collect();
    let numbers: BTreeSet<_> = ports.iter().map(|(_, n)| n).collect();
    assert_eq!((names.len(), numbers.len()), (ports.len(), ports.len()), "ports: {ports:?}");
}

#[test]
fn pod_runs_on_the_runtime_class_that_runtime_class_yaml_creates() {
    let classes = yaml_documents("runtime-class.yaml");
    assert_eq!(classes.len(), 1);
    let class = &classes[0];
    assert_eq!(class["kind"], "RuntimeClass");
    assert_eq!(class["handler"], "spin", "containerd-shim-spin registers the handler `spin`");
    assert_eq!(pod_spec(&object("Deployment"))["runtimeClassName"], class["metadata"]["name"]);
}

#[test]
fn app_container_is_the_spin_app_on_the_port_the_gateway_proxies_to() {
    let deployment = object("Deployment");
    let app = container(&deployment, "app");
    assert_eq!(app["command"], serde_json::json!(["/"]), "the shim's convention for Spin apps");
    let (_, app_port) = resolve_port([app], &app["ports"][0]["name"]);
    let listen = app["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "SPIN_HTTP_LISTEN_ADDR")
        .map(|e| str_of(&e["value"], "SPIN_HTTP_LISTEN_ADDR").parse::<SocketAddr>().expect("an address"));
    // The shim listens on 0.0.0.0:80 unless told otherwise.
    let listen = listen.unwrap_or_else(|| "0.0.0.0:80".parse().unwrap());
    assert_eq!(u64::from(listen.port()), app_port, "the app container's port is where Spin listens");

    let config = gateway_config(&deployment);
    let Ok(ComponentSource::Upstream(upstream)) = config.backend() else {
        panic!("the sidecar has no wasm host: it must run with --upstream");
    };
    assert_eq!(
        upstream.host(),
        Some("127.0.0.1"),
        "the upstream is the app container, over the pod's loopback"
    );
    assert_eq!(
        upstream.port_u16().map(u64::from),
        Some(app_port),
        "--upstream points at the app container's port"
    );
}

#[test]
fn service_and_ingress_lead_to_the_gateway_public_port_only() {
    let deployment = object("Deployment");
    let config = gateway_config(&deployment);
    assert!(
        config.listen.ip().is_unspecified(),
        "--listen {} is unreachable from outside the pod",
        config.listen
    );
    let gateway_port = u64::from(config.listen.port());
    let gateway = container(&deployment, "gateway");
    assert_eq!(
        resolve_port([gateway], &gateway["ports"][0]["name"]).1,
        gateway_port,
        "declared port = --listen"
    );

    let admin_port = u64::from(config.admin_listen.port());
    let service = object("Service");
    let ports = service["spec"]["ports"].as_array().expect("Service ports");
    assert_eq!(ports.len(), 1, "one Service port: the gateway's public listener");
    for port in ports {
        let (owner, target) = resolve_port(containers(&deployment), &port["targetPort"]);
        assert_ne!(
            target, admin_port,
            "the Service must not expose the gateway's admin port (/metrics, /readyz)"
        );
        assert_eq!(
            (owner.as_str(), target),
            ("gateway", gateway_port),
            "the Service sends traffic to the gateway's public port"
        );
    }

    let ingress = object("Ingress");
    let mut backends = 0;
    for rule in ingress["spec"]["rules"].as_array().expect("rules") {
        for path in rule["http"]["paths"].as_array().expect("paths") {
            let backend = &path["backend"]["service"];
            assert_eq!(backend["name"], service["metadata"]["name"], "the Ingress backend is the Service");
            let port = &backend["port"];
            let service_port = ports
                .iter()
                .find(|p| {
                    (port.get("name").is_some() && p["name"] == port["name"]) || p["port"] == port["number"]
                })
                .unwrap_or_else(|| panic!("the Ingress names Service port {port}, which does not exist"));
            assert_eq!(
                resolve_port(containers(&deployment), &service_port["targetPort"]),
                ("gateway".to_owned(), gateway_port),
                "the Ingress routes to the Service port of the gateway's public listener"
            );
            backends += 1;
        }
    }
    assert!(backends > 0);
    // wss:// needs the TLS block to cover every host the rules serve.
    let rule_hosts: BTreeSet<&str> =
        ingress["spec"]["rules"].as_array().unwrap().iter().map(|r| str_of(&r["host"], "host")).collect();
    let tls_hosts: BTreeSet<&str> = ingress["spec"]["tls"]
        .as_array()
        .expect("a tls block")
        .iter()
        .inspect(|t| assert!(t["secretName"].is_string(), "each tls entry names its Secret"))
        .flat_map(|t| t["hosts"].as_array().unwrap())
        .map(|h| str_of(h, "tls host"))
        .collect();
    assert_eq!(rule_hosts, tls_hosts);
    // ingress-nginx drops a proxied connection after this long without traffic one way; the
    // gateway's pings (and the client's pongs) must come more often.
    for annotation in ["proxy-read-timeout", "proxy-send-timeout"] {
        let key = format!("nginx.ingress.kubernetes.io/{annotation}");
        let seconds: u64 = str_of(&ingress["metadata"]["annotations"][&key], &key).parse().expect("seconds");
        assert!(
            Duration::from_secs(seconds) > config.ping_interval,
            "{key} ({seconds} s) must exceed --ping-interval ({:?})",
            config.ping_interval
        );
    }
}

#[test]
fn network_policy_admits_the_public_port_from_anywhere_and_the_admin_port_from_monitoring_only() {
    let deployment = object("Deployment");
    let config = gateway_config(&deployment);
    let public = ("gateway".to_owned(), u64::from(config.listen.port()));
    let admin = ("gateway".to_owned(), u64::from(config.admin_listen.port()));
    let policy = object("NetworkPolicy");
    let policy_types: BTreeSet<&str> = policy["spec"]["policyTypes"]
        .as_array()
        .expect("policyTypes")
        .iter()
        .map(|t| str_of(t, "a policy type"))
        .collect();
    assert!(policy_types.contains("Ingress"), "without the Ingress type the rules below admit everything");

    // Port -> who may reach it: None for anyone (a rule without `from`), else the rule's peers.
    let mut admitted: BTreeMap<(String, u64), Vec<Option<Value>>> = BTreeMap::new();
    for rule in policy["spec"]["ingress"].as_array().expect("ingress rules") {
        let from = rule.get("from").cloned();
        // A rule without ports admits every port, the component's 80 among them.
        for port in rule["ports"].as_array().expect("every rule limits ports") {
            admitted
                .entry(resolve_port(containers(&deployment), &port["port"]))
                .or_default()
                .push(from.clone());
        }
    }
    assert_eq!(
        admitted.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([&public, &admin]),
        "only the gateway's two ports are reachable from outside the pod"
    );
    assert_eq!(
        admitted[&public],
        [None],
        "the public port is open to every peer (the Ingress controller first)"
    );
    // Kubernetes labels every namespace with its own name: this peer is the pods of `monitoring`.
    let monitoring = serde_json::json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    });
    assert_eq!(
        admitted[&admin],
        [Some(serde_json::json!([monitoring]))],
        "the admin port (/metrics, /readyz) only from the pods of the namespace `monitoring`"
    );
}

#[test]
fn probes_use_the_gateway_routes_and_the_component_health() {
    let deployment = object("Deployment");
    let gateway = container(&deployment, "gateway");
    // The probes live on the admin listener: on the public one these paths are the component's.
    let gateway_port = u64::from(gateway_config(&deployment).admin_listen.port());
    // Liveness must not be readiness: a liveness probe on /readyz would restart every pod whose
    // component is briefly down, and every pod that is draining.
    for (probe, path) in [("livenessProbe", routes::LIVEZ), ("readinessProbe", routes::READYZ)] {
        assert_eq!(gateway[probe]["httpGet"]["path"], path, "gateway {probe}");
        assert_eq!(
            resolve_port([gateway], &gateway[probe]["httpGet"]["port"]).1,
            gateway_port,
            "gateway {probe}"
        );
    }
    let app = container(&deployment, "app");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(app[probe]["httpGet"]["path"], routes::COMPONENT_HEALTH, "app {probe}");
        let (owner, _) = resolve_port(containers(&deployment), &app[probe]["httpGet"]["port"]);
        assert_eq!(owner, "app", "the app {probe} probes the app container itself");
    }
}

#[tokio::test]
async fn every_probe_and_scrape_path_answers_200_from_the_real_gateway_and_component() {
    let component = repo_root().join(spin_source());
    assert!(
        component.exists(),
        "{} is missing: build it with `cargo build -p sidestream-component --target wasm32-wasip2 --release`",
        component.display()
    );
    let config = Config::try_parse_from([
        "sidestream-gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--component",
        component.to_str().unwrap(),
    ])
    .unwrap();
    let gateway = Gateway::bind(config).await.expect("the gateway starts with the release component");
    let public = gateway.local_addr().unwrap();
    let admin = gateway.admin_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let deployment = object("Deployment");
    let mut probed = 0;
    for c in containers(&deployment) {
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let Some(path) = c[probe]["httpGet"]["path"].as_str() else { continue };
            // The gateway's own probes are on its admin port; the app's reach the component,
            // which the gateway's public port serves here in its place.
            let addr = if c[probe]["httpGet"]["port"] == "admin" { admin } else { public };
            let uri = format!("http://{addr}{path}").parse().unwrap();
            let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
                .await
                .expect("an answer within 10 s")
                .expect("an HTTP answer");
            assert_eq!(response.status(), StatusCode::OK, "{} {probe} {path}", c["name"]);
            probed += 1;
        }
    }
    assert_eq!(probed, 5, "every container has its probes");

    // What the PodMonitor scrapes (its port is the admin one: podmonitor_scrapes_… checks that).
    for endpoint in podmonitor()["spec"]["podMetricsEndpoints"].as_array().expect("podMetricsEndpoints") {
        let path = str_of(&endpoint["path"], "path");
        let uri = format!("http://{admin}{path}").parse().unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
            .await
            .expect("an answer within 10 s")
            .expect("an HTTP answer");
        assert_eq!(response.status(), StatusCode::OK, "the PodMonitor scrapes {path}");
        // The two exposition formats Prometheus scrapes.
        let content_type = response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        assert!(
            content_type
                .is_some_and(|t| t.starts_with("text/plain") || t.starts_with("application/openmetrics-text")),
            "{path} answers in a format Prometheus reads, not {content_type:?}"
        );
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("stops").unwrap().unwrap();
}

#[test]
fn drain_finishes_within_the_termination_grace_period() {
    let deployment = object("Deployment");
    let config = gateway_config(&deployment);
    let grace =
        u64_of(&pod_spec(&deployment)["terminationGracePeriodSeconds"], "terminationGracePeriodSeconds");
    let gateway = container(&deployment, "gateway");
    // The kubelet runs preStop first, then sends SIGTERM; both count against the grace period.
    let needed = Duration::from_secs(pre_stop_sleep(gateway)) + config.drain_timeout;
    assert!(
        needed < Duration::from_secs(grace),
        "preStop sleep + --drain-timeout ({needed:?}) must end before the kubelet kills the pod ({grace} s)"
    );
    // The gateway proxies the component's paths until its drain ends; the app container gets its
    // SIGTERM when its own preStop ends, and Spin stopping first would make those paths 502.
    let app_stop = Duration::from_secs(pre_stop_sleep(container(&deployment, "app")));
    assert!(
        app_stop > needed,
        "the app container's preStop sleep ({app_stop:?}) must outlast the gateway's preStop sleep + \
         --drain-timeout ({needed:?}), or component paths answer 502 while the gateway drains"
    );
    assert!(
        app_stop + SPIN_EXIT < Duration::from_secs(grace),
        "the app container's preStop sleep ({app_stop:?}) + {SPIN_EXIT:?} for Spin to exit must end before the \
         kubelet kills the pod ({grace} s)"
    );
    assert_eq!(
        config.effective_drain_spread(),
        config.drain_spread,
        "--drain-spread is cut to half of --drain-timeout: the pod's closes would not spread as its args say"
    );
}

/// What the app container is given, after its SIGTERM, for Spin to stop its listener and exit.
const SPIN_EXIT: Duration = Duration::from_secs(5);

#[test]
fn gateway_believes_forwarded_headers_from_in_cluster_addresses_only() {
    let config = gateway_config(&object("Deployment"));
    assert!(
        !config.trusted_proxies.is_empty(),
        "--trusted-proxy: the ingress controller's X-Forwarded-Proto"
    );
    let trusted = |ip: &str| config.trusted_proxies.iter().any(|net| net.contains(ip.parse().unwrap()));
    // Pod addresses of common setups (flannel's 10.244/16, k3s' 10.42/16, Calico's 192.168/16, an AWS
    // default VPC's 172.31/16): an ingress controller there must be believed, or every wss:// opened
    // by an https:// page gets 403 (the Origin check compares schemes).
    for pod in ["10.244.1.17", "10.42.0.9", "192.168.12.3", "172.31.5.10"] {
        assert!(trusted(pod), "an ingress controller at {pod} is not a --trusted-proxy");
    }
    // Public addresses (documentation ranges) never: a client could claim any address and scheme.
    for outsider in ["192.0.2.1", "198.51.100.20", "203.0.113.7", "2001:db8::1"] {
        assert!(
            !trusted(outsider),
            "{outsider} is a --trusted-proxy: anyone's X-Forwarded-* would be believed"
        );
    }
}

/// The one PodMonitor of k8s/monitoring/.
fn podmonitor() -> Value {
    let mut found: Vec<Value> =
        objects_in(MONITORING).into_iter().filter(|o| o["kind"] == "PodMonitor").collect();
    assert_eq!(found.len(), 1, "exactly one PodMonitor in {MONITORING}/");
    found.remove(0)
}

#[test]
fn podmonitor_is_optional_and_lives_with_the_pods() {
    assert_lists_every_manifest(MONITORING);
    assert!(
        objects().iter().all(|o| o["kind"] != "PodMonitor"),
        "k8s/ must apply on a cluster without the Prometheus operator: the PodMonitor belongs to {MONITORING}/"
    );
    assert_eq!(
        kustomization_in(MONITORING)["namespace"],
        kustomization()["namespace"],
        "the PodMonitor goes to the namespace of the pods"
    );
    assert_eq!(podmonitor()["apiVersion"], "monitoring.coreos.com/v1");
}

#[test]
fn podmonitor_scrapes_the_admin_listeners_metrics_of_the_sidestream_pods() {
    let deployment = object("Deployment");
    let config = gateway_config(&deployment);
    let monitor = podmonitor();
    let spec = &monitor["spec"];
    assert_selects_pods(&deployment, &spec["selector"]["matchLabels"], "the PodMonitor");
    assert_eq!(
        spec["namespaceSelector"],
        serde_json::json!({"matchNames": [object("Namespace")["metadata"]["name"]]}),
        "the PodMonitor looks for the pods in the sidestream namespace only"
    );

    assert!(
        config.admin_listen.ip().is_unspecified(),
        "--admin-listen {} is unreachable for Prometheus, which scrapes the pod's address",
        config.admin_listen
    );
    let admin_port = u64::from(config.admin_listen.port());
    let endpoints = spec["podMetricsEndpoints"].as_array().expect("podMetricsEndpoints");
    assert_eq!(endpoints.len(), 1, "one scrape per pod: the gateway's metrics");
    for endpoint in endpoints {
        // The operator resolves `port` by name among the pod's container ports.
        assert!(endpoint["port"].is_string(), "a PodMonitor names its port, not {}", endpoint["port"]);
        assert_eq!(
            resolve_port(containers(&deployment), &endpoint["port"]),
            ("gateway".to_owned(), admin_port),
            "the PodMonitor scrapes the gateway's admin listener (--admin-listen)"
        );
        assert_eq!(endpoint["path"], routes::METRICS, "the gateway's metrics");
        assert!(
            endpoint.get("scheme").is_none_or(|s| s == "http"),
            "the admin listener serves plain HTTP, not {}",
            endpoint["scheme"]
        );
    }

    // The annotations for Prometheus setups without the operator say the same.
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], routes::METRICS);
}

#[test]
fn app_image_holds_spin_toml_and_the_component_where_spin_toml_says() {
    let lines = dockerfile("images/app.Dockerfile");
    assert_eq!(lines.iter().filter(|l| l.starts_with("FROM ")).collect::<Vec<_>>(), ["FROM scratch"]);
    let copies: Vec<&String> = lines.iter().filter(|l| l.starts_with("COPY ")).collect();
    let source = spin_source();
    assert!(!source.starts_with('/'), "spin.toml's source is relative to spin.toml");
    // The shim reads /spin.toml and resolves `source` against its directory, the image root.
    assert_eq!(copies, [&"COPY spin.toml /spin.toml".to_owned(), &format!("COPY {source} /{source}")]);
    // The build context holds exactly those files.
    let ignore = read("images/app.Dockerfile.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == format!("!{source}")),
        "app.Dockerfile.dockerignore lets {source} in"
    );
}

#[test]
fn gateway_image_is_the_static_sidecar_build_run_as_the_pods_user() {
    let lines = dockerfile("images/gateway.Dockerfile");
    let builds: Vec<&String> = lines.iter().filter(|l| l.starts_with("RUN cargo build ")).collect();
    assert_eq!(builds.len(), 1, "one `RUN cargo build` line (scripts/sidecar-build.sh runs it)");
    let build: Vec<&str> = builds[0].split_whitespace().collect();
    for flag in [["-p", env!("CARGO_PKG_NAME")], ["--target", "x86_64-unknown-linux-musl"]] {
        assert!(build.windows(2).any(|w| w == flag), "{} lacks {flag:?}", builds[0]);
    }
    for flag in ["--release", "--no-default-features", "--locked"] {
        assert!(build.contains(&flag), "{} lacks {flag}", builds[0]);
    }

    let bin = Path::new(env!("CARGO_BIN_EXE_sidestream-gateway")).file_name().unwrap().to_str().unwrap();
    let stage = final_stage(&lines);
    assert_eq!(stage[0], "FROM scratch");
    let workdir =
        lines.iter().rev().find_map(|l| l.strip_prefix("WORKDIR ")).expect("the build stage's WORKDIR");
    let copy = format!("COPY --from=build {workdir}/target/x86_64-unknown-linux-musl/release/{bin} /{bin}");
    assert!(stage.contains(&copy), "the image copies the musl release binary: {copy}");
    assert!(stage.contains(&format!("ENTRYPOINT [\"/{bin}\"]")), "the binary is the entrypoint");

    let user = stage.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let (uid, gid): (u64, u64) = (uid.parse().expect("numeric uid"), gid.parse().expect("numeric gid"));
    assert_ne!(uid, 0, "not root");
    let deployment = object("Deployment");
    let context = &container(&deployment, "gateway")["securityContext"];
    assert_eq!(
        (uid, gid),
        (u64_of(&context["runAsUser"], "runAsUser"), u64_of(&context["runAsGroup"], "runAsGroup"))
    );

    let exposed: Vec<u16> = stage
        .iter()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE")
        .split_whitespace()
        .map(|port| port.parse().expect("a port number"))
        .collect();
    let config = gateway_config(&deployment);
    assert_eq!(
        exposed,
        [config.listen.port(), config.admin_listen.port()],
        "the public port, then the admin port"
    );
}

#[test]
fn image_names_agree_between_kustomization_deployment_and_docs() {
    let kustomization = kustomization();
    let images: BTreeMap<&str, String> = kustomization["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            let name = str_of(&i["name"], "image name");
            (name, format!("{}:{}", str_of(&i["newName"], name), str_of(&i["newTag"], name)))
        })
        .collect();
    let deployment = object("Deployment");
    let redis = named("StatefulSet", REDIS);
    let used: BTreeSet<&str> = containers(&deployment)
        .iter()
        .chain(containers(&redis))
        .map(|c| str_of(&c["image"], "image"))
        .collect();
    // An image the kustomization does not rename ships as its placeholder name, which no registry has.
    assert_eq!(used, images.keys().copied().collect(), "every container image is set by the kustomization");

    let readme = read("README.md");
    for (name, dockerfile) in
        [("sidestream-app", "images/app.Dockerfile"), ("sidestream-gateway", "images/gateway.Dockerfile")]
    {
        let reference = images.get(name).unwrap_or_else(|| panic!("the kustomization sets {name}"));
        assert!(readme.contains(reference.as_str()), "README.md shows how to push {reference}");
        assert!(
            read(dockerfile).contains(reference.as_str()),
            "{dockerfile}'s build command tags {reference}"
        );
    }
}

/// A Kubernetes memory quantity in bytes (`384Mi`, `1Gi`, `512M`, plain bytes).
fn bytes_of(quantity: &str) -> u64 {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().unwrap_or_else(|_| panic!("{quantity}")) * factor;
        }
    }
    quantity.parse().unwrap_or_else(|_| panic!("{quantity} is not a memory quantity"))
}

#[test]
fn every_connection_slot_taken_by_an_adversary_fits_the_gateways_memory_limit() {
    let deployment = object("Deployment");
    let config = gateway_config(&deployment);
    let limit =
        bytes_of(str_of(&container(&deployment, "gateway")["resources"]["limits"]["memory"], "memory limit"));
    // What one client that never reads can make the gateway hold (the code's own bound), plus the
    // kernel's socket buffers, which count against the container too: twice --socket-buffer each way.
    assert_ne!(config.socket_buffer, 0, "the pod bounds the kernel's socket buffers (--socket-buffer)");
    // The worst of the built-in /ws and a WebSocket app (issue 23: every path).
    let per_connection = sidestream_gateway::ws::memory_bound(config.max_message_size)
        .max(sidestream_gateway::apps::memory_bound(config.max_message_size, config.app_budget()))
        + 4 * config.socket_buffer;
    // The process besides its WebSockets: runtime, upstream pool, metrics (about 10 MiB measured).
    const REST: u64 = 32 << 20;
    let needed = config.max_connections as u64 * per_connection as u64 + REST;
    assert!(
        needed <= limit,
        "--max-connections={} x {} KiB per adversarial connection + {} MiB = {} MiB exceeds the gateway's \
         memory limit of {} MiB: lower --max-connections or --max-message-size, or raise the limit",
        config.max_connections,
        per_connection >> 10,
        REST >> 20,
        needed >> 20,
        limit >> 20
    );
}

/// An env var of a container: its `value`, or the Secret (name, key) it comes from.
fn env_var<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("container {} has no env {name}", container["name"]))
}

fn secret_ref(env: &Value) -> (String, String) {
    let secret = &env["valueFrom"]["secretKeyRef"];
    assert!(env.get("value").is_none(), "{} comes from a Secret, not from the manifest", env["name"]);
    (
        str_of(&secret["name"], "the Secret's name").to_owned(),
        str_of(&secret["key"], "the Secret's key").to_owned(),
    )
}

/// (user, host, port) of a redis://user:password@host:port/db URL.
fn redis_authority(url: &str) -> (String, String, u16) {
    let rest = url.strip_prefix("redis://").unwrap_or_else(|| panic!("{url} is not a redis:// URL"));
    let authority = rest.split('/').next().unwrap();
    let (userinfo, host_port) = authority.rsplit_once('@').unwrap_or_else(|| panic!("{url} has no user"));
    let user = userinfo.split(':').next().unwrap().to_owned();
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "6379"));
    (user, host.to_owned(), port.parse().unwrap_or_else(|_| panic!("{url}: port")))
}

#[test]
fn gateway_reaches_redis_through_its_service_with_the_password_of_one_secret() {
    let deployment = object("Deployment");
    let config = gateway_config(&deployment);
    let url = config.redis.clone().expect("the gateway has --redis");
    let (user, host, port) = redis_authority(&url);
    assert!(!url.contains(&format!("{user}:")), "no password in --redis {url}: it comes from a file");
    let password_file = config.redis_password_file.clone().expect("the gateway has --redis-password-file");
    let password_secret = mounted_secret(&deployment, &password_file);
    assert_readme_creates(&password_secret.0, &password_secret.1);
    let gateway = container(&deployment, "gateway");
    assert!(
        gateway.get("env").and_then(|e| e.as_array()).is_none_or(|env| env.is_empty()),
        "the gateway takes no setting, and so no secret, from its environment"
    );

    let service = named("Service", REDIS);
    assert_eq!(host, str_of(&service["metadata"]["name"], "name"), "the URL's host is Redis's Service");
    let service_port = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == u64::from(port))
        .unwrap_or_else(|| panic!("the Redis Service has no port {port}, which the URL names"));

    let redis = named("StatefulSet", REDIS);
    assert_eq!(redis["spec"]["serviceName"], service["metadata"]["name"]);
    assert_selects_pods(&redis, &service["spec"]["selector"], "the Redis Service");
    let (owner, redis_port) = resolve_port(containers(&redis), &service_port["targetPort"]);
    assert_eq!(owner, "redis");
    let server = container(&redis, "redis");
    let server_args: Vec<&str> =
        server["args"].as_array().unwrap().iter().map(|a| str_of(a, "arg")).collect();
    let flag = |name: &str| server_args.windows(2).find(|w| w[0] == name).map(|w| w[1]);
    assert_eq!(
        flag("--port").map(|p| p.parse::<u64>().unwrap()),
        Some(redis_port),
        "redis-server listens on its container port"
    );

    // One password for both ends, from files: the init container writes the ACL file (the default
    // user off, the URL's user on with the Secret's password) that redis-server reads, and the
    // probes read the same file; nothing of it is in an environment variable or an argument.
    let mounted = |container: &Value, path: &str| -> (String, String) {
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| path.starts_with(&format!("{}/", str_of(&m["mountPath"], "mountPath"))))
            .unwrap_or_else(|| panic!("{} mounts nothing at {path}", container["name"]));
        let volume = pod_spec(&redis)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
        let secret = &volume["secret"];
        let item = &secret["items"][0];
        (str_of(&secret["secretName"], "secret").to_owned(), str_of(&item["key"], "key").to_owned())
    };
    let acl_writer = pod_spec(&redis)["initContainers"]
        .as_array()
        .expect("an init container writes the ACL file")
        .iter()
        .find(|c| c["name"] == "acl")
        .expect("the init container acl");
    let script = str_of(&acl_writer["args"][0], "the acl script");
    let read =
        script.split("$(cat ").nth(1).and_then(|r| r.split(')').next()).expect("the script reads a file");
    assert_eq!(mounted(acl_writer, read), password_secret, "Redis's password is the gateway's Secret's");
    assert!(script.contains("user default off"), "the default user is off: {script}");
    assert!(script.contains(&format!("user {user} on >%s")), "the URL's user {user} is on: {script}");
    assert_eq!(flag("--aclfile"), Some("/acl/users.acl"));
    assert!(script.contains("> /acl/users.acl"), "{script}");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let command: Vec<&str> = server[probe]["exec"]["command"]
            .as_array()
            .expect("an exec probe")
            .iter()
            .map(|a| str_of(a, "arg"))
            .collect();
        assert_eq!(command[..2], ["sh", "-c"], "redis {probe}");
        assert!(
            command[2].ends_with(&format!("exec redis-cli --user {user} ping")),
            "redis {probe}: {command:?}"
        );
        let read = command[2].split("$(cat ").nth(1).and_then(|r| r.split(')').next()).expect("reads a file");
        assert_eq!(mounted(server, read), password_secret, "the probes authenticate with it");
    }
    for container in [server, acl_writer] {
        assert!(container.get("env").is_none(), "{} has no environment", container["name"]);
    }

    // History that survives a restart: the append-only file, fsynced on every write, on the volume.
    assert_eq!(flag("--appendonly"), Some("yes"));
    assert_eq!(flag("--appendfsync"), Some("always"));
    let dir = flag("--dir").expect("--dir");
    let mount = server["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .expect("a volume at --dir");
    let claims = redis["spec"]["volumeClaimTemplates"].as_array().expect("a volume claim");
    assert!(
        claims.iter().any(|c| c["metadata"]["name"] == mount["name"]),
        "--dir is the StatefulSet's own volume"
    );
}

#[test]
fn network_policies_let_the_gateway_and_redis_meet_on_the_redis_port_and_nothing_else() {
    let deployment = object("Deployment");
    let redis = named("StatefulSet", REDIS);
    let redis_port = u64_of(&container(&redis, "redis")["ports"][0]["containerPort"], "containerPort");

    let gateway_policy = object("NetworkPolicy");
    let template_labels = |o: &Value| labels(&o["spec"]["template"]["metadata"]["labels"]);
    let to_redis: Vec<&Value> = gateway_policy["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .filter(|rule| {
            rule["to"].as_array().into_iter().flatten().any(|peer| {
                let selector = labels(&peer["podSelector"]["matchLabels"]);
                !selector.is_empty()
                    && peer.get("namespaceSelector").is_none()
                    && selector.iter().all(|(k, v)| template_labels(&redis).get(k) == Some(v))
            })
        })
        .collect();
    assert_eq!(to_redis.len(), 1, "one egress rule of the gateway names Redis's pods");
    let ports: Vec<u64> = to_redis[0]["ports"]
        .as_array()
        .expect("the rule limits ports")
        .iter()
        .map(|p| resolve_port(containers(&redis), &p["port"]).1)
        .collect();
    assert_eq!(ports, [redis_port], "the gateway reaches Redis on its port, no other");
    // The URL names a Service: the gateway needs the cluster DNS too.
    assert!(
        gateway_policy["spec"]["egress"].as_array().unwrap().iter().any(|rule| {
            rule["ports"].as_array().into_iter().flatten().any(|p| p["port"] == 53 && p["protocol"] == "UDP")
        }),
        "the gateway may ask the cluster DNS for sidestream-redis"
    );

    let policy = named("NetworkPolicy", REDIS);
    assert_selects_pods(&redis, &policy["spec"]["podSelector"]["matchLabels"], "Redis's NetworkPolicy");
    let types: BTreeSet<&str> =
        policy["spec"]["policyTypes"].as_array().unwrap().iter().map(|t| str_of(t, "type")).collect();
    assert_eq!(types, BTreeSet::from(["Ingress", "Egress"]));
    assert_eq!(policy["spec"]["egress"], serde_json::json!([]), "Redis calls nothing");
    let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(rules.len(), 1, "one way into Redis: from the gateway");
    let from = rules[0]["from"].as_array().expect("the rule names its peers");
    assert_eq!(from.len(), 1);
    assert!(from[0].get("namespaceSelector").is_none(), "peers of Redis's own namespace only");
    assert_selects_pods(&deployment, &from[0]["podSelector"]["matchLabels"], "Redis's ingress rule");
    let selector = labels(&from[0]["podSelector"]["matchLabels"]);
    assert!(
        selector.iter().any(|(k, v)| template_labels(&redis).get(k) != Some(v)),
        "the rule must not admit Redis's own pods"
    );
    let ports: Vec<u64> = rules[0]["ports"]
        .as_array()
        .expect("the rule limits ports")
        .iter()
        .map(|p| resolve_port(containers(&redis), &p["port"]).1)
        .collect();
    assert_eq!(ports, [redis_port]);
}

/// The publish API asks a token of every publisher but the component beside it: the gateway reads
/// `--publish-token-file` from a read-only mount of one key of a Secret that the README's Deploy
/// commands create, and the file exists in the pod only through that mount.
/// The Secret and key whose file the gateway reads at `file`, through a read-only volume that names
/// the key (so the file is that key alone), a Secret the pod waits for.
fn mounted_secret(deployment: &Value, file: &Path) -> (String, String) {
    let gateway = container(deployment, "gateway");
    let file = file.to_str().expect("a UTF-8 path");
    let mounts = gateway["volumeMounts"].as_array().expect("the gateway mounts its secrets");
    let mount = mounts
        .iter()
        .find(|m| Path::new(file).parent() == Some(Path::new(str_of(&m["mountPath"], "mountPath"))))
        .unwrap_or_else(|| panic!("no volume is mounted where {file} is"));
    assert_eq!(mount["readOnly"], true, "the mount of {file} is read-only");
    let volume = pod_spec(deployment)["volumes"]
        .as_array()
        .expect("pod volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no pod volume {}", mount["name"]));
    let secret = &volume["secret"];
    let name = str_of(&secret["secretName"], "the Secret's name");
    let file_name = Path::new(file).file_name().unwrap().to_str().unwrap();
    let item = secret["items"]
        .as_array()
        .expect("the volume names its key, so the file is that key alone")
        .iter()
        .find(|i| i["path"] == file_name)
        .unwrap_or_else(|| panic!("the Secret {name} puts no key at {file_name}"));
    assert!(
        secret.get("optional").is_none_or(|o| o == false),
        "without the Secret {name} the pod must not start open"
    );
    (name.to_owned(), str_of(&item["key"], "the key").to_owned())
}

/// README.md's Deploy commands create Secret `name` with key `key`.
fn assert_readme_creates(name: &str, key: &str) {
    let readme = read("README.md");
    let create = format!("create secret generic {name}");
    let at = readme.find(&create).unwrap_or_else(|| panic!("README.md shows `kubectl ... {create}`"));
    let command: String = readme[at..].lines().take(2).collect();
    assert!(
        command.contains(&format!("--from-literal={key}=")),
        "README's command sets the key {key}: {command}"
    );
}

#[test]
fn publish_api_asks_a_token_from_a_mounted_secret_that_the_readme_creates() {
    let deployment = object("Deployment");
    let file = gateway_config(&deployment).publish_token_file.expect("the gateway has --publish-token-file");
    let (name, key) = mounted_secret(&deployment, &file);
    assert_readme_creates(&name, &key);
    // The component shows the same token: its publishes over the pod's loopback are not trusted.
    let app = container(&deployment, "app");
    assert_eq!(secret_ref(env_var(app, "SPIN_VARIABLE_PUBLISH_TOKEN")), (name, key));
}

/// The gateway signs with the key the component verifies with: one Secret's key, a file for the
/// gateway, the Spin variable `grip_key` for the component (SPIN_VARIABLE_GRIP_KEY, the one way the
/// shim passes variables), and README's commands create it.
#[test]
fn gateway_and_component_share_the_grip_key_of_one_secret() {
    let deployment = object("Deployment");
    let file = gateway_config(&deployment).grip_key_file.expect("the gateway has --grip-key-file");
    let (name, key) = mounted_secret(&deployment, &file);
    assert_readme_creates(&name, &key);
    let app = container(&deployment, "app");
    assert_eq!(secret_ref(env_var(app, "SPIN_VARIABLE_GRIP_KEY")), (name, key.clone()));
    let spin: toml::Table = read("spin.toml").parse().unwrap();
    assert_eq!(
        spin["variables"]["grip_key"]["required"].as_bool(),
        Some(true),
        "spin.toml declares grip_key"
    );
}
