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
mod cluster;
mod config;
mod credentials;
mod error;
mod sigv4;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use herald_actors::delivery::{DeliverySettings, Dispatcher};
use herald_actors::shard::ShardSettings;
use herald_actors::{Clock, Runtime, SeededEntropy, ServiceConfig, TrackingConfig};
use herald_channels::outbox::Outbox;
use herald_channels::pacing::Backoff;
use herald_channels::smtp::{SmtpClient, SmtpConfig};
use herald_channels::transport::{EmailTransport, OutboxTransport};
use herald_channels::webhook::WebhookClient;
use herald_cluster::HostConfig;
use herald_storage::RocksEngine;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, ClusterCommand, Command, Config};

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
    herald_storage::rocks::tune_c_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = Config::resolve(*args)?;
            init_logs(&cfg.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("herald")
                .build()?;
            rt.block_on(serve(cfg))
        }
        Command::Cluster(ClusterCommand::InitCerts { out, nodes, days }) => {
            cluster::init_certs(&out, &nodes, days)
        }
        Command::Cluster(ClusterCommand::Status(admin)) => {
            admin_runtime()?.block_on(cluster::status(&admin))
        }
        Command::Cluster(ClusterCommand::RemoveNode { node, admin }) => {
            admin_runtime()?.block_on(cluster::remove_node(&admin, node))
        }
    }
}

/// How often a node hands groups it leads to their preferred leaders...
const LEADER_BALANCE_EVERY: Duration = Duration::from_secs(1);
/// ... and how many at most each time.
const LEADER_BALANCE_MAX: usize = 8;
/// How long a stopping node waits for its groups to find new leaders.
const HANDOVER_WITHIN: Duration = Duration::from_secs(5);

