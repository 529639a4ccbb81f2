//! A campaign created after healing reaches every endpoint once: each
//! endpoint that exists when the cluster has healed (all of them have an
//! email address) receives exactly one copy.
//!
//! Known failing (2026-12-06): in about 2 seeds in 1,000 (`sim --reproduce
//! 309`, `472`) one endpoint that exists, with its address, receives
//! neither the last chaos-phase campaign nor the one created after healing,
//! from the node that leads its shard. Not yet explained; until it is, the
//! run reports these as known issues instead of failing.

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
