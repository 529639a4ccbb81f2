//! Configuration: one TOML file, every key overridable by a `HERALD_*`
//! environment variable, the common ones also by flags. Precedence: flag,
//! then environment, then file, then default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_model::limits::Limits;
use serde::Deserialize;

use crate::credentials::AccessKey;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "herald: a self-hosted, Pinpoint-compatible customer-engagement server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: the Pinpoint REST API, /health and /metrics.
    Serve(Box<ServeArgs>),
    /// Cluster administration.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster CA (or reuse the one in --out) and a certificate
    /// and key for each node: ca.pem, ca.key.pem, node-<id>.pem,
    /// node-<id>.key.pem. Existing node files are kept.
    InitCerts {
        /// Directory to write to (created if missing); give it to every
        /// node as --tls-dir (nodes need only ca.pem and their own pair).
        #[arg(long)]
        out: PathBuf,
        /// Node ids, comma-separated, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u64>,
        /// Validity of new certificates, in days.
        #[arg(long, default_value_t = 825)]
        days: u64,
    },
    /// Print every node's view of the cluster: per group its voters,
    /// learners, leader, term, log and applied indexes and replica lag.
    Status(AdminArgs),
    /// Remove a node from every group (through each group's leader); stop
    /// the node afterwards.
    RemoveNode {
        /// The node to remove.
        node: u64,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// How admin commands reach a node: its HTTP API, signed with an access
/// key of the cluster.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of any node's HTTP API.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Access key id (also AWS_ACCESS_KEY_ID).
    #[arg(long, env = "HERALD_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Secret of the access key (also AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "HERALD_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the node keeps its data [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "HERALD_HTTP")]
    pub http: Option<SocketAddr>,
    /// This node's id in the cluster [default: 1].
    #[arg(long, env = "HERALD_NODE_ID")]
    pub node_id: Option<u64>,
    /// Data shards of a new cluster; fixed once the cluster exists [default: 64].
    #[arg(long, env = "HERALD_SHARDS")]
    pub shards: Option<u32>,
    /// Account id used in ARNs [default: 000000000000].
    #[arg(long, env = "HERALD_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Access key id clients sign with (with --secret-access-key).
    #[arg(long, env = "HERALD_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Secret of --access-key-id.
    #[arg(long, env = "HERALD_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// A session with no activity for this long is closed [default: 1800].
    #[arg(long, env = "HERALD_SESSION_IDLE_TIMEOUT_SECS")]
    pub session_idle_timeout_secs: Option<u64>,
    /// Resident endpoint actors per shard at most [default: 1024].
    #[arg(long, env = "HERALD_ENDPOINT_ACTORS_MAX")]
    pub endpoint_actors_max: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "HERALD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// SMTP server for email, e.g. smtp://user:pass@mail.example.com:587/herald.example.com?tls=required
    /// (the path is the EHLO name). Without one, email goes to the dev outbox.
    #[arg(long, env = "HERALD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// UDP address of this node's cluster RPC (QUIC), e.g. 10.0.0.1:7070.
    /// Without it the node runs alone.
    #[arg(long, env = "HERALD_RPC")]
    pub rpc: Option<SocketAddr>,
    /// The RPC address other nodes should use to reach this one, when it
    /// differs from --rpc (NAT, containers, a proxy) [default: --rpc].
    #[arg(long, env = "HERALD_RPC_ADVERTISE")]
    pub rpc_advertise: Option<SocketAddr>,
    /// The voters of a new cluster: id=ADDR pairs, comma-separated, e.g.
    /// 1=10.0.0.1:7070,2=10.0.0.2:7070,3=10.0.0.3:7070 (this node included).
    #[arg(long, env = "HERALD_PEERS")]
    pub peers: Option<String>,
    /// Join a running cluster through one of its members, given as id=ADDR
    /// (its RPC address), e.g. 1=10.0.0.1:7070. Only for a new data
    /// directory; a node that has joined restarts without it.
    #[arg(long, env = "HERALD_JOIN")]
    pub join: Option<String>,
    /// Directory with ca.pem, node-<id>.pem and node-<id>.key.pem
    /// (`herald cluster init-certs`) [default: <data-dir>/tls].
    #[arg(long, env = "HERALD_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Public base URL of this node for open, click and unsubscribe links
    /// (e.g. https://herald.example.com); without one, nothing is tracked.
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// The TOML file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub node_id: Option<u64>,
    pub shards: Option<u32>,
    pub account_id: Option<String>,
    pub session_idle_timeout_secs: Option<u64>,
    pub endpoint_actors_max: Option<usize>,
    pub log_format: Option<String>,
    /// Several keys may be configured.
    #[serde(default)]
    pub access_keys: Vec<AccessKey>,
    /// Pinpoint's quotas; each also `HERALD_LIMITS_<NAME>`.
    #[serde(default)]
    pub limits: Option<Limits>,
    pub smtp_url: Option<String>,
    /// SMTP servers of particular apps: app id → URL (others use `smtp_url`).
    #[serde(default)]
    pub smtp_url_per_app: std::collections::BTreeMap<String, String>,
    pub public_url: Option<String>,
    pub rpc: Option<SocketAddr>,
    pub rpc_advertise: Option<SocketAddr>,
    pub peers: Option<String>,
    pub join: Option<String>,
    pub tls_dir: Option<PathBuf>,
    /// Each also `HERALD_DELIVERY_<NAME>`.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// Each also `HERALD_TRACKING_<NAME>`.
    #[serde(default)]
    pub tracking: Option<Tracking>,
    /// Each also `HERALD_PUSH_<NAME>`.
    #[serde(default)]
    pub push: Option<Push>,
    /// Each also `HERALD_SMS_<NAME>` (`HERALD_SMS_NUMBERS` comma-separated).
    #[serde(default)]
    pub sms: Option<Sms>,
    /// Each also `HERALD_STORAGE_<NAME>`.
    #[serde(default)]
    pub storage: Option<Storage>,
    /// Each also `HERALD_JOBS_<NAME>` (lists comma-separated).
    #[serde(default)]
    pub jobs: Option<Jobs>,
    /// Each also `HERALD_ANALYTICS_<NAME>`.
    #[serde(default)]
    pub analytics: Option<Analytics>,
    /// Each also `HERALD_PLACEMENT_<NAME>`.
    #[serde(default)]
    pub placement: Option<Placement>,
    /// Each also `HERALD_RAFT_<NAME>`.
    #[serde(default)]
    pub raft: Option<RaftTiming>,
}

