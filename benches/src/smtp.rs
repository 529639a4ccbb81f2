//! A loopback SMTP sink and the minimal TCP_NODELAY SMTP client the send
//! benchmarks compare herald with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Connections of the raw client (and of herald's SMTP pool in the benches).
pub const CONNECTIONS: usize = 8;

/// A sink that accepts everything: replies to each command line, reads DATA
/// up to the terminating dot, counts messages.
pub fn start_sink() -> (u16, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let c = count.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sink runtime");
        rt.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_sink(sock, c.clone()));
            }
        });
    });
    (port, count)
}

async fn serve_sink(sock: TcpStream, count: Arc<AtomicU64>) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    if w.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    // Replies wait while more commands are buffered (RFC 2920), as an MTA's
    // do, and leave together.
    let mut out: Vec<u8> = Vec::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if cmd.starts_with("DATA") {
            out.extend_from_slice(b"354 go ahead\r\n");
            if w.write_all(&std::mem::take(&mut out)).await.is_err() {
                return;
            }
            // Read up to "\r\n.\r\n".
            let mut tail = [0u8; 5];
            let mut buf = [0u8; 8192];
            'data: loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    tail.rotate_left(1);
                    tail[4] = b;
                    if &tail == b"\r\n.\r\n" {
                        break 'data;
                    }
                }
            }
            count.fetch_add(1, Ordering::Relaxed);
            b"250 2.0.0 queued\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n"
        };
        out.extend_from_slice(reply);
        if r.buffer().is_empty() && w.write_all(&std::mem::take(&mut out)).await.is_err() {
            return;
        }
    }
}

pub fn body(i: usize) -> String {
    // ~2 KB: text and HTML parts of ~1 KB each, personalised, in lines of
    // at most 76 characters as mail is written (RFC 5322 allows 998; longer
    // lines would make herald quoted-printable encode what the raw client
    // sends as is).
    let line = "We have news for you this week: new features, fixes and a few words.";
    format!(
        "Hello reader {i},\r\n\r\n{}",
        format!("{line}\r\n").repeat(14)
    )
}

/// The baseline: plain SMTP over `CONNECTIONS` NODELAY connections, one
/// message at a time per connection (no pipelining), `total` messages.
pub async fn raw_client(port: u16, total: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let sock = TcpStream::connect(("127.0.0.1", port)).await?;
            sock.set_nodelay(true)?;
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            async fn expect(
                r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
                line: &mut String,
                code: &str,
            ) -> anyhow::Result<()> {
                loop {
                    line.clear();
                    r.read_line(line).await?;
                    anyhow::ensure!(line.starts_with(code), "want {code}, got {line:?}");
                    if line.as_bytes().get(3) != Some(&b'-') {
                        return Ok(());
                    }
                }
            }
            expect(&mut r, &mut line, "220").await?;
            w.write_all(b"EHLO bench\r\n").await?;
            expect(&mut r, &mut line, "250").await?;
            for i in (c..total).step_by(CONNECTIONS) {
                w.write_all(b"MAIL FROM:<news@example.com>\r\n").await?;
                expect(&mut r, &mut line, "250").await?;
                w.write_all(format!("RCPT TO:<r{i}@example.org>\r\n").as_bytes())
                    .await?;
                expect(&mut r, &mut line, "250").await?;
                w.write_all(b"DATA\r\n").await?;
                expect(&mut r, &mut line, "354").await?;
                let b = body(i);
                let msg = format!(
                    "From: news@example.com\r\nTo: r{i}@example.org\r\nSubject: Hello {i}\r\nMessage-ID: <{i}@bench>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{b}\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>{b}</p>\r\n--b--\r\n.\r\n"
                );
                w.write_all(msg.as_bytes()).await?;
                expect(&mut r, &mut line, "250").await?;
            }
            w.write_all(b"QUIT\r\n").await?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
