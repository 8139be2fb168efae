//! `sidestream-gateway`: parse the config, start logging, run until SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sidestream_gateway::{Config, logging, run, shutdown};

/// mimalloc instead of glibc's malloc in the embedded build: an app message allocates on one
/// runtime's threads and frees on the other's (sockets, guests), and glibc's arenas made malloc,
/// free and their locks' futexes a fifth of its CPU; mimalloc took a tenth off (BENCHMARKS.md,
/// issue 28). Built without transparent huge pages: with them its arenas kept 2 MiB pages
/// resident for every 4 KiB touched (60 MiB more at idle). The sidecar keeps musl's allocator,
/// whose memory figures the README gives.
#[cfg(feature = "wasm-host")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    logging::init(config.log_format);
    if let Err(error) = config.validate() {
        eprintln!("sidestream-gateway: {error:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sidestream-gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let shutdown = shutdown::signal().context("cannot listen for SIGTERM and SIGINT")?;
        run(config, shutdown).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sidestream-gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}
