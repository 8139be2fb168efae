//! What a guest's Store holds for one request, and the one outbound request it may make: a publish
//! to the gateway's own publish API, served in-process.

use std::sync::Arc;

use http::Request;
use http_body_util::{BodyExt, Full};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::limits::InstanceLimiter;
use super::variables::{self, Variables};
use crate::publish::Publisher;

/// Per-request state inside the Store.
pub(super) struct State {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub limits: InstanceLimiter,
    pub hooks: Outbound,
    pub variables: Variables,
}

impl variables::Host for State {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        self.variables.get(&name)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The one origin the component may reach: the gateway's publish API, as `spin.toml`'s
/// `allowed_outbound_hosts` names it. Embedded, it is served in-process whatever port the admin
/// listener has; every other outbound request is denied.
pub const PUBLISH_ORIGIN: &str = "127.0.0.1:9090";

/// The embedded component's `publish_url` variable: the in-process publish API.
pub const PUBLISH_URL: &str = "http://127.0.0.1:9090/publish/";

/// The guest's outbound HTTP: publishes served in-process, anything else denied.
pub(super) struct Outbound {
    pub publisher: Arc<Publisher>,
}

/// The headers a guest never sees and never sends: wasmtime-wasi-http's own list.
fn forbidden(name: &http::HeaderName) -> bool {
    static FORBIDDEN: [http::HeaderName; 9] = wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS;
    FORBIDDEN.contains(name)
}

impl WasiHttpHooks for Outbound {
    /// [`forbidden`], checked in place: the crate's default makes a new closure (one allocation)
    /// for every header of every request and response.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        forbidden(name)
    }

    /// The same check as a closure, for the paths that take one (`wasi:http` 0.3's trailers), so
    /// the two can never disagree.
    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        Arc::new(forbidden)
    }

    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        let publisher = self.publisher.clone();
        Box::new(async move {
            let to_publish = request.uri().scheme_str() == Some("http")
                && request.uri().authority().is_some_and(|a| a.as_str() == PUBLISH_ORIGIN)
                && crate::routes::admin_route(request.uri().path()) == crate::routes::Route::Publish;
            if !to_publish {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let (parts, body) = request.into_parts();
            // Read as the admin route reads it: at most MAX_BODY, else a 413 like there.
            let response = match http_body_util::Limited::new(body, crate::publish::MAX_BODY).collect().await
            {
                Ok(collected) => {
                    // In-process: only the gateway's own component can make this call.
                    let request = Request::from_parts(parts, collected.to_bytes());
                    publisher.handle(request, crate::publish::Caller::InProcess).await
                }
                Err(error) if error.is::<http_body_util::LengthLimitError>() => publisher.too_large(),
                Err(_) => return Err(wasmtime_wasi_http::Error::HttpRequestDenied),
            };
            let response = response.map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    /// Through the hooks wasmtime-wasi-http calls: both forms forbid the crate's list, and let
    /// the headers the gateway and its apps use through.
    #[tokio::test]
    async fn the_forbidden_headers_are_the_crates_and_only_those() {
        let mut hooks = Outbound { publisher: Arc::new(crate::publish::Publisher::in_memory(None)) };
        let filter = hooks.forbidden_header_filter();
        for name in wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS {
            assert!(hooks.is_forbidden_header(&name) && filter(&name), "{name} is forbidden");
        }
        for name in ["content-type", "grip-sig", "connection-id", "meta-user", "accept", "authorization"] {
            let name = HeaderName::from_static(name);
            assert!(!hooks.is_forbidden_header(&name) && !filter(&name), "{name} reaches the guest");
        }
    }
}
