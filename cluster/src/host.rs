//! The Raft groups one node hosts: the meta group and every data shard.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_model::placement::{self, GroupMembers, Move};
use herald_storage::{
    keys, ApplyObserver, Cf, CmdResult, Command, GroupId, KvEngine, LogStore, NodeId, Reader,
    StateMachine, TypeConfig, WriteBatch, META_GROUP,
};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::error::ClusterError;
use crate::handover::{self, Handover, ProposalHolds};
use crate::membership::{change_members_local, MemberAnswer, MemberChange};
use crate::transport::{
    AppService, Contacts, GroupNetwork, Transport, TransportError, MEMBERS_TIMEOUT,
};

/// What a node records about its cluster when it is created; never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Number of data shards, fixed at cluster creation.
    pub shards: u32,
    pub node_id: NodeId,
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub node_id: NodeId,
    /// Data shards of a new cluster; an existing cluster keeps its own count.
    pub shards: u32,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Log entries per AppendEntries message at most (catch-up batches).
    pub max_payload_entries: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_every_entries: u64,
    /// Log entries kept behind a snapshot for lagging followers.
    pub log_kept_after_snapshot: u64,
    /// Deadline of one proposal or read barrier.
    pub request_timeout: Duration,
    /// The voters of a new cluster: node id → RPC address. Empty or only
    /// this node: a single-node cluster. Otherwise the lowest id initialises
    /// every group with all of them; the others wait to be contacted.
    pub members: BTreeMap<NodeId, String>,
    /// Join a running cluster through this member (id, RPC address),
    /// announcing this node's own RPC address, the second field. Only on a
    /// node whose groups have never been initialised.
    pub join: Option<((NodeId, String), String)>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            shards: herald_model::hash::DEFAULT_SHARDS,
            // openraft gives each AppendEntries one heartbeat interval to
            // answer: long enough for a batch of `max_payload_entries` over
            // a fresh QUIC connection on a busy machine.
            heartbeat_ms: 200,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 800,
            max_payload_entries: 64,
            snapshot_every_entries: 20_000,
            log_kept_after_snapshot: 1_000,
            request_timeout: Duration::from_secs(10),
            members: BTreeMap::new(),
            join: None,
        }
    }
}

/// The meta group plus `shards` data groups on this node.
pub struct RaftHost<E: KvEngine> {
    node_id: NodeId,
    shards: u32,
    groups: Vec<Raft<TypeConfig>>,
    reader: Reader<E>,
    request_timeout: Duration,
    transport: Arc<dyn Transport>,
    /// Leader of each group at the last `report_metrics`.
    leaders_seen: std::sync::Mutex<Vec<Option<NodeId>>>,
    /// When each peer last answered one of this node's groups.
    contacts: Contacts,
    /// Read-index rounds in flight, one slot per group.
    read_rounds: Vec<Arc<std::sync::Mutex<ReadRound>>>,
    /// Proposals held while a group is handed to another leader.
    holds: Arc<ProposalHolds>,
    /// Set by `shutdown`: background tasks end.
    stopping: Arc<AtomicBool>,
}

