//! Fault injection, for the gateway's containment tests only: routes that make the guest fail the
//! ways a real component can (trap, endless loop, memory exhaustion, a slow host call, before or
//! after the response head).
//!
//! Compiled only with `--features fault-injection`, into its own target dir so it never replaces
//! the shipped component:
//! `cargo build -p sidestream-component --target wasm32-wasip2 --release --features fault-injection --target-dir target/fault`
//! (`make fault-component`). The normal build answers these paths 404 like any unknown path.

use std::time::Duration;

use futures::SinkExt;
use spin_sdk::http::{Fields, OutgoingResponse, Response, ResponseOutparam};

/// Where the fault routes live.
pub const PREFIX: &str = "/fault/";

/// One way to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `/fault/trap`: panics, which in wasm ends in an `unreachable` trap.
    Trap,
    /// `/fault/loop`: spins forever without calling the host; only the host's deadline stops it.
    Loop,
    /// `/fault/oom?mib=N`: allocates N MiB (default: without end), 1 MiB at a time, so it fails
    /// where growing memory meets the instance's cap; answers 200 if it fits under the cap.
    Oom(u32),
    /// `/fault/slow?ms=N`: sleeps N ms (default 1000) in a host call, then answers 200.
    Slow(u64),
    /// `/fault/slow-body?ms=N`: answers 200 with the first line of its body, sleeps N ms (default
    /// 1000) in a host call, then sends the second line: a guest still at work after its head.
    SlowBody(u64),
    /// `/fault/key-value`: opens Spin's key-value store, an interface (`fermyon:spin/key-value`)
    /// Spin offers and the embedded host does not: a component written for Spin still loads there,
    /// and only this call fails.
    KeyValue,
}

/// The fault a request target (`path?query`) asks for, if it names one.
pub fn parse(target: &str) -> Option<Fault> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path.strip_prefix(PREFIX)? {
        "trap" => Some(Fault::Trap),
        "loop" => Some(Fault::Loop),
        "oom" => Some(Fault::Oom(param(query, "mib").unwrap_or(MAX_MIB))),
        "slow" => Some(Fault::Slow(param(query, "ms").unwrap_or(1000))),
        "slow-body" => Some(Fault::SlowBody(param(query, "ms").unwrap_or(1000))),
        "key-value" => Some(Fault::KeyValue),
        _ => None,
    }
}

/// All a wasm32 memory can address: allocating this much always meets the cap.
const MAX_MIB: u32 = 4096;

fn param<T: std::str::FromStr>(query: &str, name: &str) -> Option<T> {
    crate::query::param(query, name)?.parse().ok()
}

/// Fails as asked. Only the slow ones, and `Oom` when the memory fits, answer.
pub async fn inject(fault: Fault, out: ResponseOutparam) {
    let response = match fault {
        Fault::Trap => panic!("fault injection: trap requested"),
        Fault::Loop => {
            // `black_box` keeps the optimiser from proving the loop pointless.
            let mut spins: u64 = 0;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        Fault::Oom(mib) => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib.min(MAX_MIB) {
                // Non-zero bytes, so every page is really written.
                held.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
            text(200, format!("allocated {} MiB\n", held.len()))
        }
        Fault::Slow(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            text(200, format!("slept {ms} ms\n"))
        }
        Fault::SlowBody(ms) => return slow_body(ms, out).await,
        Fault::KeyValue => match spin_sdk::key_value::Store::open_default() {
            Ok(_) => text(200, "the key-value store is open\n".into()),
            Err(error) => text(500, format!("no key-value store: {error}\n")),
        },
    };
    crate::export::send(out, response).await;
}

/// Sends the head and a first line, then sleeps before the rest of the body.
async fn slow_body(ms: u64, out: ResponseOutparam) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())]);
    let response = OutgoingResponse::new(headers.unwrap_or_else(|_| Fields::new()));
    let _ = response.set_status_code(200);
    let mut body = response.take_body();
    out.set(response);
    let _ = body.send(b"head sent\n".to_vec()).await;
    let _ = body.flush().await;
    std::thread::sleep(Duration::from_millis(ms));
    let _ = body.send(format!("slept {ms} ms\n").into_bytes()).await;
}

fn text(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(body)
        .build()
}