fn admin_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
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

    let engine = Arc::new(
        RocksEngine::open_with(
            &cfg.data_dir.join("db"),
            herald_storage::rocks::MemoryBudget {
                memtables_bytes: (cfg.storage.memtables_mib.max(4) << 20) as usize,
                block_cache_bytes: (cfg.storage.block_cache_mib.max(1) << 20) as usize,
            },
        )
        .context("opening rocksdb")?,
    );
    let wiring = cluster::wire(&cfg)?;
    let host_cfg = HostConfig {
        node_id: cfg.node_id,
        shards: cfg.shards,
        heartbeat_ms: cfg.raft.heartbeat_ms,
        election_timeout_min_ms: cfg.raft.election_timeout_min_ms,
        election_timeout_max_ms: cfg.raft.election_timeout_max_ms,
        members: if cfg.peers.is_empty() {
            // A lone node with RPC records its address, so others can join.
            cfg.rpc_advertise
                .iter()
                .map(|a| (cfg.node_id, a.to_string()))
                .collect()
        } else {
            cfg.peers
                .iter()
                .map(|(&id, addr)| (id, addr.to_string()))
                .collect()
        },
        join: cfg
            .join
            .zip(cfg.rpc_advertise)
            .map(|((id, via), own)| ((id, via.to_string()), own.to_string())),
        ..HostConfig::default()
    };
    let service_cfg = ServiceConfig {
        limits: cfg.limits.clone(),
        account: cfg.account_id.clone(),
        session_idle_timeout_ms: (cfg.session_idle_timeout_secs as i64).saturating_mul(1000),
        analytics_rollups: cfg.analytics.rollups,
        event_retention_days: cfg.analytics.event_retention_days,
        tracking: TrackingConfig {
            base_url: cfg.public_url.clone(),
            secret: credentials::tracking_secret(&cfg.data_dir)?,
            opens: cfg.tracking.opens,
            clicks: cfg.tracking.clicks,
            list_unsubscribe_on_direct: cfg.tracking.list_unsubscribe_on_direct,
        },
        jobs: herald_actors::jobs::JobsConfig {
            file_roots: cfg.jobs.file_roots.clone(),
            running_max: usize::try_from(cfg.jobs.running_max.max(1)).unwrap_or(2),
        },
        sms: cfg.sms.service_config()?,
        ..ServiceConfig::default()
    };
    let shard_settings = ShardSettings {
        endpoint_actors_max: cfg.endpoint_actors_max,
        send_retention_ms: (cfg.delivery.send_ledger_retention_hours as i64) * 3_600_000,
        event_retention_days: cfg.analytics.event_retention_days,
        event_expiry_every_ms: i64::try_from(cfg.analytics.expiry_interval_secs)
            .unwrap_or(i64::MAX / 2_000)
            .saturating_mul(1000),
        ..ShardSettings::default()
    };
    let runtime = Runtime::start(
        engine.clone(),
        host_cfg,
        wiring.transport.clone(),
        Arc::new(SystemClock),
        service_cfg,
        shard_settings,
    )
    .await
    .context("starting the raft groups")?;
    tracing::info!(node_id = cfg.node_id, shards = runtime.host.shards(), data_dir = %cfg.data_dir.display(), "node started");
    if cfg.public_url.is_none() {
        tracing::info!(
            "no public URL (--public-url): opens, clicks and one-click unsubscribe are not tracked"
        );
    }
    let _raft_metrics = {
        let host = runtime.host.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                host.report_metrics();
            }
        })
    };
    let leader_balance = {
        let host = runtime.host.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LEADER_BALANCE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                host.balance_leaders(LEADER_BALANCE_MAX).await;
            }
        })
    };
    // The placement controller acts only while this node leads the meta
    // group; elsewhere it idles.
    let placement = {
        let host = runtime.host.clone();
        let p = cfg.placement.clone();
        tokio::spawn(async move {
            host.run_placement(
                usize::try_from(p.replication).unwrap_or(3),
                Duration::from_millis(p.interval_ms),
                Duration::from_secs(p.replace_down_after_secs),
            )
            .await;
        })
    };
    let (dispatcher, outbox) = delivery(&cfg)?;
    runtime.herald.set_dispatcher(dispatcher.clone());
    let smpp = sms(&cfg, &dispatcher, &runtime.herald)?;
    let streamer = Arc::new(herald_actors::streams::EventStreamer::new(cfg.node_id));
    runtime.herald.set_streamer(streamer.clone());
    let (stop_streams, streams_stopped) = tokio::sync::oneshot::channel::<()>();
    let streams = tokio::spawn(streamer.run(
        dispatcher.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(1),
        async {
            let _ = streams_stopped.await;
        },
    ));
    let (stop_campaigns, campaigns_stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(runtime.herald.clone().run_campaign_scheduler(async {
        let _ = campaigns_stopped.await;
    }));

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
        outbox,
    });
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %cfg.http, "serving the pinpoint api");
    // On SIGTERM, while the API still answers: the campaign scheduler stops
    // (a run in progress stops between batches and resumes on the next meta
    // leader), leader balancing and placement stop, and this node hands the groups it
    // leads to caught-up voters, so requests in flight elsewhere find new
    // leaders instead of a stopped one. Then the API drains.
    let balancing = leader_balance.abort_handle();
    let placing = placement.abort_handle();
    let handover = {
        let host = runtime.host.clone();
        async move {
            shutdown_signal().await;
            let _ = stop_campaigns.send(());
            if tokio::time::timeout(Duration::from_secs(10), scheduler)
                .await
                .is_err()
            {
                tracing::warn!("the campaign scheduler did not stop within 10 s");
            }
            balancing.abort();
            placing.abort();
            let handed = host.hand_over_leadership(HANDOVER_WITHIN).await;
            tracing::info!(
                groups = handed,
                "handed leaderships over; draining requests"
            );
        }
    };
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(handover)
        .await
        .context("http server")?;

    tracing::info!("draining done; stopping channel actors and raft groups");
    let _ = stop_streams.send(());
    if tokio::time::timeout(Duration::from_secs(10), streams)
        .await
        .is_err()
    {
        tracing::warn!("the event stream publisher did not finish within 10 s");
    }
    dispatcher.stop().await;
    if let Some(c) = smpp {
        c.stop().await;
    }
    runtime.shutdown().await;
    if let Some(server) = wiring.server {
        server.shutdown(Duration::from_secs(1)).await;
    }
    engine.close().context("closing rocksdb")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Messages the SMSC delivered and the node has not handled yet, at most.
const SMS_INBOUND_MAX: usize = 1_024;
/// SMS awaiting receipts on this node at most, and for how long.
const SMS_RECEIPTS_MAX: usize = 1_000_000;
const SMS_RECEIPT_TTL_MS: i64 = 72 * 3_600_000;

/// The SMPP client to the SMSC (when one is configured), given to the
/// channel actors, and the task serving what the SMSC delivers.
fn sms<E: herald_storage::KvEngine>(
    cfg: &Config,
    dispatcher: &Dispatcher,
    herald: &Arc<herald_actors::service::Herald<E>>,
) -> anyhow::Result<Option<Arc<herald_channels::smpp::SmppClient>>> {
    let Some(settings) = cfg.sms.smpp()? else {
        tracing::info!("no SMSC configured ([sms] smsc): SMS sends fail");
        return Ok(None);
    };
    tracing::info!(smsc = %settings.addr, system_id = %settings.system_id, numbers = cfg.sms.numbers.len(), "SMS goes out over SMPP");
    let (tx, rx) = tokio::sync::mpsc::channel(SMS_INBOUND_MAX);
    let client = Arc::new(
        herald_channels::smpp::SmppClient::start(settings, tx)
            .map_err(|e| anyhow::anyhow!("sms: {e}"))?,
    );
    let book = Arc::new(herald_actors::sms::ReceiptBook::new(
        SMS_RECEIPTS_MAX,
        SMS_RECEIPT_TTL_MS,
    ));
    dispatcher.set_sms(client.clone(), book.clone());
    tokio::spawn(herald_actors::sms::serve_inbound(
        herald.clone(),
        rx,
        book,
        client.clone(),
    ));
    Ok(Some(client))
}

