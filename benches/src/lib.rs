//! Shared pieces of herald's benchmarks: starting a real `herald` process on
//! a temporary data directory, a SigV4-signing HTTP client, the raw RocksDB
//! baseline every figure is divided by, and latency percentiles.
//!
//! Benchmarks print ratios against a baseline measured in the same run; they
//! never assert on time.

// Benchmarks measure real time and run real threads.
#![allow(clippy::disallowed_methods)]

pub mod smtp;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

pub const ACCESS_KEY: &str = "AKIAHERALDBENCH00001";
pub const SECRET_KEY: &str = "heraldbenchsecret00000000000000000000000";

/// The herald binary to benchmark: `$HERALD_BIN`, else the release build.
pub fn herald_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HERALD_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(target).join("release").join("herald")
}

/// A herald node in its own process, stopped (SIGKILL) on drop.
pub struct Herald {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Herald {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_env(&[]).await
    }

    /// The process id (for CPU and memory readings from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn start_with_env(env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_in(tempfile::tempdir()?, env).await
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Stops the node gracefully (SIGTERM, bounded wait) and keeps its data.
    pub fn stop(mut self) -> anyhow::Result<tempfile::TempDir> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        for _ in 0..600 {
            if self.child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let dir = tempfile::tempdir()?;
        // Hand the data directory over without deleting it.
        let kept = std::mem::replace(&mut self._dir, dir);
        Ok(kept)
    }

    /// Kills the node (SIGKILL, no shutdown) and keeps its data.
    pub fn kill(mut self) -> anyhow::Result<tempfile::TempDir> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(std::mem::replace(&mut self._dir, tempfile::tempdir()?))
    }

    /// Starts a node on an existing data directory.
    pub async fn start_in(dir: tempfile::TempDir, env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_with_args(dir, &[], env).await
    }

    /// Starts a node on an existing data directory with extra `serve`
    /// arguments (`--node-id`, `--rpc`, `--peers`, ...).
    pub async fn start_with_args(
        dir: tempfile::TempDir,
        args: &[String],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let bin = herald_bin();
        if !bin.exists() {
            bail!(
                "{} does not exist; build it with `cargo build --release -p herald-node`",
                bin.display()
            );
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let child = Command::new(&bin)
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("HERALD_ACCESS_KEY_ID", ACCESS_KEY)
            .env("HERALD_SECRET_ACCESS_KEY", SECRET_KEY)
            .env(
                "RUST_LOG",
                std::env::var("HERALD_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            // herald logs to stdout: shown with HERALD_BENCH_NODE_LOGS=1, at
            // the level HERALD_BENCH_RUST_LOG names (default warn).
            .stdout(if std::env::var_os("HERALD_BENCH_NODE_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let h = Self {
            child,
            base,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{}/health", h.base)).send().await {
                if r.status().is_success() {
                    return Ok(h);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("herald did not become healthy in 60 s")
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that signs every request as the AWS SDKs do.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let url = format!("{}{}", self.base, path);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(body)?;
        let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("mobiletargeting")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.uri().to_string(),
            req.headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or_default())),
            SignableBody::Bytes(req.body()),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        let (parts, body) = req.into_parts();
        let mut rb = self.http.request(parts.method, &url);
        for (k, v) in parts.headers.iter() {
            rb = rb.header(k, v);
        }
        let resp = rb.body(body).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?.to_vec()))
    }

    /// Loads endpoints `0..n` into `app` with PutEndpoints: `loaders`
    /// concurrent clients, `batch` endpoints per request, `body(from, to)`
    /// building each request. Prints how long it took.
    pub async fn load_endpoints(
        &self,
        app: &str,
        n: usize,
        loaders: usize,
        batch: usize,
        body: fn(usize, usize) -> Vec<u8>,
    ) -> anyhow::Result<()> {
        let loading = Instant::now();
        let mut tasks = Vec::new();
        for l in 0..loaders {
            let client = self.clone();
            let path = format!("/v1/apps/{app}/endpoints");
            tasks.push(tokio::spawn(async move {
                for from in (l * batch..n).step_by(loaders * batch) {
                    let to = (from + batch).min(n);
                    let (status, resp) = client.send("PUT", &path, body(from, to)).await?;
                    anyhow::ensure!(
                        (200..300).contains(&status),
                        "PutEndpoints: {status} {}",
                        String::from_utf8_lossy(&resp)
                    );
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        println!(
            "loaded {n} endpoints in {:.1} s",
            loading.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Creates an app and returns its id.
    pub async fn create_app(&self, name: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .send(
                "POST",
                "/v1/apps",
                serde_json::to_vec(&serde_json::json!({ "Name": name }))?,
            )
            .await?;
        if status != 201 {
            bail!("create app: {status} {}", String::from_utf8_lossy(&body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(v["Id"].as_str().context("app id")?.to_owned())
    }
}

/// Raw RocksDB baseline: 100-record WriteBatches, WAL synced per batch, from
/// `writers` threads, until `records_total` records or `time_max` passes.
/// Returns records per second.
pub fn rocksdb_sync_batches(
    record_bytes: usize,
    writers: usize,
    records_total: usize,
    time_max: Duration,
) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = std::sync::Arc::new(rocksdb::DB::open(&opts, dir.path()).expect("open rocksdb"));
    let value = vec![b'x'; record_bytes];
    let started = Instant::now();
    let per_writer = records_total / writers / 100;
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let db = db.clone();
                let value = &value;
                s.spawn(move || {
                    let mut wo = rocksdb::WriteOptions::default();
                    wo.set_sync(true);
                    let mut n = 0usize;
                    for b in 0..per_writer {
                        if started.elapsed() > time_max {
                            break;
                        }
                        let mut batch = rocksdb::WriteBatch::default();
                        for i in 0..100 {
                            let key = format!("w{w:02}-b{b:08}-r{i:03}");
                            batch.put(key.as_bytes(), value);
                        }
                        db.write_opt(batch, &wo).expect("write");
                        n += 100;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer")).sum()
    });
    done as f64 / started.elapsed().as_secs_f64()
}

/// The p-th percentile (0..=100) of latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// CPU time (user + system) a process has used so far, from /proc.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).context("utime")?.parse()?;
    let stime: u64 = f.get(12).context("stime")?.parse()?;
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis((utime + stime) * 10))
}

/// Peak resident set size (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Events per PutEvents request in the ingestion benchmarks.
pub const EVENTS_PER_REQUEST: usize = 100;
/// Approximate size of one event's JSON.
pub const EVENT_BYTES: usize = 1000;

/// A PutEvents body: 10 of `client`'s `endpoints` (chosen by `req`), 10
/// events of ~`EVENT_BYTES` each.
pub fn put_events_body(client: usize, req: usize, endpoints: usize) -> Vec<u8> {
    let pad = "p".repeat(EVENT_BYTES - 200);
    let mut batch = serde_json::Map::new();
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
        let endpoint = (req * 10 + e) % endpoints;
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

/// One request prepared before the clock starts: path and body.
pub type Request = (String, Vec<u8>);

/// Sends every client's requests (`(path, body)`, built before the clock
/// starts) one after another, the clients concurrently; every answer must be
/// `ok`. Returns the wall time and the sorted latencies.
pub async fn drive(
    method: &'static str,
    ok: u16,
    work: Vec<(Client, Vec<Request>)>,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, requests) in work {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(requests.len());
            for (path, body) in requests {
                let t = Instant::now();
                let (status, resp) = client.send(method, &path, body).await?;
                if status != ok {
                    bail!(
                        "{method} {path} answered {status}: {}",
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
    Ok((elapsed, lat))
}
