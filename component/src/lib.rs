//! sidestream's Spin HTTP component: the browser page, its assets and `/health`.
//!
//! Build: `cargo build -p sidestream-component --target wasm32-wasip2 --release`
//! (or `spin build`); run: `spin up`, or `make run` for the whole app.
//!
//! The SDK handler below is a thin shell; every decision lives in the pure [`respond`] function so it
//! is unit-tested on the host without a wasm runtime. Routing reads only the request URI path and
//! standard headers, never Spin-only ones, so the same `.wasm` runs on `spin up`, on the SpinKube shim
//! and on any `wasi:http` host.

mod assets;
#[cfg(feature = "fault-injection")]
mod fault;
mod negotiate;
mod respond;

pub use respond::{Reply, RequestHead, respond};

#[allow(unsafe_code)] // the SDK's export macro generates the ABI glue
mod export {
    use super::{RequestHead, respond};

    #[spin_sdk::http_component]
    fn handle(req: spin_sdk::http::Request) -> spin_sdk::http::Response {
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = super::fault::parse(req.path(), req.query()) {
            return super::fault::inject(fault);
        }
        let method = req.method().to_string();
        let header = |name: &str| req.header(name).and_then(|v| v.as_str());
        let head = RequestHead {
            method: &method,
            path: req.path(),
            accept_encoding: header("accept-encoding"),
            if_none_match: header("if-none-match"),
        };
        let reply = respond(&head);
        let mut builder = spin_sdk::http::Response::builder();
        builder.status(reply.status);
        for (name, value) in reply.headers {
            builder.header(name, value);
        }
        builder.body(reply.body.to_vec()).build()
    }
}
