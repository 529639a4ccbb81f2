use herald_storage::{GroupId, NodeId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ClusterError {
    #[error("raft group {group} is led by {leader:?}, not this node")]
    NotLeader {
        group: GroupId,
        leader: Option<NodeId>,
    },
    #[error("raft group {0} did not answer before the deadline")]
    Timeout(GroupId),
    #[error("raft group {0}'s voters changed since the change was planned")]
    Stale(GroupId),
    #[error("no raft group {0}")]
    NoSuchGroup(GroupId),
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("node {node} was removed from raft group {group}; node ids are not reused (start a new node with a new id and an empty data directory)")]
    Retired { group: GroupId, node: NodeId },
    #[error("fatal raft error: {0}")]
    Fatal(String),
}
