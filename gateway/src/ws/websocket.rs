//! A WebSocket on a TCP stream: tungstenite's protocol layer, driven from the connection task.
//!
//! tungstenite speaks the protocol over blocking-style `Read` and `Write`. tokio-tungstenite's
//! `WebSocketStream` adapts that to async with a waker proxy: before each call it registers the
//! task's waker in one of two `AtomicWaker`s and gives the socket a waker of its own that wakes
//! both (tokio-tungstenite issue 163). Here the connection task's own [`Context`] reaches the socket
//! for the length of each call instead ([`Io`]): when tungstenite reports `WouldBlock`, the socket
//! has registered that task's waker with tokio, and nothing more is needed.
//!
//! The calls read like a `Stream` and a `Sink` of messages ([`WebSocket::poll_read`],
//! [`WebSocket::poll_ready`], [`WebSocket::start_send`], [`WebSocket::poll_flush`]), with the same
//! rules: a message is handed over only when the writer is ready, and a flush writes out what
//! tungstenite has buffered.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

/// One accepted WebSocket: its socket and tungstenite's state for it.
#[derive(Debug)]
pub struct WebSocket {
    socket: TcpStream,
    protocol: WebSocketContext,
    /// A write found the socket full: bytes wait in tungstenite's buffer, and the next message
    /// waits until a flush has written them out.
    blocked: bool,
}

impl WebSocket {
    /// A server-side WebSocket on `socket`, whose client already sent `early` (the bytes that came
    /// right behind its handshake).
    pub fn new(socket: TcpStream, early: Vec<u8>, config: WebSocketConfig) -> Self {
        WebSocket {
            socket,
            protocol: WebSocketContext::from_partially_read(early, Role::Server, Some(config)),
            blocked: false,
        }
    }

    /// The next message from the client; `None` once the stream has ended. Pings are answered and
    /// a Close is replied to inside tungstenite (the replies go out with the next flush). After
    /// `None` or an error the connection loop reads no more.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        match self.protocol.read(&mut Io { socket: &mut self.socket, cx }) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(error) if would_block(&error) => Poll::Pending,
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    /// Whether the writer takes another message now: nothing waits in it for the socket.
    pub fn is_ready(&self) -> bool {
        !self.blocked
    }

    /// Ready when the writer takes another message, flushing what waits in it first.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        if self.blocked { self.poll_flush(cx) } else { Poll::Ready(Ok(())) }
    }

    /// Hands a message to tungstenite, which frames it into its buffer (writing the buffer out once
    /// it passes the configured size). A socket that is full takes nothing now: the bytes stay in
    /// the buffer and [`Self::poll_flush`], which must follow, writes them when it is ready.
    pub fn start_send(&mut self, message: Message) -> Result<(), WsError> {
        // No task waits on this call; the flush that follows registers the task's waker.
        let mut cx = Context::from_waker(Waker::noop());
        match self.protocol.write(&mut Io { socket: &mut self.socket, cx: &mut cx }, message) {
            Ok(()) => Ok(()),
            Err(error) if would_block(&error) => {
                self.blocked = true;
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Writes out everything buffered, the automatic Pong and Close replies included.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.protocol.flush(&mut Io { socket: &mut self.socket, cx }) {
            Ok(()) => {
                self.blocked = false;
                Poll::Ready(Ok(()))
            }
            Err(error) if would_block(&error) => {
                self.blocked = true;
                Poll::Pending
            }
            // The closing handshake is complete and our reply is out: the flush is done.
            Err(WsError::ConnectionClosed) => {
                self.blocked = false;
                Poll::Ready(Ok(()))
            }
            Err(error) => {
                self.blocked = false;
                Poll::Ready(Err(error))
            }
        }
    }
}

fn would_block(error: &WsError) -> bool {
    matches!(error, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// The socket as tungstenite's `Read + Write`, for one call made with the task's context: a socket
/// that is not ready registers the task's waker and answers `WouldBlock`.
struct Io<'a, 'cx> {
    socket: &'a mut TcpStream,
    cx: &'a mut Context<'cx>,
}

impl Read for Io<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.socket).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(error)) => Err(error),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Io<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.socket).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // A TCP stream buffers nothing of its own: a write that returned went to the kernel.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;

    use super::*;

    async fn within<T>(what: &str, io: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), io)
            .await
            .unwrap_or_else(|_| panic!("{what}: no wake-up"))
    }

    /// Our WebSocket on one end, a tokio-tungstenite client on the other (no handshake: both
    /// start on the open connection).
    async fn pair(buffers: Option<usize>) -> (WebSocket, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        if let Some(bytes) = buffers {
            super::super::upgrade::set_buffers(&server, bytes).unwrap();
        }
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (WebSocket::new(server, Vec::new(), WebSocketConfig::default()), client)
    }

    #[tokio::test]
    async fn a_message_the_socket_cannot_take_waits_and_arrives_whole_once_the_client_reads() {
        let (mut ws, mut client) = pair(Some(4096)).await;
        let big: Vec<u8> = (0..4 << 20).map(|i: u32| i as u8).collect();
        ws.start_send(Message::Binary(big.clone().into())).unwrap();
        // Megabytes against kilobytes of socket buffer, and nobody reading: the flush must wait.
        let mut cx = Context::from_waker(Waker::noop());
        assert!(ws.poll_flush(&mut cx).is_pending(), "4 MiB cannot fit in the socket's buffers");
        assert!(ws.poll_ready(&mut cx).is_pending(), "no next message while the last one waits");
        let flushed = tokio::spawn(async move {
            poll_fn(|cx| ws.poll_flush(cx)).await.unwrap();
            ws
        });
        let got = within("the client's read", client.next()).await.unwrap().unwrap();
        assert!(got == Message::Binary(big.into()), "the message arrived whole: {} bytes", got.len());
        let mut ws = within("the flush", flushed).await.unwrap();
        assert!(ws.poll_ready(&mut cx).is_ready(), "ready for the next message once flushed");
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_close_ends_the_stream_after_the_reply() {
        let (mut ws, mut client) = pair(None).await;
        client.send(Message::Ping("are you there".into())).await.unwrap();
        let ping = within("the ping", poll_fn(|cx| ws.poll_read(cx))).await.unwrap().unwrap();
        assert_eq!(ping, Message::Ping("are you there".into()));
        within("the pong's flush", poll_fn(|cx| ws.poll_flush(cx))).await.unwrap();
        let pong = within("the pong", client.next()).await.unwrap().unwrap();
        assert_eq!(pong, Message::Pong("are you there".into()));

        client.send(Message::Close(None)).await.unwrap();
        let close = within("the close", poll_fn(|cx| ws.poll_read(cx))).await.unwrap().unwrap();
        assert_eq!(close, Message::Close(None));
        within("the reply's flush", poll_fn(|cx| ws.poll_flush(cx))).await.unwrap();
        assert!(within("the end", poll_fn(|cx| ws.poll_read(cx))).await.is_none(), "nothing after the close");
        let reply = within("the reply", client.next()).await.unwrap().unwrap();
        assert!(matches!(reply, Message::Close(_)), "{reply:?}");
    }
}
