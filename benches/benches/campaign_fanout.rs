//! Campaign fan-out: one IMMEDIATE campaign to a segment of N endpoints
//! (default 100,000; `HERALD_BENCH_ENDPOINTS`), each getting a personalised
//! ~2 KB email template, with every intent and outcome committed through
//! Raft, to an SMTP sink on loopback — against the minimal NODELAY SMTP
//! client sending the same number of ~2 KB messages to the same sink in the
//! same run. Prints messages/s of both and their ratio, herald's CPU-µs per
//! message, its peak RSS, and the time from the CreateCampaign answer to the
//! first message at the sink.

#![allow(clippy::disallowed_methods)] // benchmarks measure real time and run threads

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use herald_benches::smtp::{body, raw_client, start_sink, CONNECTIONS};
use herald_benches::{cpu_time, peak_rss_kib, Client, Herald};

const LOADERS: usize = 8;

fn endpoints_body(from: usize, to: usize) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (from..to)
        .map(|i| {
            serde_json::json!({
                "Id": format!("e{i}"),
                "ChannelType": "EMAIL",
                "Address": format!("r{i}@example.org"),
                "Attributes": { "Plan": ["bench"], "Name": [format!("reader {i}")] }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Item": items })).expect("body")
}

async fn expect_ok(
    client: &Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<serde_json::Value> {
    let (status, resp) = client.send(method, path, body).await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&resp)
    );
    Ok(serde_json::from_slice(&resp).unwrap_or_default())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("HERALD_BENCH_ENDPOINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let (port, sunk) = start_sink();

    let baseline = raw_client(port, n).await?;
    println!("baseline: minimal NODELAY SMTP client, {CONNECTIONS} connections, {n} messages of ~2 KB: {baseline:.0} msgs/s");
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
    ])
    .await?;
    let client = Client::new(&herald.base);
    let app = client.create_app("fanout-bench").await?;
    expect_ok(
        &client,
        "PUT",
        &format!("/v1/apps/{app}/channels/email"),
        serde_json::to_vec(&serde_json::json!({
            "FromAddress": "news@example.com",
            "Identity": "arn:aws:ses:us-east-1:000000000000:identity/example.com"
        }))?,
    )
    .await?;
    let text = body(0).replace("reader 0", "{{Attributes.Name}}");
    expect_ok(
        &client,
        "POST",
        "/v1/templates/fanout-bench/email",
        serde_json::to_vec(&serde_json::json!({
            "Subject": "Hello {{Attributes.Name}}",
            "TextPart": text,
            "HtmlPart": format!("<p>{text}</p>"),
        }))?,
    )
    .await?;

    // Load the endpoints (not measured).
    client
        .load_endpoints(&app, n, LOADERS, 100, endpoints_body)
        .await?;
    let seg = expect_ok(
        &client,
        "POST",
        &format!("/v1/apps/{app}/segments"),
        serde_json::to_vec(&serde_json::json!({
            "Name": "bench",
            "Dimensions": { "Attributes": { "Plan": { "Values": ["bench"] } } }
        }))?,
    )
    .await?;
    let seg_id = seg["Id"].as_str().unwrap_or_default().to_owned();

    let cpu_before = cpu_time(herald.pid())?;
    let started = Instant::now();
    let camp = expect_ok(
        &client,
        "POST",
        &format!("/v1/apps/{app}/campaigns"),
        serde_json::to_vec(&serde_json::json!({
            "Name": "fanout",
            "SegmentId": seg_id,
            "TemplateConfiguration": { "EmailTemplate": { "Name": "fanout-bench" } },
            "Schedule": { "StartTime": "IMMEDIATE", "Frequency": "ONCE" }
        }))?,
    )
    .await?;
    let answered = Instant::now();
    let camp_id = camp["Id"].as_str().unwrap_or_default().to_owned();
    // Bounded wait: the first message, then all of them.
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let got = sunk.load(Ordering::Relaxed) as usize;
        if got > 0 && first.is_none() {
            first = Some(answered.elapsed());
        }
        if got >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let delivered = sunk.load(Ordering::Relaxed) as usize;
    // The run's last outcomes are committed after the last message.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut state = String::new();
    while Instant::now() < deadline {
        let c = expect_ok(
            &client,
            "GET",
            &format!("/v1/apps/{app}/campaigns/{camp_id}"),
            Vec::new(),
        )
        .await?;
        state = c["State"]["CampaignStatus"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_time(herald.pid())? - cpu_before;
    let rss = peak_rss_kib(herald.pid())?;
    let acts = expect_ok(
        &client,
        "GET",
        &format!("/v1/apps/{app}/campaigns/{camp_id}/activities"),
        Vec::new(),
    )
    .await?;
    let successful = acts["Item"][0]["SuccessfulEndpointCount"]
        .as_u64()
        .unwrap_or(0);
    let rate = delivered as f64 / elapsed.as_secs_f64();
    println!(
        "herald campaign: {delivered} messages at the sink in {:.2} s: {rate:.0} msgs/s; campaign {state}, {successful} successful",
        elapsed.as_secs_f64()
    );
    println!(
        "first message {:.0} ms after the CreateCampaign answer (goal <= 1000)",
        first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    );
    println!(
        "herald CPU: {:.1} CPU-µs per message incl. Raft (goal <= 80); peak RSS {:.1} MiB (goal <= 512)",
        cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64,
        rss as f64 / 1024.0
    );
    println!(
        "ratio herald/raw client: {:.3} (goal >= 0.8)",
        rate / baseline
    );
    anyhow::ensure!(delivered == n, "the sink got {delivered} of {n} messages");
    anyhow::ensure!(
        successful as usize == n,
        "the activity counts {successful} of {n}"
    );
    Ok(())
}
