//! Peer (a) for `sidestream-bench`: the minimal tokio-tungstenite echo server. With default
//! settings (default runtime, default `WebSocketConfig`, no TCP_NODELAY) it is the baseline the
//! gateway tunes away from. With `--tuned` it gets the gateway's buffer sizes and TCP_NODELAY and
//! nothing else (no timers, pushes, metrics, backpressure or drain): the floor of this stack, so the
//! suite shows what the gateway's own loop costs on top of it.
//!
//! Run: `cargo run --release -p sidestream-bench --bin tungstenite-echo -- [ADDR] [--tuned]`
//! (default `127.0.0.1:0`). Prints `listening addr=HOST:PORT` once bound.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addr = "127.0.0.1:0".to_string();
    let mut tuned = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--tuned" => tuned = true,
            _ => addr = arg,
        }
    }
    let listener = TcpListener::bind(&addr).await?;
    println!("listening addr={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(echo(stream, tuned));
    }
}

async fn echo(stream: TcpStream, tuned: bool) {
    let config = tuned.then(|| {
        let _ = stream.set_nodelay(true);
        // The gateway's sizes (gateway/src/ws/mod.rs).
        WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(8 * 1024)
    });
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, config).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}
