//! The cluster [`Transport`] over [`crate::rpc`]: every Raft group's traffic,
//! forwarded proposals and read-index requests between two nodes share one
//! mutually authenticated QUIC connection.
//!
//! Contract:
//! - Each request names its group; the serving node answers from its own
//!   replica of that group ([`LocalGroups`]) and never forwards again, so a
//!   request makes at most one hop.
//! - Raft messages and commands travel as JSON inside bincode frames: herald's
//!   log entries hold `serde_json::Value`s and skip-if-none fields, which
//!   bincode's serde mode cannot round-trip. Snapshot chunks travel as bytes.
//! - A node that cannot serve a request (groups not started yet, bad request)
//!   refuses it without acting on it; the caller sees `Unreachable`, which
//!   is safe to retry. A request that was sent but got no answer is
//!   `Network`: it may or may not have been applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use herald_storage::{CmdResult, Command, GroupId, NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Raft, SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::handover::ProposalHolds;
use crate::host::{elect_local, propose_local, read_index_local, vote_and_take_over};
use crate::membership::{change_members_local, MemberAnswer, MemberChange};
use crate::rpc::{Caller, RpcClient, RpcServer, ServerConfig, SetupError};
use crate::transport::{
    AppService, Forwarded, HostedGroups, Transport, TransportError, MEMBERS_TIMEOUT,
};

/// One request between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRequest {
    Append {
        group: GroupId,
        json: Vec<u8>,
    },
    Vote {
        group: GroupId,
        json: Vec<u8>,
    },
    /// One chunk of a snapshot: the vote and snapshot meta as JSON, the
    /// chunk as bytes.
    Snapshot {
        group: GroupId,
        head: Vec<u8>,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    },
    Propose {
        group: GroupId,
        json: Vec<u8>,
    },
    ReadIndex {
        group: GroupId,
    },
    Members {
        group: GroupId,
        json: Vec<u8>,
    },
    Elect {
        group: GroupId,
    },
    /// A request to herald's own service on the node ([`AppService`]).
    App {
        body: Vec<u8>,
    },
}

/// The JSON of the typed answer, or why the node refused the request
/// without acting on it.
pub type NodeResponse = Result<Vec<u8>, String>;

type SnapshotHead = (Vote<NodeId>, SnapshotMeta<NodeId, openraft::BasicNode>);

/// This node's replicas, as the RPC server sees them; empty until the
/// groups have started.
#[derive(Clone, Default)]
pub struct LocalGroups {
    groups: Arc<RwLock<Option<HostedGroups>>>,
    app: Arc<RwLock<Option<Arc<dyn AppService>>>>,
}

impl LocalGroups {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the node's groups (index = group id) reachable from peers.
    pub fn register(&self, groups: Vec<Raft<TypeConfig>>, holds: Arc<ProposalHolds>) {
        *self.groups.write().unwrap_or_else(|p| p.into_inner()) = Some((groups, holds));
    }

    /// Makes herald's own service answer [`NodeRequest::App`].
    pub fn register_app(&self, service: Arc<dyn AppService>) {
        *self.app.write().unwrap_or_else(|p| p.into_inner()) = Some(service);
    }

    fn app(&self) -> Result<Arc<dyn AppService>, String> {
        self.app
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| "herald's service has not started on this node".into())
    }

    fn get(&self, group: GroupId) -> Result<Raft<TypeConfig>, String> {
        self.hosted(group).map(|(raft, _)| raft)
    }

    fn hosted(&self, group: GroupId) -> Result<(Raft<TypeConfig>, Arc<ProposalHolds>), String> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        match groups.as_ref() {
            None => Err("the node's raft groups have not started".into()),
            Some((g, holds)) => g
                .get(group as usize)
                .map(|raft| (raft.clone(), holds.clone()))
                .ok_or_else(|| format!("no raft group {group} on this node")),
        }
    }
}

