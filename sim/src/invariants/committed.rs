//! Committed entries never change: every entry a node has applied is the
//! same, byte for byte, as the entry any node ever applied at that index of
//! that group. (openraft's leader id is (term, node), so two leaders may
//! share a term; what must hold is that they never disagree on what was
//! committed.) Checked after every step, each applied entry once per node
//! incarnation, straight from the nodes' engines.

use std::collections::BTreeMap;

use herald_storage::{keys, Cf, GroupId, KvEngine, NodeId};
use xxhash_rust::xxh3::xxh3_64;

use super::Violation;
use crate::world::World;

#[derive(Default)]
pub struct Committed {
    /// (group, index) → (hash of the entry, the node it was first seen on).
    seen: BTreeMap<(GroupId, u64), (u64, NodeId)>,
    /// (node, incarnation, group) → the highest index checked.
    checked: BTreeMap<(NodeId, u32, GroupId), u64>,
    /// Leaders seen per group, for the trace: (term, node).
    leaders: BTreeMap<GroupId, (u64, NodeId)>,
}

impl Committed {
    pub fn observe(&mut self, world: &World) -> Vec<Violation> {
        let mut found = Vec::new();
        for node in &world.nodes {
            let Some(live) = node.live() else { continue };
            for (g, raft) in live.host().rafts().iter().enumerate() {
                let g = g as GroupId;
                let (applied, leads, term) = {
                    let m = raft.metrics();
                    let m = m.borrow();
                    (
                        m.last_applied.map(|l| l.index),
                        m.state == openraft::ServerState::Leader,
                        m.current_term,
                    )
                };
                if leads && self.leaders.get(&g) != Some(&(term, node.id)) {
                    self.leaders.insert(g, (term, node.id));
                    world
                        .trace
                        .record(format!("leader group={g} term={term} node={}", node.id));
                }
                let Some(applied) = applied else { continue };
                let key = (node.id, node.incarnation, g);
                let from = self.checked.get(&key).map_or(0, |c| c + 1);
                for index in from..=applied {
                    let Ok(Some(bytes)) = node.engine().get(Cf::Raft, &keys::log(g, index)) else {
                        continue; // purged behind a snapshot
                    };
                    let h = xxh3_64(&bytes);
                    match self.seen.get(&(g, index)) {
                        Some(&(h0, first)) if h0 != h => found.push(Violation::new(
                            "committed entries never change",
                            format!(
                                "group {g} index {index}: node {} applied an entry that differs from the one node {first} applied",
                                node.id
                            ),
                        )),
                        Some(_) => {}
                        None => {
                            self.seen.insert((g, index), (h, node.id));
                        }
                    }
                }
                self.checked
                    .insert(key, applied.max(from.saturating_sub(1)));
            }
        }
        found
    }
}
