//! The TCP socket under a WebSocket: tokio's readiness, system calls made directly.
//!
//! tokio's `TcpStream` reads and writes through glibc's `recv` and `send`. Those are pthread
//! cancellation points, so glibc wraps each call in two atomic compare-and-swaps on the thread's
//! cancellation state; on the echo path that was about 0.2 µs per message (4% of the gateway's
//! CPU at 1,000 connections, see BENCHMARKS.md). [`Socket`] keeps tokio's registration and
//! readiness, exactly as `TcpStream` uses them (edge-triggered; readiness cleared by a short read
//! or write, or by `WouldBlock`), and makes the calls through rustix, which issues them directly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A connected TCP stream whose reads and writes skip glibc.
#[derive(Debug)]
pub struct Socket {
    stream: TcpStream,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Self {
        Socket { stream }
    }

    /// Fixes the kernel's send and receive buffers at `bytes` each (it doubles them for its own
    /// bookkeeping), instead of letting autotuning grow them to megabytes for a peer that stops
    /// reading or a server that stops reading from it.
    pub fn set_buffers(&self, bytes: usize) -> io::Result<()> {
        rustix::net::sockopt::set_socket_send_buffer_size(&self.stream, bytes)?;
        rustix::net::sockopt::set_socket_recv_buffer_size(&self.stream, bytes)?;
        Ok(())
    }

    /// Makes `call` (a `recv` or `send` of `len` bytes) once the socket is ready for `interest`.
    ///
    /// With edge-triggered epoll, a short transfer (some bytes, fewer than asked) proves the
    /// socket's buffer drained or filled, just as `WouldBlock` would: tokio's own `TcpStream`
    /// then clears readiness, so the next call waits for the next edge instead of making a system
    /// call that can only fail. `try_io` is the public way to clear it, and it clears on
    /// `WouldBlock`: a short transfer is reported to it as one, and returned as the count it is.
    fn poll_call(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        len: usize,
        mut call: impl FnMut() -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if interest.is_readable() {
                ready!(self.stream.poll_read_ready(cx))?;
            } else {
                ready!(self.stream.poll_write_ready(cx))?;
            }
            let mut short = None;
            let result = self.stream.try_io(interest, || {
                loop {
                    match call() {
                        Ok(n) if 0 < n && n < len => {
                            short = Some(n);
                            return Err(io::ErrorKind::WouldBlock.into());
                        }
                        Ok(n) => return Ok(n),
                        Err(Errno::INTR) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                }
            });
            match (result, short) {
                (_, Some(n)) | (Ok(n), None) => return Poll::Ready(Ok(n)),
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => {}
                (Err(e), None) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // Free when the caller's buffer is initialised already (tungstenite's is).
        let unfilled = buf.initialize_unfilled();
        let len = unfilled.len();
        let n = ready!(self.poll_call(cx, Interest::READABLE, len, || {
            rustix::net::recv(&self.stream, &mut *unfilled, RecvFlags::empty()).map(|(n, _)| n)
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        // NOSIGNAL: a peer that went away is an `EPIPE` for this connection, never a SIGPIPE.
        self.poll_call(cx, Interest::WRITABLE, src.len(), || {
            rustix::net::send(&self.stream, src, SendFlags::NOSIGNAL)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: a write that returned went to the kernel.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(rustix::net::shutdown(&self.stream, Shutdown::Write).map_err(io::Error::from))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A read that misses its wake-up hangs: fail it instead.
    async fn within<T>(io: impl Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(10), io).await.expect("no wake-up within 10 s")
    }

    async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Socket::new(server), client)
    }

    #[tokio::test]
    async fn a_short_read_clears_readiness_so_the_next_read_waits_without_a_system_call() {
        let (socket, mut client) = pair().await;
        client.write_all(b"hello").await.unwrap();
        let calls = std::cell::Cell::new(0);
        let mut buf = [0u8; 64];
        let recv = |buf: &mut [u8]| {
            calls.set(calls.get() + 1);
            rustix::net::recv(&socket.stream, buf, RecvFlags::empty()).map(|(n, _)| n)
        };
        let n = within(std::future::poll_fn(|cx| {
            socket.poll_call(cx, Interest::READABLE, 64, || recv(&mut buf))
        }))
        .await
        .unwrap();
        assert_eq!((&buf[..n], calls.get()), (&b"hello"[..], 1));
        // Five bytes of 64: the socket's buffer is drained, so the next read must wait for the next
        // edge instead of making a call that can only fail with EAGAIN.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(socket.poll_call(&mut cx, Interest::READABLE, 64, || recv(&mut buf)).is_pending());
        assert_eq!(calls.get(), 1, "no system call while nothing can have arrived");
        // And it is woken, and reads, when more arrives.
        client.write_all(b"again").await.unwrap();
        let n = within(std::future::poll_fn(|cx| {
            socket.poll_call(cx, Interest::READABLE, 64, || recv(&mut buf))
        }))
        .await
        .unwrap();
        assert_eq!(&buf[..n], b"again");
    }

    #[tokio::test]
    async fn carries_megabytes_through_partial_writes() {
        let (mut socket, mut client) = pair().await;
        // More than the socket buffers hold at once: written in parts as the reader drains them.
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| i as u8).collect();
        let expected = big.clone();
        let writer = tokio::spawn(async move {
            socket.write_all(&big).await.unwrap();
            socket.shutdown().await.unwrap();
            socket
        });
        let mut got = Vec::new();
        within(client.read_to_end(&mut got)).await.unwrap();
        assert!(got == expected, "8 MiB arrived intact: {} bytes", got.len());
        drop(within(writer).await.unwrap());
    }

    #[tokio::test]
    async fn writing_to_a_vanished_peer_fails() {
        let (mut socket, client) = pair().await;
        drop(client);
        let mut buf = [0u8; 16];
        assert_eq!(within(socket.read(&mut buf)).await.unwrap(), 0, "end of stream");
        // The first writes may still be accepted; writing on must fail with EPIPE or a reset.
        let error = within(async {
            loop {
                match socket.write(b"x").await {
                    Ok(_) => tokio::task::yield_now().await,
                    Err(error) => break error,
                }
            }
        })
        .await;
        assert!(
            matches!(error.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset),
            "{error}"
        );
    }
}
