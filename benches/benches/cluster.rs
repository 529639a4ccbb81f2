//! One node against three (R=3) on this machine, then leader kills.
//!
//! 1. The same closed-loop load on a single node and on a 3-node cluster
//!    (clients spread over the nodes' HTTP APIs): UpdateEndpoint upserts/s
//!    and PutEvents events/s (100 events of ~1 KB per request), each with
//!    acknowledgement p50/p99. Prints the 3-node/1-node ratio of each: the
//!    baseline is the single node measured in the same run.
//! 2. Write resumption: `HERALD_BENCH_KILLS` times (default 20), SIGKILL the
//!    node leading the most Raft groups, then time until a fresh write to
//!    each of 16 endpoints (spread over the shards) through a surviving node
//!    is acknowledged. The killed node restarts on its data; before the next
//!    round every group has a leader, no replica lags and leaderships are
//!    spread again, so each kill hits a settled cluster (as the load phase
//!    does). Prints the distribution.
//!
//! Bounded: `HERALD_BENCH_REQUESTS` PutEvents requests per phase (default
//! 600), 4x as many upserts, and the kill count.

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use herald_benches::{
    drive, herald_bin, ms, percentile, put_events_body, Client, Herald, EVENTS_PER_REQUEST,
};

const CLIENTS: usize = 8;
const ENDPOINTS_PER_CLIENT: usize = 200;
/// Endpoints written after each kill; with the default shard count they
/// land on every shard.
const PROBES: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn free_udp_port() -> anyhow::Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// Three nodes started from a static peer list, with fresh certificates.
struct Cluster {
    nodes: Vec<Option<Herald>>,
    args: Vec<Vec<String>>,
    _tls: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> anyhow::Result<Self> {
        let tls = tempfile::tempdir()?;
        let out = std::process::Command::new(herald_bin())
            .args(["cluster", "init-certs", "--out"])
            .arg(tls.path())
            .args(["--nodes", "1,2,3"])
            .output()?;
        if !out.status.success() {
            bail!("init-certs: {}", String::from_utf8_lossy(&out.stderr));
        }
        let rpc: Vec<u16> = (0..3).map(|_| free_udp_port()).collect::<Result<_, _>>()?;
        let peers = (1..=3)
            .map(|n| format!("{n}=127.0.0.1:{}", rpc[n - 1]))
            .collect::<Vec<_>>()
            .join(",");
        let args: Vec<Vec<String>> = (1..=3)
            .map(|n| {
                vec![
                    "--node-id".into(),
                    n.to_string(),
                    "--rpc".into(),
                    format!("127.0.0.1:{}", rpc[n - 1]),
                    "--peers".into(),
                    peers.clone(),
                    "--tls-dir".into(),
                    tls.path().display().to_string(),
                ]
            })
            .collect();
        // Health waits for the cluster, so the nodes start side by side.
        let started =
            futures_join(args.iter().cloned().map(|a| async move {
                Herald::start_with_args(tempfile::tempdir()?, &a, &[]).await
            }))
            .await;
        let mut nodes = Vec::new();
        for n in started {
            nodes.push(Some(n?));
        }
        let c = Self {
            nodes,
            args,
            _tls: tls,
        };
        for i in 0..3 {
            c.wait_leaders(i).await?;
        }
        Ok(c)
    }

    fn client(&self, i: usize) -> Client {
        Client::new(&self.nodes[i].as_ref().expect("node up").base)
    }

