//! Per-endpoint caps hold: the event campaign, triggered by every event its
//! endpoints send, delivers to no endpoint more than its Daily and Total
//! caps allow (the whole run fits in one day).

use std::collections::BTreeMap;

use super::Violation;
use crate::senders::Delivery;
use crate::workload::{campaign_subject, EventLimits, EVENT_CAMPAIGN};

pub fn check(limits: EventLimits, delivered: &[Delivery]) -> Vec<Violation> {
    let Some(cap) = limits.cap() else {
        return Vec::new();
    };
    let subject = campaign_subject(EVENT_CAMPAIGN);
    let mut per: BTreeMap<&str, u32> = BTreeMap::new();
    for d in delivered.iter().filter(|d| d.subject == subject) {
        *per.entry(d.to.as_str()).or_default() += 1;
    }
    per.into_iter()
        .filter(|(_, n)| *n > cap)
        .map(|(to, n)| {
            Violation::new(
                "campaign caps hold",
                format!(
                    "{to} received {n} messages of the event campaign (Daily {}, Total {})",
                    limits.daily, limits.total
                ),
            )
        })
        .collect()
}