impl<E: KvEngine> RaftHost<E> {
    /// Opens or creates every group. On a node whose groups have never been
    /// initialised, each becomes a one-member group with this node as voter.
    pub async fn start(
        engine: Arc<E>,
        cfg: HostConfig,
        transport: Arc<dyn Transport>,
        observer: Option<Arc<dyn ApplyObserver>>,
    ) -> Result<Self, ClusterError> {
        let record = load_or_create_record(engine.as_ref(), &cfg)?;
        if record.node_id != cfg.node_id {
            return Err(ClusterError::Config(format!(
                "data directory belongs to node {}, not node {}",
                record.node_id, cfg.node_id
            )));
        }
        let raft_config = Arc::new(
            Config {
                cluster_name: "herald".into(),
                heartbeat_interval: cfg.heartbeat_ms,
                election_timeout_min: cfg.election_timeout_min_ms,
                election_timeout_max: cfg.election_timeout_max_ms,
                max_payload_entries: cfg.max_payload_entries,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_entries),
                max_in_snapshot_log_to_keep: cfg.log_kept_after_snapshot,
                ..Default::default()
            }
            .validate()
            .map_err(|e| ClusterError::Config(e.to_string()))?,
        );
        let contacts = Contacts::default();
        let mut groups = Vec::with_capacity(record.shards as usize + 1);
        let configured_multi = cfg.join.is_some() || cfg.members.keys().any(|&n| n != cfg.node_id);
        for group in 0..=record.shards {
            let mut log = LogStore::new(engine.clone(), group);
            let mut sm = StateMachine::open(engine.clone(), group, observer.clone())
                .map_err(|e| ClusterError::Storage(e.to_string()))?;
            if demote_restored_leader(&mut log, &mut sm, cfg.node_id, configured_multi).await? {
                tracing::info!(
                    group,
                    "led this group before it stopped: rejoins as a follower (an election follows)"
                );
            }
            let net = GroupNetwork {
                transport: transport.clone(),
                group,
                contacts: contacts.clone(),
            };
            // openraft's own log lines carry the group (its task spans take
            // the span current when the group is created).
            let raft = Raft::new(cfg.node_id, raft_config.clone(), net, log, sm)
                .instrument(tracing::info_span!("raft", node = cfg.node_id, group))
                .await
                .map_err(|e| ClusterError::Fatal(e.to_string()))?;
            groups.push(raft);
        }
        let retired_reader = Reader::new(engine.clone());
        let holds = Arc::new(ProposalHolds::new(
            groups.len(),
            Box::new(move |group, node| {
                retired_reader
                    .is_retired(group, node)
                    .map_err(|e| ClusterError::Storage(e.to_string()))
            }),
        ));
        transport.host_groups(cfg.node_id, groups.clone(), holds.clone());
        let single = cfg.members.keys().all(|&n| n == cfg.node_id);
        if !single && !cfg.members.contains_key(&cfg.node_id) {
            return Err(ClusterError::Config(format!(
                "node {} is not among the cluster's members {:?}",
                cfg.node_id,
                cfg.members.keys().collect::<Vec<_>>()
            )));
        }
        let initialiser =
            cfg.join.is_none() && (single || cfg.members.keys().next() == Some(&cfg.node_id));
        // Long enough for the peers' connections to the old process to be
        // declared dead (QUIC idle timeout, 3 s) and to reconnect.
        let rejoin_quiet = REJOIN_QUIET.max(Duration::from_millis(2 * cfg.election_timeout_max_ms));
        for raft in &groups {
            hold_elections_on_rejoin(raft, rejoin_quiet).await?;
        }
        let stopping = Arc::new(AtomicBool::new(false));
        tokio::spawn(watch_leaders(
            groups.clone(),
            cfg.node_id,
            rejoin_quiet,
            stopping.clone(),
        ));
        for raft in &groups {
            if initialiser
                && !raft
                    .is_initialized()
                    .await
                    .map_err(|e| ClusterError::Fatal(e.to_string()))?
            {
                let members: BTreeMap<NodeId, BasicNode> = if single {
                    let own = cfg.members.get(&cfg.node_id).cloned().unwrap_or_default();
                    BTreeMap::from([(cfg.node_id, BasicNode::new(own))])
                } else {
                    cfg.members
                        .iter()
                        .map(|(&id, addr)| (id, BasicNode::new(addr)))
                        .collect()
                };
                raft.initialize(members)
                    .await
                    .map_err(|e| ClusterError::Fatal(e.to_string()))?;
            }
        }
        if let Some(((via, via_addr), own_addr)) = cfg.join.clone() {
            // A join cut short (a crash, `via` down) resumes with the groups
            // this node has not heard from yet.
            let mut pending = Vec::new();
            for (g, raft) in groups.iter().enumerate() {
                let joined = raft
                    .is_initialized()
                    .await
                    .map_err(|e| ClusterError::Fatal(e.to_string()))?;
                if !joined {
                    pending.push(g as GroupId);
                }
            }
            if !pending.is_empty() {
                transport.learn_address(via, &via_addr);
                let (groups, transport, node) = (groups.clone(), transport.clone(), cfg.node_id);
                let holds = holds.clone();
                tokio::spawn(async move {
                    if join(&groups, &holds, &pending, &transport, node, via, own_addr).await {
                        tracing::info!(via, "joined every group of the cluster");
                    }
                });
            }
        }
        Ok(Self {
            node_id: cfg.node_id,
            shards: record.shards,
            groups,
            reader: Reader::new(engine),
            request_timeout: cfg.request_timeout,
            transport,
            leaders_seen: std::sync::Mutex::new(Vec::new()),
            contacts,
            read_rounds: (0..=record.shards).map(|_| Arc::default()).collect(),
            holds,
            stopping,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// Every group's Raft handle, indexed by group id.
    pub fn rafts(&self) -> &[Raft<TypeConfig>] {
        &self.groups
    }

    pub fn reader(&self) -> &Reader<E> {
        &self.reader
    }

    /// The data group that owns `key` (an endpoint id) of `app_id`.
    pub fn group_of(&self, app_id: &str, key: &str) -> GroupId {
        keys::shard_group(herald_model::hash::shard_of(app_id, key, self.shards))
    }

    /// Every data group id.
    pub fn data_groups(&self) -> impl Iterator<Item = GroupId> {
        (0..self.shards).map(keys::shard_group)
    }

    /// Whether this node leads `group` now (as far as it knows).
    pub fn is_leader(&self, group: GroupId) -> bool {
        self.groups
            .get(group as usize)
            .is_some_and(|r| r.metrics().borrow().current_leader == Some(self.node_id))
    }

    /// The node that leads `group`, as far as this node knows.
    pub fn leader_of(&self, group: GroupId) -> Option<NodeId> {
        self.groups
            .get(group as usize)
            .and_then(|r| r.metrics().borrow().current_leader)
    }

    /// Makes `service` answer herald's own requests from other nodes.
    pub fn serve_app(&self, service: Arc<dyn AppService>) {
        self.transport.serve_app(self.node_id, service);
    }

    /// Sends one of herald's own requests to `target` (see
    /// [`Transport::app_call`] for what its errors mean).
    pub async fn app_call(
        &self,
        target: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        self.transport.app_call(target, body, timeout).await
    }

    fn raft(&self, group: GroupId) -> Result<&Raft<TypeConfig>, ClusterError> {
        self.groups
            .get(group as usize)
            .ok_or(ClusterError::NoSuchGroup(group))
    }

    /// Waits until every group has a leader: `Unavailable` when the timeout
    /// passes first, `Fatal` when a group has stopped.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        for (g, raft) in self.groups.iter().enumerate() {
            raft.wait(Some(timeout))
                .metrics(|m| m.current_leader.is_some(), "group has a leader")
                .await
                .map_err(|e| match e {
                    openraft::metrics::WaitError::ShuttingDown => {
                        ClusterError::Fatal(format!("group {g} has stopped"))
                    }
                    e => ClusterError::Unavailable(format!("group {g}: {e}")),
                })?;
        }
        Ok(())
    }

    /// Proposes a command to its group and returns the state machine's result
    /// once the entry is committed and applied. On a node that does not lead
    /// the group, the command is forwarded to the leader; it is retried (on
    /// a new leader) only while it is known not to have been proposed.
    pub async fn propose(&self, group: GroupId, cmd: Command) -> Result<CmdResult, ClusterError> {
        let raft = self.raft(group)?;
        let started = tokio::time::Instant::now();
        let deadline = started + self.request_timeout;
        let res = loop {
            let (leader, alone) = {
                let m = raft.metrics();
                let m = m.borrow();
                let voters = m.membership_config.membership().voter_ids().count();
                (m.current_leader, voters <= 1)
            };
            match leader {
                Some(l) if l == self.node_id && alone => {
                    break propose_local(raft, &self.holds, group, cmd, self.request_timeout).await;
                }
                Some(l) if l == self.node_id => {
                    // Leadership may move before the entry is appended; then
                    // it was not proposed and goes to the next leader.
                    match propose_local(raft, &self.holds, group, cmd.clone(), self.request_timeout)
                        .await
                    {
                        Err(ClusterError::NotLeader { .. }) => {}
                        r => break r,
                    }
                }
                Some(l) => {
                    self.learn_leader(raft, l);
                    let sent = Arc::new(AtomicBool::new(false));
                    let call = tokio::time::timeout_at(
                        deadline,
                        self.transport.propose(l, group, cmd.clone(), sent.clone()),
                    );
                    let forwarded = match forward_watching_leader(raft, l, call, FORWARD_GRACE)
                        .await
                    {
                        Some(r) => r.map_err(|_| ClusterError::Timeout(group))?,
                        // Still connecting to the old leader: the new one
                        // gets the command instead.
                        None if !sent.load(Ordering::SeqCst) => Err(TransportError::Unreachable {
                            node: l,
                            reason: "leader moved before the command was sent".into(),
                        }),
                        None => {
                            metrics::counter!("herald_raft_forward_abandoned_total").increment(1);
                            break Err(ClusterError::Unavailable(format!(
                                "group {group}'s leader moved away from node {l}, which did not \
                                 answer; the write's outcome is unknown (retry it)"
                            )));
                        }
                    };
                    match forwarded {
                        Ok(Err(ClusterError::NotLeader { .. }))
                        | Err(TransportError::Unreachable { .. }) => {}
                        Ok(r) => break r,
                        Err(e @ TransportError::Network { .. }) => {
                            // Sent, but no answer: it may or may not apply.
                            break Err(ClusterError::Unavailable(e.to_string()));
                        }
                    }
                }
                None => {}
            }
            // No leader known, it changed, or it was not reachable: retry
            // when another leader shows up, or after a short pause.
            if let Err(e) = pause_for_leader(raft, leader, deadline, group).await {
                break Err(e);
            }
        };
        let took = started.elapsed();
        metrics::histogram!("herald_raft_propose_seconds").record(took.as_secs_f64());
        if took >= SLOW_CALL {
            tracing::info!(
                group,
                ms = took.as_millis() as u64,
                ok = res.is_ok(),
                "slow proposal"
            );
        }
        res
    }

