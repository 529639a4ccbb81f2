//! The byte stream under herald's SMTP connections.
//!
//! Two jobs, both for speed without giving up send-once:
//! - **Corking.** lettre writes and flushes every command, and the message
//!   data and its terminating `.` separately. This stream keeps written bytes
//!   until the next read (or shutdown), so what lettre writes between two
//!   replies leaves in one `send` and one TCP segment. SMTP is lock-step, so
//!   every write is followed by a read of its reply; nothing waits forever.
//! - **Watching the replies.** It follows the server's reply lines and notes
//!   when one starts with `354` (go ahead with the data): before that,
//!   nothing of the message has left, so a connection that breaks can be
//!   replaced and the message sent on another without any chance of a
//!   duplicate. It also notes whether the EHLO reply offers `PIPELINING`.
//!   Only meaningful on plain-text streams (under STARTTLS it sees
//!   ciphertext).
//!
//! [`Shared`] lets lettre (greeting, EHLO, AUTH, NOOP, QUIT) and herald's
//! own pipelined transactions take turns on one connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The connection under the corking: plain TCP, or TLS from the first byte
/// (`smtps://`).
#[derive(Debug)]
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Written bytes kept at most before they go out without waiting for a read.
const CORK_MAX: usize = 256 * 1024;

/// Shared with the SMTP client: whether the server has said `354` since the
/// client last cleared it, and whether it offered PIPELINING.
#[derive(Debug, Default)]
pub(crate) struct DataMark {
    data: AtomicBool,
    pipelining: AtomicBool,
}

impl DataMark {
    pub(crate) fn clear(&self) {
        self.data.store(false, Ordering::Release);
    }

    pub(crate) fn seen(&self) -> bool {
        self.data.load(Ordering::Acquire)
    }

    pub(crate) fn pipelining(&self) -> bool {
        self.pipelining.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
pub(crate) struct Corked {
    tcp: Io,
    peer: SocketAddr,
    out: Vec<u8>,
    /// Bytes at the front of `out` already handed to the socket.
    sent: usize,
    mark: Arc<DataMark>,
    /// Reply-line scanner: position in the current line and its first
    /// bytes (enough for `250-PIPELINING`).
    col: usize,
    head: [u8; 16],
}

impl Corked {
    pub(crate) fn new(tcp: Io, peer: SocketAddr, mark: Arc<DataMark>) -> Self {
        Self {
            tcp,
            peer,
            out: Vec::with_capacity(4096),
            sent: 0,
            mark,
            col: 0,
            head: [0; 16],
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = &self.head[..self.col.min(self.head.len())];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() == 14
                    && line.starts_with(b"250")
                    && line[4..].eq_ignore_ascii_case(b"PIPELINING")
                {
                    self.mark.pipelining.store(true, Ordering::Release);
                }
                self.col = 0;
                continue;
            }
            if self.col < self.head.len() {
                self.head[self.col] = b;
            }
            self.col = self.col.saturating_add(1);
            if self.col == 3 && &self.head[..3] == b"354" {
                self.mark.data.store(true, Ordering::Release);
            }
        }
    }

    /// Writes out everything kept.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = match Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        // TLS keeps records until flushed; TCP's flush is a no-op.
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
}

impl AsyncRead for Corked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The reply being waited for answers what is still kept here.
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.scan(&buf.filled()[before..]);
        }
        r
    }
}

impl AsyncWrite for Corked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() + data.len() > CORK_MAX {
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if data.len() > CORK_MAX {
                return Pin::new(&mut this.tcp).poll_write(cx, data);
            }
        }
        this.out.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Deferred to the next read: see the module comment.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_shutdown(cx),
            other => other,
        }
    }
}

impl AsyncTokioStream for Corked {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

/// One [`Corked`] stream used in turns by lettre and by herald's own
/// transactions (never at once: the connection is `&mut` to its user).
#[derive(Debug, Clone)]
pub(crate) struct Shared(Arc<Mutex<Corked>>);

impl Shared {
    pub(crate) fn new(c: Corked) -> Self {
        Self(Arc::new(Mutex::new(c)))
    }
}

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut c = self.0.lock().expect("smtp stream lock");
        Pin::new(&mut *c).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut c = self.0.lock().expect("smtp stream lock");
        Pin::new(&mut *c).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut c = self.0.lock().expect("smtp stream lock");
        Pin::new(&mut *c).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut c = self.0.lock().expect("smtp stream lock");
        Pin::new(&mut *c).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Shared {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.lock().expect("smtp stream lock").peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (Corked, Arc<DataMark>, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let mark = Arc::new(DataMark::default());
        (
            Corked::new(Io::Plain(client), addr, mark.clone()),
            mark,
            server,
        )
    }

    #[tokio::test]
    async fn replies_are_watched_across_segment_boundaries() {
        let (mut c, mark, _server) = pair().await;
        c.scan(b"250-mx.example\r\n250-PIPEL");
        c.scan(b"INING\r\n250 8BITMIME\r\n35");
        assert!(mark.pipelining());
        assert!(
            !mark.seen(),
            "a split 354 is not seen before its third digit"
        );
        c.scan(b"4 go ahead\r\n");
        assert!(mark.seen());
        mark.clear();
        c.scan(b"250 ok 354\r\n");
        assert!(!mark.seen(), "354 counts only at the start of a line");
    }

    #[tokio::test]
    async fn writes_wait_for_the_next_read() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (c, _mark, mut server) = pair().await;
        let mut s = Shared::new(c);
        s.write_all(b"MAIL FROM:<a@b>\r\n").await.unwrap();
        s.flush().await.unwrap();
        s.write_all(b"RCPT TO:<c@d>\r\n").await.unwrap();
        let mut got = [0u8; 64];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut got)).await;
        assert!(early.is_err(), "nothing leaves before the client reads");
        server.write_all(b"250 ok\r\n").await.unwrap();
        let mut reply = [0u8; 8];
        s.read_exact(&mut reply).await.unwrap();
        let n = server.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
    }
}
