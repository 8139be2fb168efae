//! Every import of each component this repository builds (the Rust one, `make component`, and the
//! examples, `make examples`) is in Spin 3.6.3's `platform` world, so `spin up` and the SpinKube shim can link it: the same interface at a
//! semver-compatible version (what wasmtime's linker accepts: `0.2.12` is served by `0.2.6`, a
//! pre-release only by itself), with every function the component calls. Spin's WIT is read from
//! `../shared/wit/spin-3.6.3/` beside the clone (CI has a read-only copy there).
//!
//! `cargo test -p sidestream-gateway --test components_wit`, after `make component examples`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{Resolve, WorldItem, WorldKey};

/// The components: the project's own (as spin.toml names it), and the examples' as
/// scripts/examples.sh builds them.
const COMPONENTS: [&str; 3] = [
    "target/wasm32-wasip2/release/sidestream_component.wasm",
    "examples/typescript/dist/sidestream-typescript.wasm",
    "examples/python/sidestream-python.wasm",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An interface's imports: `ns:pkg/name` -> (version, function names).
type Imports = BTreeMap<String, Vec<(Option<semver::Version>, Vec<String>)>>;

/// The interfaces (with their functions) that a world imports; bare function or type imports
/// are named in `other`.
fn imports_of(resolve: &Resolve, world: wit_parser::WorldId, other: &mut Vec<String>) -> Imports {
    let mut imports = Imports::new();
    for (key, item) in &resolve.worlds[world].imports {
        let WorldItem::Interface { id, .. } = item else {
            other.push(resolve.name_world_key(key));
            continue;
        };
        let WorldKey::Interface(_) = key else {
            other.push(format!("an unnamed instance `{}`", resolve.name_world_key(key)));
            continue;
        };
        let interface = &resolve.interfaces[*id];
        let package = &resolve.packages[interface.package.expect("a named interface has a package")];
        let name =
            format!("{}:{}/{}", package.name.namespace, package.name.name, interface.name.as_ref().unwrap());
        let functions = interface.functions.keys().cloned().collect();
        imports.entry(name).or_default().push((package.name.version.clone(), functions));
    }
    imports
}

/// Spin 3.6.3's `platform` world (its stable part: unstable features are not enabled).
fn platform() -> Option<Imports> {
    let dir = repo_root().join("../shared/wit/spin-3.6.3");
    if !dir.is_dir() {
        assert!(std::env::var_os("CI").is_none(), "{} is missing under CI", dir.display());
        eprintln!("SKIPPED: Spin's WIT is not at {}", dir.display());
        return None;
    }
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(&dir).expect("Spin's WIT parses");
    let world = resolve.select_world(&[package], Some("platform")).expect("a platform world");
    let mut other = Vec::new();
    let imports = imports_of(&resolve, world, &mut other);
    assert!(other.is_empty(), "the platform imports interfaces only: {other:?}");
    Some(imports)
}

/// Whether a host serving `have` links an import of `want` (wasmtime's rule).
fn compatible(want: &Option<semver::Version>, have: &Option<semver::Version>) -> bool {
    match (want, have) {
        (Some(want), Some(have)) if !want.pre.is_empty() || !have.pre.is_empty() => want == have,
        (Some(want), Some(have)) if want.major > 0 => want.major == have.major,
        (Some(want), Some(have)) => want.minor == have.minor && (want.minor > 0 || want.patch == have.patch),
        (None, None) => true,
        _ => false,
    }
}

/// What of `component`'s imports the platform does not have, one line each.
fn missing(component: &Imports, platform: &Imports) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, versions) in component {
        for (version, functions) in versions {
            let at = version.as_ref().map_or(String::new(), |v| format!("@{v}"));
            let served = platform.get(name).into_iter().flatten().find(|(have, _)| compatible(version, have));
            match served {
                None => missing.push(format!("{name}{at}: no such interface at a compatible version")),
                Some((have, provided)) => {
                    for function in functions.iter().filter(|f| !provided.contains(f)) {
                        missing.push(format!("{name}{at}: `{function}` is not in the platform's {have:?}"));
                    }
                }
            }
        }
    }
    missing
}

fn component_imports(path: &Path) -> (Imports, Vec<String>) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}: build it with `make component examples`", path.display()));
    let DecodedWasm::Component(resolve, world) = decode(&bytes).expect("a component") else {
        panic!("{} is a WIT package, not a component", path.display());
    };
    let mut other = Vec::new();
    let imports = imports_of(&resolve, world, &mut other);
    (imports, other)
}

#[test]
fn every_import_of_each_component_is_in_spins_platform_world() {
    let Some(platform) = platform() else { return };
    for example in COMPONENTS {
        let (imports, other) = component_imports(&repo_root().join(example));
        let names: Vec<&String> = imports.keys().collect();
        eprintln!("{example} imports {names:?}");
        assert!(other.is_empty(), "{example} imports more than interfaces: {other:?}");
        // Each reads its settings through Spin's variables interface, and publishes over wasi:http.
        for needed in ["fermyon:spin/variables", "wasi:http/outgoing-handler"] {
            assert!(imports.contains_key(needed), "{example} does not import {needed}");
        }
        let missing = missing(&imports, &platform);
        assert!(
            missing.is_empty(),
            "{example} imports what Spin 3.6.3 does not serve:\n{}",
            missing.join("\n")
        );
    }
}

#[test]
fn the_check_refuses_what_spin_does_not_serve() {
    let Some(platform) = platform() else { return };
    let one = |name: &str, version: &str, functions: &[&str]| -> Imports {
        let version = Some(semver::Version::parse(version).unwrap());
        let functions = functions.iter().map(|f| f.to_string()).collect();
        Imports::from([(name.to_owned(), vec![(version, functions)])])
    };
    // Served: a newer patch of WASI 0.2 (wasmtime links it to 0.2.6), Spin's own interfaces.
    assert!(missing(&one("wasi:io/poll", "0.2.12", &["poll"]), &platform).is_empty());
    assert!(missing(&one("fermyon:spin/variables", "2.0.0", &["get"]), &platform).is_empty());
    assert!(missing(&one("wasi:keyvalue/store", "0.2.0-draft2", &["open"]), &platform).is_empty());
    // Not served: another minor or major, an export, a function the interface does not have, a
    // pre-release that is not Spin's, an unstable interface.
    for (name, version, functions) in [
        ("wasi:io/poll", "0.3.0", &["poll"][..]),
        ("fermyon:spin/variables", "3.0.0", &["get"]),
        ("wasi:http/incoming-handler", "0.2.6", &["handle"]),
        ("fermyon:spin/variables", "2.0.0", &["set"]),
        ("wasi:keyvalue/store", "0.2.0-draft3", &["open"]),
        ("wasi:http/handler", "0.3.0-rc-2026-01-06", &["handle"]),
    ] {
        let missing = missing(&one(name, version, functions), &platform);
        assert_eq!(missing.len(), 1, "{name}@{version} {functions:?}: {missing:?}");
    }
}
