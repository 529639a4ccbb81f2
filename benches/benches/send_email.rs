//! Direct-send throughput: SendMessages (100 addresses per request, ~2 KB
//! personalised bodies, concurrent clients) through herald to an SMTP sink
//! on loopback, against a minimal TCP_NODELAY SMTP client written here that
//! sends the same messages over the same number of connections to the same
//! sink, in the same run. Prints messages/s of both, the ratio, herald's
//! CPU-µs per message and its peak RSS.
//!
//! The sink is written here too: it answers every command at once and
//! counts messages, on its own OS thread and runtime. Bounded:
//! `HERALD_BENCH_MESSAGES` messages per side (default 20000).

#![allow(clippy::disallowed_methods)] // benchmarks measure real time and run threads

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_benches::{cpu_time, peak_rss_kib, Client, Herald};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 8;
const CLIENTS: usize = 8;
const PER_REQUEST: usize = 100;

/// A sink that accepts everything: replies to each command line, reads DATA
/// up to the terminating dot, counts messages.
fn start_sink() -> (u16, Arc<AtomicU64>) {
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

fn body(i: usize) -> String {
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
async fn raw_client(port: u16, total: usize) -> anyhow::Result<f64> {
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

fn request_body(req: usize) -> Vec<u8> {
    let mut addresses = serde_json::Map::new();
    for k in 0..PER_REQUEST {
        let i = req * PER_REQUEST + k;
        addresses.insert(
            format!("r{i}@example.org"),
            serde_json::json!({ "ChannelType": "EMAIL", "Substitutions": { "N": [i.to_string()] } }),
        );
    }
    let text = body(0).replace("reader 0", "reader {{N}}");
    serde_json::to_vec(&serde_json::json!({
        "Addresses": addresses,
        "MessageConfiguration": { "EmailMessage": { "SimpleEmail": {
            "Subject": { "Data": "Hello {{N}}" },
            "TextPart": { "Data": text },
            "HtmlPart": { "Data": format!("<p>{text}</p>") }
        }}}
    }))
    .expect("body")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total: usize = std::env::var("HERALD_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let requests = total / PER_REQUEST;
    let (port, sunk) = start_sink();

    let baseline = raw_client(port, total).await?;
    println!("baseline: minimal NODELAY SMTP client, {CONNECTIONS} connections, {total} messages of ~2 KB: {baseline:.0} msgs/s");
    sunk.store(0, Ordering::Relaxed);

    let herald = Herald::start_with_env(&[
        (
            "HERALD_SMTP_URL",
            format!("smtp://127.0.0.1:{port}/bench.example"),
        ),
        (
            "HERALD_DELIVERY_SMTP_CONNECTIONS_MAX",
            CONNECTIONS.to_string(),
        ),
        (
            "HERALD_DELIVERY_QUEUE_MAX",
            (CLIENTS * PER_REQUEST * 2).to_string(),
        ),
    ])
    .await?;
    let client = Client::new(&herald.base);
    let app = client.create_app("send-bench").await?;
    let (status, resp) = client
        .send(
            "PUT",
            &format!("/v1/apps/{app}/channels/email"),
            serde_json::to_vec(&serde_json::json!({
                "FromAddress": "news@example.com",
                "Identity": "arn:aws:ses:us-east-1:000000000000:identity/example.com"
            }))?,
        )
        .await?;
    anyhow::ensure!(
        status == 200,
        "email channel: {status} {}",
        String::from_utf8_lossy(&resp)
    );
    // Warm up: one request opens the pool.
    let (status, _) = client
        .send(
            "POST",
            &format!("/v1/apps/{app}/messages"),
            request_body(requests + 1),
        )
        .await?;
    anyhow::ensure!(status == 200, "warm-up SendMessages answered {status}");
    sunk.store(0, Ordering::Relaxed);

    let bodies: Vec<Vec<Vec<u8>>> = (0..CLIENTS)
        .map(|c| (c..requests).step_by(CLIENTS).map(request_body).collect())
        .collect();
    let cpu_before = cpu_time(herald.pid())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for bodies in bodies {
        let client = client.clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for body in bodies {
                let (status, resp) = client
                    .send("POST", &format!("/v1/apps/{app}/messages"), body)
                    .await?;
                anyhow::ensure!(
                    status == 200,
                    "SendMessages answered {status}: {}",
                    String::from_utf8_lossy(&resp)
                );
                let v: serde_json::Value = serde_json::from_slice(&resp)?;
                ok += v["Result"]
                    .as_object()
                    .map(|m| {
                        m.values()
                            .filter(|r| r["DeliveryStatus"] == "SUCCESSFUL")
                            .count()
                    })
                    .unwrap_or(0);
            }
            Ok::<_, anyhow::Error>(ok)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await??;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(herald.pid())? - cpu_before;
    let rss = peak_rss_kib(herald.pid())?;
    // Let the sink count the last replies it sent.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let delivered = sunk.load(Ordering::Relaxed);
    let rate = ok as f64 / elapsed.as_secs_f64();
    println!(
        "herald SendMessages: {CLIENTS} clients x 100 addresses, {ok} SUCCESSFUL, {delivered} at the sink: {rate:.0} msgs/s"
    );
    println!(
        "herald CPU: {:.1} CPU-µs per message ({:.2} s CPU in {:.2} s); peak RSS {:.1} MiB",
        cpu.as_secs_f64() * 1e6 / ok.max(1) as f64,
        cpu.as_secs_f64(),
        elapsed.as_secs_f64(),
        rss as f64 / 1024.0
    );
    println!(
        "ratio herald/raw client: {:.3} (goal >= 0.8)",
        rate / baseline
    );
    anyhow::ensure!(
        delivered as usize == ok,
        "the sink got {delivered} messages for {ok} successes"
    );
    Ok(())
}