    /// Changes the members of `group` through its leader, wherever it is.
    pub async fn change_members(
        &self,
        group: GroupId,
        change: MemberChange,
    ) -> Result<(), ClusterError> {
        let raft = self.raft(group)?;
        let deadline = tokio::time::Instant::now() + MEMBERS_TIMEOUT;
        loop {
            let done = change_members_via(
                raft,
                &self.holds,
                &self.transport,
                self.node_id,
                group,
                &change,
                None,
            )
            .await;
            match done {
                // This node leads the group without a vote: hand it to a
                // voter, then ask again (through the new leader).
                Err(ClusterError::NotLeader { leader: None, .. })
                    if tokio::time::Instant::now() < deadline
                        && raft.metrics().borrow().current_leader == Some(self.node_id) =>
                {
                    let handed = self.hand_over_once(group, raft).await;
                    tracing::info!(
                        group,
                        handed,
                        "member change: leading without a vote, handing the group over first"
                    );
                    tokio::time::sleep(MEMBERS_RETRY).await;
                }
                other => return other,
            }
        }
    }

    /// Removes `node` from every group for good, one group at a time,
    /// through each group's leader. Every group is asked, not only those
    /// this node's replicas list it in: a lagging replica may not know yet
    /// that it joined one, and a node left in a group it was thought to
    /// have left can hold that group's next member change (a joint
    /// configuration) hostage once it is gone. Each group records the node
    /// as retired before it goes, so a join still under way (it may not
    /// have reached a group yet) cannot add it back: node ids are not
    /// reused. Asking again is harmless.
    pub async fn remove_node(&self, node: NodeId) -> Result<(), ClusterError> {
        for group in 0..self.groups.len() as GroupId {
            self.change_members(group, MemberChange::Remove { node })
                .await?;
        }
        Ok(())
    }

    /// Makes sure the transport can reach `leader` of `raft`'s group.
    fn learn_leader(&self, raft: &Raft<TypeConfig>, leader: NodeId) {
        let m = raft.metrics();
        let m = m.borrow();
        if let Some(n) = m.membership_config.membership().get_node(&leader) {
            if !n.addr.is_empty() {
                self.transport.learn_address(leader, &n.addr);
            }
        }
    }

    /// Returns once this node's state for `group` reflects every write
    /// committed before the call (openraft's read index + leader check; a
    /// follower asks the leader for its read index and waits to apply it).
    ///
    /// Each read index costs the leader a heartbeat round to a quorum, so a
    /// node asks for one at a time per group: callers that arrive while a
    /// round is in flight share the next round, which starts after they
    /// arrived and so still sees every write acknowledged before them.
    pub async fn read_barrier(&self, group: GroupId) -> Result<(), ClusterError> {
        let raft = self.raft(group)?;
        let started = tokio::time::Instant::now();
        let deadline = started + self.request_timeout;
        loop {
            let leader = raft.metrics().borrow().current_leader;
            let index = match leader {
                Some(l) => {
                    if l != self.node_id {
                        self.learn_leader(raft, l);
                    }
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.join_read_round(group, tx);
                    match tokio::time::timeout_at(deadline, rx).await {
                        Err(_) => return Err(ClusterError::Timeout(group)),
                        // The round's task ended without answering: ask again.
                        Ok(Err(_)) => None,
                        Ok(Ok(r)) => r?,
                    }
                }
                None => None,
            };
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match index {
                Some(index) => {
                    raft.wait(Some(remaining))
                        .applied_index_at_least(index, "the leader's read index")
                        .await
                        .map_err(|_| ClusterError::Timeout(group))?;
                    let took = started.elapsed();
                    metrics::histogram!("herald_raft_read_barrier_seconds")
                        .record(took.as_secs_f64());
                    if took >= SLOW_CALL {
                        tracing::info!(group, ms = took.as_millis() as u64, "slow read barrier");
                    }
                    return Ok(());
                }
                None => pause_for_leader(raft, leader, deadline, group).await?,
            }
        }
    }

    /// Queues `tx` for the next read-index round of `group`, starting the
    /// rounds' task when none is running.
    fn join_read_round(&self, group: GroupId, tx: RoundAnswer) {
        let slot = &self.read_rounds[group as usize];
        {
            let mut round = slot.lock().unwrap_or_else(|p| p.into_inner());
            round.waiting.push(tx);
            if round.running {
                return;
            }
            round.running = true;
        }
        let slot = slot.clone();
        let raft = self.groups[group as usize].clone();
        let transport = self.transport.clone();
        let (node_id, timeout) = (self.node_id, self.request_timeout);
        tokio::spawn(async move {
            let _unmark = UnmarkOnPanic(slot.clone());
            loop {
                let waiting = {
                    let mut round = slot.lock().unwrap_or_else(|p| p.into_inner());
                    if round.waiting.is_empty() {
                        round.running = false;
                        return;
                    }
                    std::mem::take(&mut round.waiting)
                };
                let answer = read_index_round(&raft, &transport, node_id, group, timeout).await;
                for tx in waiting {
                    let _ = tx.send(answer.clone());
                }
            }
        });
    }

