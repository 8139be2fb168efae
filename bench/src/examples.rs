//! `app-echo` with the example components of `examples/` (TypeScript, Python): the same `/echo`,
//! the same gateway and embedded host, only the component's language differs. Each is a column of
//! its own beside the gateway's (the Rust component) and Pushpin's.

use std::path::{Path, PathBuf};

use crate::echo;
use crate::suite::{Args, Durations, ServerResults, gateway_spec, keep_best, on_server};

/// `NAME=PATH` of `--example`.
pub fn parse(value: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = value.split_once('=').ok_or("expected NAME=PATH")?;
    if name.is_empty() || path.is_empty() {
        return Err("expected NAME=PATH".into());
    }
    Ok((name.to_owned(), PathBuf::from(path)))
}

/// One result per example that exists, measured as the gateway's own `app-echo` is.
pub async fn app_echo(args: &Args, d: Durations, gateway: &Path) -> Vec<ServerResults> {
    let mut out = Vec::new();
    for (name, component) in &args.examples {
        if !component.exists() {
            eprintln!("app-echo: the {name} example is not built ({}): `make examples`", component.display());
            continue;
        }
        let spec = gateway_spec(&format!("gateway + {name}"), gateway, Some(component));
        let mut r = ServerResults { name: spec.name.clone(), ..Default::default() };
        for round in 1..=args.rounds.max(1) {
            for &c in &args.app_echo_connections {
                let label = format!("app-echo {name} c={c} round {round}");
                let o = on_server(&spec, &label, &mut r.failures, |s| {
                    let a = echo::Args {
                        url: format!("ws://{}/echo", s.addr),
                        connections: c,
                        size: args.size,
                        duration: d.echo,
                        warmup: d.warmup,
                        binary: false,
                        server_pid: s.pid().ok().into_iter().collect(),
                        app: true,
                        metrics_addr: s.admin.clone(),
                    };
                    async move { echo::run(&a).await }
                })
                .await;
                keep_best(&mut r.app_echo, &mut r.notes, &label, o);
            }
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_example_is_a_name_and_a_path() {
        let (name, path) = super::parse("python=examples/python/sidestream-python.wasm").unwrap();
        assert_eq!(
            (name.as_str(), path.to_str()),
            ("python", Some("examples/python/sidestream-python.wasm"))
        );
        assert!(super::parse("python").is_err());
        assert!(super::parse("=x").is_err());
    }
}
