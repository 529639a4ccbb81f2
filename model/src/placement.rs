//! Replica placement: which nodes vote in each Raft group.
//!
//! Every node keeps a copy of every group (as a voter or a learner), so any
//! node serves reads locally; only a group's voters take part in its
//! elections and in its commit quorum. [`plan`] looks at every group's
//! members and the nodes that are alive and answers at most one change to
//! make next, in this order: replace a voter that is down by a live
//! learner; add voters to a group below the replication factor; drop voters
//! above it; then even out how many groups each live node votes in (at most
//! one apart). The caller applies one move at a time, which bounds the rate.
//! Applying the answers repeatedly reaches a placement where `plan` answers
//! `None` (the proptests check this).

use std::collections::{BTreeMap, BTreeSet};

/// One group as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembers {
    pub group: u32,
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    pub leader: Option<u64>,
}

/// The next change: `group`'s voters become `voters`; a node leaving the
/// voters stays a learner (it keeps its data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub group: u32,
    pub voters: BTreeSet<u64>,
    pub reason: MoveReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// A voter has been down too long; a live learner takes its place.
    ReplaceDown,
    /// The group has fewer voters than the replication factor.
    AddVoter,
    /// The group has more voters than the replication factor.
    DropVoter,
    /// One node votes in two or more groups more than another.
    Balance,
}

impl MoveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveReason::ReplaceDown => "replace_down",
            MoveReason::AddVoter => "add_voter",
            MoveReason::DropVoter => "drop_voter",
            MoveReason::Balance => "balance",
        }
    }
}

/// The replication factor a cluster of `nodes` nodes can have: `wanted`
/// (3 by default), at most the node count, at least 1.
pub fn replication(wanted: usize, nodes: usize) -> usize {
    wanted.min(nodes).max(1)
}

