//! In-memory tables after a restart: loads N endpoints (default 1,000,000;
//! `HERALD_BENCH_ENDPOINTS`) shaped like `segment_eval`'s (two attributes,
//! channel, country, a metric, an EffectiveDate), stops the node, and
//! restarts it on the same data. Prints the time herald took to rebuild its
//! segment indexes and engagement tables from RocksDB (its
//! `herald_memory_tables_build_seconds` gauge) and their bytes per endpoint
//! (`herald_segment_index_bytes`, `herald_engagement_table_bytes`), against
//! the baseline measured in the same run: one raw RocksDB scan of every row
//! of the same column family, values read but not decoded.

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::time::Instant;

use herald_benches::{Client, Herald};

const LOADERS: usize = 8;
const BATCH: usize = 100;
const COUNTRIES: [&str; 6] = ["US", "GB", "DE", "FR", "JP", "BR"];

fn endpoints_body(from: usize, to: usize) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (from..to)
        .map(|i| {
            let email = i % 5 < 3;
            let plan = ["free", "pro", "team"][i % 3];
            let interest = ["news", "sports", "music", "films"][i % 4];
            serde_json::json!({
                "Id": format!("e{i}"),
                "ChannelType": if email { "EMAIL" } else { "SMS" },
                "Address": if email { format!("r{i}@example.org") } else { format!("+1555{i:07}") },
                "EffectiveDate": format!("2026-10-{:02}T12:00:00Z", 1 + i % 28),
                "Location": { "Country": COUNTRIES[i % COUNTRIES.len()] },
                "Metrics": { "score": (i % 100) as f64 },
                "Attributes": {
                    "Plan": [plan],
                    "Interests": [interest]
                }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Item": items })).expect("body")
}

/// A gauge's value from the node's `/metrics`.
async fn gauge(base: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        })
        .ok_or_else(|| anyhow::anyhow!("{name} not in /metrics"))
}

/// Reads every row of every column family of the node's RocksDB: the time
/// and the rows.
fn raw_scan(db_dir: &std::path::Path) -> anyhow::Result<(f64, u64)> {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, db_dir)?;
    let db = rocksdb::DB::open_cf_for_read_only(&opts, db_dir, &cfs, false)?;
    let started = Instant::now();
    let mut rows = 0u64;
    let mut bytes = 0u64;
    for name in ["state"] {
        let cf = db
            .cf_handle(name)
            .ok_or_else(|| anyhow::anyhow!("no column family {name}"))?;
        let mut it = db.raw_iterator_cf(cf);
        it.seek_to_first();
        while it.valid() {
            bytes += it.value().map_or(0, |v| v.len() as u64);
            rows += 1;
            it.next();
        }
        it.status()?;
    }
    std::hint::black_box(bytes);
    Ok((started.elapsed().as_secs_f64(), rows))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("HERALD_BENCH_ENDPOINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let herald = Herald::start().await?;
    let client = Client::new(&herald.base);
    let app = client.create_app("rebuild-bench").await?;
    client
        .load_endpoints(&app, n, LOADERS, BATCH, endpoints_body)
        .await?;

    let dir = herald.stop()?;
    let (scan_s, rows) = raw_scan(&dir.path().join("db"))?;
    println!("baseline: raw RocksDB scan of the state column family, {rows} rows: {scan_s:.2} s");

    let restarting = Instant::now();
    let herald = Herald::start_in(dir, &[]).await?;
    let ready_s = restarting.elapsed().as_secs_f64();
    let build_s = gauge(&herald.base, "herald_memory_tables_build_seconds").await?;
    let indexed = gauge(&herald.base, "herald_memory_tables_endpoints").await?;
    let index_b = gauge(&herald.base, "herald_segment_index_bytes").await?;
    let table_b = gauge(&herald.base, "herald_engagement_table_bytes").await?;
    anyhow::ensure!(
        indexed as usize == n,
        "{indexed} endpoints indexed after the restart, {n} loaded"
    );
    println!(
        "herald restart: in-memory tables rebuilt in {build_s:.2} s (goal <= 10 s for 1,000,000), healthy after {ready_s:.2} s"
    );
    println!(
        "memory per endpoint: segment index {:.0} B + engagement table {:.0} B = {:.0} B (goal <= 128)",
        index_b / n as f64,
        table_b / n as f64,
        (index_b + table_b) / n as f64
    );
    println!("ratio rebuild/raw scan: {:.1}", build_s / scan_s.max(1e-9));
    Ok(())
}
