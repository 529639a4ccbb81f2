//! Opted-out endpoints receive no campaign: once an opt-out has been
//! acknowledged, a campaign created after it sends that endpoint nothing,
//! the event campaign sends it no more than the events issued before the
//! opt-out can explain, and the opt-out still holds after healing.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{Call, Op};
use crate::senders::Delivery;
use crate::workload::{address, campaign_subject, EVENT_CAMPAIGN};

/// `opted_out`: the `opt-k` endpoints read as `OptOut: ALL` after healing.
pub fn check(
    ops: &[Op],
    delivered: &[Delivery],
    opted_out: &std::collections::BTreeSet<String>,
) -> Vec<Violation> {
    let mut found = Vec::new();
    // Endpoint → when its opt-out was first acknowledged.
    let mut acked: BTreeMap<&str, i64> = BTreeMap::new();
    for op in ops {
        if let (Call::OptOut { ep }, Some(t)) = (&op.call, op.acked_at()) {
            let e = acked.entry(ep.as_str()).or_insert(t);
            *e = (*e).min(t);
        }
    }
    for (ep, t_opt) in &acked {
        if !opted_out.contains(*ep) {
            found.push(Violation::new(
                "acknowledged writes survive",
                format!("{ep}'s opt-out was acknowledged at {t_opt} ms but it is not opted out after healing"),
            ));
        }
        let to = address(ep);
        for op in ops {
            let Call::Campaign { id } = &op.call else {
                continue;
            };
            if op.invoked <= *t_opt {
                continue;
            }
            let subject = campaign_subject(id);
            for d in delivered
                .iter()
                .filter(|d| d.to == to && d.subject == subject)
            {
                found.push(Violation::new(
                    "opted-out endpoints receive no campaign",
                    format!(
                        "{ep} opted out (acknowledged at {t_opt} ms), then campaign {id} was created at {} ms and sent it {} from node {} at {} ms",
                        op.invoked, d.message_id, d.node, d.at_ms
                    ),
                ));
            }
        }
        let before = ops
            .iter()
            .filter(|o| {
                matches!(&o.call, Call::Event { ep: e, .. } if e == ep) && o.invoked < *t_opt
            })
            .filter_map(|o| match &o.call {
                Call::Event { event, .. } => Some(event.as_str()),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let subject = campaign_subject(EVENT_CAMPAIGN);
        let got = delivered
            .iter()
            .filter(|d| d.to == to && d.subject == subject)
            .count();
        if got > before {
            found.push(Violation::new(
                "opted-out endpoints receive no campaign",
                format!(
                    "{ep} opted out (acknowledged at {t_opt} ms) after {before} events, but the event campaign sent it {got} messages"
                ),
            ));
        }
    }
    found
}