/// The next move, or `None` when every group has `replication(wanted,
/// nodes)` voters, live ones where a live node can take a down one's place,
/// and voting is balanced among live nodes. `nodes` are every member of any
/// group; `live` those that answered recently. A node that is down but not
/// removed keeps its place while no live node can take it, so a 3-node
/// cluster with one node down keeps 3 voters per group rather than
/// shrinking to 2. A group without a leader or without a live majority of
/// voters is left alone (it cannot commit a change now).
pub fn plan(groups: &[GroupMembers], live: &BTreeSet<u64>, wanted: usize) -> Option<Move> {
    let nodes: BTreeSet<u64> = groups
        .iter()
        .flat_map(|g| g.voters.iter().chain(&g.learners))
        .chain(live)
        .copied()
        .collect();
    let r = replication(wanted, nodes.len());
    let mut roles: BTreeMap<u64, usize> = live.iter().map(|&n| (n, 0)).collect();
    for g in groups {
        for v in &g.voters {
            if let Some(c) = roles.get_mut(v) {
                *c += 1;
            }
        }
    }
    // A change is committed by a quorum of the old voters too: leave groups
    // without a leader or without a live majority alone.
    let movable = groups.iter().filter(|g| {
        let live_voters = g.voters.iter().filter(|v| live.contains(v)).count();
        g.leader.is_some() && live_voters * 2 > g.voters.len()
    });
    // A live learner of `g` that votes in the fewest groups.
    let candidate = |g: &GroupMembers| {
        g.learners
            .iter()
            .filter(|n| live.contains(n) && !g.voters.contains(n))
            .min_by_key(|n| (roles[n], **n))
            .copied()
    };
    // A voter of `g` to drop: a down one first, then not the leader, then
    // the one voting in the most groups.
    let dropped = |g: &GroupMembers| {
        g.voters
            .iter()
            .max_by_key(|n| {
                (
                    !live.contains(n),
                    Some(**n) != g.leader,
                    roles.get(n).copied().unwrap_or(0),
                    **n,
                )
            })
            .copied()
    };
    for g in movable.clone() {
        let down: Vec<u64> = g
            .voters
            .iter()
            .filter(|v| !live.contains(v))
            .copied()
            .collect();
        if down.is_empty() {
            continue;
        }
        if let Some(c) = candidate(g) {
            let mut voters = g.voters.clone();
            voters.remove(&down[0]);
            voters.insert(c);
            return Some(Move {
                group: g.group,
                voters,
                reason: MoveReason::ReplaceDown,
            });
        }
    }
    for g in movable.clone() {
        let live_voters = g.voters.iter().filter(|v| live.contains(v)).count();
        if live_voters < r {
            if let Some(c) = candidate(g) {
                let mut voters = g.voters.clone();
                voters.insert(c);
                return Some(Move {
                    group: g.group,
                    voters,
                    reason: MoveReason::AddVoter,
                });
            }
        }
    }
    for g in movable.clone() {
        if g.voters.len() > r {
            let d = dropped(g)?;
            let mut voters = g.voters.clone();
            voters.remove(&d);
            return Some(Move {
                group: g.group,
                voters,
                reason: MoveReason::DropVoter,
            });
        }
    }
    // Balance: move one vote from the busiest live node to the idlest.
    let (&busiest, &most) = roles
        .iter()
        .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))?;
    let (&idlest, &least) = roles.iter().min_by_key(|(n, c)| (**c, **n))?;
    if most <= least + 1 {
        return None;
    }
    // Prefer a group the busiest node does not lead (no leader change).
    let g = movable
        .filter(|g| g.voters.contains(&busiest) && g.learners.contains(&idlest))
        .min_by_key(|g| (g.leader == Some(busiest), g.group))?;
    let mut voters = g.voters.clone();
    voters.remove(&busiest);
    voters.insert(idlest);
    Some(Move {
        group: g.group,
        voters,
        reason: MoveReason::Balance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    fn group(group: u32, voters: &[u64], all: &[u64]) -> GroupMembers {
        let voters = set(voters);
        GroupMembers {
            group,
            learners: set(all).difference(&voters).copied().collect(),
            leader: voters.iter().next().copied(),
            voters,
        }
    }

    /// Applies `m` as the cluster would: leavers become learners; the
    /// leader stays if it is still a voter, else the lowest voter leads.
    fn apply(groups: &mut [GroupMembers], m: &Move) {
        let g = groups.iter_mut().find(|g| g.group == m.group).unwrap();
        let all: BTreeSet<u64> = g.voters.union(&g.learners).copied().collect();
        g.voters = m.voters.clone();
        g.learners = all.difference(&g.voters).copied().collect();
        if !g.leader.is_some_and(|l| g.voters.contains(&l)) {
            g.leader = g.voters.iter().next().copied();
        }
    }

    fn settle(groups: &mut [GroupMembers], live: &BTreeSet<u64>, r: usize) -> usize {
        for step in 0..1000 {
            match plan(groups, live, r) {
                Some(m) => apply(groups, &m),
                None => return step,
            }
        }
        panic!("placement never settled: {groups:?}");
    }

    #[test]
    fn a_fourth_node_gets_a_fair_share_of_votes() {
        let all = [1, 2, 3, 4];
        let mut groups: Vec<_> = (0..9).map(|g| group(g, &[1, 2, 3], &all)).collect();
        let moves = settle(&mut groups, &set(&all), 3);
        // 27 votes over 4 nodes: 7 or 6 each, so node 4 gains 6 or 7.
        assert!((6..=7).contains(&moves), "{moves} moves");
        for n in all {
            let votes = groups.iter().filter(|g| g.voters.contains(&n)).count();
            assert!((6..=7).contains(&votes), "node {n} votes in {votes} groups");
        }
        assert!(groups.iter().all(|g| g.voters.len() == 3));
    }

    #[test]
    fn a_down_voter_is_replaced_by_a_live_learner() {
        let all = [1, 2, 3, 4];
        let groups = vec![group(0, &[1, 2, 3], &all)];
        let m = plan(&groups, &set(&[1, 2, 4]), 3).unwrap();
        assert_eq!(m.reason, MoveReason::ReplaceDown);
        assert_eq!(m.voters, set(&[1, 2, 4]));
    }

    #[test]
    fn a_group_that_lost_its_majority_is_left_alone() {
        let all = [1, 2, 3, 4];
        let groups = vec![group(0, &[1, 2, 3], &all)];
        // Only 1 of 3 voters is live: no change can commit.
        assert_eq!(plan(&groups, &set(&[1, 4]), 3), None);
    }

    #[test]
    fn a_down_node_without_a_replacement_keeps_its_vote() {
        let all = [1, 2, 3];
        let groups = vec![group(0, &[1, 2, 3], &all)];
        assert_eq!(plan(&groups, &set(&[1, 2]), 3), None);
    }

    #[test]
    fn two_nodes_replicate_twice_and_one_node_once() {
        let mut groups: Vec<_> = (0..3).map(|g| group(g, &[1], &[1, 2])).collect();
        settle(&mut groups, &set(&[1, 2]), 3);
        assert!(groups.iter().all(|g| g.voters == set(&[1, 2])));
        let single = vec![group(0, &[1], &[1])];
        assert_eq!(plan(&single, &set(&[1]), 3), None);
    }

    #[test]
    fn extra_voters_are_dropped_but_never_the_leader_first() {
        let all = [1, 2, 3, 4, 5];
        let groups = vec![group(0, &all, &all)];
        let m = plan(&groups, &set(&all), 3).unwrap();
        assert_eq!(m.reason, MoveReason::DropVoter);
        assert!(m.voters.contains(&1), "the leader keeps its vote");
        assert_eq!(m.voters.len(), 4);
    }

    proptest! {
        /// From any start (voters any non-empty subset, some nodes down),
        /// the plan settles; then every group whose live voters are a
        /// majority has at most R voters (R from all nodes, down or not),
        /// and as many live ones as there can be, and when every group is
        /// healthy, live nodes vote in numbers of groups at most one apart.
        #[test]
        fn settles_to_replicated_and_balanced(
            nodes in 1usize..=6,
            groups_n in 1u32..=9,
            seeds in proptest::collection::vec(any::<u64>(), 9),
            down_mask in any::<u8>(),
            r in 1usize..=5,
        ) {
            let all: Vec<u64> = (1..=nodes as u64).collect();
            let mut groups: Vec<GroupMembers> = (0..groups_n)
                .map(|g| {
                    let seed = seeds[g as usize];
                    let mut voters: Vec<u64> =
                        all.iter().copied().filter(|n| seed >> n & 1 == 1).collect();
                    if voters.is_empty() {
                        voters.push(all[(seed as usize) % all.len()]);
                    }
                    group(g, &voters, &all)
                })
                .collect();
            let mut live: BTreeSet<u64> =
                all.iter().copied().filter(|n| down_mask >> n & 1 == 0).collect();
            if live.is_empty() {
                live.insert(1);
            }
            settle(&mut groups, &live, r);
            let want = replication(r, all.len());
            let mut roles: BTreeMap<u64, usize> = live.iter().map(|&n| (n, 0)).collect();
            for g in &groups {
                let live_voters = g.voters.iter().filter(|v| live.contains(v)).count();
                if live_voters * 2 > g.voters.len() {
                    // Down voters stay only while no live node can take
                    // their place.
                    prop_assert_eq!(live_voters, want.min(live.len()), "{:?}", g);
                    prop_assert!(g.voters.len() <= want, "{:?}", g);
                }
                for v in &g.voters {
                    if let Some(c) = roles.get_mut(v) {
                        *c += 1;
                    }
                }
            }
            let healthy = groups
                .iter()
                .all(|g| g.voters.iter().all(|v| live.contains(v)));
            if healthy {
                let most = roles.values().max().unwrap();
                let least = roles.values().min().unwrap();
                prop_assert!(most - least <= 1, "votes per node {roles:?}");
            }
        }
    }
}
