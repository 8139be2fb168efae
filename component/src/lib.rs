//! sidestream's Spin HTTP component: the browser page, its assets and `/health`.
//!
//! Build: `cargo build -p sidestream-component --target wasm32-wasip2 --release`
//! (or `spin build`); run: `spin up`, or `make run` for the whole app.
//!
//! The SDK handler below is a thin shell; every decision lives in the pure [`respond`] function so it
//! is unit-tested on the host without a wasm runtime. Routing reads only the request URI path and
//! standard headers, never Spin-only ones, so the same `.wasm` runs on `spin up`, on the SpinKube shim
//! and on any `wasi:http` host.

pub mod apps;
mod assets;
#[cfg(feature = "fault-injection")]
mod fault;
#[cfg(feature = "fault-injection")]
mod fault_app;
mod negotiate;
mod query;
mod respond;

pub use respond::{Reply, RequestHead, respond};

#[allow(unsafe_code)] // the SDK's export macro generates the ABI glue
mod export {
    use spin_sdk::http::conversions::TryFromIncomingRequest;
    use spin_sdk::http::{IncomingRequest, OutgoingResponse, Request, Response, ResponseOutparam};

    use super::{RequestHead, respond};

    /// The raw wasi-http form of the handler (request and response out-parameter), so a response
    /// can also be streamed: only the fault-injection build does that.
    #[spin_sdk::http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = super::fault::parse(&req.path_with_query().unwrap_or_default()) {
            return super::fault::inject(fault, out).await;
        }
        let response = match Request::try_from_incoming_request(req).await {
            Ok(req) => match app(&req).await {
                Some(response) => response,
                None => reply(&req),
            },
            Err(_) => Response::new(400, "cannot read the request\n"),
        };
        send(out, response).await;
    }

    /// A WebSocket-over-HTTP request for one of the apps, answered by it (after its publish), if
    /// the gateway signed it.
    async fn app(req: &Request) -> Option<Response> {
        let content_type = req.header("content-type").and_then(|v| v.as_str());
        if !super::apps::is_websocket_events(&req.method().to_string(), content_type) {
            return None;
        }
        let settings = match settings() {
            Ok(settings) => settings,
            Err(error) => {
                eprintln!("the component's variables are not set: {error}");
                return Some(Response::new(500, "the component is not configured\n"));
            }
        };
        let signature = req.header(sidestream_events::sig::HEADER).and_then(|v| v.as_str());
        if let Err(refusal) = super::apps::authenticate(signature, &settings.keys, now_ms() / 1000) {
            return Some(build(refusal.answer));
        }
        let meta = sidestream_events::meta_of(
            req.headers().filter_map(|(name, value)| Some((name, value.as_str()?))),
        );
        #[cfg(feature = "fault-injection")]
        if req.path() == super::fault_app::PATH {
            let attempt = req.header("sidestream-attempt").and_then(|v| v.as_str()?.parse().ok());
            return Some(build(super::fault_app::handle(
                req.query(),
                attempt.unwrap_or(1),
                meta,
                req.body(),
            )));
        }
        let request = super::apps::Request {
            path: req.path(),
            query: req.query(),
            connection_id: req.header("connection-id").and_then(|v| v.as_str()).unwrap_or(""),
            meta,
            body: req.body(),
        };
        let super::apps::Outcome { mut answer, publish } = super::apps::handle(request, now_ms())?;
        if let Some(publish) = publish
            && !published(&settings, publish.body).await
        {
            answer.body.extend_from_slice(&publish.if_failed);
        }
        Some(build(answer))
    }

    /// The component's Spin variables (see [`super::apps::Settings`]).
    fn settings() -> Result<super::apps::Settings, spin_sdk::variables::Error> {
        use spin_sdk::variables::get;
        let previous = get("grip_key_previous")?;
        let keys = std::iter::once(get("grip_key")?).chain((!previous.is_empty()).then_some(previous));
        Ok(super::apps::Settings {
            keys: keys.collect(),
            publish_url: get("publish_url")?,
            publish_token: get("publish_token")?,
        })
    }

    /// Posts a publish body to the gateway; whether it took it.
    async fn published(settings: &super::apps::Settings, body: String) -> bool {
        let mut request = Request::builder();
        request
            .method(spin_sdk::http::Method::Post)
            .uri(settings.publish_url.as_str())
            .header("content-type", "application/json");
        if !settings.publish_token.is_empty() {
            request.header("authorization", format!("Bearer {}", settings.publish_token));
        }
        let request = request.body(body).build();
        match spin_sdk::http::send::<_, Response>(request).await {
            Ok(response) if *response.status() == 200 => true,
            Ok(response) => {
                eprintln!("the gateway did not take a publish: {}", response.status());
                false
            }
            Err(error) => {
                eprintln!("cannot reach the gateway to publish: {error}");
                false
            }
        }
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn build(answer: super::apps::Answer) -> Response {
        let mut builder = Response::builder();
        builder.status(answer.status);
        for (name, value) in answer.headers {
            builder.header(name, value);
        }
        builder.body(answer.body).build()
    }

    fn reply(req: &Request) -> Response {
        let method = req.method().to_string();
        let header = |name: &str| req.header(name).and_then(|v| v.as_str());
        let head = RequestHead {
            method: &method,
            path: req.path(),
            accept_encoding: header("accept-encoding"),
            if_none_match: header("if-none-match"),
        };
        let reply = respond(&head);
        let mut builder = Response::builder();
        builder.status(reply.status);
        for (name, value) in reply.headers {
            builder.header(name, value);
        }
        builder.body(reply.body.to_vec()).build()
    }

    /// Sends a whole response (what the SDK's one-argument handler form does for it).
    pub(crate) async fn send(out: ResponseOutparam, mut response: Response) {
        let body = std::mem::take(response.body_mut());
        match OutgoingResponse::try_from(response) {
            Ok(response) => {
                if let Err(error) = out.set_with_body(response, body).await {
                    eprintln!("cannot send the response: {error}");
                }
            }
            Err(error) => eprintln!("cannot build the response: {error}"),
        }
    }
}
