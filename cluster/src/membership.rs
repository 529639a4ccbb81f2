//! Changing which nodes replicate a group: adding a node (as a learner
//! that catches up from the leader's log or a snapshot, then promoted to
//! voter) and removing one. Run on the group's leader; elsewhere the answer
//! redirects to the leader with its RPC address, so a node that knows only
//! one member (a joining node) can find every leader.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_storage::{GroupId, NodeId, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft};
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;

/// A change of one group's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Adds `node` (reachable at `addr`) as a voter once it has caught up.
    Add { node: NodeId, addr: String },
    /// Removes `node` from the group altogether.
    Remove { node: NodeId },
}

impl MemberChange {
    pub fn node(&self) -> NodeId {
        match self {
            MemberChange::Add { node, .. } | MemberChange::Remove { node } => *node,
        }
    }
}

/// What a node answers to a member change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberAnswer {
    /// The change is committed (or there was nothing to change).
    Done,
    /// This node does not lead the group; ask `leader` at `addr`.
    Redirect {
        leader: NodeId,
        addr: String,
    },
    Failed(ClusterError),
}

/// Applies `change` on this node's replica of `group`, which should lead it.
pub(crate) async fn change_members_local(
    raft: &Raft<TypeConfig>,
    group: GroupId,
    change: &MemberChange,
    timeout: Duration,
) -> MemberAnswer {
    let (leader, is_voter, is_member, redirect) = {
        let m = raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let node = change.node();
        let redirect = m.current_leader.and_then(|l| {
            membership
                .get_node(&l)
                .filter(|n| !n.addr.is_empty())
                .map(|n| (l, n.addr.clone()))
        });
        (
            m.current_leader,
            membership.voter_ids().any(|v| v == node),
            membership.get_node(&node).is_some(),
            redirect,
        )
    };
    if leader != Some(raft_id(raft)) {
        return match redirect {
            Some((leader, addr)) => MemberAnswer::Redirect { leader, addr },
            None => MemberAnswer::Failed(ClusterError::NotLeader { group, leader }),
        };
    }
    let run = async {
        match change {
            MemberChange::Add { node, addr } => {
                if is_voter {
                    return Ok(());
                }
                // Blocks until the learner has caught up with the log.
                raft.add_learner(*node, BasicNode::new(addr), true).await?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*node])), false)
                    .await?;
                Ok(())
            }
            MemberChange::Remove { node } => {
                if !is_member {
                    return Ok(());
                }
                if is_voter {
                    raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([*node])),
                        false,
                    )
                    .await?;
                } else {
                    raft.change_membership(
                        ChangeMembers::RemoveNodes(BTreeSet::from([*node])),
                        false,
                    )
                    .await?;
                }
                Ok(())
            }
        }
    };
    let res: Result<(), RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>> =
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => return MemberAnswer::Failed(ClusterError::Timeout(group)),
        };
    match res {
        Ok(()) => {
            tracing::info!(group, change = ?change, "group membership changed");
            MemberAnswer::Done
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            match (f.leader_id, f.leader_node) {
                (Some(leader), Some(n)) if !n.addr.is_empty() => MemberAnswer::Redirect {
                    leader,
                    addr: n.addr,
                },
                (leader, _) => MemberAnswer::Failed(ClusterError::NotLeader { group, leader }),
            }
        }
        Err(RaftError::APIError(e)) => {
            MemberAnswer::Failed(ClusterError::Unavailable(e.to_string()))
        }
        Err(RaftError::Fatal(e)) => MemberAnswer::Failed(ClusterError::Fatal(e.to_string())),
    }
}

fn raft_id(raft: &Raft<TypeConfig>) -> NodeId {
    raft.metrics().borrow().id
}