/// The email transports (SMTP, or the dev outbox without one) and the
/// channel actors' directory.
fn delivery(cfg: &Config) -> anyhow::Result<(Arc<Dispatcher>, Option<Arc<Outbox>>)> {
    let d = &cfg.delivery;
    let smtp = |url: &str| -> anyhow::Result<Arc<dyn EmailTransport>> {
        let mut c = SmtpConfig::from_url(url).map_err(|e| anyhow::anyhow!("SMTP URL: {e}"))?;
        c.pool_max = d.smtp_connections_max.max(1) as usize;
        Ok(Arc::new(SmtpClient::new(c)))
    };
    let mut outbox = None;
    let default: Arc<dyn EmailTransport> = match &cfg.smtp_url {
        Some(url) => {
            let t = smtp(url)?;
            let c = SmtpConfig::from_url(url).map_err(|e| anyhow::anyhow!("SMTP URL: {e}"))?;
            tracing::info!(host = %c.host, port = c.port, tls = ?c.tls, "email goes out through SMTP");
            t
        }
        None => {
            let dir = cfg.data_dir.join("outbox");
            let o = Arc::new(
                Outbox::open(&dir, d.outbox_keep.max(1) as usize)
                    .with_context(|| format!("opening the dev outbox in {}", dir.display()))?,
            );
            tracing::warn!(
                dir = %dir.display(),
                "NO SMTP SERVER CONFIGURED: email is NOT delivered; it is stored in the dev outbox \
                 (GET /herald/v1/outbox). Set --smtp-url or HERALD_SMTP_URL to send for real."
            );
            outbox = Some(o.clone());
            let clock = SystemClock;
            Arc::new(OutboxTransport::new(
                o,
                Box::new(move || herald_model::time::format_iso8601_ms(clock.now_ms())),
            ))
        }
    };
    let mut per_app = std::collections::BTreeMap::new();
    for (app, url) in &cfg.smtp_url_per_app {
        per_app.insert(app.clone(), smtp(url)?);
    }
    let settings = DeliverySettings {
        app_rate_per_sec: d.app_messages_per_second as f64,
        node_rate_per_sec: d.node_messages_per_second as f64,
        queue_max: d.queue_max.max(1) as usize,
        admit_timeout: Duration::from_secs(5),
        backoff: Backoff {
            base_ms: d.retry_base_ms as i64,
            max_ms: d.retry_max_ms as i64,
            attempts_max: d.attempts_max.max(1) as u32,
        },
    };
    let seed = rand::random::<u64>();
    // Each POST is bounded by the timeout; the per-app key is passed per call.
    let webhook_ca = match &d.webhook_ca_file {
        None => None,
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("reading webhook_ca_file {path}: {e}"))?,
        ),
    };
    let webhooks = WebhookClient::new(
        Vec::new(),
        Duration::from_millis(d.webhook_timeout_ms.max(1)),
        webhook_ca.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("webhook client: {e}"))?;
    let dispatcher = Dispatcher::new(
        default,
        per_app,
        Arc::new(webhooks),
        Arc::new(SystemClock),
        Arc::new(SeededEntropy::new(seed)),
        settings,
    );
    let p = &cfg.push;
    let apns_ca = match &p.apns_ca_file {
        None => None,
        Some(path) => Some(
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading apns_ca_file {path}: {e}"))?,
        ),
    };
    let fcm_ca = match &p.fcm_ca_file {
        None => None,
        Some(path) => Some(
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading fcm_ca_file {path}: {e}"))?,
        ),
    };
    dispatcher.set_push(Arc::new(herald_channels::transport::PushProviders {
        apns: herald_channels::apns::ApnsPool::new(herald_channels::apns::ApnsPoolConfig {
            production_url: p.apns_url.clone(),
            sandbox_url: p.apns_sandbox_url.clone(),
            connections: p.apns_connections.clamp(1, 64) as usize,
            streams_per_connection: p.apns_streams_per_connection.clamp(1, 10_000) as usize,
            timeout: Duration::from_millis(p.apns_timeout_ms.max(1)),
            ca_pem: apns_ca,
        }),
        fcm: herald_channels::fcm::FcmPool::new(herald_channels::fcm::FcmConfig {
            base_url: p.fcm_url.trim_end_matches('/').to_owned(),
            token_url: Some(p.fcm_token_url.clone()).filter(|u| !u.is_empty()),
            timeout: Duration::from_millis(p.fcm_timeout_ms.max(1)),
            ca_pem: fcm_ca,
        }),
    }));
    Ok((Arc::new(dispatcher), outbox))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}
