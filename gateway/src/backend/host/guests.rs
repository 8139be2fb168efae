//! The runtime the guests run on, apart from the gateway's sockets.
//!
//! A guest spinning in wasm holds a worker for a whole epoch tick per poll, and tokio looks at
//! sockets and timers only every few dozen polls: on the gateway's runtime, as many spinning guests
//! as cores would stall every socket, WebSocket and probe until their deadline. So guests get
//! their own workers, as many as cores: at most that many guests run at once, the rest wait their
//! turn in the runtime's queues.
//!
//! The order guests run in is first come, first served: a new guest waits in tokio's injection
//! queue, a guest that gave its worker back (an epoch tick, a host call that had to wait) waits in
//! the worker's own queue, and tokio's self-tuned interval takes from both. Checking the injection
//! queue first on every poll (an interval of 1, as this runtime once had) starved the guests that
//! had yielded for as long as new ones kept arriving: under load about one app message in a
//! hundred waited a hundred milliseconds or more (BENCHMARKS.md, issue 28). With that fixed, a
//! second worker on two cores doubled app-echo's messages per second and cut its p99 (it had made
//! the tail worse only while yielded guests starved).

use std::io;

use tokio::runtime::Runtime;

/// Guest workers on a machine with `cores` cores.
pub fn workers(cores: usize) -> usize {
    cores.max(1)
}

/// The guests' runtime, with `workers` threads.
pub fn runtime(workers: usize) -> io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("wasm-guest")
        .enable_all()
        // A poll of a spinning guest can last a whole tick: look at timers and wake-ups (a guest's
        // sleep, its outbound request) after every poll, not after dozens of them.
        .event_interval(1)
        .build()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// What a guest does at an epoch tick (wasmtime's `yield_now`): wake itself, return `Pending`.
    async fn yield_as_wasmtime_does() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    }

    /// A guest that yields three times, queued in front of many new guests: it must finish long
    /// before they all have, not after every one of them.
    #[test]
    fn a_guest_that_yields_is_not_starved_by_newer_guests() {
        const NEWER: usize = 10_000;
        let rt = runtime(1).expect("runtime");
        // Hold the only worker while everything is queued, so the order is the queues' alone.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (blocked_tx, blocked) = std::sync::mpsc::channel::<()>();
        rt.spawn(async move {
            let _ = blocked_tx.send(());
            let _ = held.recv();
        });
        blocked.recv().expect("the worker is held");
        let done = Arc::new(AtomicUsize::new(0));
        let counted = done.clone();
        let yielding = rt.spawn(async move {
            for _ in 0..3 {
                yield_as_wasmtime_does().await;
            }
            counted.load(Ordering::SeqCst)
        });
        for _ in 0..NEWER {
            let done = done.clone();
            rt.spawn(async move {
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        release.send(()).expect("release the worker");
        let newer_before = rt.block_on(yielding).expect("the yielding guest");
        assert!(newer_before < NEWER / 10, "{newer_before} of {NEWER} newer guests ran before it finished");
    }
}
