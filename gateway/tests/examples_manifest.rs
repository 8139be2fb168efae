//! Each example's `spin.toml` is valid for Spin (its manifest schema, from `../shared/schemas/`),
//! names the `.wasm` its build really makes, and declares the settings exactly as the project's own
//! `spin.toml` does (`grip_key`, secret and required, `grip_key_previous`, `publish_host`,
//! `publish_token`; the component's `publish_url` made from `publish_host`), reaching the publish
//! API's origin and nothing else.
//!
//! `cargo test -p sidestream-gateway --test examples_manifest`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const EXAMPLES: [(&str, &str); 2] =
    [("typescript", "dist/sidestream-typescript.wasm"), ("python", "sidestream-python.wasm")];

fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(example_dir(name).join("spin.toml")).expect("spin.toml");
    let table: toml::Table = text.parse().expect("spin.toml is TOML");
    serde_json::to_value(table).expect("TOML converts to JSON")
}

#[test]
fn each_manifest_matches_spins_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas/spin-manifest-v2.json");
    let Ok(schema) = std::fs::read_to_string(&path) else {
        assert!(std::env::var_os("CI").is_none(), "{} is missing under CI", path.display());
        eprintln!("SKIPPED: Spin's manifest schema is not at {}", path.display());
        return;
    };
    let schema: Value = serde_json::from_str(&schema).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for (name, _) in EXAMPLES {
        let instance = manifest(name);
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{name}'s spin.toml breaks Spin's schema:\n{}", errors.join("\n"));
        let mut broken = instance.clone();
        broken["variables"]["grip_key"]["secrett"] = json!(true);
        assert!(!validator.is_valid(&broken), "the schema catches a misspelt key");
    }
}

#[test]
fn each_manifest_names_its_build_and_the_projects_settings() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml")).unwrap();
    let root: Value = serde_json::to_value(text.parse::<toml::Table>().expect("TOML")).unwrap();
    let root_component = &root["component"]["sidestream"];
    for (name, wasm) in EXAMPLES {
        let manifest = manifest(name);
        let id = format!("sidestream-{name}");
        assert_eq!(manifest["trigger"]["http"][0]["route"], "/...", "{name}");
        assert_eq!(manifest["trigger"]["http"][0]["component"], id.as_str(), "{name}");
        let component = &manifest["component"][&id];
        assert_eq!(component["source"], wasm, "{name}: the path scripts/examples.sh builds");
        let command = component["build"]["command"].as_str().expect("a build command");
        let file = Path::new(wasm).file_name().unwrap().to_str().unwrap();
        let package = std::fs::read_to_string(example_dir(name).join("package.json")).unwrap_or_default();
        assert!(command.contains(file) || package.contains(wasm), "{name}: `{command}` builds {wasm}");

        // The settings are the project's own component's, declared and bound the same way, so one
        // set of Spin variables (and one Kubernetes overlay) configures any of them.
        let variables = &manifest["variables"];
        assert_eq!(variables, &root["variables"], "{name}: the [variables] of the project's spin.toml");
        assert_eq!(variables["grip_key"], json!({"required": true, "secret": true}), "{name}");
        assert_eq!(component["variables"], root_component["variables"], "{name}: bound as the project's");
        for setting in ["grip_key", "grip_key_previous", "publish_url", "publish_token"] {
            assert!(component["variables"][setting].is_string(), "{name}: {setting} reaches the component");
        }
        // The publish API's origin and nothing else (Spin allows variables in allowed hosts).
        assert_eq!(component["allowed_outbound_hosts"], json!(["http://{{ publish_host }}"]), "{name}");
        assert_eq!(component["allowed_outbound_hosts"], root_component["allowed_outbound_hosts"], "{name}");
    }
}
