//! SIGTERM and SIGINT: the first starts the drain, a second exits at once.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal as listen};
use tracing::{info, warn};

/// Listens for SIGTERM and SIGINT from this call on, and returns what completes on the first.
/// From then on a second signal ends the process immediately, for an operator who does not want
/// to wait for the drain.
///
/// Call it before binding: a signal that comes while the gateway starts is then a drain, never
/// the default action that kills the process. It needs the runtime to be running.
pub fn signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = listen(SignalKind::terminate())?;
    let mut interrupt = listen(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: draining"),
            _ = interrupt.recv() => info!("SIGINT: draining"),
        }
        // Not one of the drain's tasks: it exists before the gateway does, and must outlive the
        // drain it is there to cut short; it ends with the process.
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            warn!("second signal: exiting without waiting for the drain");
            std::process::exit(130);
        });
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_before_the_first_poll_is_caught_and_starts_the_drain() {
        let drain = super::signal().expect("listening");
        // Not polled yet, as while the gateway binds: without a handler in place, this kills the
        // whole test process.
        let pid = std::process::id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        tokio::time::timeout(Duration::from_secs(10), drain).await.expect("the drain starts");
    }
}
