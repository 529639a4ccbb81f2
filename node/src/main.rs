//! The `herald` binary: CLI and configuration, the Pinpoint HTTP API,
//! `/health` and `/metrics`, and the wiring of storage, Raft groups and
//! actors on one node. Errors become Pinpoint's error responses in one place
//! (`error.rs`). SIGTERM/SIGINT drain in-flight requests, stop the groups
//! and flush RocksDB before the process exits.

// node/ owns the real clock (SystemClock, request timing); the seam rule of
// clippy.toml is for the crates below it.
#![allow(clippy::disallowed_methods)]

// mimalloc: glibc's malloc took ~15% of the CPU of PutEvents (perf, see
// the README's benchmarks section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod api;
mod config;
mod credentials;
mod error;
mod sigv4;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use herald_actors::shard::ShardSettings;
use herald_actors::{Clock, Runtime, ServiceConfig};
use herald_cluster::{HostConfig, LocalTransport};
use herald_storage::RocksEngine;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, Config};

/// The production clock: the system's wall clock.
struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

fn init_logs(format: &str) {
    // openraft logs every election at info; keep it at warn unless asked.
    let mut directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    if !directives.contains("openraft") {
        directives.push_str(",openraft=warn");
    }
    let filter =
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = Config::resolve(args)?;
            init_logs(&cfg.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("herald")
                .build()?;
            rt.block_on(serve(cfg))
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let mut keys = cfg.access_keys.clone();
    if keys.is_empty() {
        let (key, created) = credentials::load_or_generate(&cfg.data_dir)?;
        let path = cfg.data_dir.join(credentials::FILE_NAME);
        if created {
            println!(
                "\nherald generated an access key for this node (stored in {}, mode 0600).\n\
                 Use it from the AWS CLI or an SDK:\n\n  \
                 export AWS_ACCESS_KEY_ID={}\n  export AWS_SECRET_ACCESS_KEY={}\n  \
                 export AWS_DEFAULT_REGION=us-east-1\n  export AWS_ENDPOINT_URL_PINPOINT=http://{}\n",
                path.display(),
                key.access_key_id,
                key.secret_access_key,
                cfg.http
            );
        } else {
            tracing::info!(path = %path.display(), access_key_id = %key.access_key_id, "using the generated access key");
        }
        keys.push(key);
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    let engine = Arc::new(RocksEngine::open(&cfg.data_dir.join("db")).context("opening rocksdb")?);
    let host_cfg = HostConfig {
        node_id: cfg.node_id,
        shards: cfg.shards,
        ..HostConfig::default()
    };
    let service_cfg = ServiceConfig {
        limits: cfg.limits.clone(),
        account: cfg.account_id.clone(),
        session_idle_timeout_ms: (cfg.session_idle_timeout_secs as i64).saturating_mul(1000),
    };
    let shard_settings = ShardSettings {
        endpoint_actors_max: cfg.endpoint_actors_max,
        ..ShardSettings::default()
    };
    let runtime = Runtime::start(
        engine.clone(),
        host_cfg,
        Arc::new(LocalTransport::new()),
        Arc::new(SystemClock),
        service_cfg,
        shard_settings,
    )
    .await
    .context("starting the raft groups")?;
    tracing::info!(node_id = cfg.node_id, shards = runtime.host.shards(), data_dir = %cfg.data_dir.display(), "node started");

    let state = Arc::new(api::AppState {
        herald: runtime.herald.clone(),
        verifier: sigv4::SigV4Verifier::new(
            keys.into_iter()
                .map(|k| (k.access_key_id, k.secret_access_key)),
            "mobiletargeting",
            Duration::from_secs(15 * 60),
        ),
        metrics,
        body_bytes_max: cfg.limits.request_bytes_max,
    });
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %cfg.http, "serving the pinpoint api");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("http server")?;

    tracing::info!("draining done; stopping raft groups");
    runtime.shutdown().await;
    engine.close().context("closing rocksdb")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}