    async fn status(&self, i: usize) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self
            .client(i)
            .send("GET", "/herald/v1/cluster", vec![])
            .await?;
        if status != 200 {
            bail!("cluster status: {status}");
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Waits until node `i` sees a leader in every group.
    async fn wait_leaders(&self, i: usize) -> anyhow::Result<()> {
        for _ in 0..300 {
            if let Ok(s) = self.status(i).await {
                let groups = s["Groups"].as_array().context("groups")?;
                if groups.iter().all(|g| !g["leader"].is_null()) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("node {} never saw a leader in every group", i + 1)
    }

    /// The node (index) leading the most groups, and how many it leads.
    async fn busiest(&self, asking: usize) -> anyhow::Result<(usize, usize)> {
        let s = self.status(asking).await?;
        let mut counts = [0usize; 3];
        for g in s["Groups"].as_array().context("groups")? {
            if let Some(l) = g["leader"].as_u64() {
                counts[l as usize - 1] += 1;
            }
        }
        let (i, n) = counts
            .iter()
            .enumerate()
            .max_by_key(|(_, &n)| n)
            .expect("three nodes");
        Ok((i, *n))
    }

    fn kill(&mut self, i: usize) -> anyhow::Result<tempfile::TempDir> {
        self.nodes[i].take().context("node already down")?.kill()
    }

    async fn restart(&mut self, i: usize, dir: tempfile::TempDir) -> anyhow::Result<()> {
        self.nodes[i] = Some(Herald::start_with_args(dir, &self.args[i], &[]).await?);
        self.wait_leaders(i).await?;
        self.wait_settled().await
    }

    /// Waits until the cluster is settled: every group has a leader (by its
    /// own account), no replica lags, and leaderships are spread (no node
    /// leads more than one group above an even share).
    async fn wait_settled(&self) -> anyhow::Result<()> {
        let mut last = String::new();
        for _ in 0..600 {
            let mut behind = 0u64;
            let mut led = vec![0usize; self.nodes.len()];
            let mut groups = 0usize;
            for (i, count) in led.iter_mut().enumerate() {
                let s = self.status(i).await?;
                let all = s["Groups"].as_array().context("groups")?;
                groups = all.len();
                for g in all {
                    if g["leader"].as_u64() == Some(i as u64 + 1) {
                        *count += 1;
                        let lags = g["lag"].as_object().context("lag")?;
                        behind += lags.values().filter_map(|v| v.as_u64()).sum::<u64>();
                    }
                }
            }
            let even = groups.div_ceil(self.nodes.len());
            let leaderless = groups.saturating_sub(led.iter().sum());
            if behind == 0 && leaderless == 0 && led.iter().all(|&n| n <= even + 1) {
                return Ok(());
            }
            last = format!("{behind} entries behind, {leaderless} groups without a leader, groups led per node {led:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the cluster did not settle within a minute: {last}")
    }
}

async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

struct Figures {
    upserts_per_s: f64,
    upsert_p50: Duration,
    upsert_p99: Duration,
    events_per_s: f64,
    events_p50: Duration,
    events_p99: Duration,
}

fn upsert_body(client: usize, i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ChannelType": "EMAIL",
        "Address": format!("u{client}-{i}@example.com"),
        "Attributes": { "Plan": [if i.is_multiple_of(2) { "gold" } else { "free" }] },
        "User": { "UserId": format!("user-{client}-{i}") }
    }))
    .expect("body")
}

/// The load of one phase; `clients` are the HTTP APIs to spread it over.
async fn measure(clients: &[Client], app: &str, requests: usize) -> anyhow::Result<Figures> {
    let on = |c: usize| clients[c % clients.len()].clone();
    // Create every endpoint the events name, so the run measures the steady
    // state.
    let warm = (0..CLIENTS)
        .map(|c| {
            let path = format!("/v1/apps/{app}/events");
            let reqs = (0..ENDPOINTS_PER_CLIENT / 10)
                .map(|r| (path.clone(), put_events_body(c, r, ENDPOINTS_PER_CLIENT)))
                .collect();
            (on(c), reqs)
        })
        .collect();
    drive("POST", 202, warm).await?;

    let upserts = (0..CLIENTS)
        .map(|c| {
            let reqs = (0..requests * 4 / CLIENTS)
                .map(|i| {
                    (
                        format!("/v1/apps/{app}/endpoints/u{c}-{i}"),
                        upsert_body(c, i),
                    )
                })
                .collect();
            (on(c), reqs)
        })
        .collect();
    let (up_time, up_lat) = drive("PUT", 202, upserts).await?;

    let events = (0..CLIENTS)
        .map(|c| {
            let path = format!("/v1/apps/{app}/events");
            let reqs = (0..requests / CLIENTS)
                .map(|r| (path.clone(), put_events_body(c, r, ENDPOINTS_PER_CLIENT)))
                .collect();
            (on(c), reqs)
        })
        .collect();
    let (ev_time, ev_lat) = drive("POST", 202, events).await?;
    Ok(Figures {
        upserts_per_s: up_lat.len() as f64 / up_time.as_secs_f64(),
        upsert_p50: percentile(&up_lat, 50.0),
        upsert_p99: percentile(&up_lat, 99.0),
        events_per_s: (ev_lat.len() * EVENTS_PER_REQUEST) as f64 / ev_time.as_secs_f64(),
        events_p50: percentile(&ev_lat, 50.0),
        events_p99: percentile(&ev_lat, 99.0),
    })
}

fn print(label: &str, f: &Figures) {
    println!(
        "{label}: {:.0} upserts/s (p50 {:.1} ms, p99 {:.1} ms), {:.0} events/s (p50 {:.1} ms, p99 {:.1} ms per 100-event request)",
        f.upserts_per_s,
        ms(f.upsert_p50),
        ms(f.upsert_p99),
        f.events_per_s,
        ms(f.events_p50),
        ms(f.events_p99)
    );
}

/// The 0.5 and 0.99 quantiles (ms) and count of a summary on a node's
/// `/metrics`, over the exporter's recent window.
async fn summary(base: &str, name: &str) -> anyhow::Result<(f64, f64, f64)> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .unwrap_or(f64::NAN)
    };
    Ok((
        value(&format!("{name}{{quantile=\"0.5\"}}")) * 1e3,
        value(&format!("{name}{{quantile=\"0.99\"}}")) * 1e3,
        value(&format!("{name}_count")),
    ))
}

