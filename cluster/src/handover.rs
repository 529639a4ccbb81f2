//! Leadership handovers that do not disturb writes.
//!
//! openraft 0.9 has no leadership transfer: a leader can only ask another
//! voter to call an election. If entries keep arriving meanwhile, the
//! candidate's log is shorter than the leader's, the vote is refused, and
//! the group sits through a failed election (~0.8 s of stalled writes, seen
//! under load when a follower claimed a group it was preferred for).
//!
//! So a leader hands a group over the Raft thesis's way: it holds new
//! proposals for that group ([`ProposalHolds`]), waits until the target has
//! every entry it has appended, asks the target to call an election (which
//! it wins: its log is as complete as anyone's), then lets the held
//! proposals go. They find the group led elsewhere and are forwarded there,
//! never proposed twice: a proposal is held before openraft sees it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::Raft;

use crate::error::ClusterError;
use herald_storage::{GroupId, NodeId, TypeConfig};

/// Longest a handover waits for its target to catch up; proposals are held
/// meanwhile, so it stays short (a live follower is a few ms behind).
pub(crate) const CATCH_UP_MAX: Duration = Duration::from_millis(300);
/// Longest a handover waits for the target's election to be decided.
pub(crate) const ELECTION_MAX: Duration = Duration::from_millis(1000);

/// Per group: whether its proposals wait for a handover to finish.
pub struct ProposalHolds {
    held: Vec<AtomicBool>,
    released: tokio::sync::Notify,
    /// Per group: member changes run on this node one at a time, so one
    /// cannot start on a leader that another has just voted out.
    member_changes: Vec<tokio::sync::Mutex<()>>,
    /// Whether this node's replica of a group records a node as removed
    /// for good (`Command::RetireNode`); member changes consult it.
    retired: RetiredCheck,
}

/// Reads whether `node` is retired from `group` in this node's replica.
pub type RetiredCheck = Box<dyn Fn(GroupId, NodeId) -> Result<bool, ClusterError> + Send + Sync>;

impl ProposalHolds {
    pub fn new(groups: usize, retired: RetiredCheck) -> Self {
        Self {
            held: (0..groups).map(|_| AtomicBool::new(false)).collect(),
            released: tokio::sync::Notify::new(),
            member_changes: (0..groups).map(|_| tokio::sync::Mutex::new(())).collect(),
            retired,
        }
    }

    /// Whether this node's replica of `group` records `node` as removed
    /// for good. Up to date only on a leader that has confirmed its
    /// leadership and applied its log (as member changes do first).
    pub(crate) fn is_retired(&self, group: GroupId, node: NodeId) -> Result<bool, ClusterError> {
        (self.retired)(group, node)
    }

    /// Waits for `group`'s member changes on this node to be this caller's
    /// turn; `None` for a group this node does not have.
    pub(crate) async fn member_change(
        &self,
        group: GroupId,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.member_changes.get(group as usize)?.lock().await)
    }

    /// Holds `group`'s new proposals until the guard drops; `None` if a
    /// handover of the group is already under way.
    pub(crate) fn hold(&self, group: GroupId) -> Option<HoldGuard<'_>> {
        let flag = self.held.get(group as usize)?;
        flag.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| HoldGuard { holds: self, group })
    }

    fn is_held(&self, group: GroupId) -> bool {
        self.held
            .get(group as usize)
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Returns once `group` is not held, or at once with `NotLeader` when
    /// this node has stopped leading it (the caller forwards the proposal).
    /// `Timeout` if `deadline` passes first.
    pub(crate) async fn pass(
        &self,
        raft: &Raft<TypeConfig>,
        group: GroupId,
        deadline: tokio::time::Instant,
    ) -> Result<(), ClusterError> {
        if !self.is_held(group) {
            return Ok(());
        }
        metrics::counter!("herald_raft_proposals_held_total").increment(1);
        let mut metrics = raft.metrics();
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_held(group) {
                return Ok(());
            }
            {
                let m = metrics.borrow_and_update();
                if m.current_leader != Some(m.id) {
                    return Err(ClusterError::NotLeader {
                        group,
                        leader: m.current_leader,
                    });
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return Err(ClusterError::Fatal(format!("group {group} has stopped")));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Err(ClusterError::Timeout(group)),
            }
        }
    }
}

/// Releases a group's held proposals when dropped.
pub(crate) struct HoldGuard<'a> {
    holds: &'a ProposalHolds,
    group: GroupId,
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.holds.held[self.group as usize].store(false, Ordering::SeqCst);
        self.holds.released.notify_waiters();
    }
}

/// What a handover of one group came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Another node leads the group now.
    Done,
    /// This node does not lead the group (any more).
    NotLeader,
    /// Another handover of the group is under way.
    Busy,
    /// The target did not catch up in time, refused, or did not win.
    Failed,
}

/// The index of the last entry `target` is known to hold, on the leader.
pub(crate) fn matched(
    m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>,
    target: NodeId,
) -> Option<u64> {
    m.replication
        .as_ref()
        .and_then(|r| r.get(&target).cloned().flatten())
        .map(|l| l.index)
}

/// Waits, with the group's proposals held, until `target` has every entry
/// this leader appended: true when it has, false if this node stopped
/// leading or `within` passed.
pub(crate) async fn wait_target_caught_up(
    raft: &Raft<TypeConfig>,
    target: NodeId,
    within: Duration,
) -> bool {
    raft.wait(Some(within))
        .metrics(
            |m| {
                m.current_leader != Some(m.id)
                    || (m.last_log_index.is_some() && matched(m, target) == m.last_log_index)
            },
            "handover target caught up",
        )
        .await
        .is_ok_and(|m| m.current_leader == Some(m.id))
}

/// Waits until a leader other than this node is known, at most `within`.
pub(crate) async fn wait_other_leader(raft: &Raft<TypeConfig>, within: Duration) -> bool {
    raft.wait(Some(within))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != m.id),
            "another leader",
        )
        .await
        .is_ok()
}
