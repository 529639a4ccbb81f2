//! Segment evaluation over one shard's endpoints with `SegmentIndex`
//! (herald-model), against a naive scan calling `SegmentDimensions::matches`
//! over the materialised stored endpoints and against DuckDB running the
//! same query over the same data, all in the same run.
//!
//! Data (deterministic, splitmix64 per endpoint): `HERALD_BENCH_ENDPOINTS`
//! endpoints (default 1,000,000) of one app with attributes `Plan` (5
//! values) and `Interests` (1-3 of 20), `ChannelType` (EMAIL 60%, CUSTOM
//! 20%, SMS 20%), `Location.Country` (30 codes), metric `score` (0..100)
//! and an `EffectiveDate` spread over 60 days.
//!
//! Query (five dimensions): Plan INCLUSIVE [pro, team], Channel INCLUSIVE
//! [EMAIL], Country INCLUSIVE [US, GB, DE], score GREATER_THAN 50, Recency
//! ACTIVE DAY_7.
//!
//! Knobs: `HERALD_BENCH_RUNS` (index evaluations, default 200),
//! `HERALD_BENCH_NAIVE_RUNS` (default 5; 0 skips the naive scan, whose
//! materialised endpoints take ~1 KB each), `HERALD_BENCH_DUCKDB_RUNS`
//! (default 50), `HERALD_BENCH_PYTHON` (interpreter with the `duckdb`
//! module, default `python3`). The three counts must agree or the bench
//! fails. No assertions on time.

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use herald_benches::{ms, percentile};
use herald_model::segment::{
    AttributeDimension, EndpointFacts, MetricDimension, RecencyDimension, SegmentBehaviors,
    SegmentDemographics, SegmentDimensions, SegmentLocation, SetDimension,
};
use herald_model::segment_index::SegmentIndex;
use herald_model::time::{format_iso8601_ms, parse_iso8601_ms, DAY_MS};
use herald_model::wire::{EndpointLocation, EndpointResponse};

const APP: &str = "bench-app";
const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const CHUNK: usize = 4096;