/// Where a 3-node write's time goes, as each node saw it.
async fn print_raft_times(cluster: &Cluster) -> anyhow::Result<()> {
    for (i, node) in cluster.nodes.iter().enumerate() {
        let base = &node.as_ref().context("node up")?.base;
        let mut line = format!("  node {}:", i + 1);
        for (label, name) in [
            ("propose", "herald_raft_propose_seconds"),
            ("read barrier", "herald_raft_read_barrier_seconds"),
        ] {
            let (p50, p99, n) = summary(base, name).await?;
            line += &format!(" {label} p50 {p50:.1} ms, p99 {p99:.1} ms ({n:.0} calls);");
        }
        println!("{line}");
    }
    Ok(())
}

/// Time from `killed_at` until every probe endpoint accepted a fresh write
/// through `client` (each retried on errors).
async fn resume_time(client: &Client, app: &str, round: usize, killed_at: Instant) -> Duration {
    let probes = (0..PROBES).map(|p| {
        let client = client.clone();
        let path = format!("/v1/apps/{app}/endpoints/probe-{p}");
        let body = upsert_body(round, p);
        async move {
            // Bounded: a minute of retries at most.
            for _ in 0..3000 {
                if let Ok((s, _)) = client.send("PUT", &path, body.clone()).await {
                    if s == 202 {
                        return Some(killed_at.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        }
    });
    let handles: Vec<_> = probes.map(tokio::spawn).collect();
    let mut worst = Duration::ZERO;
    for h in handles {
        match h.await.expect("probe task") {
            Some(d) => worst = worst.max(d),
            None => return Duration::MAX,
        }
    }
    worst
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests = env_usize("HERALD_BENCH_REQUESTS", 600);
    let kills = env_usize("HERALD_BENCH_KILLS", 20);

    let one = {
        let herald = Herald::start().await?;
        let client = Client::new(&herald.base);
        let app = client.create_app("cluster-bench-1").await?;
        measure(&[client], &app, requests).await?
    };
    print("baseline: 1 node", &one);

    let mut cluster = Cluster::start().await?;
    let clients: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    let app = clients[0].create_app("cluster-bench-3").await?;
    // Node 1 initialised every group and led them all; the load starts once
    // the leaderships have spread, as on a cluster that has been running.
    cluster.wait_settled().await?;
    let three = measure(&clients, &app, requests).await?;
    print("3 nodes, R=3", &three);
    print_raft_times(&cluster).await?;
    println!(
        "ratio 3 nodes/1 node: upserts {:.2}, events {:.2} (one machine: the three nodes share 2 cores and one disk)",
        three.upserts_per_s / one.upserts_per_s,
        three.events_per_s / one.events_per_s
    );

    let mut resumes = Vec::new();
    let mut asking = 0;
    for round in 0..kills {
        let (victim, led) = cluster.busiest(asking).await?;
        asking = (victim + 1) % 3;
        let survivor = cluster.client(asking);
        let dir = cluster.kill(victim)?;
        let killed_at = Instant::now();
        let took = resume_time(&survivor, &app, round, killed_at).await;
        if took == Duration::MAX {
            bail!("round {round}: writes did not resume within a minute");
        }
        println!(
            "kill {round}: node {} (led {led} groups): writes resumed in {:.0} ms",
            victim + 1,
            ms(took)
        );
        resumes.push(took);
        cluster.restart(victim, dir).await?;
    }
    resumes.sort();
    println!(
        "write resumption after a leader SIGKILL over {} kills: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal: p99 <= 2000 ms)",
        resumes.len(),
        ms(percentile(&resumes, 50.0)),
        ms(percentile(&resumes, 90.0)),
        ms(percentile(&resumes, 99.0)),
        ms(percentile(&resumes, 100.0))
    );
    Ok(())
}
