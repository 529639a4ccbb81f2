//! PutEvents ingestion on one node: 100 events of ~1 KB per request from 8
//! concurrent clients, durable when acknowledged. Prints events/s and the
//! ratio to a raw RocksDB WriteBatch-with-WAL-sync loop writing the same
//! bytes in 100-record batches, measured in the same run.
//!
//! Bounded: `HERALD_BENCH_REQUESTS` requests in all (default 1200).

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::time::Duration;

use herald_benches::{
    drive, ms, percentile, put_events_body, rocksdb_sync_batches, Client, Herald,
    EVENTS_PER_REQUEST, EVENT_BYTES,
};

const CLIENTS: usize = 8;
/// Each client's endpoints; all are created before the clock starts, so the
/// run measures the steady state: events from endpoints herald knows.
const ENDPOINTS_PER_CLIENT: usize = 200;

fn request_body(client: usize, req: usize) -> Vec<u8> {
    put_events_body(client, req, ENDPOINTS_PER_CLIENT)
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
    let work = bodies
        .into_iter()
        .map(|bodies| {
            let path = format!("/v1/apps/{app}/events");
            let requests = bodies.into_iter().map(|b| (path.clone(), b)).collect();
            (client.clone(), requests)
        })
        .collect();
    let (elapsed, lat) = drive("POST", 202, work).await?;
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