const PLANS: [&str; 5] = ["free", "basic", "pro", "team", "enterprise"];
const COUNTRIES: [&str; 30] = [
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "SE", "NO", "DK", "FI", "PL", "PT", "IE", "AT",
    "CH", "CZ", "CA", "MX", "BR", "AR", "JP", "KR", "CN", "IN", "AU", "NZ", "ZA", "SG",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// splitmix64 (Steele, Lea, Flood), one stream per endpoint.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Endpoint `i` as stored, plus its row fields for the CSV.
fn endpoint(i: usize) -> EndpointResponse {
    let mut r = SplitMix(i as u64);
    let id = format!("{:016x}", r.next());
    let plan = PLANS[r.below(5) as usize];
    let mut interests: Vec<String> = (0..1 + r.below(3))
        .map(|_| format!("i{:02}", r.below(20)))
        .collect();
    interests.sort();
    interests.dedup();
    let channel = match r.below(100) {
        0..=59 => "EMAIL",
        60..=79 => "CUSTOM",
        _ => "SMS",
    };
    let country = COUNTRIES[r.below(30) as usize];
    let score = r.below(10_001) as f64 / 100.0;
    let effective = NOW - r.below((60 * DAY_MS) as u64) as i64;
    EndpointResponse {
        id: Some(id),
        channel_type: Some(channel.to_string()),
        attributes: Some(BTreeMap::from([
            ("Plan".to_string(), vec![plan.to_string()]),
            ("Interests".to_string(), interests),
        ])),
        location: Some(EndpointLocation {
            country: Some(country.to_string()),
            ..Default::default()
        }),
        metrics: Some(BTreeMap::from([("score".to_string(), score)])),
        effective_date: Some(format_iso8601_ms(effective)),
        ..Default::default()
    }
}

fn csv_row(out: &mut impl Write, ep: &EndpointResponse) -> std::io::Result<()> {
    let attrs = ep.attributes.as_ref();
    let attr = |name: &str| attrs.and_then(|a| a.get(name)).map(|v| v.join("|"));
    writeln!(
        out,
        "{},{},{},{},{},{},{}",
        ep.id.as_deref().unwrap_or_default(),
        attr("Plan").unwrap_or_default(),
        attr("Interests").unwrap_or_default(),
        ep.channel_type.as_deref().unwrap_or_default(),
        ep.location
            .as_ref()
            .and_then(|l| l.country.as_deref())
            .unwrap_or_default(),
        ep.metrics
            .as_ref()
            .and_then(|m| m.get("score"))
            .copied()
            .unwrap_or(f64::NAN),
        ep.effective_date
            .as_deref()
            .and_then(|d| parse_iso8601_ms(d).ok())
            .unwrap_or_default(),
    )
}

fn query() -> SegmentDimensions {
    let set = |values: &[&str]| SetDimension {
        dimension_type: Some("INCLUSIVE".into()),
        values: values.iter().map(|s| s.to_string()).collect(),
    };
    SegmentDimensions {
        attributes: Some(BTreeMap::from([(
            "Plan".to_string(),
            AttributeDimension {
                attribute_type: Some("INCLUSIVE".into()),
                values: vec!["pro".into(), "team".into()],
            },
        )])),
        demographic: Some(SegmentDemographics {
            channel: Some(set(&["EMAIL"])),
            ..Default::default()
        }),
        location: Some(SegmentLocation {
            country: Some(set(&["US", "GB", "DE"])),
            gps_point: None,
        }),
        metrics: Some(BTreeMap::from([(
            "score".to_string(),
            MetricDimension {
                comparison_operator: "GREATER_THAN".into(),
                value: 50.0,
            },
        )])),
        behavior: Some(SegmentBehaviors {
            recency: Some(RecencyDimension {
                duration: Some("DAY_7".into()),
                recency_type: Some("ACTIVE".into()),
            }),
        }),
        user_attributes: None,
    }
}

/// Resident set size of this process in bytes (VmRSS).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Same query in DuckDB: `Channel` and `Country` are lowercased at load, as
/// the index lowercases them at upsert (both compare case-insensitively).
const DUCKDB_SCRIPT: &str = r#"
import json, sys, time
try:
    import duckdb
except ImportError:
    print("NO_DUCKDB")
    sys.exit(3)
path, now, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
t0 = time.perf_counter()
con.execute(
    "CREATE TABLE ep AS SELECT id, plan, string_split(interests, '|') AS interests, "
    "lower(channel) AS channel, lower(country) AS country, score, effective_ms "
    "FROM read_csv(?, header = true, columns = {'id': 'VARCHAR', 'plan': 'VARCHAR', "
    "'interests': 'VARCHAR', 'channel': 'VARCHAR', 'country': 'VARCHAR', "
    "'score': 'DOUBLE', 'effective_ms': 'BIGINT'})",
    [path],
)
load_s = time.perf_counter() - t0
window = 7 * 86400000
sql = (
    "SELECT count(*) FROM ep WHERE plan IN ('pro', 'team') AND channel IN ('email') "
    "AND country IN ('us', 'gb', 'de') AND score > 50 "
    f"AND effective_ms >= {now - window}"
)
for _ in range(3):
    count = con.execute(sql).fetchone()[0]
times = []
for _ in range(runs):
    t = time.perf_counter()
    count = con.execute(sql).fetchone()[0]
    times.append(time.perf_counter() - t)
times.sort()
pick = lambda p: times[min(len(times) - 1, round(p / 100 * (len(times) - 1)))] * 1000
threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
print(json.dumps({"version": duckdb.__version__, "threads": threads, "load_s": load_s,
                  "count": count, "p50_ms": pick(50), "p99_ms": pick(99)}))
"#;

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("HERALD_BENCH_ENDPOINTS", 1_000_000);
    let runs = env_usize("HERALD_BENCH_RUNS", 200).max(1);
    let naive_runs = env_usize("HERALD_BENCH_NAIVE_RUNS", 5);
    let duck_runs = env_usize("HERALD_BENCH_DUCKDB_RUNS", 50).max(1);
    let python = std::env::var("HERALD_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let dims = query();
    let dir = tempfile::tempdir()?;
    let csv_path = dir.path().join("endpoints.csv");

    // Pass 1: generate in chunks, write the CSV, build the index (only the
    // upserts are timed; a chunk of endpoints is alive at a time).
    let rss_before = rss_bytes();
    let mut idx = SegmentIndex::new();
    let mut build = Duration::ZERO;
    {
        let mut csv = BufWriter::new(std::fs::File::create(&csv_path)?);
        writeln!(csv, "id,plan,interests,channel,country,score,effective_ms")?;
        let mut start = 0;
        while start < n {
            let chunk: Vec<EndpointResponse> =
                (start..(start + CHUNK).min(n)).map(endpoint).collect();
            for ep in &chunk {
                csv_row(&mut csv, ep)?;
            }
            let t = Instant::now();
            for ep in &chunk {
                idx.upsert(APP, ep);
            }
            build += t.elapsed();
            start += CHUNK;
        }
        csv.flush()?;
    }
    let rss_after = rss_bytes();
    let heap = idx.heap_bytes();

    // Index: warm evaluations.
    let count = idx.count(APP, &dims, NOW);
    for _ in 0..5 {
        black_box(idx.evaluate(APP, &dims, NOW));
    }
    let times = sorted(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                black_box(idx.evaluate(APP, &dims, NOW).len());
                t.elapsed()
            })
            .collect(),
    );
    let count_times = sorted(
        (0..runs.min(50))
            .map(|_| {
                let t = Instant::now();
                black_box(idx.count(APP, &dims, NOW));
                t.elapsed()
            })
            .collect(),
    );
    let (p50, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));

    // DuckDB over the CSV.
    let script = dir.path().join("duckdb_segment.py");
    std::fs::write(&script, DUCKDB_SCRIPT)?;
    let out = Command::new(&python)
        .arg(&script)
        .arg(&csv_path)
        .arg(NOW.to_string())
        .arg(duck_runs.to_string())
        .output()
        .with_context(|| format!("running {python}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let duck: Option<serde_json::Value> = if out.status.code() == Some(3) {
        None
    } else if !out.status.success() {
        bail!(
            "the DuckDB script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        Some(serde_json::from_str(stdout.trim()).context("DuckDB script output")?)
    };
    drop(dir);

    // Naive scan over materialised stored endpoints.
    let naive = if naive_runs > 0 {
        let eps: Vec<EndpointResponse> = (0..n).map(endpoint).collect();
        let scan = || {
            eps.iter()
                .filter(|ep| {
                    let facts = EndpointFacts {
                        endpoint: ep,
                        last_active_ms: ep
                            .effective_date
                            .as_deref()
                            .and_then(|d| parse_iso8601_ms(d).ok()),
                    };
                    dims.matches(&facts, NOW)
                })
                .count() as u64
        };
        let naive_count = scan();
        let t = sorted(
            (0..naive_runs)
                .map(|_| {
                    let t = Instant::now();
                    black_box(scan());
                    t.elapsed()
                })
                .collect(),
        );
        Some((naive_count, percentile(&t, 50.0), percentile(&t, 99.0)))
    } else {
        None
    };

    println!(
        "segment evaluation, {n} endpoints, 5 dimensions (Plan, Channel, Country, score, Recency)"
    );
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| index build (upserts only) | {:.2} s ({:.0} endpoints/s) |",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64()
    );
    println!(
        "| index heap_bytes / endpoint | {:.1} B |",
        heap as f64 / n as f64
    );
    println!(
        "| RSS delta over the build / endpoint | {:.1} B |",
        rss_after.saturating_sub(rss_before) as f64 / n as f64
    );
    println!(
        "| index evaluate p50 / p99 ({runs} runs) | {:.3} / {:.3} ms |",
        ms(p50),
        ms(p99)
    );
    println!(
        "| index count p50 | {:.3} ms |",
        ms(percentile(&count_times, 50.0))
    );
    println!("| index count | {count} |");
    match &duck {
        Some(d) => {
            let f = |k: &str| d[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "| DuckDB {} ({} threads) load | {:.2} s |",
                d["version"].as_str().unwrap_or("?"),
                d["threads"],
                f("load_s")
            );
            println!(
                "| DuckDB p50 / p99 ({duck_runs} runs) | {:.3} / {:.3} ms |",
                f("p50_ms"),
                f("p99_ms")
            );
            println!("| DuckDB count | {} |", d["count"]);
            println!(
                "| ratio index/DuckDB p50 / p99 | {:.4} / {:.4} |",
                ms(p50) / f("p50_ms"),
                ms(p99) / f("p99_ms")
            );
        }
        None => {
            println!("duckdb baseline skipped: pip install duckdb (or set HERALD_BENCH_PYTHON)")
        }
    }
    match naive {
        Some((c, n50, n99)) => {
            println!(
                "| naive matches() scan p50 / p99 ({naive_runs} runs) | {:.1} / {:.1} ms |",
                ms(n50),
                ms(n99)
            );
            println!("| naive count | {c} |");
            println!("| ratio index/naive p50 | {:.5} |", ms(p50) / ms(n50));
        }
        None => println!("naive scan skipped (HERALD_BENCH_NAIVE_RUNS=0)"),
    }

    if let Some((c, _, _)) = naive {
        if c != count {
            bail!("counts differ: index {count}, naive scan {c}");
        }
    }
    if let Some(d) = &duck {
        if d["count"].as_u64() != Some(count) {
            bail!("counts differ: index {count}, DuckDB {}", d["count"]);
        }
    }
    println!("counts agree: {count}");
    Ok(())
}