/// Raft timing of every group. A leader's death is noticed after an
/// election timeout (at least `election_timeout_max_ms`, the leader's
/// lease); each AppendEntries must be answered within `heartbeat_ms`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        let d = herald_cluster::HostConfig::default();
        Self {
            heartbeat_ms: d.heartbeat_ms,
            election_timeout_min_ms: d.election_timeout_min_ms,
            election_timeout_max_ms: d.election_timeout_max_ms,
        }
    }
}

/// Which nodes vote in each Raft group (the rest keep learner copies).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Placement {
    /// Voters per group: 3, or fewer while the cluster has fewer nodes.
    pub replication: u64,
    /// One placement change at most per interval, cluster-wide.
    pub interval_ms: u64,
    /// A node that has not answered for this long loses its votes to
    /// live nodes (it keeps a learner copy and catches up if it returns).
    pub replace_down_after_secs: u64,
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            replication: 3,
            interval_ms: 2_000,
            replace_down_after_secs: 300,
        }
    }
}

/// Analytics rollups.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Analytics {
    /// Maintain rollups as events are stored (off: the analytics API
    /// answers from whatever was rolled up while it was on).
    pub rollups: bool,
    /// Days raw events are kept for apps that set nothing (rollups stay).
    pub event_retention_days: u32,
    /// How often each shard's leader removes events past retention.
    pub expiry_interval_secs: u64,
}

impl Default for Analytics {
    fn default() -> Self {
        Self {
            rollups: true,
            event_retention_days: 90,
            expiry_interval_secs: 600,
        }
    }
}

/// Import and export jobs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Jobs {
    /// Absolute directories that `file://` job URLs must lie under; empty:
    /// any absolute path, read and written with the server's permissions.
    pub file_roots: Vec<String>,
    /// Jobs running at once on this node; others wait.
    pub running_max: u64,
}

impl Default for Jobs {
    fn default() -> Self {
        Self {
            file_roots: Vec::new(),
            running_max: 2,
        }
    }
}

