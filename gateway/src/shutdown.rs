//! SIGTERM and SIGINT: the first starts the drain, a second exits at once.

use tracing::{error, info, warn};

/// Completes on the first SIGTERM or SIGINT. From then on a second signal ends the process
/// immediately, for an operator who does not want to wait for the drain.
pub async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop the gateway");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: draining"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        warn!("second signal: exiting without waiting for the drain");
        std::process::exit(130);
    });
}
