//! The WebSocket-over-HTTP event parser and the GRIP control message parser
//! (`sidestream_events::parse`, `Control::parse`), fed whatever a component might answer.
//!
//! Besides not panicking: the events read before an error (or all of them) encode to a body that
//! parses back to the same events, and that body is no longer than what was read; a control
//! message that parses encodes to one that parses to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidestream_events::{Control, Event, encode, parse};

fuzz_target!(|data: &[u8]| {
    let events: Vec<Event<'_>> = parse(data).map_while(Result::ok).collect();
    let body = encode(&events);
    let again: Vec<Event<'_>> = parse(&body).collect::<Result<_, _>>().expect("an encoding parses");
    assert_eq!(again, events);
    assert!(body.len() <= data.len() + 3 * events.len(), "encoding grew: {} -> {}", data.len(), body.len());

    if let Ok(control) = Control::parse(data) {
        let encoded = control.encode();
        let json = encoded.strip_prefix("c:").expect("the control prefix");
        assert_eq!(Control::parse(json.as_bytes()), Ok(control));
    }
});