/// RocksDB's memory, bounded whatever the data size.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Memtables of all column families together.
    pub memtables_mib: u64,
    /// The block cache (with index and filter blocks). The default holds
    /// what a 10-million-event app's 30-day analytics queries read; with 32
    /// MiB a funnel spends half its time decompressing the same blocks again.
    pub block_cache_mib: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            memtables_mib: 64,
            block_cache_mib: 256,
        }
    }
}

/// Rate limits, queues and retries of the channel actors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    /// Emails per second one app sends from this node (0: unlimited).
    pub app_messages_per_second: u64,
    /// Emails per second this node sends for all apps (0: unlimited).
    pub node_messages_per_second: u64,
    /// Emails queued or in flight on this node at most.
    pub queue_max: u64,
    /// Transport calls per message at most (the first one included).
    pub attempts_max: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// SMTP connections at most (per SMTP server).
    pub smtp_connections_max: u64,
    /// Messages the dev outbox keeps.
    pub outbox_keep: u64,
    /// Deadline of one custom-channel (webhook) POST.
    pub webhook_timeout_ms: u64,
    /// PEM certificates webhook POSTs to https:// trust besides the public
    /// roots (a private CA).
    pub webhook_ca_file: Option<String>,
    /// Hours a direct send's ledger row is kept (at least 24, the window in
    /// which a retried request is recognised).
    pub send_ledger_retention_hours: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            app_messages_per_second: 0,
            node_messages_per_second: 0,
            queue_max: 10_000,
            attempts_max: 4,
            retry_base_ms: 250,
            retry_max_ms: 4_000,
            smtp_connections_max: 8,
            outbox_keep: 1_000,
            webhook_timeout_ms: 10_000,
            webhook_ca_file: None,
            send_ledger_retention_hours: 168,
        }
    }
}

/// Mobile push providers: where herald's APNs clients connect (Apple's
/// hosts unless told otherwise, e.g. a test peer).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Push {
    /// The APNs host of the APNS and APNS_VOIP channels.
    pub apns_url: String,
    /// The APNs host of the APNS_SANDBOX and APNS_VOIP_SANDBOX channels.
    pub apns_sandbox_url: String,
    /// PEM certificates APNs connections trust besides the public roots.
    pub apns_ca_file: Option<String>,
    /// HTTP/2 connections per app channel at most.
    pub apns_connections: u64,
    /// Pushes in flight per connection at most (APNs also limits streams).
    pub apns_streams_per_connection: u64,
    /// Deadline of connecting and of one push.
    pub apns_timeout_ms: u64,
    /// The FCM HTTP v1 API (`http://` only for a local test peer).
    pub fcm_url: String,
    /// Where FCM access tokens come from; empty: the service account's
    /// `token_uri`.
    pub fcm_token_url: String,
    /// PEM certificates FCM connections trust besides the public roots.
    pub fcm_ca_file: Option<String>,
    /// Deadline of a token grant and of one FCM send.
    pub fcm_timeout_ms: u64,
}

impl Default for Push {
    fn default() -> Self {
        Self {
            apns_url: herald_channels::apns::PRODUCTION_URL.into(),
            apns_sandbox_url: herald_channels::apns::SANDBOX_URL.into(),
            apns_ca_file: None,
            apns_connections: 2,
            apns_streams_per_connection: 500,
            apns_timeout_ms: 10_000,
            fcm_url: herald_channels::fcm::FCM_URL.into(),
            fcm_token_url: String::new(),
            fcm_ca_file: None,
            fcm_timeout_ms: 10_000,
        }
    }
}

/// SMS over SMPP: the SMSC herald binds to, its origination numbers and
/// their keyword answers. No SMSC (`smsc` empty): SMS sends fail with a
/// clear reason.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sms {
    /// `host:port` of the SMSC.
    pub smsc: String,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// Submits unanswered at once at most.
    pub window: u64,
    pub enquire_link_secs: u64,
    /// Longest wait for any answer of the SMSC.
    pub response_timeout_ms: u64,
    /// Longest wait of one message for a session and its answer.
    pub submit_timeout_ms: u64,
    /// What the SMS channel reports as its messages per second.
    pub messages_per_second: u64,
    /// Default answers to STOP, START and HELP.
    pub stop_reply: String,
    pub start_reply: String,
    pub help_reply: String,
    /// Origination numbers: `"+12065550100"`, or tables with the number's
    /// own replies and keywords (`[[sms.numbers]]`).
    pub numbers: Vec<SmsNumberEntry>,
}

