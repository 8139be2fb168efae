//! sidestream-bench: the load generator behind `make bench` (`scripts/bench.sh`), which measures
//! the gateway side by side with its peers (tokio-tungstenite defaults, Bun, Go gorilla) and writes
//! BENCHMARKS.md.
//!
//! One workload against one running server:
//! `cargo run --release -p sidestream-bench -- echo --url ws://127.0.0.1:8080/ws?push=off -c 100 --server-pid PID`
//! (also `idle`, `fanout`, `http`, `publish`, `rooms`; `echo --app` on the component's `/echo`); everything at
//! once: `make bench`.

mod ab;
mod charts;
mod echo;
mod examples;
mod fanout;
mod http;
mod idle;
mod procfs;
mod publish;
mod pushpin;
mod redis;
mod report;
mod rooms;
mod servers;
mod stages;
mod stats;
mod suite;
mod worker;
mod ws;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Load generator for sidestream and its peers")]
struct Cli {
    /// Print the outcome as JSON instead of one summary line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// C connections, each a closed loop of send / await echo: msg/s, RTT, server CPU per message.
    Echo(echo::Args),
    /// Hold N quiet connections: the server's RSS per connection.
    Idle(idle::Args),
    /// N connections with pushes on: pushes/s delivered and lateness against their `ts`.
    Fanout(fanout::Args),
    /// Keep-alive HTTP/1.1 `GET`s: req/s and latency.
    Http(http::Args),
    /// N subscribers on one channel, a publisher at a fixed rate: deliveries/s, publish-to-arrival.
    Publish(publish::Args),
    /// Subscribers in rooms of 100, one publisher over all rooms, on one Redis and on a Redis
    /// Cluster (two gateways each): deliveries/s, latency, Redis CPU per publication.
    Rooms(rooms::Args),
    /// Two builds of one server alternated on `echo`: median ratios of CPU per message and msg/s.
    Ab(ab::Args),
    /// Every server, every workload, one table; what `make bench` runs.
    Suite(Box<suite::Args>),
    /// Internal: one process of connections for `idle` and `fanout`.
    #[command(hide = true)]
    Worker(worker::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A worker only holds sockets: one thread is plenty, and leaves the cores to the server.
    let runtime = match cli.cmd {
        Cmd::Worker(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    runtime.block_on(async move {
        match cli.cmd {
            Cmd::Echo(a) => emit(cli.json, &echo::run(&a).await?, echo::print),
            Cmd::Idle(a) => emit(cli.json, &idle::run(&a).await?, idle::print),
            Cmd::Fanout(a) => emit(cli.json, &fanout::run(&a).await?, fanout::print),
            Cmd::Http(a) => emit(cli.json, &http::run(&a).await?, http::print),
            Cmd::Publish(a) => emit(cli.json, &publish::run(&a).await?, publish::print),
            Cmd::Rooms(a) => {
                let outcomes = rooms::run(&a).await?;
                if cli.json {
                    println!("{}", serde_json::to_string(&outcomes)?);
                }
                Ok(())
            }
            Cmd::Ab(a) => emit(cli.json, &ab::run(&a).await?, ab::print),
            Cmd::Suite(a) => suite::run(&a).await,
            Cmd::Worker(a) => worker::run(a).await,
        }
    })
}

fn emit<T: serde::Serialize>(json: bool, outcome: &T, print: fn(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(outcome)?);
    } else {
        print(outcome);
    }
    Ok(())
}