    /// One line per group: leader, term, last log and applied index.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, r)| {
                let m = r.metrics().borrow().clone();
                let membership = m.membership_config.membership();
                let last = m.last_log_index.unwrap_or(0);
                GroupStatus {
                    group: g as GroupId,
                    leader: m.current_leader,
                    term: m.current_term,
                    voters: membership.voter_ids().collect(),
                    learners: membership.learner_ids().collect(),
                    last_log_index: m.last_log_index,
                    last_applied_index: m.last_applied.map(|l| l.index),
                    snapshot_index: m.snapshot.map(|l| l.index),
                    // Known where this node leads: entries each replica lacks.
                    lag: m
                        .replication
                        .as_ref()
                        .map(|rep| {
                            rep.iter()
                                .map(|(&n, matched)| {
                                    (n, last.saturating_sub(matched.map_or(0, |l| l.index)))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Sets the per-group Raft gauges and counts leader changes seen since
    /// the last call (call it periodically): herald_raft_is_leader,
    /// herald_raft_term, herald_raft_last_log_index,
    /// herald_raft_applied_index, herald_raft_max_replica_lag (where this
    /// node leads), herald_raft_leader_changes_total, and
    /// herald_raft_groups_led / herald_raft_groups_without_leader.
    pub fn report_metrics(&self) {
        let mut seen = self.leaders_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.resize(self.groups.len(), None);
        let (mut led, mut orphaned) = (0u64, 0u64);
        for (s, before) in self.status().into_iter().zip(seen.iter_mut()) {
            let g = s.group.to_string();
            let leads = s.leader == Some(self.node_id);
            led += u64::from(leads);
            orphaned += u64::from(s.leader.is_none());
            if s.leader.is_some() && s.leader != *before {
                if before.is_some() {
                    metrics::counter!("herald_raft_leader_changes_total", "group" => g.clone())
                        .increment(1);
                }
                *before = s.leader;
            }
            metrics::gauge!("herald_raft_is_leader", "group" => g.clone())
                .set(f64::from(u8::from(leads)));
            metrics::gauge!("herald_raft_term", "group" => g.clone()).set(s.term as f64);
            metrics::gauge!("herald_raft_last_log_index", "group" => g.clone())
                .set(s.last_log_index.unwrap_or(0) as f64);
            metrics::gauge!("herald_raft_applied_index", "group" => g.clone())
                .set(s.last_applied_index.unwrap_or(0) as f64);
            if leads {
                let lag = s.lag.values().copied().max().unwrap_or(0);
                metrics::gauge!("herald_raft_max_replica_lag", "group" => g).set(lag as f64);
            }
        }
        metrics::gauge!("herald_raft_groups_led").set(led as f64);
        metrics::gauge!("herald_raft_groups_without_leader").set(orphaned as f64);
    }

    /// Spreads leaderships: each group's preferred leader is one of its
    /// voters in id order (`voters[group % voters]`). This node hands each
    /// group it leads to the preferred voter, if that voter answers and is
    /// nearly caught up, holding the group's proposals for the moment it
    /// takes ([`crate::handover`]). At most `max` groups per call, so
    /// callers bound the churn; answers how many changed hands.
    pub async fn balance_leaders(&self, max: usize) -> usize {
        let mut moved = 0;
        for (g, raft) in self.groups.iter().enumerate() {
            if moved >= max || self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let target = {
                let m = raft.metrics();
                let m = m.borrow();
                let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                if m.current_leader != Some(self.node_id) || voters.len() < 2 {
                    continue;
                }
                let preferred = voters[g % voters.len()];
                if preferred == self.node_id || !self.ready_for_handover(&m, preferred) {
                    continue;
                }
                preferred
            };
            let outcome = self.hand_over(g as GroupId, raft, target).await;
            tracing::info!(
                group = g,
                target,
                ?outcome,
                "handing a group to its preferred leader"
            );
            if outcome == Handover::Done {
                metrics::counter!("herald_raft_leadership_balanced_total").increment(1);
                moved += 1;
            }
        }
        moved
    }

    /// Whether `target` answered this leader lately and lacks at most a
    /// few entries, so a handover to it holds proposals only briefly.
    fn ready_for_handover(
        &self,
        m: &openraft::RaftMetrics<NodeId, BasicNode>,
        target: NodeId,
    ) -> bool {
        let answered = self
            .contacts
            .last(target)
            .is_some_and(|t| t.elapsed() < HANDOVER_FRESH);
        let behind = m
            .last_log_index
            .zip(handover::matched(m, target))
            .map(|(last, matched)| last.saturating_sub(matched));
        answered && behind.is_some_and(|b| b <= HANDOVER_GAP_MAX)
    }

    /// Hands `group`, which this node leads, to `target`: holds new
    /// proposals, waits until `target` has the whole log, asks it to call an
    /// election and waits for it to win. Held proposals then go to the new
    /// leader.
    pub(crate) async fn hand_over(
        &self,
        group: GroupId,
        raft: &Raft<TypeConfig>,
        target: NodeId,
    ) -> Handover {
        let Some(_held) = self.holds.hold(group) else {
            return Handover::Busy;
        };
        if raft.metrics().borrow().current_leader != Some(self.node_id) {
            return Handover::NotLeader;
        }
        if !handover::wait_target_caught_up(raft, target, handover::CATCH_UP_MAX).await {
            return if raft.metrics().borrow().current_leader == Some(self.node_id) {
                Handover::Failed
            } else {
                Handover::NotLeader
            };
        }
        match tokio::time::timeout(handover::CATCH_UP_MAX, self.transport.elect(target, group))
            .await
        {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(group, target, error = %e, "handover refused");
                return Handover::Failed;
            }
            Ok(Err(e)) => {
                tracing::warn!(group, target, error = %e, "handover not delivered");
                return Handover::Failed;
            }
            Err(_) => {
                tracing::warn!(group, target, "handover not answered in time");
                return Handover::Failed;
            }
        }
        if handover::wait_other_leader(raft, handover::ELECTION_MAX).await {
            Handover::Done
        } else {
            Handover::Failed
        }
    }

    /// Before a graceful stop: every group this node leads is handed to a
    /// voter whose log matches the leader's, which is asked to call an
    /// election (the old leader's vote is what it needs to win). Waits until
    /// each group has another leader or `within` has passed; answers how
    /// many groups changed hands. Requests in flight are retried by their
    /// nodes on the new leaders instead of failing when this node goes.
    pub async fn hand_over_leadership(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        // Only the groups this node leads now; a group led elsewhere is not
        // a handover.
        let led = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, raft)| raft.metrics().borrow().current_leader == Some(self.node_id));
        let handovers = led.map(|(g, raft)| async move {
            // A fresh leader's followers still honour its lease and refuse
            // votes, and replication metrics lag: try again until `within`.
            loop {
                if self.hand_over_once(g as GroupId, raft).await {
                    return true;
                }
                if raft.metrics().borrow().current_leader != Some(self.node_id) {
                    return true;
                }
                if tokio::time::Instant::now() + HANDOVER_RETRY >= deadline {
                    return false;
                }
                tokio::time::sleep(HANDOVER_RETRY).await;
            }
        });
        let handed = futures::future::join_all(handovers)
            .await
            .into_iter()
            .filter(|&h| h)
            .count();
        metrics::counter!("herald_raft_handovers_total").increment(handed as u64);
        handed
    }

    /// One handover attempt of `group` to a voter that answers and is
    /// nearly caught up; true when another node leads it.
    async fn hand_over_once(&self, group: GroupId, raft: &Raft<TypeConfig>) -> bool {
        let target = {
            let m = raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(self.node_id) {
                return false;
            }
            m.membership_config
                .membership()
                .voter_ids()
                .filter(|&v| v != self.node_id)
                .find(|&v| self.ready_for_handover(&m, v))
        };
        match target {
            Some(target) => self.hand_over(group, raft, target).await == Handover::Done,
            None => false,
        }
    }

    /// Hands each group this node leads without being one of its voters
    /// (a committed change moved its vote away, and openraft lets such a
    /// leader lead on, heartbeats and all, so no voter ever campaigns) to
    /// a voter. Member changes refuse to run on such a leader.
    pub async fn hand_over_unvoted(&self) {
        for (g, raft) in self.groups.iter().enumerate() {
            let unvoted = {
                let m = raft.metrics();
                let m = m.borrow();
                m.current_leader == Some(self.node_id)
                    && !m
                        .membership_config
                        .membership()
                        .voter_ids()
                        .any(|v| v == self.node_id)
            };
            if unvoted {
                let handed = self.hand_over_once(g as GroupId, raft).await;
                tracing::info!(
                    group = g,
                    handed,
                    "leading without a vote: handing the group to a voter"
                );
            }
        }
    }

    /// Every group as this node's replica sees it: voters, learners and
    /// leader (every node holds every group, so the view is complete; it
    /// may lag the leaders by a heartbeat).
    pub fn placement_view(&self) -> Vec<GroupMembers> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, raft)| {
                let m = raft.metrics();
                let m = m.borrow();
                let membership = m.membership_config.membership();
                let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
                GroupMembers {
                    group: g as GroupId,
                    learners: membership
                        .nodes()
                        .map(|(&id, _)| id)
                        .filter(|id| !voters.contains(id))
                        .collect(),
                    voters,
                    leader: m.current_leader,
                }
            })
            .collect()
    }

    /// The members of any group that answered within `down_after`; a node
    /// not heard from since `since` (this node's start as controller)
    /// counts as heard from then. This node is always live.
    fn live_nodes(
        &self,
        view: &[GroupMembers],
        down_after: Duration,
        since: tokio::time::Instant,
    ) -> BTreeSet<NodeId> {
        let now = tokio::time::Instant::now();
        view.iter()
            .flat_map(|g| g.voters.iter().chain(&g.learners))
            .copied()
            .filter(|&n| {
                n == self.node_id
                    || now.saturating_duration_since(
                        self.contacts.last(n).unwrap_or(since).max(since),
                    ) < down_after
            })
            .collect()
    }

    /// One step of placement, on the meta group's leader only: plans the
    /// next move over this node's view ([`placement::plan`]) and applies it
    /// through the group's leader. Answers the move made, if any.
    pub async fn place_once(
        &self,
        wanted: usize,
        down_after: Duration,
        since: tokio::time::Instant,
    ) -> Result<Option<Move>, ClusterError> {
        if !self.is_leader(META_GROUP) {
            return Ok(None);
        }
        let view = self.placement_view();
        let live = self.live_nodes(&view, down_after, since);
        let nodes: BTreeSet<NodeId> = view
            .iter()
            .flat_map(|g| g.voters.iter().chain(&g.learners))
            .copied()
            .collect();
        metrics::gauge!("herald_placement_live_nodes").set(live.len() as f64);
        metrics::gauge!("herald_placement_down_nodes").set(nodes.difference(&live).count() as f64);
        let Some(m) = placement::plan(&view, &live, wanted) else {
            return Ok(None);
        };
        let from = view[m.group as usize].voters.clone();
        tracing::info!(
            group = m.group,
            reason = m.reason.as_str(),
            from = ?from,
            to = ?m.voters,
            "placement: changing a group's voters"
        );
        let change = MemberChange::SetVoters {
            from,
            to: m.voters.clone(),
        };
        self.change_members(m.group, change).await?;
        metrics::counter!("herald_placement_moves_total", "reason" => m.reason.as_str())
            .increment(1);
        Ok(Some(m))
    }

    /// The placement controller: every `interval`, while this node leads
    /// the meta group, one [`Self::place_once`] step (one move at most, so
    /// replicas move at a bounded rate). Runs until its task is aborted.
    pub async fn run_placement(&self, wanted: usize, interval: Duration, down_after: Duration) {
        // Beside the moves (one may wait on a slow group for a long time),
        // on every node: groups led without a vote go to a voter.
        let unvoted = async {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.hand_over_unvoted().await;
            }
        };
        let moves = async {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut since = None;
            loop {
                every.tick().await;
                if !self.is_leader(META_GROUP) {
                    since = None;
                    continue;
                }
                let started = *since.get_or_insert_with(tokio::time::Instant::now);
                match self.place_once(wanted, down_after, started).await {
                    Ok(_) => {}
                    Err(ClusterError::Stale(group)) => {
                        tracing::debug!(
                            group,
                            "placement: the group changed meanwhile; replanning"
                        );
                    }
                    Err(e) => {
                        metrics::counter!("herald_placement_failures_total").increment(1);
                        tracing::warn!(error = %e, "placement: the move failed; replanning next time");
                    }
                }
            }
        };
        futures::future::join(unvoted, moves).await;
    }

    /// Stops every group; pending proposals fail.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for (g, raft) in self.groups.iter().enumerate() {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(group = g, error = %e, "raft group did not shut down cleanly");
            }
        }
    }
}

