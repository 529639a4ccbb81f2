//! PutEvents ingestion with analytics rollups on and off, on one node: the
//! same app-event load (5 event types over 24 hours, sessions, attributes
//! and metrics, 100 events per request from 8 clients) against a node
//! started with `HERALD_ANALYTICS_ROLLUPS=false` and one with rollups on,
//! twice each, interleaved; prints the best rate of each and the ratio
//! on/off (goal >= 0.8).
//!
//! Bounded: `HERALD_BENCH_REQUESTS` requests per run (default 600).

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use herald_benches::{drive, Client, Herald};

const CLIENTS: usize = 8;
const ENDPOINTS_PER_CLIENT: usize = 200;
const TYPES: [&str; 5] = [
    "view_item",
    "add_to_cart",
    "_monetization.purchase",
    "level_up",
    "share",
];

/// 10 endpoints x 10 events: a session start, 8 app events, a stop.
fn body(client: usize, req: usize) -> Vec<u8> {
    let mut batch = serde_json::Map::new();
    for e in 0..10 {
        let endpoint = (req * 10 + e) % ENDPOINTS_PER_CLIENT;
        let id = format!("c{client}-ep{endpoint}");
        let hour = (req + e) % 24;
        let sid = format!("{id}-{req}");
        let mut events = serde_json::Map::new();
        for i in 0..10 {
            let ts = format!("2026-11-29T{hour:02}:{:02}:00.000Z", i * 5);
            let et = match i {
                0 => "_session.start",
                9 => "_session.stop",
                _ => TYPES[(req + e + i) % TYPES.len()],
            };
            events.insert(
                format!("ev-{i}"),
                serde_json::json!({
                    "EventType": et,
                    "Timestamp": ts,
                    "Session": { "Id": sid, "StartTimestamp": format!("2026-11-29T{hour:02}:00:00.000Z") },
                    "Attributes": { "category": format!("cat-{}", (req + i) % 7), "pad": "p".repeat(600) },
                    "Metrics": { "score": i, "_item_price": 4.99 }
                }),
            );
        }
        batch.insert(
            id.clone(),
            serde_json::json!({
                "Endpoint": { "ChannelType": "EMAIL", "Address": format!("{id}@example.com"),
                              "User": { "UserId": format!("user-{}", endpoint / 2) } },
                "Events": events
            }),
        );
    }
    serde_json::to_vec(&serde_json::json!({ "BatchItem": batch })).expect("body")
}

async fn run(rollups: bool, requests: usize) -> anyhow::Result<f64> {
    let herald =
        Herald::start_with_env(&[("HERALD_ANALYTICS_ROLLUPS", rollups.to_string())]).await?;
    let client = Client::new(&herald.base);
    let app = client.create_app("analytics-ingest").await?;
    for c in 0..CLIENTS {
        for r in 0..ENDPOINTS_PER_CLIENT / 10 {
            let (status, _) = client
                .send("POST", &format!("/v1/apps/{app}/events"), body(c, r))
                .await?;
            anyhow::ensure!(status == 202, "warm-up PutEvents answered {status}");
        }
    }
    let work = (0..CLIENTS)
        .map(|c| {
            let path = format!("/v1/apps/{app}/events");
            let reqs = (0..requests / CLIENTS)
                .map(|r| (path.clone(), body(c, r + ENDPOINTS_PER_CLIENT / 10)))
                .collect();
            (client.clone(), reqs)
        })
        .collect();
    let (elapsed, lat) = drive("POST", 202, work).await?;
    let rate = (lat.len() * 100) as f64 / elapsed.as_secs_f64();
    println!(
        "rollups {}: {} requests x 100 events: {rate:.0} events/s",
        if rollups { "on " } else { "off" },
        lat.len()
    );
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::var("HERALD_BENCH_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut off = 0f64;
    let mut on = 0f64;
    for _ in 0..2 {
        off = off.max(run(false, requests).await?);
        on = on.max(run(true, requests).await?);
    }
    println!("baseline (rollups off), best of 2: {off:.0} events/s");
    println!("rollups on, best of 2: {on:.0} events/s");
    println!("ratio on/off: {:.3} (goal >= 0.8)", on / off);
    Ok(())
}
