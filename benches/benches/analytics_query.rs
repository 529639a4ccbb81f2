//! Analytics query latency over a large event history, in-process on one
//! RocksDB instance: `HERALD_BENCH_EVENTS` events (default 10,000,000) of
//! 100,000 users over 60 days are applied through the 64 data groups'
//! state machines (rollups on), then a 30-day retention table and a
//! 3-step funnel (view_item -> add_to_cart -> purchase within an hour over
//! 30 days) are timed: the first run (cold ordinal translation) and the
//! median of 5 more. Baseline, measured in the same run: one scan of the
//! raw events of the same 30 days (what answering without rollups would at
//! least read). Prints each latency, the ratio to the baseline, and the
//! goal (<= 100 ms each).

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

// The allocator herald itself runs with (node/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_actors::analytics::{DateRange, OrdinalCache, Query};
use herald_model::analytics::Kind;
use herald_model::wire::{EndpointRequest, EndpointUser, Event};
use herald_storage::keys;
use herald_storage::{
    ApplyLimits, Cf, CmdResult, Command, EventsItem, KvEngine, Reader, RocksEngine, StateMachine,
    TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

const SHARDS: u32 = 64;
const USERS: u64 = 100_000;
const DAYS: i64 = 60;
const DAY_MS: i64 = 86_400_000;
/// 2026-08-01T00:00Z.
const START_MS: i64 = 1_785_542_400_000;
const APP: &str = "bench-app";
const TYPES: [&str; 5] = ["view_item", "add_to_cart", "purchase", "level_up", "share"];
const EVENTS_PER_COMMAND: usize = 2_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Group {
    sm: StateMachine<RocksEngine>,
    index: u64,
    items: Vec<EventsItem>,
    events: usize,
}

impl Group {
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        self.index += 1;
        let cmd = Command::PutEvents {
            app_id: APP.into(),
            now_iso: "2026-10-01T00:00:00.000Z".into(),
            limits: ApplyLimits {
                endpoint_bytes_max: 15 * 1024,
                endpoint_attributes_max: 250,
                session_idle_timeout_ms: 1_800_000,
                rollups: true,
            },
            items: std::mem::take(&mut self.items),
        };
        self.events = 0;
        let entry: Entry<TypeConfig> = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(cmd),
        };
        let r = self.sm.apply(vec![entry]).await?.remove(0);
        anyhow::ensure!(
            matches!(r, CmdResult::Written { .. }),
            "apply answered {r:?}"
        );
        Ok(())
    }
}

