//! Each example's `spin.toml` is valid for Spin (its manifest schema, from `../shared/schemas/`),
//! names the `.wasm` its build really makes, and declares the settings the issue-21 design fixes:
//! `grip_key` (secret, required), `grip_key_previous`, `publish_url`, `publish_token`, each bound to
//! the component, which may reach the publish URL's origin and nothing else.
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
fn each_manifest_names_its_build_and_the_designs_settings() {
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

        let variables = &manifest["variables"];
        assert_eq!(variables["grip_key"], json!({"required": true, "secret": true}), "{name}");
        assert_eq!(variables["grip_key_previous"], json!({"default": "", "secret": true}), "{name}");
        assert_eq!(variables["publish_url"], json!({"default": "http://127.0.0.1:9090/publish/"}), "{name}");
        assert_eq!(variables["publish_token"], json!({"default": "", "secret": true}), "{name}");
        for setting in ["grip_key", "grip_key_previous", "publish_url", "publish_token"] {
            let bound = format!("{{{{ {setting} }}}}");
            assert_eq!(
                component["variables"][setting],
                bound.as_str(),
                "{name}: {setting} reaches the component"
            );
        }
        // Spin allows variables in allowed_outbound_hosts: the publish URL's origin, and only it.
        assert_eq!(component["allowed_outbound_hosts"], json!(["{{ publish_host }}"]), "{name}");
        let url = variables["publish_url"]["default"].as_str().unwrap();
        let origin = variables["publish_host"]["default"].as_str().expect("publish_host");
        assert!(url.starts_with(&format!("{origin}/")), "{name}: {origin} is the origin of {url}");
    }
}