/// One origination number, bare or with its keyword answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum SmsNumberEntry {
    Number(String),
    Full {
        number: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_reply: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_reply: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        help_reply: Option<String>,
        #[serde(default)]
        keywords: BTreeMap<String, String>,
    },
}

impl Default for Sms {
    fn default() -> Self {
        let d = herald_actors::sms::SmsConfig::default();
        Self {
            smsc: String::new(),
            system_id: "herald".into(),
            password: String::new(),
            system_type: String::new(),
            window: 10,
            enquire_link_secs: 30,
            response_timeout_ms: 10_000,
            submit_timeout_ms: 30_000,
            messages_per_second: d.messages_per_second as u64,
            stop_reply: d.stop_reply,
            start_reply: d.start_reply,
            help_reply: d.help_reply,
            numbers: Vec::new(),
        }
    }
}

impl Sms {
    /// The service's view: numbers in E.164, keywords checked.
    pub fn service_config(&self) -> anyhow::Result<herald_actors::sms::SmsConfig> {
        let numbers = self
            .numbers
            .iter()
            .map(|n| match n {
                SmsNumberEntry::Number(number) => herald_actors::sms::SmsNumber {
                    number: number.clone(),
                    ..Default::default()
                },
                SmsNumberEntry::Full {
                    number,
                    stop_reply,
                    start_reply,
                    help_reply,
                    keywords,
                } => herald_actors::sms::SmsNumber {
                    number: number.clone(),
                    stop_reply: stop_reply.clone(),
                    start_reply: start_reply.clone(),
                    help_reply: help_reply.clone(),
                    keywords: keywords.clone(),
                },
            })
            .collect();
        let mut c = herald_actors::sms::SmsConfig {
            numbers,
            messages_per_second: self.messages_per_second.min(u32::MAX as u64) as u32,
            stop_reply: self.stop_reply.clone(),
            start_reply: self.start_reply.clone(),
            help_reply: self.help_reply.clone(),
        };
        c.check().map_err(|e| anyhow::anyhow!(e))?;
        Ok(c)
    }

    /// The SMPP client's settings, when an SMSC is configured.
    pub fn smpp(&self) -> anyhow::Result<Option<herald_channels::smpp::SmppSettings>> {
        if self.smsc.is_empty() {
            return Ok(None);
        }
        let s = herald_channels::smpp::SmppSettings {
            addr: self.smsc.clone(),
            system_id: self.system_id.clone(),
            password: self.password.clone(),
            system_type: self.system_type.clone(),
            window: self.window.clamp(1, 1_000) as usize,
            enquire_link_interval: Duration::from_secs(self.enquire_link_secs.max(1)),
            response_timeout: Duration::from_millis(self.response_timeout_ms.max(1)),
            submit_timeout: Duration::from_millis(self.submit_timeout_ms.max(1)),
            ..Default::default()
        };
        s.check().map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(s))
    }
}

/// Email engagement tracking.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tracking {
    /// Open pixel in HTML mail.
    pub opens: bool,
    /// Click redirects for links in HTML mail.
    pub clicks: bool,
    /// One-click `List-Unsubscribe` on direct sends to endpoints too.
    pub list_unsubscribe_on_direct: bool,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            opens: true,
            clicks: true,
            list_unsubscribe_on_direct: false,
        }
    }
}

/// The resolved configuration of `herald serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub node_id: u64,
    pub shards: u32,
    pub account_id: String,
    pub access_keys: Vec<AccessKey>,
    pub session_idle_timeout_secs: u64,
    pub endpoint_actors_max: usize,
    pub log_format: String,
    pub limits: Limits,
    pub smtp_url: Option<String>,
    pub smtp_url_per_app: std::collections::BTreeMap<String, String>,
    /// Base of tracking links; no tracking without it.
    pub public_url: Option<String>,
    pub delivery: Delivery,
    pub tracking: Tracking,
    pub push: Push,
    pub sms: Sms,
    pub storage: Storage,
    pub jobs: Jobs,
    pub analytics: Analytics,
    pub placement: Placement,
    pub raft: RaftTiming,
    /// The cluster RPC address; `None`: a single node without RPC.
    pub rpc: Option<SocketAddr>,
    /// What peers dial to reach this node (`rpc` unless told otherwise).
    pub rpc_advertise: Option<SocketAddr>,
    /// Voters of a new cluster (empty: this node alone).
    pub peers: BTreeMap<u64, SocketAddr>,
    /// The member to join through.
    pub join: Option<(u64, SocketAddr)>,
    pub tls_dir: PathBuf,
}

