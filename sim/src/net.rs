//! The simulated network: each node reaches the others through its own
//! [`NodeTransport`], which wraps the in-process [`LocalTransport`] with
//! latency and jitter, lost requests and answers, duplicated Raft messages
//! and asymmetric partitions, all drawn from the seed.
//!
//! Duplicates are limited to Raft's own messages (AppendEntries, Vote):
//! QUIC streams never duplicate herald's requests, and Raft must tolerate
//! any stale or repeated message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use herald_cluster::handover::ProposalHolds;
use herald_cluster::membership::{MemberAnswer, MemberChange};
use herald_cluster::{AppService, Forwarded, LocalTransport, Transport, TransportError};
use herald_storage::{CmdResult, Command, GroupId, NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Raft;

use crate::rng::SimRng;

type Remote<T, E = openraft::error::Infallible> =
    Result<Result<T, RaftError<NodeId, E>>, TransportError>;

/// How long a caller waits before it learns a message was lost (callers
/// with shorter deadlines give up sooner).
const LOST_AFTER: Duration = Duration::from_millis(1_000);

/// The network's fault settings; the run changes them between phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Chance that a request or an answer is lost, per mille.
    pub drop_per_mille: u32,
    /// Chance that a Raft message is delivered twice, per mille.
    pub dup_per_mille: u32,
}

impl Faults {
    pub const CALM: Faults = Faults {
        latency_min_ms: 1,
        latency_max_ms: 3,
        drop_per_mille: 0,
        dup_per_mille: 0,
    };
}

/// Counters of what the network did, for the trace and the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetStats {
    pub messages: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub cut: u64,
}

struct NetState {
    rng: SimRng,
    faults: Faults,
    /// Directed links that carry nothing: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    stats: NetStats,
    /// The runtime of each running node: a call to a node runs there, so a
    /// crash of either side cuts it off as it would in production.
    runtimes: BTreeMap<NodeId, tokio::runtime::Handle>,
}

/// The shared network of one simulated cluster.
pub struct SimNet {
    inner: LocalTransport,
    state: Mutex<NetState>,
}

/// What happens to one call, decided when it is made.
#[derive(Debug, Clone, Copy)]
struct Plan {
    there: Duration,
    back: Duration,
    request_lost: bool,
    answer_lost: bool,
    twice: bool,
}

impl SimNet {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalTransport::new(),
            state: Mutex::new(NetState {
                rng: SimRng::new(seed ^ 0x0000_00ed_7e7e),
                faults: Faults::CALM,
                cut: BTreeSet::new(),
                stats: NetStats::default(),
                runtimes: BTreeMap::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// Cuts the link from `from` to `to` (one direction only).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.state().cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state().cut.clear();
    }

    pub fn cut_links(&self) -> Vec<(NodeId, NodeId)> {
        self.state().cut.iter().copied().collect()
    }

    pub fn stats(&self) -> NetStats {
        self.state().stats
    }

    /// A started node's calls run on its runtime.
    pub fn node_up(&self, node: NodeId, runtime: tokio::runtime::Handle) {
        self.state().runtimes.insert(node, runtime);
    }

    /// A crashed node's groups and service vanish from the network.
    pub fn node_down(&self, node: NodeId) {
        self.state().runtimes.remove(&node);
        self.inner.unregister(node);
    }

    fn runtime(&self, node: NodeId) -> Option<tokio::runtime::Handle> {
        self.state().runtimes.get(&node).cloned()
    }

    /// The transport `node` is started with.
    pub fn transport_of(self: &Arc<Self>, node: NodeId) -> Arc<NodeTransport> {
        Arc::new(NodeTransport {
            me: node,
            net: self.clone(),
        })
    }

    fn plan(&self, from: NodeId, to: NodeId, may_duplicate: bool) -> Plan {
        let mut s = self.state();
        let f = s.faults;
        let there = Duration::from_millis(s.rng.range(f.latency_min_ms, f.latency_max_ms + 1));
        let back = Duration::from_millis(s.rng.range(f.latency_min_ms, f.latency_max_ms + 1));
        let request_cut = s.cut.contains(&(from, to));
        let answer_cut = s.cut.contains(&(to, from));
        let request_lost = request_cut || s.rng.chance(f.drop_per_mille);
        let answer_lost = answer_cut || s.rng.chance(f.drop_per_mille);
        let twice = may_duplicate && s.rng.chance(f.dup_per_mille);
        s.stats.messages += 1;
        if request_cut || answer_cut {
            s.stats.cut += 1;
        } else if request_lost || answer_lost {
            s.stats.lost += 1;
        }
        if twice {
            s.stats.duplicated += 1;
        }
        Plan {
            there,
            back,
            request_lost,
            answer_lost,
            twice,
        }
    }
}

fn lost(node: NodeId) -> TransportError {
    TransportError::Network {
        node,
        reason: "the simulated network lost the message".into(),
    }
}

/// One node's view of the [`SimNet`].
pub struct NodeTransport {
    me: NodeId,
    net: Arc<SimNet>,
}

impl NodeTransport {
    /// Runs `call` on the far side under `plan`: after the request's
    /// latency, possibly twice, and answers after the answer's latency.
    fn carry<T, F, Fut>(
        &self,
        target: NodeId,
        may_duplicate: bool,
        call: F,
    ) -> BoxFuture<'static, Result<T, TransportError>>
    where
        T: Send + 'static,
        F: Fn(LocalTransport) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, TransportError>> + Send + 'static,
    {
        let plan = self.net.plan(self.me, target, may_duplicate);
        let net = self.net.clone();
        Box::pin(async move {
            tokio::time::sleep(plan.there).await;
            if plan.request_lost {
                tokio::time::sleep(LOST_AFTER).await;
                return Err(lost(target));
            }
            let on_target =
                |n: &SimNet| n.runtime(target).map(|rt| rt.spawn(call(n.inner.clone())));
            let Some(first) = on_target(&net) else {
                return Err(TransportError::Unreachable {
                    node: target,
                    reason: "the node is down".into(),
                });
            };
            // A target that crashes mid-call never answers.
            let answer = first.await.unwrap_or_else(|_| Err(lost(target)));
            if plan.twice {
                if let Some(again) = on_target(&net) {
                    let _ = again.await;
                }
            }
            if plan.answer_lost {
                tokio::time::sleep(LOST_AFTER).await;
                return Err(lost(target));
            }
            tokio::time::sleep(plan.back).await;
            answer
        })
    }
}

impl Transport for NodeTransport {
    fn host_groups(&self, node: NodeId, groups: Vec<Raft<TypeConfig>>, holds: Arc<ProposalHolds>) {
        self.net.inner.host_groups(node, groups, holds);
    }

    fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<AppendEntriesResponse<NodeId>>> {
        self.carry(target, true, move |t| {
            let req = req.clone();
            async move { t.append_entries(target, group, req).await }
        })
    }

    fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        req: VoteRequest<NodeId>,
    ) -> BoxFuture<'static, Remote<VoteResponse<NodeId>>> {
        self.carry(target, true, move |t| {
            let req = req.clone();
            async move { t.vote(target, group, req).await }
        })
    }

    fn install_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> BoxFuture<'static, Remote<InstallSnapshotResponse<NodeId>, InstallSnapshotError>> {
        self.carry(target, false, move |t| {
            let req = req.clone();
            async move { t.install_snapshot(target, group, req).await }
        })
    }

    fn propose(
        &self,
        target: NodeId,
        group: GroupId,
        cmd: Command,
        sent: Arc<AtomicBool>,
    ) -> BoxFuture<'static, Forwarded<CmdResult>> {
        // Whether a lost request reached the far side is unknown to the
        // caller: it counts as sent from the start.
        sent.store(true, std::sync::atomic::Ordering::SeqCst);
        self.carry(target, false, move |t| {
            let cmd = cmd.clone();
            let sent = Arc::new(AtomicBool::new(false));
            async move { t.propose(target, group, cmd, sent).await }
        })
    }

    fn read_index(
        &self,
        target: NodeId,
        group: GroupId,
    ) -> BoxFuture<'static, Forwarded<Option<u64>>> {
        self.carry(target, false, move |t| async move {
            t.read_index(target, group).await
        })
    }

    fn change_members(
        &self,
        target: NodeId,
        group: GroupId,
        change: MemberChange,
    ) -> BoxFuture<'static, Result<MemberAnswer, TransportError>> {
        self.carry(target, false, move |t| {
            let change = change.clone();
            async move { t.change_members(target, group, change).await }
        })
    }

    fn elect(&self, target: NodeId, group: GroupId) -> BoxFuture<'static, Forwarded<()>> {
        self.carry(target, false, move |t| async move {
            t.elect(target, group).await
        })
    }

    fn serve_app(&self, node: NodeId, service: Arc<dyn AppService>) {
        self.net.inner.serve_app(node, service);
    }

    fn app_call(
        &self,
        target: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let carried = self.carry(target, false, move |t| {
            let body = body.clone();
            async move { t.app_call(target, body, timeout).await }
        });
        Box::pin(async move {
            tokio::time::timeout(timeout, carried)
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Network {
                        node: target,
                        reason: "the call timed out".into(),
                    })
                })
        })
    }
}