/// Starts the node's RPC server, answering from `groups`; `timeout` bounds
/// a forwarded proposal or read index on this node.
pub fn serve(
    config: ServerConfig,
    groups: LocalGroups,
    timeout: Duration,
) -> Result<RpcServer, SetupError> {
    RpcServer::bind(config, move |caller: Caller, req: NodeRequest| {
        let groups = groups.clone();
        async move { handle(&groups, caller, req, timeout).await }
    })
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("raft messages serialize")
}

fn parse<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("undecodable {what}: {e}"))
}

async fn handle(
    groups: &LocalGroups,
    caller: Caller,
    req: NodeRequest,
    timeout: Duration,
) -> NodeResponse {
    let answer = match req {
        NodeRequest::Append { group, json: body } => {
            let raft = groups.get(group)?;
            let rpc: AppendEntriesRequest<TypeConfig> = parse("append request", &body)?;
            json(&raft.append_entries(rpc).await)
        }
        NodeRequest::Vote { group, json: body } => {
            let raft = groups.get(group)?;
            let rpc: VoteRequest<NodeId> = parse("vote request", &body)?;
            json(&vote_and_take_over(&raft, rpc).await)
        }
        NodeRequest::Snapshot {
            group,
            head,
            offset,
            data,
            done,
        } => {
            let raft = groups.get(group)?;
            let (vote, meta): SnapshotHead = parse("snapshot head", &head)?;
            let rpc = InstallSnapshotRequest {
                vote,
                meta,
                offset,
                data,
                done,
            };
            json(&raft.install_snapshot(rpc).await)
        }
        NodeRequest::Propose { group, json: body } => {
            let (raft, holds) = groups.hosted(group)?;
            let cmd: Command = parse("command", &body)?;
            tracing::debug!(group, from = caller.node, "forwarded proposal");
            json(&propose_local(&raft, &holds, group, cmd, timeout).await)
        }
        NodeRequest::ReadIndex { group } => {
            let raft = groups.get(group)?;
            json(&read_index_local(&raft, group, timeout).await)
        }
        NodeRequest::Members { group, json: body } => {
            let (raft, holds) = groups.hosted(group)?;
            let change: MemberChange = parse("member change", &body)?;
            tracing::info!(group, from = caller.node, change = ?change, "member change requested");
            json(&change_members_local(&raft, &holds, group, &change, MEMBERS_TIMEOUT).await)
        }
        NodeRequest::Elect { group } => {
            let raft = groups.get(group)?;
            tracing::info!(group, from = caller.node, "asked to call an election");
            json(&elect_local(&raft).await)
        }
        // The service's answer goes back as it is, not as JSON.
        NodeRequest::App { body } => groups.app()?.call(caller.node, body).await,
    };
    Ok(answer)
}

/// Reaches other nodes' groups over QUIC.
#[derive(Clone)]
pub struct QuicTransport {
    client: RpcClient,
    /// What this node's RPC server answers from.
    local: LocalGroups,
    peers: Arc<RwLock<BTreeMap<NodeId, SocketAddr>>>,
    /// Deadline of one Raft message or forwarded request.
    timeout: Duration,
}

