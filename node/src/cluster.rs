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

use crate::config::Config;

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