/// Parses `1=ADDR,2=ADDR`.
pub fn parse_peers(list: &str) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let mut peers = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .with_context(|| format!("peer {item:?} is not id=ADDR"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("peer id {id:?} is not a number"))?;
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("peer address {addr:?} is not ip:port"))?;
        if peers.insert(id, addr).is_some() {
            anyhow::bail!("peer {id} is listed twice");
        }
    }
    Ok(peers)
}

impl Config {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file: FileConfig = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let mut access_keys = file.access_keys;
        match (args.access_key_id, args.secret_access_key) {
            (Some(id), Some(secret)) => access_keys.push(AccessKey {
                access_key_id: id,
                secret_access_key: secret,
            }),
            (None, None) => {}
            _ => anyhow::bail!(
                "HERALD_ACCESS_KEY_ID and HERALD_SECRET_ACCESS_KEY must be set together"
            ),
        }
        let mut limits = file.limits.unwrap_or_default();
        override_from_env(&mut limits, "HERALD_LIMITS_")?;
        let mut delivery = file.delivery.unwrap_or_default();
        override_from_env(&mut delivery, "HERALD_DELIVERY_")?;
        if delivery.send_ledger_retention_hours < 24 {
            anyhow::bail!(
                "send_ledger_retention_hours must be at least 24 (the dedup window), not {}",
                delivery.send_ledger_retention_hours
            );
        }
        let mut tracking = file.tracking.unwrap_or_default();
        override_from_env(&mut tracking, "HERALD_TRACKING_")?;
        let mut push = file.push.unwrap_or_default();
        override_from_env(&mut push, "HERALD_PUSH_")?;
        for url in [&push.apns_url, &push.apns_sandbox_url] {
            anyhow::ensure!(
                url.starts_with("https://"),
                "push: APNs URLs must be https://host[:port], not {url}"
            );
        }
        let mut sms = file.sms.unwrap_or_default();
        override_from_env(&mut sms, "HERALD_SMS_")?;
        sms.service_config()?;
        sms.smpp()?;
        let mut storage = file.storage.unwrap_or_default();
        override_from_env(&mut storage, "HERALD_STORAGE_")?;
        let mut raft = file.raft.unwrap_or_default();
        override_from_env(&mut raft, "HERALD_RAFT_")?;
        anyhow::ensure!(
            raft.heartbeat_ms >= 10
                && raft.election_timeout_min_ms > raft.heartbeat_ms
                && raft.election_timeout_max_ms > raft.election_timeout_min_ms,
            "raft timing: need 10 <= heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms"
        );
        let mut placement = file.placement.unwrap_or_default();
        override_from_env(&mut placement, "HERALD_PLACEMENT_")?;
        anyhow::ensure!(
            placement.replication >= 1,
            "placement.replication must be at least 1"
        );
        anyhow::ensure!(
            placement.interval_ms >= 100,
            "placement.interval_ms must be at least 100"
        );
        let mut jobs = file.jobs.unwrap_or_default();
        override_from_env(&mut jobs, "HERALD_JOBS_")?;
        jobs.file_roots.retain(|r| !r.is_empty());
        if let Some(r) = jobs.file_roots.iter().find(|r| !r.starts_with('/')) {
            anyhow::bail!("jobs.file_roots must be absolute directories, not {r}");
        }
        let mut analytics = file.analytics.unwrap_or_default();
        override_from_env(&mut analytics, "HERALD_ANALYTICS_")?;
        anyhow::ensure!(
            (1..=3650).contains(&analytics.event_retention_days),
            "analytics.event_retention_days must be 1 to 3650"
        );
        anyhow::ensure!(
            analytics.expiry_interval_secs >= 1,
            "analytics.expiry_interval_secs must be at least 1"
        );
        let smtp_url = args.smtp_url.or(file.smtp_url);
        for url in smtp_url.iter().chain(file.smtp_url_per_app.values()) {
            herald_channels::smtp::SmtpConfig::from_url(url)
                .map_err(|e| anyhow::anyhow!("SMTP URL: {e}"))?;
        }
        let log_format = args
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        if log_format != "text" && log_format != "json" {
            anyhow::bail!("log format must be text or json, not {log_format}");
        }
        let http: SocketAddr = args
            .http
            .or(file.http)
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default"));
        let public_url = args
            .public_url
            .or(file.public_url)
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                anyhow::bail!("the public URL must start with http:// or https://, not {u}");
            }
        }
        let node_id = args.node_id.or(file.node_id).unwrap_or(1);
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./herald-data"));
        let rpc = args.rpc.or(file.rpc);
        let rpc_advertise = args.rpc_advertise.or(file.rpc_advertise).or(rpc);
        anyhow::ensure!(
            rpc.is_some() || rpc_advertise.is_none(),
            "--rpc-advertise needs --rpc"
        );
        let peers = match args.peers.or(file.peers) {
            Some(list) => parse_peers(&list)?,
            None => BTreeMap::new(),
        };
        if !peers.is_empty() {
            match (rpc_advertise, peers.get(&node_id)) {
                (None, _) => anyhow::bail!("--peers needs --rpc, this node's RPC address"),
                (Some(_), None) => anyhow::bail!("--peers must list this node ({node_id})"),
                (Some(r), Some(p)) if r.port() != p.port() => anyhow::bail!(
                    "this node's RPC address {r} and its entry in --peers ({p}) name different \
                     ports (use --rpc-advertise when peers reach it at another address)"
                ),
                _ => {}
            }
        }
        let join = match args.join.or(file.join) {
            None => None,
            Some(j) => {
                let mut one = parse_peers(&j)?;
                anyhow::ensure!(one.len() == 1, "--join takes one member, id=ADDR");
                anyhow::ensure!(rpc.is_some(), "--join needs --rpc, this node's RPC address");
                anyhow::ensure!(
                    peers.is_empty(),
                    "--join and --peers exclude each other: --peers starts a new cluster"
                );
                one.pop_first()
            }
        };
        let tls_dir = args
            .tls_dir
            .or(file.tls_dir)
            .unwrap_or_else(|| data_dir.join("tls"));
        Ok(Self {
            rpc,
            rpc_advertise,
            peers,
            join,
            tls_dir,
            smtp_url,
            smtp_url_per_app: file.smtp_url_per_app,
            public_url,
            delivery,
            tracking,
            push,
            sms,
            storage,
            jobs,
            analytics,
            placement,
            raft,
            data_dir,
            http,
            node_id,
            shards: args
                .shards
                .or(file.shards)
                .unwrap_or(herald_model::hash::DEFAULT_SHARDS),
            account_id: args
                .account_id
                .or(file.account_id)
                .unwrap_or_else(|| "000000000000".into()),
            access_keys,
            session_idle_timeout_secs: args
                .session_idle_timeout_secs
                .or(file.session_idle_timeout_secs)
                .unwrap_or(1800),
            endpoint_actors_max: args
                .endpoint_actors_max
                .or(file.endpoint_actors_max)
                .unwrap_or(1024),
            log_format,
            limits,
        })
    }
}

/// Applies `<PREFIX><FIELD>` variables to a section of whole numbers,
/// booleans, strings and comma-separated lists (e.g. `HERALD_LIMITS_BATCH_ITEMS_MAX=50`,
/// `HERALD_TRACKING_OPENS=false`).
fn override_from_env<T: serde::Serialize + serde::de::DeserializeOwned>(
    section: &mut T,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(&*section)?;
    let obj = value
        .as_object_mut()
        .expect("config sections serialize as objects");
    for (name, v) in obj.iter_mut() {
        let var = format!("{prefix}{}", name.to_uppercase());
        if let Ok(s) = std::env::var(&var) {
            *v = if v.is_array() {
                s.split(',')
                    .map(|x| serde_json::Value::from(x.trim()))
                    .collect()
            } else if v.is_string() || v.is_null() {
                serde_json::Value::from(s)
            } else if v.is_boolean() {
                serde_json::Value::from(
                    s.parse::<bool>()
                        .with_context(|| format!("{var} must be true or false"))?,
                )
            } else {
                serde_json::Value::from(
                    s.parse::<u64>()
                        .with_context(|| format!("{var} must be a whole number"))?,
                )
            };
        }
    }
    *section = serde_json::from_value(value)?;
    Ok(())
}