/// Pause between handover attempts of one group.
const HANDOVER_RETRY: Duration = Duration::from_millis(200);
/// A handover target must have answered the leader this recently.
const HANDOVER_FRESH: Duration = Duration::from_millis(1000);
/// ... and lack at most this many entries (it catches up while held).
const HANDOVER_GAP_MAX: u64 = 256;

/// Longest pause before a request that found no (reachable) leader tries
/// again; a new leader showing up ends it sooner.
const LEADER_RETRY: Duration = Duration::from_millis(100);

/// Waits until `group` has a leader other than `leader`, or `LEADER_RETRY`
/// has passed; fails once `deadline` has.
async fn pause_for_leader(
    raft: &Raft<TypeConfig>,
    leader: Option<NodeId>,
    deadline: tokio::time::Instant,
    group: GroupId,
) -> Result<(), ClusterError> {
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    if remaining.is_zero() {
        return Err(ClusterError::Timeout(group));
    }
    // A timeout here only ends the pause. A stopped group (its core ended,
    // e.g. on a fatal storage error) answers at once, for ever: without this
    // check the callers' retry loops spun until their deadline (the
    // simulator, whose clock does not move while a task spins, hung there).
    match raft
        .wait(Some(remaining.min(LEADER_RETRY)))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != leader,
            "a new leader",
        )
        .await
    {
        Err(openraft::metrics::WaitError::ShuttingDown) => {
            Err(ClusterError::Fatal(format!("group {group} has stopped")))
        }
        _ => Ok(()),
    }
}

/// How long a restarted replica waits at most for a leader before it may
/// campaign again ([`hold_elections_on_rejoin`]).
const REJOIN_QUIET: Duration = Duration::from_secs(5);

/// How often [`watch_leaders`] looks at every group.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// How long after its leader's lease ran out the first surviving voter of a
/// group campaigns, and how much later each next one does.
const WATCH_FIRST: Duration = Duration::from_millis(100);
const WATCH_STAGGER: Duration = Duration::from_millis(250);

