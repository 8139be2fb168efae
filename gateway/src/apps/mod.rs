//! WebSocket apps in the component: every WebSocket upgrade but `/ws` is offered to the component
//! at its own path, and the connection's events reach it as plain HTTP requests in Pushpin's
//! WebSocket-over-HTTP protocol (<https://pushpin.org/docs/protocols/websocket-over-http/>), so
//! the same component runs on Spin, the SpinKube shim, any wasi-http host, and behind Pushpin.
//!
//! [`open`] turns the handshake into the `OPEN` request and the component's answer into a `101`
//! or a refusal; [`conn`] is the handler the connection loop runs: it batches the client's messages
//! into requests (one at a time, [`exchange`]) and carries out the answers, whose GRIP control
//! messages act on the connection's own state ([`grip`]); [`delivery`] sends a connection's last
//! event, `CLOSE` or `DISCONNECT`, with retries; [`session`] is the protocol itself, without I/O;
//! [`lease`] lets another gateway end the connections of one that died; [`context`] is what all of
//! them are given.

pub mod conn;
pub mod context;
pub mod delivery;
pub mod exchange;
pub mod grip;
pub mod lease;
pub mod metrics;
pub mod open;
pub mod session;

use std::time::Duration;

/// The limits of WebSocket apps, fixed at start-up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most bytes of events in one request; reading from the client stops at it. At most an
    /// eighth of the budget, so an answer four times its request (an echo of short messages
    /// wrapped in JSON) fits beside what the connection holds.
    pub batch_bytes: usize,
    /// Largest answer body.
    pub max_answer_bytes: usize,
    /// `--app-connection-budget`: what one connection may hold for or from its client.
    pub budget: usize,
    /// Attempts after the first, for requests that did not reach the component and for last
    /// events.
    pub retries: u32,
    /// The wait before the first retry; it doubles with each.
    pub retry_delay: Duration,
    /// `--max-subscriptions`: the most channels one connection joins.
    pub max_subscriptions: usize,
}

/// The least an answer may be given, whatever the connection holds: a budget filled by what its
/// client does not read still lets a short answer through.
pub const MIN_ANSWER: usize = 16 * 1024;

/// The most memory one WebSocket app's connection can make the gateway hold, whatever its client
/// and its component do (issue 23): its own state; the frame being read and a fragmented message
/// (one `--max-message-size` each); the budget (`--app-connection-budget`: events, requests,
/// outbox, delayed message, held publication, and the answer in flight's part), overrun by at
/// most the message that crossed it and the least answer ([`MIN_ANSWER`]); the answer
/// once more while its messages are made from it; the writer's buffer plus one message, which an
/// answer may make as large as the budget. The kernel's socket buffers come on top.
/// `message` is `--max-message-size`, `budget` the connection's budget.
pub fn memory_bound(message: usize, budget: usize) -> usize {
    crate::ws::CONNECTION_STATE
        + 2 * message
        + (budget + message + MIN_ANSWER)
        + budget
        + (crate::ws::WRITE_BUFFER + message.max(budget))
}

/// The longest wait between two attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// A refused handshake's body goes to the client up to this size (as Pushpin's `REJECT_BODY_MAX`).
pub const MAX_REFUSAL_BODY: usize = 100_000;

impl Settings {
    /// The wait before attempt `attempt` (2 is the first retry): the delay doubling each time,
    /// plus up to one delay of jitter so that many connections retrying at once spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self.retry_delay.saturating_mul(1 << attempt.saturating_sub(2).min(16));
        let jitter = self.retry_delay.mul_f64(rand::random::<f64>());
        (doubled + jitter).min(MAX_RETRY_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_within_bounds() {
        let settings = Settings {
            batch_bytes: 0,
            max_answer_bytes: 0,
            budget: 0,
            retries: 5,
            retry_delay: Duration::from_millis(100),
            max_subscriptions: 0,
        };
        for (attempt, low) in [(2, 100), (3, 200), (4, 400), (5, 800)] {
            let wait = settings.backoff(attempt);
            let low = Duration::from_millis(low);
            assert!(wait >= low && wait <= low + Duration::from_millis(100), "attempt {attempt}: {wait:?}");
        }
        assert_eq!(settings.backoff(40), MAX_RETRY_WAIT);
    }
}