fn time<T>(f: impl Fn() -> T) -> (Duration, Duration, T) {
    let started = Instant::now();
    let first = f();
    let cold = started.elapsed();
    let mut warm = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        f();
        warm.push(t.elapsed());
    }
    warm.sort();
    (cold, warm[2], first)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let target: u64 = std::env::var("HERALD_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    // HERALD_BENCH_DIR keeps the loaded data for later runs (profiling).
    let tmp = tempfile::tempdir()?;
    let path = std::env::var("HERALD_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let marker = path.join("loaded");
    let reuse = marker.exists();
    // As the herald binary does (node/src/main.rs).
    herald_storage::rocks::tune_c_allocator();
    // HERALD_BENCH_BLOCK_CACHE_MIB: herald's `[storage] block_cache_mib`
    // (default 256).
    let mut budget = herald_storage::rocks::MemoryBudget::default();
    if let Some(mib) = std::env::var("HERALD_BENCH_BLOCK_CACHE_MIB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        budget.block_cache_bytes = mib << 20;
    }
    println!("block cache {} MiB", budget.block_cache_bytes >> 20);
    let engine = Arc::new(RocksEngine::open_with(&path, budget)?);
    let mut groups = Vec::new();
    for s in 0..SHARDS {
        groups.push(Group {
            sm: StateMachine::open(engine.clone(), keys::shard_group(s), None)?,
            index: 0,
            items: Vec::new(),
            events: 0,
        });
    }
    // Each user's first day and how often it comes back; ~7 events per
    // active day, so `target` events need about target/7 active days.
    let mut rng = Rng(20_261_207);
    let active_days_wanted = target / 7;
    let per_user = (active_days_wanted / USERS).max(1);
    let p_back = (per_user as f64 / (DAYS as f64 / 2.0)).min(1.0);
    let started = Instant::now();
    let mut stored = 0u64;
    let mut created = std::collections::BTreeSet::new();
    'outer: for day in 0..DAYS {
        if reuse {
            break;
        }
        for u in 0..USERS {
            let first = (u * 7919) % (DAYS as u64 / 2);
            if (day as u64) < first {
                continue;
            }
            if day as u64 != first && (rng.below(1_000_000) as f64) >= p_back * 1e6 {
                continue;
            }
            let endpoint = if u % 5 == 0 && rng.below(2) == 0 {
                format!("ep-{u}-b")
            } else {
                format!("ep-{u}")
            };
            let mut t = START_MS + day * DAY_MS + rng.below(20 * 3_600_000) as i64;
            let n = 3 + rng.below(8) as usize;
            let mut events = Vec::with_capacity(n);
            for i in 0..n {
                t += 1_000 + rng.below(300_000) as i64;
                let et = TYPES[((i as u64 + rng.below(3)) % TYPES.len() as u64) as usize];
                events.push((
                    format!("{u}-{day}-{i}"),
                    Event {
                        event_type: Some(et.into()),
                        timestamp: Some(herald_model::time::format_iso8601_ms(t)),
                        ..Default::default()
                    },
                ));
            }
            let g = herald_model::hash::shard_of(APP, &endpoint, SHARDS) as usize;
            let grp = &mut groups[g];
            grp.events += events.len();
            stored += events.len() as u64;
            let fresh = created.insert(endpoint.clone());
            grp.items.push(EventsItem {
                endpoint_id: endpoint,
                endpoint: fresh.then(|| EndpointRequest {
                    channel_type: Some("EMAIL".into()),
                    address: Some(format!("user{u}@example.org")),
                    user: Some(EndpointUser {
                        user_id: Some(format!("user-{u}")),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                events,
            });
            if grp.events >= EVENTS_PER_COMMAND {
                grp.flush().await?;
            }
            if stored >= target {
                break 'outer;
            }
        }
    }
    for g in &mut groups {
        g.flush().await?;
    }
    let load = started.elapsed();
    // Queries are measured on a settled database, not against the
    // compactions the load left behind.
    let settling = Instant::now();
    engine.settle(Duration::from_secs(600))?;
    println!(
        "waited {:.1} s for flushes and compactions",
        settling.elapsed().as_secs_f64()
    );
    if reuse {
        println!("reusing the events loaded in {}", path.display());
    } else {
        std::fs::write(&marker, b"")?;
    }
    println!(
        "loaded {stored} events of {USERS} users over {DAYS} days in {:.1} s ({:.0} events/s through the state machines, rollups on)",
        load.as_secs_f64(),
        stored as f64 / load.as_secs_f64()
    );

    let reader = Reader::new(engine.clone());
    let ords = OrdinalCache::default();
    let q = Query {
        reader: &reader,
        groups: (0..SHARDS).map(keys::shard_group).collect(),
        ords: &ords,
        now_ms: START_MS + DAYS * DAY_MS,
    };
    let from = "2026-08-01";
    let to = "2026-08-30";
    let range = DateRange::parse(None, Some(from), Some(to), q.now_ms)?;

    // Baseline: read the raw events of the same 30 days once
    // (HERALD_BENCH_QUERY_ONLY skips it, for profiling the queries).
    let query_only = std::env::var_os("HERALD_BENCH_QUERY_ONLY").is_some();
    let (scan_cold, scan, scanned) = time(|| {
        if query_only {
            return 0;
        }
        let mut n = 0u64;
        for s in 0..SHARDS {
            let g = keys::shard_group(s);
            let start = keys::event(g, APP, START_MS, 0, 0);
            let end = keys::event(g, APP, START_MS + 30 * DAY_MS, 0, 0);
            engine
                .scan(Cf::State, &start, &end, &mut |_, v| {
                    let row: herald_storage::EventRow =
                        serde_json::from_slice(v).expect("event row");
                    n += u64::from(row.event.event_type.is_some());
                    ControlFlow::Continue(())
                })
                .expect("scan");
        }
        n
    });
    println!(
        "baseline: scan of the raw events of 30 days ({scanned} events): {:.1} ms (first {:.1} ms)",
        ms(scan),
        ms(scan_cold)
    );

    let (cold, warm, rows) = time(|| q.retention(APP, range, Kind::Person).expect("retention"));
    let cohort: u64 = rows.iter().map(|r| r.cohort).sum();
    println!(
        "30-day retention table ({} cohorts, {cohort} users): {:.1} ms (first, cold ordinal cache: {:.1} ms); ratio to baseline {:.4}; goal <= 100 ms: {}",
        rows.len(),
        ms(warm),
        ms(cold),
        warm.as_secs_f64() / scan.as_secs_f64(),
        if ms(warm) <= 100.0 { "met" } else { "NOT met" }
    );
    let steps: Vec<String> = ["view_item", "add_to_cart", "purchase"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (cold, warm, f) = time(|| q.funnel(APP, range, &steps, 3600).expect("funnel"));
    println!(
        "3-step funnel over 30 days ({} -> {} -> {} users): {:.1} ms (first: {:.1} ms); ratio to baseline {:.4}; goal <= 100 ms: {}",
        f[0].users,
        f[1].users,
        f[2].users,
        ms(warm),
        ms(cold),
        warm.as_secs_f64() / scan.as_secs_f64(),
        if ms(warm) <= 100.0 { "met" } else { "NOT met" }
    );
    // What the funnel reads: its steps' stored occurrences, decoded.
    let first_hour = (START_MS / 3_600_000) as i32;
    let (_, read, n) = time(|| {
        let analytics = reader.analytics();
        let mut n = 0u64;
        for step in &steps {
            for s in 0..SHARDS {
                analytics
                    .visit_occurrences(
                        keys::shard_group(s),
                        APP,
                        step,
                        first_hour,
                        first_hour + 30 * 24 + 1,
                        &mut |chunk| {
                            n += chunk.count() as u64;
                            ControlFlow::Continue(())
                        },
                    )
                    .expect("occurrences");
            }
        }
        n
    });
    println!(
        "  of which reading the steps' {n} stored occurrences: {:.1} ms",
        ms(read)
    );
    let (_, warm, a) = time(|| q.active(APP, range, Kind::Person).expect("active"));
    println!(
        "active users, 30 days (last day DAU {} MAU {}): {:.1} ms",
        a.last().map_or(0, |r| r.daily),
        a.last().map_or(0, |r| r.monthly),
        ms(warm)
    );
    Ok(())
}
