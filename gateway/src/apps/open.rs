//! A WebSocket upgrade to a path of the component: the handshake becomes the `OPEN` request, and
//! the component's answer either accepts it (the client gets its `101`, with the component's
//! `Sec-WebSocket-Protocol` and other headers) or refuses it (the client gets that status, headers
//! and body: this is where an app authenticates). The gateway's own checks come first, exactly as
//! for `/ws`: the handshake, the Origin, the drain, `--max-connections`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tracing::{debug_span, warn};

use super::conn::ComponentApp;
use super::context::AppContext;
use super::exchange::result_label;
use super::metrics::{RequestKind, RequestResult};
use super::session::{Opened, Session};
use crate::backend::ExchangeError;
use crate::body::{self, Body};
use crate::ws::metrics::Reject;

/// Answers a WebSocket upgrade for the component's app at the request's path.
pub async fn open(cx: &Arc<AppContext>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let admitted = match cx.admission.admit(&req, peer) {
        Ok(admitted) => admitted,
        Err(turned_away) => return turned_away.response(),
    };
    let id = admitted.slot.id;
    // The component sees what any proxied request shows it: forwarding headers as the gateway
    // vouches for them.
    let mut headers = req.headers().clone();
    cx.backend.proxies().rewrite(&mut headers, peer);
    let mut session = Session::new(req.uri(), &headers);
    let metrics = &cx.metrics;
    let answer = match cx.backend.exchange(session.open_request(), cx.settings.max_answer_bytes).await {
        Ok(answer) => answer,
        Err(error) => {
            let status = match error {
                ExchangeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                ExchangeError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ExchangeError::Failed(_) | ExchangeError::TooLarge(_) => StatusCode::BAD_GATEWAY,
            };
            metrics.request(RequestKind::Open, result_label(&error));
            cx.admission.reject(Reject::App);
            warn!(conn = id, %error, "WebSocket app did not answer its OPEN");
            return body::text(status, "the WebSocket app did not answer");
        }
    };
    let (headers, actions, ignored) = match session.open(answer) {
        Ok(Opened::Accepted { headers, actions, ignored }) => (headers, actions, ignored),
        Ok(Opened::Refused(refusal)) => {
            metrics.request(RequestKind::Open, RequestResult::Refused);
            cx.admission.reject(Reject::App);
            return refused(refusal);
        }
        Err(failure) => {
            metrics.request(RequestKind::Open, RequestResult::BadAnswer);
            cx.admission.reject(Reject::App);
            warn!(conn = id, ?failure, "WebSocket app answered its OPEN badly");
            return body::text(StatusCode::BAD_GATEWAY, "the WebSocket app answered badly");
        }
    };
    metrics.request(RequestKind::Open, RequestResult::Ok);

    let app = ComponentApp::new(cx.clone(), id, session, actions);
    app.count_ignored(&ignored);
    let mut response = admitted.serve(&mut req, app, debug_span!("app", conn = id, %peer));
    for (name, value) in &headers {
        if !matches!(*name, header::UPGRADE | header::CONNECTION | header::SEC_WEBSOCKET_ACCEPT) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// The component's refusal, as the client gets it (its body clipped like Pushpin's).
fn refused(refusal: Response<Bytes>) -> Response<Body> {
    let (parts, mut bytes) = refusal.into_parts();
    bytes.truncate(super::MAX_REFUSAL_BODY);
    Response::from_parts(parts, body::full(bytes))
}
