//! `herald cluster …` commands and the node's side of the cluster: its
//! identity from the TLS directory, the RPC server and the QUIC transport.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use herald_cluster::rpc::RpcServer;
use herald_cluster::rpc::{CertAuthority, ClientConfig, NodeIdentity, RpcClient, ServerConfig};
use herald_cluster::{quic, LocalGroups, LocalTransport, QuicTransport, Transport};

use crate::config::{AdminArgs, Config};

const DAY: Duration = Duration::from_secs(86_400);
/// Deadline of one Raft message or forwarded request between nodes.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// `herald cluster init-certs`: a CA (reused when `out` has one) and a
/// certificate per node; existing node files are kept.
pub fn init_certs(out: &Path, nodes: &[u64], days: u64) -> anyhow::Result<()> {
    anyhow::ensure!(days > 0, "--days must be at least 1");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let valid = DAY * u32::try_from(days).context("--days is too large")?;
    let (ca_cert, ca_key) = (out.join("ca.pem"), out.join("ca.key.pem"));
    let ca = if ca_cert.exists() {
        let ca = CertAuthority::from_pem_files(&ca_cert, &ca_key)
            .with_context(|| format!("loading the CA in {}", out.display()))?;
        println!("using the existing CA {}", ca_cert.display());
        ca
    } else {
        let ca = CertAuthority::generate(valid).context("creating the CA")?;
        write_file(&ca_cert, ca.cert_pem(), false)?;
        write_file(&ca_key, &ca.key_pem(), true)?;
        println!("created the cluster CA {}", ca_cert.display());
        ca
    };
    for &node in nodes {
        let (cert, key) = node_files(out, node);
        if cert.exists() {
            println!("node {node}: keeping {}", cert.display());
            continue;
        }
        let pem = ca
            .issue_node_cert(node, &[], valid)
            .with_context(|| format!("issuing the certificate of node {node}"))?;
        write_file(&cert, &pem.cert_pem, false)?;
        write_file(&key, &pem.key_pem, true)?;
        println!("node {node}: {} and {}", cert.display(), key.display());
    }
    println!("give each node ca.pem and its own pair (--tls-dir); keep ca.key.pem off the nodes");
    Ok(())
}

fn node_files(dir: &Path, node: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        dir.join(format!("node-{node}.pem")),
        dir.join(format!("node-{node}.key.pem")),
    )
}

fn write_file(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    if secret {
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// How this node reaches the others, and its RPC server (`None` alone).
pub struct Wiring {
    pub transport: Arc<dyn Transport>,
    pub server: Option<RpcServer>,
}

/// A lone node without `--rpc` talks to no one; with it, the node loads
/// its identity from the TLS directory and serves RPC.
pub fn wire(cfg: &Config) -> anyhow::Result<Wiring> {
    let Some(rpc) = cfg.rpc else {
        return Ok(Wiring {
            transport: Arc::new(LocalTransport::new()),
            server: None,
        });
    };
    let (cert, key) = node_files(&cfg.tls_dir, cfg.node_id);
    let identity = NodeIdentity::from_pem_files(&cfg.tls_dir.join("ca.pem"), &cert, &key)
        .with_context(|| {
            format!(
                "loading node {}'s certificate from {} (create it with `herald cluster init-certs`)",
                cfg.node_id,
                cfg.tls_dir.display()
            )
        })?;
    anyhow::ensure!(
        identity.node_id() == cfg.node_id,
        "{} is node {}'s certificate, not node {}'s",
        cert.display(),
        identity.node_id(),
        cfg.node_id
    );
    identity
        .verify_chain()
        .context("this node's certificate is not valid for the cluster CA")?;
    let local = LocalGroups::new();
    let server = quic::serve(
        ServerConfig::new(rpc, identity.clone()),
        local.clone(),
        RPC_TIMEOUT,
    )
    .with_context(|| format!("binding the cluster RPC on {rpc}"))?;
    // One UDP port for everything: calls go out from the server's endpoint.
    let client = RpcClient::on_endpoint(ClientConfig::new(rpc, identity), server.endpoint())
        .context("starting the RPC client")?;
    let peers: BTreeMap<u64, SocketAddr> = cfg
        .peers
        .iter()
        .filter(|(&id, _)| id != cfg.node_id)
        .map(|(&id, &a)| (id, a))
        .collect();
    tracing::info!(rpc = %rpc, peers = ?peers, "cluster rpc listening");
    Ok(Wiring {
        transport: Arc::new(QuicTransport::new(client, local, peers, RPC_TIMEOUT)),
        server: Some(server),
    })
}

/// One signed request to a node's HTTP API; the JSON answer, or the
/// node's error message.
async fn admin_call(
    admin: &AdminArgs,
    method: &str,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let key = admin
        .access_key_id
        .clone()
        .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
        .context("no access key: set HERALD_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID")?;
    let secret = admin
        .secret_access_key
        .clone()
        .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
        .context("no secret key: set HERALD_SECRET_ACCESS_KEY or AWS_SECRET_ACCESS_KEY")?;
    let url = format!("{}{path}", admin.url.trim_end_matches('/'));
    let identity = Credentials::new(key, secret, None, None, "herald-cli").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("mobiletargeting")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable =
        SignableRequest::new(method, &url, std::iter::empty(), SignableBody::Bytes(&[]))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let mut req = client.request(method.parse()?, &url);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let message = body["Message"].as_str().unwrap_or("no message");
        anyhow::bail!("{method} {url}: {status}: {message}");
    }
    Ok(body)
}

/// `herald cluster status`: the groups as the contacted node sees them
/// (replica lag is known for the groups it leads).
pub async fn status(admin: &AdminArgs) -> anyhow::Result<()> {
    let s = admin_call(admin, "GET", "/herald/v1/cluster").await?;
    println!(
        "node {} of nodes {} ({} shards; leads {} groups)",
        s["NodeId"], s["Nodes"], s["Shards"], s["LeaderOf"]
    );
    println!(
        "{:>5}  {:>6}  {:>5}  {:<12}  {:<8}  {:>9}  {:>9}  lag",
        "group", "leader", "term", "voters", "learners", "last log", "applied"
    );
    let ids = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    for g in s["Groups"].as_array().into_iter().flatten() {
        let lag = g["lag"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(n, l)| format!("{n}:{l}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:>5}  {:>6}  {:>5}  {:<12}  {:<8}  {:>9}  {:>9}  {}",
            g["group"].to_string(),
            g["leader"].to_string(),
            g["term"].to_string(),
            ids(&g["voters"]),
            ids(&g["learners"]),
            g["last_log_index"].to_string(),
            g["last_applied_index"].to_string(),
            lag
        );
    }
    Ok(())
}

/// `herald cluster remove-node N`.
pub async fn remove_node(admin: &AdminArgs, node: u64) -> anyhow::Result<()> {
    let r = admin_call(admin, "DELETE", &format!("/herald/v1/cluster/nodes/{node}")).await?;
    println!(
        "node {node} removed from {} groups; it can be stopped now",
        r["Groups"]
    );
    Ok(())
}
