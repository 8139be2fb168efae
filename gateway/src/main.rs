//! `sidestream-gateway`: parse the config, start logging, run until SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sidestream_gateway::{Config, logging, run, shutdown};

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
