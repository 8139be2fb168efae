//! A WebSocket app run by the test itself, as an upstream: it records every request it gets and
//! answers like a plain echo app (GRIP, no prefix, counting in `Set-Meta-N`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sidestream_events::{Event, parse};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::within;

/// What the recording app saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub events: Vec<String>,
    pub body: Bytes,
}

/// How the recording app answers.
#[derive(Clone, Default)]
pub struct Script {
    /// `Keep-Alive-Interval` on the OPEN's answer.
    pub keep_alive: Option<u64>,
    /// Fail this many attempts at a connection's last event with 500.
    pub last_fails: u32,
    /// Wait this long before answering a request with messages.
    pub delay: Option<Duration>,
}

/// A WebSocket app run by the test itself, as an upstream: it records every request and answers
/// like a plain echo app (GRIP, no prefix, counting in `Set-Meta-N`).
pub struct AppRecorder {
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AppRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AppRecorder {
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, script) = (tx.clone(), script.clone());
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let (tx, script) = (tx.clone(), script.clone());
                    async move { Ok::<_, hyper::Error>(answer(req, &tx, &script).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AppRecorder { addr, seen, task }
    }

    pub async fn next(&mut self) -> Seen {
        within("the app sees a request", self.seen.recv()).await.expect("recorder running")
    }

    /// The next request that carries `event`, skipping others.
    pub async fn next_with(&mut self, event: &str) -> Seen {
        loop {
            let seen = self.next().await;
            if seen.events.iter().any(|e| e == event) {
                return seen;
            }
        }
    }

    /// One `DISCONNECT` for each connection of `ids` (a dead gateway's, sent by a reaper), each
    /// with the meta its app set last (`n=1`), and none for another connection or twice.
    pub async fn disconnects_of(&mut self, ids: &std::collections::HashSet<String>) {
        let mut disconnected = std::collections::HashSet::new();
        while disconnected.len() < ids.len() {
            let seen = self.next_with("DISCONNECT").await;
            let id = seen.headers["connection-id"].to_str().unwrap().to_owned();
            assert!(ids.contains(&id), "a DISCONNECT for one of the dead gateway's connections, not {id}");
            let meta = seen.headers.get("meta-n").map(|n| n.as_bytes());
            assert_eq!(meta, Some(&b"1"[..]), "the app's latest meta");
            assert!(disconnected.insert(id), "one DISCONNECT each");
        }
    }
}

async fn answer(
    req: http::Request<Incoming>,
    tx: &mpsc::UnboundedSender<Seen>,
    script: &Script,
) -> Response<Full<Bytes>> {
    if req.uri().path() == "/health" {
        // The gateway's health check of its upstream: not the app's business, not recorded.
        return Response::new(Full::new(Bytes::new()));
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let events: Vec<Event<'_>> = parse(&body).collect::<Result<_, _>>().unwrap_or_default();
    let names = events.iter().map(|e| e.name().to_owned()).collect::<Vec<_>>();
    let attempt: u32 =
        parts.headers.get("sidestream-attempt").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
    let _ = tx.send(Seen {
        at: Instant::now(),
        path: parts.uri.to_string(),
        headers: parts.headers.clone(),
        events: names.clone(),
        body: body.clone(),
    });
    let last = names.iter().any(|n| n == "CLOSE" || n == "DISCONNECT");
    if last && attempt <= script.last_fails {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not now")));
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        return r;
    }
    if names.iter().any(|n| n == "TEXT")
        && let Some(delay) = script.delay
    {
        tokio::time::sleep(delay).await;
    }
    let meta = sidestream_events::meta_of(
        parts.headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    );
    let mut reply = sidestream_events::Reply::new(meta);
    let mut n: u64 = reply.meta("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    for event in &events {
        match event {
            Event::Open => {
                reply.accept();
                if let Some(seconds) = script.keep_alive {
                    reply.keep_alive_every(seconds);
                }
            }
            Event::Text(text) => {
                n += 1;
                reply.text(text);
            }
            Event::Close(close) => reply.close(close.map_or(1000, |c| c.code), "bye"),
            _ => {}
        }
    }
    reply.set_meta("n", &n.to_string());
    let (headers, body) = reply.finish();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    for (name, value) in headers {
        r.headers_mut()
            .append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    r
}
