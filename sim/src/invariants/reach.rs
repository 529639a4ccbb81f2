//! A campaign created after healing reaches every endpoint once: each
//! endpoint that should receive it (it exists, is not opted out, and is not
//! in quiet time when the campaign has one) receives exactly one copy, and
//! the others none.
//!
//! An endpoint that a hard bounce made INACTIVE (as Pinpoint does) is
//! skipped by campaigns; an INACTIVE endpoint whose address never bounced
//! is a violation.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::senders::Delivery;
use crate::workload::address;

/// `expected`: endpoint id → whether it should receive the campaign.
/// `inactive`: endpoints INACTIVE after healing; `bounced`: addresses
/// that were refused for good at least once.
pub fn check(
    expected: &BTreeMap<String, bool>,
    delivered: &[Delivery],
    subject: &str,
    inactive: &BTreeSet<String>,
    bounced: &BTreeSet<String>,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for (ep, should) in expected {
        let to = address(ep);
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
        let want = usize::from(*should);
        if n != want {
            found.push(Violation::new(
                "a healed cluster's campaign reaches every endpoint once",
                format!("{to} received {n} copies of {subject:?}, expected {want}"),
            ));
        }
    }
    found
}
