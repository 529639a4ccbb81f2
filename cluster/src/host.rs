//! The Raft groups one node hosts: the meta group and every data shard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_storage::{
    keys, ApplyObserver, Cf, CmdResult, Command, GroupId, KvEngine, LogStore, NodeId, Reader,
    StateMachine, TypeConfig, WriteBatch,
};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::transport::{GroupNetwork, Transport};

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
    /// Build a snapshot after this many applied entries.
    pub snapshot_every_entries: u64,
    /// Log entries kept behind a snapshot for lagging followers.
    pub log_kept_after_snapshot: u64,
    /// Deadline of one proposal or read barrier.
    pub request_timeout: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            shards: herald_model::hash::DEFAULT_SHARDS,
            heartbeat_ms: 100,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_every_entries: 20_000,
            log_kept_after_snapshot: 1_000,
            request_timeout: Duration::from_secs(10),
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
                snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_entries),
                max_in_snapshot_log_to_keep: cfg.log_kept_after_snapshot,
                ..Default::default()
            }
            .validate()
            .map_err(|e| ClusterError::Config(e.to_string()))?,
        );
        let mut groups = Vec::with_capacity(record.shards as usize + 1);
        for group in 0..=record.shards {
            let log = LogStore::new(engine.clone(), group);
            let sm = StateMachine::open(engine.clone(), group, observer.clone())
                .map_err(|e| ClusterError::Storage(e.to_string()))?;
            let net = GroupNetwork {
                transport: transport.clone(),
                group,
            };
            let raft = Raft::new(cfg.node_id, raft_config.clone(), net, log, sm)
                .await
                .map_err(|e| ClusterError::Fatal(e.to_string()))?;
            groups.push(raft);
        }
        for raft in &groups {
            if !raft
                .is_initialized()
                .await
                .map_err(|e| ClusterError::Fatal(e.to_string()))?
            {
                let members = BTreeMap::from([(cfg.node_id, BasicNode::default())]);
                raft.initialize(members)
                    .await
                    .map_err(|e| ClusterError::Fatal(e.to_string()))?;
            }
        }
        Ok(Self {
            node_id: cfg.node_id,
            shards: record.shards,
            groups,
            reader: Reader::new(engine),
            request_timeout: cfg.request_timeout,
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

    fn raft(&self, group: GroupId) -> Result<&Raft<TypeConfig>, ClusterError> {
        self.groups
            .get(group as usize)
            .ok_or(ClusterError::NoSuchGroup(group))
    }

    /// Waits until every group has a leader, or the timeout passes.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        for (g, raft) in self.groups.iter().enumerate() {
            raft.wait(Some(timeout))
                .metrics(|m| m.current_leader.is_some(), "group has a leader")
                .await
                .map_err(|e| ClusterError::Unavailable(format!("group {g}: {e}")))?;
        }
        Ok(())
    }

    /// Proposes a command to its group and returns the state machine's result
    /// once the entry is committed and applied.
    pub async fn propose(&self, group: GroupId, cmd: Command) -> Result<CmdResult, ClusterError> {
        let raft = self.raft(group)?;
        let started = tokio::time::Instant::now();
        let res = tokio::time::timeout(self.request_timeout, raft.client_write(cmd))
            .await
            .map_err(|_| ClusterError::Timeout(group))?;
        metrics::histogram!("herald_raft_propose_seconds").record(started.elapsed().as_secs_f64());
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

    /// Returns once this node's state for `group` reflects every write
    /// committed before the call (openraft's read index + leader check).
    pub async fn read_barrier(&self, group: GroupId) -> Result<(), ClusterError> {
        let raft = self.raft(group)?;
        let res = tokio::time::timeout(self.request_timeout, raft.ensure_linearizable())
            .await
            .map_err(|_| ClusterError::Timeout(group))?;
        match res {
            Ok(_) => Ok(()),
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

    /// One line per group: leader, term, last log and applied index.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, r)| {
                let m = r.metrics().borrow().clone();
                GroupStatus {
                    group: g as GroupId,
                    leader: m.current_leader,
                    term: m.current_term,
                    last_log_index: m.last_log_index,
                    last_applied_index: m.last_applied.map(|l| l.index),
                    snapshot_index: m.snapshot.map(|l| l.index),
                }
            })
            .collect()
    }

    /// Stops every group; pending proposals fail.
    pub async fn shutdown(&self) {
        for (g, raft) in self.groups.iter().enumerate() {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(group = g, error = %e, "raft group did not shut down cleanly");
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: GroupId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
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
