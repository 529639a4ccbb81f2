//! Changing which nodes replicate a group: adding a node (as a learner
//! that catches up from the leader's log or a snapshot, then possibly
//! promoted to voter), replacing the voters (placement), and removing one. Run on the group's leader; elsewhere the answer
//! redirects to the leader with its RPC address, so a node that knows only
//! one member (a joining node) can find every leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use herald_storage::{CmdResult, Command, GroupId, NodeId, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft};
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::handover::ProposalHolds;

/// A change of one group's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Adds `node` (reachable at `addr`) as a voter once it has caught up.
    Add { node: NodeId, addr: String },
    /// Adds `node` as a learner (a full copy that does not vote) and waits
    /// until it has caught up; a member already is left as it is.
    Learn { node: NodeId, addr: String },
    /// Makes `to` the voters, if they are still `from` (a plan made on a
    /// stale view changes nothing). Every node of `to` must already be a
    /// member; a voter leaving stays a learner and keeps its copy.
    SetVoters {
        from: BTreeSet<NodeId>,
        to: BTreeSet<NodeId>,
    },
    /// Removes `node` from the group altogether.
    Remove { node: NodeId },
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
    holds: &ProposalHolds,
    group: GroupId,
    change: &MemberChange,
    timeout: Duration,
) -> MemberAnswer {
    let Some(_turn) = holds.member_change(group).await else {
        return MemberAnswer::Failed(ClusterError::Config(format!("no group {group} here")));
    };
    // A deposed leader that has not heard of its successor would answer
    // from a stale membership (and call removing a node it never saw join
    // done): a leader confirms its leadership with a quorum first, which
    // also applies its whole log (the retired nodes below are then current).
    let mut confirmed = false;
    let MemberView {
        leader,
        voters,
        members,
        redirect,
    } = loop {
        let view = member_view(raft);
        if view.leader != Some(raft_id(raft)) || confirmed {
            break view;
        }
        let confirmed_now = tokio::time::timeout(timeout, raft.ensure_linearizable()).await;
        if !matches!(confirmed_now, Ok(Ok(_))) {
            return MemberAnswer::Failed(ClusterError::NotLeader {
                group,
                leader: None,
            });
        }
        confirmed = true;
    };
    if leader != Some(raft_id(raft)) {
        return match redirect {
            Some((leader, addr)) => MemberAnswer::Redirect { leader, addr },
            None => MemberAnswer::Failed(ClusterError::NotLeader { group, leader }),
        };
    }
    // A leader that a committed change removed leads on for a while
    // (openraft lets it); it must not change the membership again (openraft
    // asserts against it) and the voters elect another leader: "not
    // leader", so the caller tries again.
    if !voters.contains(&raft_id(raft)) {
        return MemberAnswer::Failed(ClusterError::NotLeader {
            group,
            leader: None,
        });
    }
    // A removed node is never added back: its own join may still be asking
    // (a removal can start before the join reached this group).
    let adds: Vec<NodeId> = match change {
        MemberChange::Add { node, .. } | MemberChange::Learn { node, .. } => vec![*node],
        MemberChange::SetVoters { to, .. } => to.difference(&voters).copied().collect(),
        MemberChange::Remove { .. } => Vec::new(),
    };
    for node in adds {
        match holds.is_retired(group, node) {
            Ok(false) => {}
            Ok(true) => return MemberAnswer::Failed(ClusterError::Retired { group, node }),
            Err(e) => return MemberAnswer::Failed(e),
        }
    }
    let retire = match change {
        MemberChange::Remove { node } => match holds.is_retired(group, *node) {
            Ok(done) => !done,
            Err(e) => return MemberAnswer::Failed(e),
        },
        _ => false,
    };
    if retire {
        // Not proposed in the middle of a handover of this group.
        let deadline = tokio::time::Instant::now() + timeout;
        if let Err(e) = holds.pass(raft, group, deadline).await {
            return MemberAnswer::Failed(e);
        }
    }
    if let MemberChange::SetVoters { from, to } = change {
        if *from != voters {
            return MemberAnswer::Failed(ClusterError::Stale(group));
        }
        if let Some(n) = to.iter().find(|n| !members.contains_key(n)) {
            return MemberAnswer::Failed(ClusterError::Config(format!(
                "node {n} is not a member of group {group}; it must join first"
            )));
        }
        if to.is_empty() {
            return MemberAnswer::Failed(ClusterError::Config(format!(
                "group {group} needs at least one voter"
            )));
        }
    }
    let run = async {
        match change {
            MemberChange::Add { node, addr } => {
                if voters.contains(node) {
                    return Ok(());
                }
                // Blocks until the learner has caught up with the log.
                raft.add_learner(*node, BasicNode::new(addr), true).await?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*node])), false)
                    .await?;
                Ok(())
            }
            MemberChange::Learn { node, addr } => {
                if !members.contains_key(node) {
                    raft.add_learner(*node, BasicNode::new(addr), true).await?;
                }
                Ok(())
            }
            MemberChange::SetVoters { to, .. } => {
                if *to == voters {
                    return Ok(());
                }
                // A new voter first catches up as a learner (re-adding a
                // member waits for its replication), so the quorum does not
                // wait on it.
                for n in to.difference(&voters) {
                    raft.add_learner(*n, members[n].clone(), true).await?;
                }
                raft.change_membership(ChangeMembers::ReplaceAllVoters(to.clone()), true)
                    .await?;
                Ok(())
            }
            MemberChange::Remove { node } => {
                // First the tombstone, which every later member change of
                // this group reads: the node's join cannot add it back.
                if retire {
                    let written = raft
                        .client_write(Command::RetireNode { node: *node })
                        .await?;
                    debug_assert_eq!(written.data, CmdResult::Done, "every group retires nodes");
                }
                if !members.contains_key(node) {
                    return Ok(());
                }
                // A voter is demoted first, keeping removed voters as
                // learners: dropping them (`retain = false`) from a group
                // still in a joint configuration drops every voter the
                // previous change was demoting too, and that node then
                // holds a stale copy of the group for ever (found by the
                // simulator). Then the learner goes.
                if voters.contains(node) {
                    raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([*node])),
                        true,
                    )
                    .await?;
                }
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*node])), false)
                    .await?;
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

/// What a replica knows of its group's members.
struct MemberView {
    leader: Option<NodeId>,
    voters: BTreeSet<NodeId>,
    members: BTreeMap<NodeId, BasicNode>,
    /// The leader and its address, to redirect to.
    redirect: Option<(NodeId, String)>,
}

fn member_view(raft: &Raft<TypeConfig>) -> MemberView {
    let m = raft.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    let redirect = m.current_leader.and_then(|l| {
        membership
            .get_node(&l)
            .filter(|n| !n.addr.is_empty())
            .map(|n| (l, n.addr.clone()))
    });
    MemberView {
        leader: m.current_leader,
        voters: membership.voter_ids().collect(),
        members: membership.nodes().map(|(&id, n)| (id, n.clone())).collect(),
        redirect,
    }
}

fn raft_id(raft: &Raft<TypeConfig>) -> NodeId {
    raft.metrics().borrow().id
}
