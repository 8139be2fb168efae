//! Where the component's paths go: the embedded host with its file, or a runtime upstream.

use anyhow::bail;

use super::{ComponentSource, Config, DEFAULT_COMPONENT};

impl Config {
    /// Which backend serves the component's paths. Fails with a one-line reason when the choice
    /// cannot work (no component built, or a build without the embedded host).
    pub fn backend(&self) -> anyhow::Result<ComponentSource> {
        if let Some(upstream) = &self.upstream {
            return Ok(ComponentSource::Upstream(upstream.clone()));
        }
        if !cfg!(feature = "wasm-host") {
            bail!(
                "this build has no embedded wasm host (built without the `wasm-host` feature): pass --upstream URL"
            );
        }
        match &self.component {
            Some(path) if path.is_file() => Ok(ComponentSource::Component(path.clone())),
            Some(path) => bail!("--component {}: no such file", path.display()),
            None if std::path::Path::new(DEFAULT_COMPONENT).is_file() => {
                Ok(ComponentSource::Component(DEFAULT_COMPONENT.into()))
            }
            None => bail!(
                "no component at {DEFAULT_COMPONENT}: build it with `make component` (or `cargo build -p \
                 sidestream-component --target wasm32-wasip2 --release`), or pass --component PATH or --upstream URL"
            ),
        }
    }
}
