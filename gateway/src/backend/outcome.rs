//! What the component's side answers besides responses: why an app's request got no answer, and
//! what a reload did. Below both children of [`super`], so the host and the proxy name them
//! without naming the backend.

/// Why a WebSocket app's request got no answer to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// The component could not be reached, or had no instance free: worth another attempt.
    Unavailable(String),
    /// No answer within the deadline.
    Timeout,
    /// It failed: a trap, a broken connection.
    Failed(String),
    /// Its answer's body was over this many bytes (the request's limit), and was not kept.
    TooLarge(usize),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Unavailable(why) => write!(f, "the component is unavailable: {why}"),
            ExchangeError::Timeout => f.write_str("the component did not answer in time"),
            ExchangeError::Failed(why) => write!(f, "the component failed: {why}"),
            ExchangeError::TooLarge(limit) => write!(f, "the component's answer is over {limit} bytes"),
        }
    }
}

/// What a reload of the component did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// A new version serves from now on.
    Swapped,
    /// The file holds the version already serving.
    Unchanged,
    /// The component runs upstream: its runtime deploys new versions, not the gateway.
    Upstream,
}
