//! WebSocket apps in the component, over real sockets: the gateway turns each connection's events
//! into WebSocket-over-HTTP requests to the real component, embedded (this file) and upstream.

mod common;

use common::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn echo_app_answers_through_the_component() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let mut ws = gw.ws("/echo").await;
    send(&mut ws, Message::text("hi")).await;
    assert_eq!(next_data(&mut ws).await, Message::text(r#"{"type":"echo","n":1,"text":"hi"}"#));
    send(&mut ws, Message::text("again")).await;
    assert_eq!(next_data(&mut ws).await, Message::text(r#"{"type":"echo","n":2,"text":"again"}"#));
    gw.stop().await;
}
