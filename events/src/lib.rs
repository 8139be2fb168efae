//! sidestream's wire formats, for the gateway and for any Spin component that serves WebSocket
//! apps through it: Pushpin's **WebSocket-over-HTTP** events and **GRIP** control messages. Only
//! parsing and encoding: no I/O, no async, errors as values.
//!
//! A WebSocket app in a component is an HTTP handler. The gateway holds the client's WebSocket and
//! sends its events to the component as `POST`s of `Content-Type: application/websocket-events`
//! (see [`reply`] for the headers): the first with `OPEN`, later ones with `TEXT`, `BINARY`,
//! `CLOSE` and `DISCONNECT`. The component answers `200` with events of its own: `OPEN` to accept,
//! messages for the client, control messages for the gateway (`c:` and JSON, see [`control`]),
//! `CLOSE` to close. State between requests lives in meta values (`Set-Meta-*` headers) or in a
//! store, never in the component.
//!
//! ```
//! use sidestream_events::{Event, Reply, meta_of, parse};
//!
//! fn handle(headers: &[(&str, &str)], body: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
//!     let mut reply = Reply::new(meta_of(headers.iter().copied()));
//!     for event in parse(body) {
//!         match event {
//!             Ok(Event::Open) => reply.accept(),
//!             Ok(Event::Text(text)) => reply.text(text),
//!             Ok(Event::Close(close)) => reply.close(close.map_or(1000, |c| c.code), ""),
//!             Ok(_) => {}
//!             Err(_) => reply.close(1002, "bad events"),
//!         }
//!     }
//!     reply.finish()
//! }
//! let (_, body) = handle(&[], b"OPEN\r\nTEXT 2\r\nhi\r\n");
//! assert_eq!(body, b"OPEN\r\nTEXT 2\r\nhi\r\n");
//! ```
//!
//! Build it into a Spin component like any crate: it has no platform dependencies.

pub mod control;
pub mod event;
pub mod extension;
pub mod publish;
pub mod reply;
pub mod sig;

pub use control::Control;
pub use event::{Close, Error, ErrorKind, Event, Events, encode, parse};
pub use reply::{Reply, meta_of};