/// Campaigns, in a fixed order, in the groups whose leader has gone silent.
///
/// openraft lets a follower campaign only after the leader's lease plus its
/// own random election timeout, and a further 2 x election_timeout_max when
/// it was last refused a vote for a shorter log (a mark it keeps until its
/// next timed campaign, however many leaders it follows in between). After
/// a leader dies its groups would elect 1.3-3.2 s after the last heartbeat.
/// Here the surviving voters of such a group, ranked by id, campaign one
/// after the other as soon as the lease is over (the other voters grant a
/// vote from then on); a first campaigner with the shorter log is refused,
/// and the refusing voter takes over ([`vote_and_take_over`]). Only
/// followers whose vote is committed (they followed a leader) start such a
/// campaign; [`take_over`] tries once more a term later, and rounds after
/// that stay with openraft's timers. Ends when the host shuts down.
async fn watch_leaders(
    groups: Vec<Raft<TypeConfig>>,
    me: NodeId,
    start_after: Duration,
    stopping: Arc<AtomicBool>,
) {
    tokio::time::sleep(start_after).await;
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When this node last campaigned in each group: once per lease at most.
    let mut campaigned: Vec<Option<tokio::time::Instant>> = vec![None; groups.len()];
    while !stopping.load(Ordering::SeqCst) {
        tick.tick().await;
        for (g, raft) in groups.iter().enumerate() {
            let lease = Duration::from_millis(raft.config().election_timeout_max);
            let now = tokio::time::Instant::now();
            if campaigned[g].is_some_and(|t| now < t + lease) {
                continue;
            }
            let rank = {
                let m = raft.metrics();
                let m = m.borrow();
                if m.state != ServerState::Follower {
                    continue;
                }
                let survivors: Vec<NodeId> = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .filter(|&v| Some(v) != m.current_leader)
                    .collect();
                match survivors.iter().position(|&v| v == me) {
                    Some(rank) => rank,
                    None => continue,
                }
            };
            let after = lease + WATCH_FIRST + WATCH_STAGGER * rank as u32;
            let Ok(heard) = leader_heard_at(raft).await else {
                return; // the group has stopped
            };
            let Some(silent) = heard.map(|t| now.saturating_duration_since(t)) else {
                continue; // following no leader: openraft's timers campaign
            };
            if silent < after {
                continue;
            }
            tracing::debug!(
                group = g,
                rank,
                silent_ms = silent.as_millis() as u64,
                "leader silent"
            );
            campaigned[g] = Some(now);
            let raft = raft.clone();
            tokio::spawn(async move { take_over(&raft, Campaign::SilentLeader).await });
        }
    }
}

/// When this replica last heard from the leader it follows (openraft
/// stamps a follower's committed vote on every AppendEntries, and the vote
/// it loads at start with the load time); `None` while it follows no leader
/// (its vote is its own or a candidate's). `Err`: the group has stopped.
async fn leader_heard_at(raft: &Raft<TypeConfig>) -> Result<Option<tokio::time::Instant>, ()> {
    raft.with_raft_state(|st| {
        st.vote_last_modified()
            .filter(|_| st.vote_ref().is_committed())
    })
    .await
    .map_err(|_| ())
}

/// Keeps a restarted replica of a multi-voter group from campaigning until
/// it hears from a leader, or for `quiet` at most (re-enabled by a task), so
/// the group's live leader reaches it first. Campaigning, it would raise
/// its term while unreachable, and the leader that then reaches it steps
/// down (openraft 0.9 has no pre-vote). Refused for its shorter log, it
/// would also carry openraft's extra 2 x election_timeout_max delay into
/// its next campaign, the next time a leader dies. Explicit elections
/// (handover, take-over) are not held back; a whole cluster starting cold
/// elects leaders up to `quiet` later.
async fn hold_elections_on_rejoin(
    raft: &Raft<TypeConfig>,
    quiet: Duration,
) -> Result<(), ClusterError> {
    let restarted = raft
        .is_initialized()
        .await
        .map_err(|e| ClusterError::Fatal(e.to_string()))?;
    let voters = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .count();
    if !restarted || voters <= 1 {
        return Ok(());
    }
    raft.runtime_config().elect(false);
    let raft = raft.clone();
    tokio::spawn(async move {
        // openraft stamps the vote it loads with the time it loaded it: a
        // leader is heard from once the stamp is later than that.
        let since = tokio::time::Instant::now();
        let until = since + quiet;
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            match leader_heard_at(&raft).await {
                Err(()) => return, // the group has stopped
                Ok(Some(t)) if t > since => break,
                Ok(_) if tokio::time::Instant::now() >= until => break,
                Ok(_) => {}
            }
        }
        raft.runtime_config().elect(true);
    });
    Ok(())
}

/// A proposal or read barrier slower than this is logged (leader changes).
const SLOW_CALL: Duration = Duration::from_millis(500);

/// How long a forwarded request may still answer after this node has seen
/// another node take over its group: a live old leader answers at once
/// (the result, or "not leader"); a dead one never does.
const FORWARD_GRACE: Duration = Duration::from_millis(300);

/// Awaits `call`, forwarded to `leader` of `raft`'s group, unless another
/// leader takes over and `call` then stays silent for `grace`:
/// `None`, the outcome unknown. Without this, a request forwarded to a node
/// that died waits for the whole RPC deadline.
async fn forward_watching_leader<F: std::future::Future>(
    raft: &Raft<TypeConfig>,
    leader: NodeId,
    call: F,
    grace: Duration,
) -> Option<F::Output> {
    tokio::pin!(call);
    let wait = raft.wait(None);
    let moved = wait.metrics(
        |m| m.current_leader.is_some_and(|x| x != leader),
        "another leader",
    );
    tokio::select! {
        r = &mut call => return Some(r),
        w = moved => {
            if w.is_err() {
                // This node's group stopped: only the call can answer.
                return Some(call.await);
            }
        }
    }
    tokio::time::timeout(grace, call).await.ok()
}

/// Marks a group's read rounds as not running when their task panics, so
/// the next caller starts a new task (the waiting callers' answers are
/// dropped with the task; they ask again).
struct UnmarkOnPanic(Arc<std::sync::Mutex<ReadRound>>);

impl Drop for UnmarkOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).running = false;
        }
    }
}

/// A read index: the log index to apply before reading (`None`: the log
/// is empty).
type ReadIndex = Option<u64>;

/// Where a read-index round answers: the index, or `None` when there was
/// no leader to ask (ask again once there is).
type RoundAnswer = tokio::sync::oneshot::Sender<Result<Option<ReadIndex>, ClusterError>>;

/// The read-index rounds of one group on this node.
#[derive(Default)]
struct ReadRound {
    /// Whether a task is running rounds.
    running: bool,
    /// Callers for the next round.
    waiting: Vec<RoundAnswer>,
}

/// One read index of `raft`'s group: from this node if it leads, else
/// asked of the leader (and abandoned if another leader takes over).
async fn read_index_round(
    raft: &Raft<TypeConfig>,
    transport: &Arc<dyn Transport>,
    node_id: NodeId,
    group: GroupId,
    timeout: Duration,
) -> Result<Option<ReadIndex>, ClusterError> {
    let leader = raft.metrics().borrow().current_leader;
    match leader {
        None => Ok(None),
        Some(l) if l == node_id => match read_index_local(raft, group, timeout).await {
            Err(ClusterError::NotLeader { .. }) => Ok(None),
            r => r.map(Some),
        },
        Some(l) => {
            let call = tokio::time::timeout(timeout, transport.read_index(l, group));
            // A read index from the new leader serves as well: no grace.
            match forward_watching_leader(raft, l, call, Duration::ZERO).await {
                None => Ok(None),
                Some(asked) => match asked.map_err(|_| ClusterError::Timeout(group))? {
                    Ok(Ok(index)) => Ok(Some(index)),
                    Ok(Err(ClusterError::NotLeader { .. })) | Err(_) => Ok(None),
                    Ok(Err(e)) => Err(e),
                },
            }
        }
    }
}

