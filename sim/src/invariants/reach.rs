//! A campaign created after healing reaches every endpoint once: each
//! endpoint that exists when the cluster has healed (all of them have an
//! email address) receives exactly one copy.
//!
//! Known failing (2026-12-06): in about 6 seeds in 1,000 (seeds 0..1000:
//! 309, 472, 623, 840, 847, 897) one endpoint that exists, with its
//! address (always ep-4 or ep-5), receives neither the last chaos-phase
//! campaign nor the one created after healing, while the others of its
//! shard do, from the same shard leader. Not yet explained; until it is,
//! the run reports these as known issues instead of failing.

use std::collections::BTreeMap;

use super::Violation;
use crate::senders::Delivery;

/// `finals`: endpoint id → its value after healing (`None`: not there).
pub fn check(
    finals: &BTreeMap<String, Option<u64>>,
    delivered: &[Delivery],
    subject: &str,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for (ep, v) in finals {
        if v.is_none() {
            continue;
        }
        let to = format!("{ep}@sim.example");
        let n = delivered
            .iter()
            .filter(|d| d.to == to && d.subject == subject)
            .count();
        if n != 1 {
            found.push(Violation::new(
                "a healed cluster's campaign reaches every endpoint once",
                format!("{to} received {n} copies of {subject:?}"),
            ));
        }
    }
    found
}
