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

use tracing::{Instrument, debug, debug_span, warn};

use super::conn::ComponentApp;
use super::session::{Opened, Session};
use crate::backend::ExchangeError;
use crate::body::{self, Body};
use crate::server::Shared;
use crate::ws::handler::{End, Handler};
use crate::ws::upgrade::{Admitted, admit, switching_protocols, take_socket};
use crate::ws::websocket::WebSocket;

/// Answers a WebSocket upgrade for the component's app at the request's path.
pub async fn open(shared: &Arc<Shared>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let Admitted { slot, drain, accept } = match admit(shared, &req, peer) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.response(),
    };
    let id = slot.id;
    // The component sees what any proxied request shows it: forwarding headers as the gateway
    // vouches for them.
    let mut headers = req.headers().clone();
    shared.backend.proxies().rewrite(&mut headers, peer);
    let mut session = Session::new(req.uri(), &headers);
    let metrics = &shared.metrics;
    let answer =
        match shared.backend.exchange(session.open_request(), shared.apps.max_answer_bytes, metrics).await {
            Ok(answer) => answer,
            Err(error) => {
                let (result, status) = match error {
                    ExchangeError::Unavailable(_) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
                    ExchangeError::Timeout => ("timeout", StatusCode::GATEWAY_TIMEOUT),
                    ExchangeError::Failed(_) | ExchangeError::TooLarge(_) => {
                        ("failed", StatusCode::BAD_GATEWAY)
                    }
                };
                metrics.app_request("open", result);
                metrics.reject("app");
                warn!(conn = id, %error, "WebSocket app did not answer its OPEN");
                return body::text(status, "the WebSocket app did not answer");
            }
        };
    let (headers, actions, ignored) = match session.open(answer) {
        Ok(Opened::Accepted { headers, actions, ignored }) => (headers, actions, ignored),
        Ok(Opened::Refused(refusal)) => {
            metrics.app_request("open", "refused");
            metrics.reject("app");
            return refused(refusal);
        }
        Err(failure) => {
            metrics.app_request("open", "bad_answer");
            metrics.reject("app");
            warn!(conn = id, ?failure, "WebSocket app answered its OPEN badly");
            return body::text(StatusCode::BAD_GATEWAY, "the WebSocket app answered badly");
        }
    };
    metrics.app_request("open", "ok");

    let app = ComponentApp::new(shared.clone(), id, session, actions);
    app.count_ignored(&ignored);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let settings = shared.ws.clone();
    let cx =
        crate::ws::conn::Context { id, settings: settings.clone(), metrics: shared.metrics.clone(), drain };
    let span = debug_span!("app", conn = id, %peer);
    shared.drain.websockets.spawn(
        async move {
            let _slot = slot;
            let Some((io, early)) = take_socket(on_upgrade, id, settings.socket_buffer).await else {
                // Accepted, but the client left before its socket was ours: the app still hears
                // that the connection ended.
                app.on_end(End { by: None, client_close: None });
                return;
            };
            debug!(conn = id, "app opened");
            let ws = WebSocket::new(io, early, settings.protocol);
            crate::ws::conn::serve(ws, cx, app).await;
        }
        .instrument(span),
    );

    let mut response = switching_protocols(&accept);
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
