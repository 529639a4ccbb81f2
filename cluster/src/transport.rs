//! The node-to-node seam: how a Raft group reaches the same group on another
//! node. QUIC implements it in production (cluster issue); [`LocalTransport`]
//! connects nodes hosted in one process (tests, simulator).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use herald_storage::{CmdResult, Command, GroupId, NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};

use crate::error::ClusterError;
use crate::handover::ProposalHolds;
use crate::host::{elect_local, propose_local, read_index_local, vote_and_take_over};
use crate::membership::{change_members_local, MemberAnswer, MemberChange};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("node {node} is unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    #[error("rpc to node {node} failed: {reason}")]
    Network { node: NodeId, reason: String },
}

type Remote<T, E = openraft::error::Infallible> =
    Result<Result<T, RaftError<NodeId, E>>, TransportError>;

/// Carries Raft RPCs of any group to another node.
pub trait Transport: Send + Sync + 'static {
    /// Makes this node's groups (index = group id) answer peers; called by
    /// `RaftHost::start` once they exist, before any group is initialised.
    /// Forwarded proposals pass `holds` as local ones do.
    fn host_groups(&self, node: NodeId, groups: Vec<Raft<TypeConfig>>, holds: Arc<ProposalHolds>);

    fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<AppendEntriesResponse<NodeId>>>;

    fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        req: VoteRequest<NodeId>,
    ) -> BoxFuture<'static, Remote<VoteResponse<NodeId>>>;

    fn install_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<InstallSnapshotResponse<NodeId>, InstallSnapshotError>>;

    /// Asks `target`, which should lead `group`, to propose `cmd` and answer
    /// the state machine's result. `Unreachable` means it was not sent;
    /// `sent` turns true before `cmd` may reach `target`, so a caller that
    /// abandons the call while it is false may send `cmd` elsewhere.
    fn propose(
        &self,
        target: NodeId,
        group: GroupId,
        cmd: Command,
        sent: Arc<AtomicBool>,
    ) -> BoxFuture<'static, Forwarded<CmdResult>>;

    /// Asks `target`, which should lead `group`, for its read index (the
    /// log index a linearizable read must see applied).
    fn read_index(
        &self,
        target: NodeId,
        group: GroupId,
    ) -> BoxFuture<'static, Forwarded<Option<u64>>>;

    /// Asks `target` to change `group`'s members (it redirects when it does
    /// not lead the group).
    fn change_members(
        &self,
        target: NodeId,
        group: GroupId,
        change: MemberChange,
    ) -> BoxFuture<'static, Result<MemberAnswer, TransportError>>;

    /// Asks `target` to call an election in `group` (a leader handing its
    /// leadership over before it stops). `Ok(Ok(()))`: the election was
    /// called, not that it was won.
    fn elect(&self, target: NodeId, group: GroupId) -> BoxFuture<'static, Forwarded<()>>;

    /// Records where `node` listens (from a group's membership), for
    /// transports that address nodes.
    fn learn_address(&self, _node: NodeId, _addr: &str) {}

    /// Makes `service` answer herald's own requests to this node
    /// ([`Self::app_call`]); until then they are refused unacted.
    fn serve_app(&self, node: NodeId, service: Arc<dyn AppService>);

    /// Sends `body` to `target`'s [`AppService`] and returns its answer.
    /// `Unreachable`: `target` did not act on it (not sent, or no service
    /// yet); `Network`: it may have.
    fn app_call(
        &self,
        target: NodeId,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;
}

/// herald's own node-to-node requests above Raft (a campaign's shard run on
/// the shard's leader). The cluster crate carries their bytes unread; the
/// service encodes its own errors in its answer.
pub trait AppService: Send + Sync + 'static {
    fn call(&self, from: NodeId, body: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
}

/// The answer of a request forwarded to another node.
pub type Forwarded<T> = Result<Result<T, ClusterError>, TransportError>;

/// When each peer last answered an AppendEntries (heartbeats included) of
/// any group this node leads: how the placement controller tells a node
/// that is down from one that is merely quiet.
#[derive(Clone, Default)]
pub struct Contacts(Arc<Mutex<BTreeMap<NodeId, tokio::time::Instant>>>);

