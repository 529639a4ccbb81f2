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

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use herald_benches::smtp::{body, raw_client, start_sink, CONNECTIONS};
use herald_benches::{cpu_time, peak_rss_kib, Client, Herald};
const CLIENTS: usize = 8;
const PER_REQUEST: usize = 100;

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