/// Pause between attempts of a member change that found no leader.
const MEMBERS_RETRY: Duration = Duration::from_millis(200);

/// Runs a member change on the group's leader: this node's replica if it
/// leads, else the leader it knows (or `first`), following redirects, until
/// done or the deadline.
async fn change_members_via(
    raft: &Raft<TypeConfig>,
    holds: &ProposalHolds,
    transport: &Arc<dyn Transport>,
    node_id: NodeId,
    group: GroupId,
    change: &MemberChange,
    mut first: Option<NodeId>,
) -> Result<(), ClusterError> {
    // A node that knows no leader (one joining) falls back on the node it
    // was pointed at after every failed try, not only the first.
    let fallback = first;
    let attempt = async {
        loop {
            let target = first
                .take()
                .or(raft.metrics().borrow().current_leader)
                .or(fallback);
            let answer = match target {
                Some(t) if t == node_id => {
                    let answer =
                        change_members_local(raft, holds, group, change, MEMBERS_TIMEOUT).await;
                    // Leading without a vote: only a handover helps (the
                    // caller's to make).
                    if matches!(
                        answer,
                        MemberAnswer::Failed(ClusterError::NotLeader { leader: None, .. })
                    ) && raft.metrics().borrow().current_leader == Some(node_id)
                    {
                        return Err(ClusterError::NotLeader {
                            group,
                            leader: None,
                        });
                    }
                    answer
                }
                Some(t) => match transport.change_members(t, group, change.clone()).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(group, target = t, error = %e, "member change not delivered; retrying");
                        tokio::time::sleep(MEMBERS_RETRY).await;
                        continue;
                    }
                },
                None => {
                    tokio::time::sleep(MEMBERS_RETRY).await;
                    continue;
                }
            };
            match answer {
                MemberAnswer::Done => return Ok(()),
                MemberAnswer::Redirect { leader, addr } => {
                    transport.learn_address(leader, &addr);
                    first = Some(leader);
                }
                MemberAnswer::Failed(ClusterError::NotLeader { leader, .. }) => {
                    first = leader.filter(|&l| Some(l) != target);
                    tokio::time::sleep(MEMBERS_RETRY).await;
                }
                MemberAnswer::Failed(e) => return Err(e),
            }
        }
    };
    tokio::time::timeout(MEMBERS_TIMEOUT, attempt)
        .await
        .map_err(|_| ClusterError::Timeout(group))?
}

