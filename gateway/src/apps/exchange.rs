//! One request of a WebSocket app on its way to the component, and its answer to come.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::Response;
use tokio::time::Instant;

use super::metrics::{RequestKind, RequestResult};
use crate::backend::ExchangeError;

/// An answer on its way, as a future the connection polls.
pub type AnswerFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, ExchangeError>> + Send>>;

/// A request in flight: what it carries (for another attempt) and its answer to come.
pub struct InFlight {
    pub kind: RequestKind,
    pub body: Bytes,
    pub attempt: u32,
    pub answer: AnswerFuture,
    /// When it was sent, for the `total` stage ([`crate::stages`]).
    pub sent: Instant,
}

impl InFlight {
    /// Waits for the answer of a request whose connection has ended.
    pub async fn finish(self) -> Result<Response<Bytes>, ExchangeError> {
        self.answer.await
    }
}

/// How a failed exchange is counted.
pub fn result_label(error: &ExchangeError) -> RequestResult {
    match error {
        ExchangeError::Unavailable(_) => RequestResult::Unavailable,
        ExchangeError::Timeout => RequestResult::Timeout,
        ExchangeError::Failed(_) | ExchangeError::TooLarge(_) => RequestResult::Failed,
    }
}
