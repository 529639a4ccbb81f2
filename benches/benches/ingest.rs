//! PutEvents ingestion on one node: 100 events of ~1 KB per request from 8
//! concurrent clients, durable when acknowledged. Prints events/s and the
//! ratio to a raw RocksDB WriteBatch-with-WAL-sync loop writing the same
//! bytes in 100-record batches, measured in the same run.
//!
//! Bounded: `HERALD_BENCH_REQUESTS` requests in all (default 1200).

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::time::{Duration, Instant};

use herald_benches::{ms, percentile, rocksdb_sync_batches, Client, Herald};

const CLIENTS: usize = 8;
const EVENTS_PER_REQUEST: usize = 100;
const EVENT_BYTES: usize = 1000;
/// Each client's endpoints; all are created before the clock starts, so the
/// run measures the steady state: events from endpoints herald knows.
const ENDPOINTS_PER_CLIENT: usize = 200;

fn request_body(client: usize, req: usize) -> Vec<u8> {
    let pad = "p".repeat(EVENT_BYTES - 200);
    let mut batch = serde_json::Map::new();
    // 10 endpoints per request, 10 events each.
    for e in 0..10 {
        let mut events = serde_json::Map::new();
        for i in 0..EVENTS_PER_REQUEST / 10 {
            events.insert(
                format!("ev-{i}"),
                serde_json::json!({
                    "EventType": "bench.event",
                    "Timestamp": "2026-11-29T10:00:00.000Z",
                    "Attributes": { "pad": pad },
                    "Metrics": { "n": i }
                }),
            );
        }
        let endpoint = (req * 10 + e) % ENDPOINTS_PER_CLIENT;
        batch.insert(
            format!("c{client}-ep{endpoint}"),
            serde_json::json!({
                "Endpoint": { "ChannelType": "EMAIL", "Address": format!("c{client}-ep{endpoint}@example.com") },
                "Events": events
            }),
        );
    }
    serde_json::to_vec(&serde_json::json!({ "BatchItem": batch })).expect("body")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::var("HERALD_BENCH_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);

    let baseline = tokio::task::spawn_blocking(|| {
        rocksdb_sync_batches(EVENT_BYTES, 1, 200_000, Duration::from_secs(10))
    })
    .await?;
    println!("baseline: raw rocksdb, 100-record batches, WAL sync per batch, 1 writer: {baseline:.0} records/s");

    let herald = Herald::start().await?;
    let client = Client::new(&herald.base);
    let app = client.create_app("ingest-bench").await?;
    // Warm up connections and create every endpoint.
    for c in 0..CLIENTS {
        for r in 0..ENDPOINTS_PER_CLIENT / 10 {
            let (status, _) = client
                .send(
                    "POST",
                    &format!("/v1/apps/{app}/events"),
                    request_body(c, r),
                )
                .await?;
            anyhow::ensure!(status == 202, "warm-up PutEvents answered {status}");
        }
    }

    // Bodies are built before the clock starts: the load generator shares
    // the 2 cores with herald, and only signing has to happen per request.
    let bodies: Vec<Vec<Vec<u8>>> = (0..CLIENTS)
        .map(|c| {
            (0..requests / CLIENTS)
                .map(|r| request_body(c, r))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for bodies in bodies {
        let client = client.clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for body in bodies {
                let t = Instant::now();
                let (status, resp) = client
                    .send("POST", &format!("/v1/apps/{app}/events"), body)
                    .await?;
                if status != 202 {
                    anyhow::bail!(
                        "PutEvents answered {status}: {}",
                        String::from_utf8_lossy(&resp)
                    );
                }
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    let events = lat.len() * EVENTS_PER_REQUEST;
    let rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "herald PutEvents: {CLIENTS} clients, {} requests x {EVENTS_PER_REQUEST} events of ~{EVENT_BYTES} B: {rate:.0} events/s",
        lat.len()
    );
    println!(
        "ack latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
        ms(percentile(&lat, 100.0))
    );
    println!(
        "ratio herald/baseline: {:.3} (goal >= 0.25)",
        rate / baseline
    );
    Ok(())
}
