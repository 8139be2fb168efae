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
mod incoming;
mod negotiate;
mod query;
mod respond;

pub use respond::{Reply, RequestHead, respond};

#[allow(unsafe_code)] // the SDK's export macro generates the ABI glue
mod export {
    use spin_sdk::http::{IncomingRequest, OutgoingResponse, Request, Response, ResponseOutparam};

    use super::incoming::Head;
    use super::{RequestHead, respond};

    /// The raw wasi-http form of the handler (request and response out-parameter), so a response
    /// can also be streamed: only the fault-injection build does that.
    #[spin_sdk::http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = super::fault::parse(&req.path_with_query().unwrap_or_default()) {
            return super::fault::inject(fault, out).await;
        }
        let head = Head::of(&req);
        let response = if super::apps::is_websocket_events(&head.method, head.header("content-type")) {
            match req.into_body().await {
                Ok(body) => app(&head, &body).await.unwrap_or_else(|| reply(&head)),
                Err(_) => Response::new(400, "cannot read the request\n"),
            }
        } else {
            reply(&head)
        };
        send(out, response).await;
    }

    /// A WebSocket-over-HTTP request for one of the apps, answered by it (after its publish), if
    /// the gateway signed it.
    async fn app(req: &Head, body: &[u8]) -> Option<Response> {
        let keys = match keys() {
            Ok(keys) => keys,
            Err(error) => {
                eprintln!("the component's variables are not set: {error}");
                return Some(Response::new(500, "the component is not configured\n"));
            }
        };
        let signature = req.header(sidestream_events::sig::HEADER);
        if let Err(refusal) = super::apps::authenticate(signature, &keys, now_ms() / 1000) {
            return Some(build(refusal.answer));
        }
        let meta = sidestream_events::meta_of(req.headers());
        #[cfg(feature = "fault-injection")]
        if req.path() == super::fault_app::PATH {
            let attempt = req.header("sidestream-attempt").and_then(|v| v.parse().ok());
            return Some(build(super::fault_app::handle(req.query(), attempt.unwrap_or(1), meta, body)));
        }
        let request = super::apps::Request {
            path: req.path(),
            query: req.query(),
            connection_id: req.header("connection-id").unwrap_or(""),
            meta,
            body,
        };
        let super::apps::Outcome { mut answer, publish } = super::apps::handle(request, now_ms())?;
        if let Some(publish) = publish
            && !published(publish.body).await
        {
            answer.body.extend_from_slice(&publish.if_failed);
        }
        Some(build(answer))
    }

    /// The keys a request may be signed with: the Spin variables `grip_key` and, during a
    /// rotation, `grip_key_previous`.
    fn keys() -> Result<Vec<String>, spin_sdk::variables::Error> {
        use spin_sdk::variables::get;
        let previous = get("grip_key_previous")?;
        Ok(std::iter::once(get("grip_key")?).chain((!previous.is_empty()).then_some(previous)).collect())
    }

    /// Where to publish (see [`super::apps::Publishing`]).
    fn publishing() -> Result<super::apps::Publishing, spin_sdk::variables::Error> {
        use spin_sdk::variables::get;
        Ok(super::apps::Publishing { url: get("publish_url")?, token: get("publish_token")? })
    }

    /// Posts a publish body to the gateway; whether it took it.
    async fn published(body: String) -> bool {
        let publishing = match publishing() {
            Ok(publishing) => publishing,
            Err(error) => {
                eprintln!("the component's publish variables are not set: {error}");
                return false;
            }
        };
        let mut request = Request::builder();
        request
            .method(spin_sdk::http::Method::Post)
            .uri(publishing.url.as_str())
            .header("content-type", "application/json");
        if !publishing.token.is_empty() {
            request.header("authorization", format!("Bearer {}", publishing.token));
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

    fn reply(req: &Head) -> Response {
        let head = RequestHead {
            method: &req.method,
            path: req.path(),
            accept_encoding: req.header("accept-encoding"),
            if_none_match: req.header("if-none-match"),
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
