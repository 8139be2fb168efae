//! Only the gateway speaks for a connection, with the example apps too: each refuses a
//! WebSocket-events request whose `Grip-Sig` is missing (`401`) or not the gateway's (`403`: another
//! key, expired, `alg: none`, HS512, garbage) before reading anything of it, and accepts the
//! gateway's own. (Through a gateway, forgeries reaching nobody: `examples.rs`.)
//!
//! `cargo test -p sidestream-gateway --test examples_sig`, after `make examples`.

// It runs the examples in the embedded host: nothing to test in the sidecar build.
#![cfg(feature = "wasm-host")]

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use common::examples::{Example, PYTHON, TYPESCRIPT, bad_signatures, now};
use common::within;
use sidestream_events::sig;
use sidestream_gateway::Config;
use sidestream_gateway::backend::Metrics;
use sidestream_gateway::backend::host::Host;
use sidestream_gateway::channels::Channels;
use sidestream_gateway::drain::Tasks;
use sidestream_gateway::publish::{self, Publisher};
use sidestream_gateway::server::settings;

const KEY: &str = "the-key-these-tests-sign-with-0123456789";

/// The example loaded by the gateway's host, which gives it `KEY` as its `grip_key`, called
/// directly: nothing between the test and the component adds or removes a header.
struct Direct {
    host: Host,
    metrics: Arc<Metrics>,
}

impl Direct {
    fn load(example: Example) -> Self {
        let path = example.path();
        let config = Config::try_parse_from(["sidestream-gateway", "--component", &path]).expect("config");
        let registry = &mut sidestream_gateway::metrics::registry();
        let channels = Channels::new(settings::channels(&config), None, Arc::default(), &Tasks::default())
            .expect("the in-memory broker");
        let publisher = Arc::new(Publisher::new(
            channels.broker.clone(),
            None,
            config.max_message_size,
            config.header_read_timeout,
            publish::Metrics::default(),
        ));
        let metrics = Arc::new(Metrics::register(registry));
        let host = Host::load(Path::new(&path), &settings::host(&config), publisher, KEY)
            .expect("the example loads");
        Direct { host, metrics }
    }

    /// An `OPEN` of `/echo` and one message, with this `Grip-Sig`: the status and body.
    async fn open(&self, signature: Option<&str>) -> (u16, Bytes) {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("/echo")
            .header("content-type", "application/websocket-events")
            .header("accept", "application/websocket-events")
            .header("host", "127.0.0.1")
            .header("connection-id", "c-1");
        if let Some(signature) = signature {
            request = request.header("grip-sig", signature);
        }
        let request = request.body(Bytes::from_static(b"OPEN\r\nTEXT 2\r\nhi\r\n")).expect("a request");
        let response = within("the example answers", self.host.exchange(request, 1 << 20, &self.metrics))
            .await
            .expect("an answer");
        (response.status().as_u16(), response.into_body())
    }
}

async fn refuses_what_the_gateway_did_not_sign(example: Example) {
    let direct = Direct::load(example);
    let name = example.name;
    let (status, body) = direct.open(Some(&sig::sign(KEY.as_bytes(), sig::ISSUER, now() + 300))).await;
    assert_eq!(status, 200, "{name}: the gateway's own signature: {}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(b"OPEN\r\n"), "{name}: accepted: {}", String::from_utf8_lossy(&body));
    assert_eq!(direct.open(None).await.0, 401, "{name}: no signature");
    for (what, signature) in bad_signatures(KEY) {
        let (status, body) = direct.open(Some(&signature)).await;
        assert_eq!(status, 403, "{name}: {what}: {}", String::from_utf8_lossy(&body));
        assert!(!body.starts_with(b"OPEN"), "{name}: {what}: refused before any event is read");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_apps_refuse_what_the_gateway_did_not_sign() {
    refuses_what_the_gateway_did_not_sign(TYPESCRIPT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_apps_refuse_what_the_gateway_did_not_sign() {
    refuses_what_the_gateway_did_not_sign(PYTHON).await;
}
