//! UpdateEndpoint latency at a fixed offered load (open loop: requests are
//! sent on a schedule whether or not earlier ones have finished). Prints
//! p50/p99 and their ratio to the latency of one synced RocksDB put measured
//! in the same run.
//!
//! Bounded: `HERALD_BENCH_RATE` requests/s (default 500) for
//! `HERALD_BENCH_SECS` seconds (default 10). With `HERALD_BENCH_USERS=N`
//! each endpoint also names one of N users (the 15-endpoints-per-user check
//! then reads every shard).

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_benches::{ms, percentile, Client, Herald};

fn synced_put_latency(samples: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = rocksdb::DB::open(&opts, dir.path()).expect("open");
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    let value = vec![b'v'; 300];
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        db.put_opt(format!("k{i}"), &value, &wo).expect("put");
        out.push(t.elapsed());
    }
    out.sort();
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate: u64 = std::env::var("HERALD_BENCH_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let secs: u64 = std::env::var("HERALD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let users: Option<u64> = std::env::var("HERALD_BENCH_USERS")
        .ok()
        .and_then(|s| s.parse().ok());

    let base = tokio::task::spawn_blocking(|| synced_put_latency(2000)).await?;
    println!(
        "baseline: one synced rocksdb put: p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&base, 50.0)),
        ms(percentile(&base, 99.0))
    );

    let herald = Herald::start().await?;
    let client = Client::new(&herald.base);
    let app = Arc::new(client.create_app("update-endpoint-bench").await?);
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let client = client.clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = serde_json::json!({
                "ChannelType": "EMAIL",
                "Address": format!("user{}@example.com", i % 10_000),
                "Attributes": { "plan": ["pro"], "seq": [i.to_string()] },
                "Demographic": { "Platform": "ios", "Timezone": "Europe/Paris" }
            });
            if let Some(n) = users {
                body["User"] = serde_json::json!({ "UserId": format!("u{}", i % n.max(1)) });
            }
            let body = serde_json::to_vec(&body)?;
            let t = Instant::now();
            let (status, resp) = client
                .send(
                    "PUT",
                    &format!("/v1/apps/{app}/endpoints/ep-{}", i % 10_000),
                    body,
                )
                .await?;
            if status != 202 {
                anyhow::bail!(
                    "UpdateEndpoint answered {status}: {}",
                    String::from_utf8_lossy(&resp)
                );
            }
            Ok::<_, anyhow::Error>(t.elapsed())
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    for t in tasks {
        lat.push(t.await??);
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    println!(
        "herald UpdateEndpoint at {rate} req/s for {secs} s{}: p50 {:.2} ms, p99 {:.2} ms",
        users.map_or(String::new(), |n| format!(" with {n} users")),
        ms(p50),
        ms(p99)
    );
    println!(
        "ratio to one synced put: p50 {:.1}x, p99 {:.1}x",
        p50.as_secs_f64() / percentile(&base, 50.0).as_secs_f64().max(1e-9),
        p99.as_secs_f64() / percentile(&base, 99.0).as_secs_f64().max(1e-9)
    );
    Ok(())
}
