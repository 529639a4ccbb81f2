//! A campaign created after healing reaches every endpoint once: each
//! endpoint that exists when the cluster has healed (all of them have an
//! email address) receives exactly one copy.
//!
//! An endpoint that a hard bounce made INACTIVE (as Pinpoint does) is
//! skipped by campaigns; an INACTIVE endpoint whose address never bounced
//! is a violation.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::senders::Delivery;

/// `finals`: endpoint id → its value after healing (`None`: not there).
/// `inactive`: endpoints INACTIVE after healing; `bounced`: addresses
/// that were refused for good at least once.
pub fn check(
    finals: &BTreeMap<String, Option<u64>>,
    delivered: &[Delivery],
    subject: &str,
    inactive: &BTreeSet<String>,
    bounced: &BTreeSet<String>,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for (ep, v) in finals {
        if v.is_none() {
            continue;
        }
        let to = format!("{ep}@sim.example");
        if inactive.contains(ep) {
            if !bounced.contains(&to) {
                found.push(Violation::new(
                    "only a hard bounce deactivates an endpoint",
                    format!("{ep} is INACTIVE but {to} never bounced"),
                ));
            }
            continue;
        }
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
