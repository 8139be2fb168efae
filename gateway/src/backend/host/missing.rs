//! Imports the embedded host does not provide, linked as traps that name them. A component written
//! for Spin may import Spin's other interfaces (key-value, SQLite, Redis, ...): it still loads here,
//! and a call to one fails that request with the interface's name in the log, never the start-up.
//!
//! wasmtime's own `Linker::define_unknown_imports_as_traps` cannot be used: it opens every imported
//! instance by its exact name, so an import of `wasi:http/types@0.2.6` gets a new instance of
//! stubs that shadows the host's semver-compatible `0.2.12` one. Here only the imports the linker
//! really lacks are stubbed: each one its own instantiation names, until none is missing.

use anyhow::Context as _;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};

/// How many missing imports are linked as traps before giving up (Spin's platform world has a few
/// dozen interfaces).
const MAX_MISSING: usize = 256;

/// Links every import of `component` that `linker` lacks to a trap; returns their names.
pub fn link_as_traps<T: 'static>(
    linker: &mut Linker<T>,
    engine: &Engine,
    component: &Component,
) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for _ in 0..MAX_MISSING {
        let Err(error) = linker.instantiate_pre(component) else { return Ok(missing) };
        let error = anyhow::Error::from(error);
        let Some(name) = missing_import(&error) else { return Err(error) };
        let item = component
            .component_type()
            .imports(engine)
            .find(|(import, _)| *import == name)
            .map(|(_, import)| import.ty)
            .ok_or(error)?;
        stub(&mut linker.root(), &name, &item, &name, engine)
            .with_context(|| format!("linking the missing import `{name}` as a trap"))?;
        missing.push(name);
    }
    anyhow::bail!("the component imports more than {MAX_MISSING} interfaces the host lacks")
}

/// The import wasmtime's linker reports missing: its message names it between backticks
/// ("component imports instance `NAME`, but a matching implementation was not found").
fn missing_import(error: &anyhow::Error) -> Option<String> {
    let message = error.to_string();
    if !message.contains("matching implementation was not found") {
        return None;
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Defines `name` (an item of the import `interface`) as traps: functions that fail naming
/// themselves, resources of a type of the host's own that nothing ever makes.
fn stub<T: 'static>(
    linker: &mut LinkerInstance<'_, T>,
    name: &str,
    item: &ComponentItem,
    interface: &str,
    engine: &Engine,
) -> anyhow::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let what = if name == interface { name.to_owned() } else { format!("{interface}#{name}") };
            linker.func_new(name, move |_, _, _, _| {
                wasmtime::bail!("`{what}` is not provided by sidestream's embedded host")
            })?;
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut inner = linker.instance(name)?;
            for (export, item) in instance.exports(engine) {
                stub(&mut inner, export, &item.ty, interface, engine)?;
            }
        }
        ComponentItem::Resource(_) => {
            linker.resource(name, ResourceType::host::<Unprovided>(), |_, _| Ok(()))?;
        }
        // Types need no definition; modules and components are never imported by Spin apps.
        ComponentItem::Type(_) | ComponentItem::Module(_) | ComponentItem::Component(_) => {}
        ComponentItem::CoreFunc(_) => {}
    }
    Ok(())
}

/// The type of a resource the host does not provide: no value of it is ever made.
struct Unprovided;
