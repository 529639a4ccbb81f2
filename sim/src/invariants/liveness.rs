//! Once faults stop and every node is back, the cluster serves again: every
//! node finishes starting, every group has a leader, and each node answers
//! a fresh write and read of its own.

use super::Violation;
use crate::world::World;

/// Groups without a leader on any live node.
pub fn leaderless_groups(world: &World) -> Vec<u32> {
    let mut groups = Vec::new();
    let Some(any) = world.nodes.iter().find_map(|n| n.live()) else {
        return groups;
    };
    for g in 0..any.host().rafts().len() as u32 {
        let led = world.nodes.iter().filter_map(|n| n.live()).any(|l| {
            let m = l.host().rafts()[g as usize].metrics();
            let led = m.borrow().current_leader.is_some();
            led
        });
        if !led {
            groups.push(g);
        }
    }
    groups
}

pub fn not_serving(world: &World, waited_ms: i64) -> Vec<Violation> {
    let mut found = Vec::new();
    for n in world.nodes.iter().filter(|n| !n.removed) {
        if n.live().is_none() {
            found.push(Violation::new(
                "the healed cluster serves",
                format!(
                    "node {} did not finish starting within {waited_ms} ms of healing",
                    n.id
                ),
            ));
        }
    }
    let leaderless = leaderless_groups(world);
    if !leaderless.is_empty() {
        found.push(Violation::new(
            "the healed cluster serves",
            format!("groups {leaderless:?} have no leader {waited_ms} ms after healing"),
        ));
    }
    found
}
