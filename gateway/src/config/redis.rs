//! Where Redis is (`--redis`, `--redis-password-file`), as the connection code takes it.

use anyhow::bail;

use super::{Config, read_secret};

/// The scheme of a Redis Cluster's URL.
pub(super) const CLUSTER: &str = "redis+cluster://";

/// One node's URL; the URL may hold a password: errors name the flag, never the URL.
fn connection_info(url: &str) -> anyhow::Result<::redis::ConnectionInfo> {
    use ::redis::IntoConnectionInfo;
    url.into_connection_info().map_err(|e| anyhow::anyhow!("--redis: {e}"))
}

/// The seed nodes of `redis+cluster://[user[:password]@]host1:port1,host2:port2[/0]`: each as
/// `redis://[user[:password]@]host:port`. A cluster has only database 0.
fn cluster_nodes(url: &str) -> anyhow::Result<Vec<::redis::ConnectionInfo>> {
    let rest = &url[CLUSTER.len()..];
    let (rest, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !(db.is_empty() || db == "0") {
        bail!("--redis: a Redis Cluster has only database 0");
    }
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let nodes: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
    if nodes.is_empty() {
        bail!("--redis: a redis+cluster:// URL names at least one node (host:port,host:port)");
    }
    nodes.into_iter().map(|host| connection_info(&format!("redis://{auth}{host}"))).collect()
}

impl Config {
    /// Where Redis is, with the password of `--redis-password-file` when there is one; `None`
    /// without `--redis`.
    pub fn redis_connection(&self) -> anyhow::Result<Option<crate::redis_conn::Target>> {
        use crate::redis_conn::Target;
        let Some(url) = &self.redis else { return Ok(None) };
        let password = match &self.redis_password_file {
            Some(path) => Some(read_secret("--redis-password-file", path)?),
            None => None,
        };
        let with_password = |info: ::redis::ConnectionInfo| match &password {
            Some(password) => {
                let settings = info.redis_settings().clone().set_password(password.clone());
                info.set_redis_settings(settings)
            }
            None => info,
        };
        if url.starts_with(CLUSTER) {
            return Ok(Some(Target::Cluster(cluster_nodes(url)?.into_iter().map(with_password).collect())));
        }
        Ok(Some(Target::Single(with_password(connection_info(url)?))))
    }
}
