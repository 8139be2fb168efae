//! A connection's last event for its component: `CLOSE` after a closing handshake, `DISCONNECT`
//! after anything else (a client that vanished, a limit, the drain, a failing component).
//!
//! Delivered with retries, whatever went wrong with an attempt (no answer, a 5xx, a trap, a
//! timeout), with exponential backoff, up to `--app-retries` more attempts; an answer of 2xx or
//! 4xx ends it. Each retry carries `Sidestream-Attempt`. A request still in flight when the
//! connection ended is answered first (its answer has nowhere to go, and is counted), so the
//! component sees the connection's events in order. The drain waits for deliveries too, within
//! its one budget.

use std::sync::Arc;

use tracing::{debug, warn};

use super::Settings;
use super::exchange::InFlight;
use super::metrics::{Delivery, LastEvent, Metrics, RequestResult};
use super::session::Session;
use crate::backend::Backend;

/// What sends a connection's last event: the component's side, the retry settings, the counts.
pub struct LastEvents {
    pub backend: Arc<Backend>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

impl LastEvents {
    /// Sends the connection's last event (after the answer of the request still in flight).
    pub async fn send(&self, session: &Session, in_flight: Option<InFlight>, close: Option<(u16, String)>) {
        let metrics = &self.metrics;
        if let Some(in_flight) = in_flight {
            let _ = in_flight.finish().await;
            metrics.app_late_answers.inc();
        }
        let event = if close.is_some() { LastEvent::Close } else { LastEvent::Disconnect };
        let settings = &self.settings;
        let mut attempt = 1;
        loop {
            let request =
                session.last_request(close.as_ref().map(|(code, reason)| (*code, reason.as_str())), attempt);
            let problem = match self.backend.exchange(request, settings.max_answer_bytes).await {
                Ok(answer) if answer.status().is_success() => {
                    metrics.last_event(event, RequestResult::Ok, Delivery::Delivered);
                    return;
                }
                // The component heard it and said no: asking again would not change its mind.
                Ok(answer) if answer.status().is_client_error() => {
                    metrics.last_event(event, RequestResult::Refused, Delivery::Refused);
                    return;
                }
                Ok(answer) => format!("status {}", answer.status()),
                Err(error) => error.to_string(),
            };
            if attempt > settings.retries {
                metrics.last_event(event, RequestResult::Failed, Delivery::GaveUp);
                warn!(connection = %session.id, event = event.as_str(), attempts = attempt, %problem, "giving up on a connection's last event");
                return;
            }
            attempt += 1;
            metrics.app_retries.inc();
            debug!(connection = %session.id, event = event.as_str(), attempt, %problem, "the last event again");
            tokio::time::sleep(settings.backoff(attempt)).await;
        }
    }
}