impl Contacts {
    pub fn record(&self, node: NodeId) {
        let now = tokio::time::Instant::now();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node, now);
    }

    /// The last answer of `node`, if any since this process started.
    pub fn last(&self, node: NodeId) -> Option<tokio::time::Instant> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .copied()
    }
}

/// openraft's network factory for one group, over a [`Transport`].
#[derive(Clone)]
pub struct GroupNetwork {
    pub transport: Arc<dyn Transport>,
    pub group: GroupId,
    pub contacts: Contacts,
}

pub struct GroupConnection {
    transport: Arc<dyn Transport>,
    group: GroupId,
    target: NodeId,
    contacts: Contacts,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        if !node.addr.is_empty() {
            self.transport.learn_address(target, &node.addr);
        }
        GroupConnection {
            transport: self.transport.clone(),
            group: self.group,
            target,
            contacts: self.contacts.clone(),
        }
    }
}

fn map_err<T, E: std::error::Error>(
    target: NodeId,
    r: Remote<T, E>,
) -> Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(target, e))),
        Err(e @ TransportError::Unreachable { .. }) => {
            Err(RPCError::Unreachable(Unreachable::new(&e)))
        }
        Err(e @ TransportError::Network { .. }) => Err(RPCError::Network(NetworkError::new(&e))),
    }
}

/// Bytes of log entries per AppendEntries at most (beyond one entry).
/// openraft gives each message one heartbeat interval to be answered; a
/// batch of 64 PutEvents entries (~6 MB) cannot be shipped and fsynced in
/// that time on a busy machine, and would time out again on every retry.
pub const APPEND_BYTES_MAX: usize = 1 << 20;

/// How many of `entries` (at least one) fit in [`APPEND_BYTES_MAX`] when
/// encoded; `None` when they all do. Small batches are not measured.
fn entries_that_fit(entries: &[openraft::Entry<TypeConfig>]) -> Option<u64> {
    const MEASURED_FROM: usize = 4;
    if entries.len() < MEASURED_FROM {
        return None;
    }
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        bytes += herald_model::validate::json_len(e);
        if bytes > APPEND_BYTES_MAX {
            return Some(i.max(1) as u64);
        }
    }
    None
}

impl RaftNetwork<TypeConfig> for GroupConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        if let Some(fit) = entries_that_fit(&rpc.entries) {
            // openraft sends this many entries per message for a while.
            metrics::counter!("herald_raft_append_split_total").increment(1);
            return Err(RPCError::PayloadTooLarge(
                openraft::error::PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        let answer = self
            .transport
            .append_entries(self.target, self.group, rpc)
            .await;
        if matches!(answer, Ok(Ok(_))) {
            self.contacts.record(self.target);
        }
        map_err(self.target, answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        map_err(
            self.target,
            self.transport
                .install_snapshot(self.target, self.group, rpc)
                .await,
        )
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        map_err(
            self.target,
            self.transport.vote(self.target, self.group, rpc).await,
        )
    }
}

/// Deadline of a forwarded request on the node that serves it.
const FORWARDED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A node's groups (index = group id) and their proposal holds.
pub(crate) type HostedGroups = (Vec<Raft<TypeConfig>>, Arc<ProposalHolds>);

/// Connects Raft groups of nodes that live in the same process.
#[derive(Default, Clone)]
pub struct LocalTransport {
    nodes: Arc<Mutex<BTreeMap<NodeId, HostedGroups>>>,
    apps: Arc<Mutex<BTreeMap<NodeId, Arc<dyn AppService>>>>,
}

impl LocalTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes a node's groups reachable (index = group id).
    pub fn register(&self, node: NodeId, groups: Vec<Raft<TypeConfig>>, holds: Arc<ProposalHolds>) {
        self.nodes
            .lock()
            .expect("local transport lock")
            .insert(node, (groups, holds));
    }

    /// Makes a node unreachable, as if it were down.
    pub fn unregister(&self, node: NodeId) {
        self.nodes
            .lock()
            .expect("local transport lock")
            .remove(&node);
        self.apps
            .lock()
            .expect("local transport lock")
            .remove(&node);
    }

    fn raft(&self, node: NodeId, group: GroupId) -> Result<Raft<TypeConfig>, TransportError> {
        self.hosted(node, group).map(|(raft, _)| raft)
    }

    fn hosted(
        &self,
        node: NodeId,
        group: GroupId,
    ) -> Result<(Raft<TypeConfig>, Arc<ProposalHolds>), TransportError> {
        let nodes = self.nodes.lock().expect("local transport lock");
        nodes
            .get(&node)
            .and_then(|(g, holds)| Some((g.get(group as usize)?.clone(), holds.clone())))
            .ok_or_else(|| TransportError::Unreachable {
                node,
                reason: format!("group {group} is not hosted there"),
            })
    }
}

impl Transport for LocalTransport {
    fn host_groups(&self, node: NodeId, groups: Vec<Raft<TypeConfig>>, holds: Arc<ProposalHolds>) {
        self.register(node, groups, holds);
    }

    fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<AppendEntriesResponse<NodeId>>> {
        let raft = self.raft(target, group);
        Box::pin(async move { Ok(raft?.append_entries(req).await) })
    }

    fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        req: VoteRequest<NodeId>,
    ) -> BoxFuture<'static, Remote<VoteResponse<NodeId>>> {
        let raft = self.raft(target, group);
        Box::pin(async move { Ok(vote_and_take_over(&raft?, req).await) })
    }

    fn install_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<InstallSnapshotResponse<NodeId>, InstallSnapshotError>> {
        let raft = self.raft(target, group);
        Box::pin(async move { Ok(raft?.install_snapshot(req).await) })
    }

    fn propose(
        &self,
        target: NodeId,
        group: GroupId,
        cmd: Command,
        sent: Arc<AtomicBool>,
    ) -> BoxFuture<'static, Forwarded<CmdResult>> {
        let hosted = self.hosted(target, group);
        if hosted.is_ok() {
            sent.store(true, Ordering::SeqCst);
        }
        Box::pin(async move {
            let (raft, holds) = hosted?;
            Ok(propose_local(&raft, &holds, group, cmd, FORWARDED_TIMEOUT).await)
        })
    }

    fn read_index(
        &self,
        target: NodeId,
        group: GroupId,
    ) -> BoxFuture<'static, Forwarded<Option<u64>>> {
        let raft = self.raft(target, group);
        Box::pin(async move { Ok(read_index_local(&raft?, group, FORWARDED_TIMEOUT).await) })
    }

    fn change_members(
        &self,
        target: NodeId,
        group: GroupId,
        change: MemberChange,
    ) -> BoxFuture<'static, Result<MemberAnswer, TransportError>> {
        let hosted = self.hosted(target, group);
        Box::pin(async move {
            let (raft, holds) = hosted?;
            Ok(change_members_local(&raft, &holds, group, &change, MEMBERS_TIMEOUT).await)
        })
    }

    fn elect(&self, target: NodeId, group: GroupId) -> BoxFuture<'static, Forwarded<()>> {
        let raft = self.raft(target, group);
        Box::pin(async move { Ok(elect_local(&raft?).await) })
    }

    fn serve_app(&self, node: NodeId, service: Arc<dyn AppService>) {
        self.apps
            .lock()
            .expect("local transport lock")
            .insert(node, service);
    }

    fn app_call(
        &self,
        target: NodeId,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let service = self
            .apps
            .lock()
            .expect("local transport lock")
            .get(&target)
            .cloned();
        // In one process the caller is not known; 0 is no node's id.
        let caller = 0;
        Box::pin(async move {
            let service = service.ok_or_else(|| TransportError::Unreachable {
                node: target,
                reason: "no herald service there".into(),
            })?;
            tokio::time::timeout(timeout, service.call(caller, body))
                .await
                .map_err(|_| TransportError::Network {
                    node: target,
                    reason: "the call timed out".into(),
                })
        })
    }
}

/// Deadline of one member change on the leader (a new member catches up
/// first).
pub(crate) const MEMBERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
