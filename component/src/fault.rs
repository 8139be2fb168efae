//! Fault injection, for the gateway's containment tests only: routes that make the guest fail the
//! ways a real component can (trap, endless loop, memory exhaustion, a slow host call).
//!
//! Compiled only with `--features fault-injection`, into its own target dir so it never replaces
//! the shipped component:
//! `cargo build -p sidestream-component --target wasm32-wasip2 --release --features fault-injection --target-dir target/fault`
//! (`make fault-component`). The normal build answers these paths 404 like any unknown path.

use std::time::Duration;

use spin_sdk::http::Response;

/// Where the fault routes live.
pub const PREFIX: &str = "/fault/";

/// One way to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `/fault/trap`: panics, which in wasm ends in an `unreachable` trap.
    Trap,
    /// `/fault/loop`: spins forever without calling the host; only the host's deadline stops it.
    Loop,
    /// `/fault/oom`: allocates 1 MiB after 1 MiB until growing memory fails at the instance's cap.
    Oom,
    /// `/fault/slow?ms=N`: sleeps N ms (default 1000) in a host call, then answers 200.
    Slow(u64),
}

/// The fault `path` asks for, if it names one.
pub fn parse(path: &str, query: &str) -> Option<Fault> {
    match path.strip_prefix(PREFIX)? {
        "trap" => Some(Fault::Trap),
        "loop" => Some(Fault::Loop),
        "oom" => Some(Fault::Oom),
        "slow" => {
            let ms = query.split('&').find_map(|kv| kv.strip_prefix("ms=")).and_then(|v| v.parse().ok());
            Some(Fault::Slow(ms.unwrap_or(1000)))
        }
        _ => None,
    }
}

/// Fails as asked. Only `Slow` (and `Oom` on a host without a memory cap) returns a response.
pub fn inject(fault: Fault) -> Response {
    match fault {
        Fault::Trap => panic!("fault injection: trap requested"),
        Fault::Loop => {
            // `black_box` keeps the optimiser from proving the loop pointless.
            let mut spins: u64 = 0;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        Fault::Oom => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            // 4 GiB is all a wasm32 memory can address; reaching the end means no cap was enforced.
            for _ in 0..4096 {
                // Non-zero bytes, so every page is really written.
                held.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
            text(200, format!("allocated {} MiB without hitting a memory cap\n", held.len()))
        }
        Fault::Slow(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            text(200, format!("slept {ms} ms\n"))
        }
    }
}

fn text(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(body)
        .build()
}