/// Adds this node to the `pending` groups as a learner, one group at a
/// time, through `via`. A group's change is retried (backing off to
/// [`JOIN_RETRY_MAX`]) until it is done: the node has nothing to serve
/// before, and the task ends with the node. `false` when the cluster
/// refused the node for good (it was removed).
async fn join(
    groups: &[Raft<TypeConfig>],
    holds: &ProposalHolds,
    pending: &[GroupId],
    transport: &Arc<dyn Transport>,
    node_id: NodeId,
    via: NodeId,
    own_addr: String,
) -> bool {
    // A learner everywhere; the placement controller on the meta leader
    // then gives the new node its share of votes at a bounded rate.
    let change = MemberChange::Learn {
        node: node_id,
        addr: own_addr,
    };
    for &g in pending {
        let raft = &groups[g as usize];
        let mut wait = MEMBERS_RETRY;
        let mut tries = 0u32;
        loop {
            tries += 1;
            // `via` may have left the cluster since: every other try goes
            // through a member this node knows from the groups it has
            // joined (with their addresses).
            let through = if tries % 2 == 1 {
                via
            } else {
                match known_member(groups, node_id, tries) {
                    Some((id, addr)) => {
                        transport.learn_address(id, &addr);
                        id
                    }
                    None => via,
                }
            };
            // A try ends after JOIN_TRY_MAX (the leader keeps adding the
            // learner; asking again then is a no-op that answers done).
            let attempt =
                change_members_via(raft, holds, transport, node_id, g, &change, Some(through));
            let answer = tokio::time::timeout(JOIN_TRY_MAX, attempt)
                .await
                .unwrap_or(Err(ClusterError::Timeout(g)));
            match answer {
                Ok(()) => break,
                Err(e @ ClusterError::Retired { .. }) => {
                    tracing::error!(group = g, error = %e, "this node was removed from the cluster; it stops joining");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(group = g, via, tries, error = %e, "joining the group failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(JOIN_RETRY_MAX);
                }
            }
        }
        tracing::info!(group = g, tries, "joined group");
    }
    true
}

/// One of the other members this node's replicas know of (the `n`th,
/// round robin), with its address.
fn known_member(groups: &[Raft<TypeConfig>], me: NodeId, n: u32) -> Option<(NodeId, String)> {
    let mut known: BTreeMap<NodeId, String> = BTreeMap::new();
    for raft in groups {
        let m = raft.metrics();
        let m = m.borrow();
        for (&id, node) in m.membership_config.membership().nodes() {
            if id != me && !node.addr.is_empty() {
                known.insert(id, node.addr.clone());
            }
        }
    }
    let len = known.len().max(1);
    known.into_iter().nth(n as usize % len)
}

/// How long one try of joining a group may take.
const JOIN_TRY_MAX: Duration = Duration::from_secs(10);

/// The longest wait between two tries of joining a group.
const JOIN_RETRY_MAX: Duration = Duration::from_secs(5);

/// Proposes on this node's replica of a group, which should lead it.
/// Waits first while a handover holds the group's proposals.
pub(crate) async fn propose_local(
    raft: &Raft<TypeConfig>,
    holds: &ProposalHolds,
    group: GroupId,
    cmd: Command,
    timeout: Duration,
) -> Result<CmdResult, ClusterError> {
    let deadline = tokio::time::Instant::now() + timeout;
    holds.pass(raft, group, deadline).await?;
    let res = tokio::time::timeout_at(deadline, raft.client_write(cmd))
        .await
        .map_err(|_| ClusterError::Timeout(group))?;
    match res {
        Ok(r) => Ok(r.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ClusterError::NotLeader {
                group,
                leader: f.leader_id,
            })
        }
        Err(RaftError::APIError(e)) => Err(ClusterError::Unavailable(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(ClusterError::Fatal(e.to_string())),
    }
}

/// The leader's read index for a group, once the leader has applied it
/// (`None`: nothing committed yet). Fails with `NotLeader` elsewhere.
pub(crate) async fn read_index_local(
    raft: &Raft<TypeConfig>,
    group: GroupId,
    timeout: Duration,
) -> Result<Option<u64>, ClusterError> {
    let res = tokio::time::timeout(timeout, raft.ensure_linearizable())
        .await
        .map_err(|_| ClusterError::Timeout(group))?;
    match res {
        Ok(log_id) => Ok(log_id.map(|l| l.index)),
        Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
            Err(ClusterError::NotLeader {
                group,
                leader: f.leader_id,
            })
        }
        Err(RaftError::APIError(e)) => Err(ClusterError::Unavailable(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(ClusterError::Fatal(e.to_string())),
    }
}

/// Makes a node that led `log`'s group of several voters when it stopped
/// start as a follower of that term instead of the leader; `true` when it
/// did.
///
/// openraft 0.9 restores such a node as leader of its old term at once,
/// trusting its stored commit index (saved without fsync) and its log. After
/// a power loss both may be older than what it acknowledged: the simulator
/// found such a leader serving reads that missed an acknowledged write. A
/// voted-but-uncommitted vote keeps the term (the node still cannot vote for
/// another candidate in it) and lets an election pick the leader, whose
/// first entry of a new term commits everything before it. A lone voter
/// keeps its leadership: its own log is the whole quorum.
async fn demote_restored_leader<E: KvEngine>(
    log: &mut LogStore<E>,
    sm: &mut StateMachine<E>,
    node_id: NodeId,
    configured_multi: bool,
) -> Result<bool, ClusterError> {
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    let storage = |e: openraft::StorageError<NodeId>| ClusterError::Storage(e.to_string());
    let Some(vote) = log.read_vote().await.map_err(storage)? else {
        return Ok(false);
    };
    if !vote.is_committed() || vote.leader_id().voted_for() != Some(node_id) {
        return Ok(false);
    }
    let (_, membership) = sm.applied_state().await.map_err(storage)?;
    if membership.membership().voter_ids().count() <= 1 && !configured_multi {
        return Ok(false);
    }
    let demoted = openraft::Vote::new(vote.leader_id().term, node_id);
    log.save_vote(&demoted).await.map_err(storage)?;
    Ok(true)
}

/// Answers a vote request in this node's replica of a group, then calls an
/// election here when the vote was refused because this node holds the
/// longer log and its group has heard from no leader for a lease.
///
/// Without this, after a leader dies the follower that campaigns first is
/// often the one with the shorter log (the old leader replicated to the
/// other one first): refused, it waits out a longer timeout, and the one
/// that could win waits for its own timer, ~0.5-0.8 s more. Safety is
/// Raft's either way; this only calls an election openraft would call later.
pub(crate) async fn vote_and_take_over(
    raft: &Raft<TypeConfig>,
    req: VoteRequest<NodeId>,
) -> Result<VoteResponse<NodeId>, RaftError<NodeId>> {
    let candidate_log = req.last_log_id;
    let resp = raft.vote(req).await?;
    if !resp.vote_granted && resp.last_log_id > candidate_log {
        let raft = raft.clone();
        tokio::spawn(async move { take_over(&raft, Campaign::LongerLog).await });
    }
    Ok(resp)
}

/// How many elections [`take_over`] calls.
const TAKE_OVER_ATTEMPTS: usize = 2;

/// Why this node calls an election of its own.
#[derive(Clone, Copy)]
enum Campaign {
    /// It refused a candidate with a shorter log.
    LongerLog,
    /// Its group's leader has been silent past the lease.
    SilentLeader,
}

/// Calls an election in `raft`'s group as long as no leader has been heard
/// from for a lease, twice at most: the first may lose to a rival's vote
/// for itself in the same term, or to a voter whose lease has a few
/// milliseconds left; the second runs a term later.
async fn take_over(raft: &Raft<TypeConfig>, why: Campaign) {
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    for attempt in 0..TAKE_OVER_ATTEMPTS {
        let (me, may_campaign) = {
            let m = raft.metrics();
            let m = m.borrow();
            let voter = m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == m.id);
            // A candidate already campaigns on its own timer; the second
            // attempt follows this node's own lost election.
            let state_ok = match attempt {
                0 => m.state == ServerState::Follower,
                _ => m.state != ServerState::Leader,
            };
            (m.id, voter && state_ok)
        };
        if !may_campaign {
            return;
        }
        // No leader heard from for a lease: the same test the other
        // voters apply before they grant a vote.
        let Ok(heard) = leader_heard_at(raft).await else {
            return; // the group has stopped
        };
        if heard.is_some_and(|t| tokio::time::Instant::now() <= t + lease) {
            return;
        }
        match why {
            Campaign::LongerLog => {
                tracing::info!(
                    attempt,
                    "longer log than a refused candidate: calling an election"
                );
                metrics::counter!("herald_raft_take_over_elections_total").increment(1);
            }
            Campaign::SilentLeader => {
                tracing::info!(attempt, "leader silent: calling an election");
                metrics::counter!("herald_raft_silent_leader_elections_total").increment(1);
            }
        }
        if elect_local(raft).await.is_err() {
            return;
        }
        let won = raft
            .wait(Some(TAKE_OVER_WAIT))
            .metrics(|m| m.current_leader == Some(me), "this node leads")
            .await
            .is_ok();
        if won {
            return;
        }
    }
}

/// How long a take-over election may take before the next attempt.
const TAKE_OVER_WAIT: Duration = Duration::from_millis(150);

/// Calls an election in this node's replica (asked by a leader that is
/// stopping, or by [`take_over`]). Fails when the replica has stopped.
pub(crate) async fn elect_local(raft: &Raft<TypeConfig>) -> Result<(), ClusterError> {
    raft.trigger()
        .elect()
        .await
        .map_err(|e| ClusterError::Fatal(e.to_string()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: GroupId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// On the group's leader: log entries each replica has yet to receive.
    pub lag: BTreeMap<NodeId, u64>,
}

fn load_or_create_record<E: KvEngine>(
    engine: &E,
    cfg: &HostConfig,
) -> Result<ClusterRecord, ClusterError> {
    let key = keys::node_cluster();
    if let Some(v) = engine
        .get(Cf::Node, &key)
        .map_err(|e| ClusterError::Storage(e.to_string()))?
    {
        return serde_json::from_slice(&v)
            .map_err(|e| ClusterError::Storage(format!("cluster record: {e}")));
    }
    if cfg.shards == 0 {
        return Err(ClusterError::Config(
            "a cluster needs at least one data shard".into(),
        ));
    }
    let record = ClusterRecord {
        shards: cfg.shards,
        node_id: cfg.node_id,
    };
    let mut b = WriteBatch::new();
    b.put(
        Cf::Node,
        key,
        serde_json::to_vec(&record).expect("record serializes"),
    );
    engine
        .write(b, true)
        .map_err(|e| ClusterError::Storage(e.to_string()))?;
    tracing::info!(
        shards = record.shards,
        node_id = record.node_id,
        "created a new cluster record"
    );
    Ok(record)
}