impl QuicTransport {
    /// `local` is what this node's server (see [`serve`]) answers from.
    pub fn new(
        client: RpcClient,
        local: LocalGroups,
        peers: BTreeMap<NodeId, SocketAddr>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            local,
            peers: Arc::new(RwLock::new(peers)),
            timeout,
        }
    }

    /// Records (or moves) a peer's RPC address.
    pub fn set_peer(&self, node: NodeId, addr: SocketAddr) {
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node, addr);
    }

    fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        target: NodeId,
        req: NodeRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<T, TransportError>> {
        self.call_tracked(target, req, timeout, Arc::new(AtomicBool::new(false)))
    }

    /// [`Self::call`], setting `sent` once the request may reach `target`.
    fn call_tracked<T: DeserializeOwned + Send + 'static>(
        &self,
        target: NodeId,
        req: NodeRequest,
        timeout: Duration,
        sent: Arc<AtomicBool>,
    ) -> BoxFuture<'static, Result<T, TransportError>> {
        let raw = self.call_raw(target, req, timeout, sent);
        Box::pin(async move {
            let bytes = raw.await?;
            serde_json::from_slice(&bytes).map_err(|e| TransportError::Network {
                node: target,
                reason: format!("undecodable answer: {e}"),
            })
        })
    }

    /// The answer's bytes as the serving node sent them.
    fn call_raw(
        &self,
        target: NodeId,
        req: NodeRequest,
        timeout: Duration,
        sent: Arc<AtomicBool>,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let client = self.client.clone();
        let addr = self
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&target)
            .copied();
        Box::pin(async move {
            let addr = addr.ok_or_else(|| TransportError::Unreachable {
                node: target,
                reason: "no known address".into(),
            })?;
            let answer: NodeResponse = client
                .call_tracked(target, addr, &req, timeout, &sent)
                .await
                .map_err(|e| {
                    if e.request_not_sent() {
                        TransportError::Unreachable {
                            node: target,
                            reason: e.to_string(),
                        }
                    } else {
                        TransportError::Network {
                            node: target,
                            reason: e.to_string(),
                        }
                    }
                })?;
            answer.map_err(|reason| TransportError::Unreachable {
                node: target,
                reason,
            })
        })
    }
}

type Remote<T, E = openraft::error::Infallible> =
    Result<Result<T, RaftError<NodeId, E>>, TransportError>;

impl Transport for QuicTransport {
    fn host_groups(&self, _node: NodeId, groups: Vec<Raft<TypeConfig>>, holds: Arc<ProposalHolds>) {
        self.local.register(groups, holds);
    }

    fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<AppendEntriesResponse<NodeId>>> {
        let req = NodeRequest::Append {
            group,
            json: json(&req),
        };
        self.call(target, req, self.timeout)
    }

    fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        req: VoteRequest<NodeId>,
    ) -> BoxFuture<'static, Remote<VoteResponse<NodeId>>> {
        let req = NodeRequest::Vote {
            group,
            json: json(&req),
        };
        self.call(target, req, self.timeout)
    }

    fn install_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<InstallSnapshotResponse<NodeId>, InstallSnapshotError>> {
        let head: SnapshotHead = (req.vote, req.meta);
        let req = NodeRequest::Snapshot {
            group,
            head: json(&head),
            offset: req.offset,
            data: req.data,
            done: req.done,
        };
        self.call(target, req, self.timeout)
    }

    fn propose(
        &self,
        target: NodeId,
        group: GroupId,
        cmd: Command,
        sent: Arc<AtomicBool>,
    ) -> BoxFuture<'static, Forwarded<CmdResult>> {
        let req = NodeRequest::Propose {
            group,
            json: json(&cmd),
        };
        self.call_tracked(target, req, self.timeout, sent)
    }

    fn read_index(
        &self,
        target: NodeId,
        group: GroupId,
    ) -> BoxFuture<'static, Forwarded<Option<u64>>> {
        self.call(target, NodeRequest::ReadIndex { group }, self.timeout)
    }

    fn change_members(
        &self,
        target: NodeId,
        group: GroupId,
        change: MemberChange,
    ) -> BoxFuture<'static, Result<MemberAnswer, TransportError>> {
        let req = NodeRequest::Members {
            group,
            json: json(&change),
        };
        self.call(target, req, MEMBERS_TIMEOUT)
    }

    fn elect(&self, target: NodeId, group: GroupId) -> BoxFuture<'static, Forwarded<()>> {
        self.call(target, NodeRequest::Elect { group }, self.timeout)
    }

    fn serve_app(&self, _node: NodeId, service: Arc<dyn AppService>) {
        self.local.register_app(service);
    }

    fn app_call(
        &self,
        target: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let req = NodeRequest::App { body };
        self.call_raw(target, req, timeout, Arc::new(AtomicBool::new(false)))
    }

    fn learn_address(&self, node: NodeId, addr: &str) {
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            return;
        };
        let known = self
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            == Some(&addr);
        if !known {
            tracing::info!(node, %addr, "learned a peer's address");
            self.set_peer(node, addr);
        }
    }
}
