//! WebSocket client plumbing shared by the workloads.

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers: the generator holds up to ~9,000 connections per process, and tungstenite's
/// default 128 KiB read buffer each would cost the client a gigabyte.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

/// Opens one WebSocket to `url` (`ws://host:port/path?query`) with TCP_NODELAY set, as a browser
/// would.
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let authority = authority(url)?;
    let stream = TcpStream::connect(authority).await.with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}

/// Opens one WebSocket whose socket has a receive buffer of `bytes` (set before connecting, so the
/// window is small from the start): a client that reads slowly, or not at all.
pub async fn connect_with_recv_buffer(url: &str, bytes: u32) -> anyhow::Result<Ws> {
    let authority = authority(url)?;
    let addr =
        tokio::net::lookup_host(authority).await?.next().with_context(|| format!("resolving {authority}"))?;
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_recv_buffer_size(bytes)?;
    let stream = socket.connect(addr).await.with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}

/// `host:port` of a `ws://` or `http://` URL (the bench only ever talks to loopback).
pub fn authority(url: &str) -> anyhow::Result<&str> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(|| format!("{url}: only ws:// and http:// URLs"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if !authority.contains(':') {
        bail!("{url}: give the port explicitly");
    }
    Ok(authority)
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp such as
/// `2025-11-28T07:55:00.123Z` or `...+01:00` (what the gateway puts in a push's `ts`).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = padded.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the Unix epoch, for lateness finer than the `ts` field's milliseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms_the_gateway_may_emit() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339_ms("2025-11-28T07:55:00.123Z"), Some(1_764_316_500_123));
        assert_eq!(parse_rfc3339_ms("2025-11-28T08:55:00.123+01:00"), Some(1_764_316_500_123));
        assert_eq!(parse_rfc3339_ms("2025-11-28T07:55:00.123456Z"), Some(1_764_316_500_123));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn authority_of_urls() {
        assert_eq!(authority("ws://127.0.0.1:9/ws?push=off").unwrap(), "127.0.0.1:9");
        assert_eq!(authority("http://127.0.0.1:80/").unwrap(), "127.0.0.1:80");
        assert!(authority("wss://x:1/").is_err());
    }
}
