//! The one response body type every route returns, and small constructors for it.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors a streamed body can carry (from the component host or the upstream).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: a fixed buffer, or a stream from the component or upstream.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A short `text/plain` answer.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let mut response = Response::new(full(message));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum ReadError {
    /// More than the limit.
    TooLarge(usize),
    /// The body ended with an error (a reset, a stall, a deadline), kept as it came so the caller
    /// can tell which.
    Broken(BoxError),
}

/// Reads a whole body of at most `limit` bytes. What it holds meanwhile never passes `limit`:
/// the buffer doubles as it fills, but never beyond the limit (it counts against a connection's
/// memory budget).
pub async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Broken)?;
        if let Ok(data) = frame.into_data() {
            let needed = out.len() + data.len();
            if needed > limit {
                return Err(ReadError::TooLarge(limit));
            }
            if needed > out.capacity() {
                out.reserve_exact(needed.max(2 * out.capacity()).min(limit) - out.len());
            }
            out.extend_from_slice(&data);
        }
    }
    out.shrink_to_fit();
    Ok(out.into())
}
