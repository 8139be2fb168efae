//! Secrets the gateway reads from files (mounted Kubernetes Secrets): the GRIP key, the publish
//! token, the Redis password.

use anyhow::{Context, bail};

/// A secret from the file a `flag` names (a mounted Secret): its surrounding whitespace aside, and
/// never empty.
pub fn read_secret(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let secret = std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}", path.display()))?
        .trim()
        .to_owned();
    if secret.is_empty() {
        bail!("{flag} {} is empty", path.display());
    }
    Ok(secret)
}
