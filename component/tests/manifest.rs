//! `spin.toml` is valid for Spin and names the artifact the build really produces, and that artifact
//! is a plain `wasi:http` component.
//!
//! The artifact checks need the release component: `make test` builds it first (or run
//! `cargo build -p sidestream-component --target wasm32-wasip2 --release`).

use std::path::{Path, PathBuf};

use wasmparser::{Parser, Payload};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).expect("spin.toml at the root");
    text.parse().expect("spin.toml is TOML")
}

fn component_table(manifest: &toml::Table) -> &toml::Table {
    let components = manifest["component"].as_table().expect("[component] table");
    assert_eq!(components.len(), 1, "one component");
    components.values().next().unwrap().as_table().unwrap()
}

/// The `.wasm` path named by `source`, which the artifact tests read.
fn artifact() -> PathBuf {
    let manifest = manifest();
    let source = component_table(&manifest)["source"].as_str().expect("source is a path");
    let path = repo_root().join(source);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p sidestream-component --target wasm32-wasip2 --release`",
        path.display()
    );
    path
}

#[test]
fn manifest_matches_spin_schema() {
    let schema_path = repo_root().join("../shared/schemas/spin-manifest-v2.json");
    let Ok(schema) = std::fs::read_to_string(&schema_path) else {
        eprintln!("SKIPPED: Spin's manifest schema is not at {}", schema_path.display());
        return;
    };
    let schema: serde_json::Value = serde_json::from_str(&schema).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let instance = serde_json::to_value(manifest()).expect("TOML converts to JSON");
    let errors: Vec<String> =
        validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "spin.toml breaks Spin's schema:\n{}", errors.join("\n"));

    // The schema is not a rubber stamp: a misspelt key is caught.
    let mut broken = instance.clone();
    broken["component"]["sidestream"]["sorce"] = broken["component"]["sidestream"]["source"].take();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn manifest_routes_everything_to_the_component() {
    let manifest = manifest();
    assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2));
    assert_eq!(manifest["application"]["name"].as_str(), Some("sidestream"));
    let triggers = manifest["trigger"]["http"].as_array().expect("[[trigger.http]]");
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0]["route"].as_str(), Some("/..."));
    let id = triggers[0]["component"].as_str().expect("trigger names a component");
    let component = manifest["component"][id].as_table().expect("the named component exists");
    // The one host it calls: the gateway's publish API, where the apps publish, from a variable.
    let outbound: Vec<&str> = component["allowed_outbound_hosts"]
        .as_array()
        .expect("allowed_outbound_hosts")
        .iter()
        .map(|h| h.as_str().expect("a host"))
        .collect();
    assert_eq!(outbound, ["http://{{ publish_host }}"]);
    let variables = component["variables"].as_table().expect("[component.sidestream.variables]");
    assert_eq!(
        variables["publish_url"].as_str(),
        Some("http://{{ publish_host }}/publish/"),
        "the apps publish where the manifest allows"
    );
    // Its default is where the embedded host serves the publish API in-process.
    let default = manifest["variables"]["publish_host"]["default"].as_str().expect("a default");
    let host = std::fs::read_to_string(repo_root().join("gateway/src/backend/host/state.rs")).unwrap();
    assert!(host.contains(&format!("PUBLISH_ORIGIN: &str = \"{default}\"")), "{default}");
}

/// Every variable the component reads is one its manifest gives it, from application variables
/// that exist, and the secrets are marked secret (Spin keeps them out of logs).
#[test]
fn the_components_variables_are_declared() {
    let manifest = manifest();
    let app = manifest["variables"].as_table().expect("[variables]");
    let variables = component_table(&manifest)["variables"].as_table().expect("component variables");
    let code = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    for name in ["grip_key", "grip_key_previous", "publish_url", "publish_token"] {
        assert!(code.contains(&format!("get(\"{name}\")")), "the component reads {name}");
        let template = variables.get(name).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{name}"));
        for used in template.split("{{").skip(1).map(|rest| rest.split("}}").next().unwrap().trim()) {
            assert!(app.contains_key(used), "{name} uses {used}, which [variables] does not declare");
        }
    }
    for secret in ["grip_key", "grip_key_previous", "publish_token"] {
        assert_eq!(app[secret].get("secret").and_then(|v| v.as_bool()), Some(true), "{secret}");
    }
    assert_eq!(app["grip_key"].get("required").and_then(|v| v.as_bool()), Some(true), "no default key");
}

#[test]
fn source_is_what_the_build_command_produces() {
    let manifest = manifest();
    let component = component_table(&manifest);
    let command = component["build"]["command"].as_str().expect("build.command");
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&args[..2], ["cargo", "build"], "{command}");
    let value_of = |flag: &str| {
        let at = args.iter().position(|a| *a == flag).unwrap_or_else(|| panic!("{flag} in {command}"));
        args[at + 1]
    };
    let package = value_of("-p");
    assert_eq!(package, env!("CARGO_PKG_NAME"));
    assert!(args.contains(&"--release"), "{command}");
    let expected = format!("target/{}/release/{}.wasm", value_of("--target"), package.replace('-', "_"));
    assert_eq!(component["source"].as_str(), Some(expected.as_str()));

    let watch: Vec<&str> =
        component["build"]["watch"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for needed in ["component/src/**/*.rs", "static/**/*"] {
        assert!(watch.contains(&needed), "watch lacks {needed}");
    }
}

/// Names of the top-level imports and exports of a component binary.
fn top_level_interfaces(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    let mut is_component = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("valid wasm") {
            Payload::Version { encoding, .. } if depth == 0 => {
                is_component = encoding == wasmparser::Encoding::Component;
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                imports.extend(reader.into_iter().map(|i| i.unwrap().name.0.to_owned()));
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                exports.extend(reader.into_iter().map(|e| e.unwrap().name.0.to_owned()));
            }
            _ => {}
        }
    }
    assert!(is_component, "the artifact is a WebAssembly component, not a core module");
    (imports, exports)
}

/// What it imports beyond WASI is Spin's variables interface alone; that every import is in Spin
/// 3.6.3's `platform` world is checked with the examples' (`gateway/tests/components_wit.rs`).
#[test]
fn artifact_is_a_wasi_http_component_that_reads_spin_variables() {
    let bytes = std::fs::read(artifact()).expect("read the component");
    let (imports, exports) = top_level_interfaces(&bytes);
    assert!(exports.iter().any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")), "exports {exports:?}");
    let foreign: Vec<&String> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
    assert_eq!(foreign, ["fermyon:spin/variables@2.0.0"], "imports beyond wasi:*");
    eprintln!("component: {} bytes, imports {imports:?}, exports {exports:?}", bytes.len());
}
