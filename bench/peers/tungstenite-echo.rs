//! Peer (a) for `sidestream-bench`: the minimal tokio-tungstenite echo server with default
//! settings (default runtime, default `WebSocketConfig`, no TCP_NODELAY), the baseline the gateway
//! tunes away from.
//!
//! Run: `cargo run --release -p sidestream-bench --bin tungstenite-echo -- [ADDR]` (default
//! `127.0.0.1:0`). Prints `listening addr=HOST:PORT` once bound.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening addr={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(echo(stream));
    }
}

async fn echo(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}
