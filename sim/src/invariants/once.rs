//! Sends happen once: no recipient receives the same message twice (a
//! direct send's request, even when the client retried it on another node;
//! a campaign, even when its run moved between nodes; the event campaign
//! once per event, even when PutEvents was retried); and a send answered
//! SUCCESSFUL was really delivered.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{Answer, Call, Op};
use crate::senders::Delivery;
use crate::workload::{address, campaign_subject, EVENT_CAMPAIGN};

pub fn check(ops: &[Op], delivered: &[Delivery]) -> Vec<Violation> {
    let mut found = Vec::new();
    // Each direct send and each one-off campaign has its own subject; the
    // event campaign's messages share one, and are counted per event below.
    let event_subject = campaign_subject(EVENT_CAMPAIGN);
    let mut by_message: BTreeMap<(&str, &str), Vec<&Delivery>> = BTreeMap::new();
    for d in delivered.iter().filter(|d| d.subject != event_subject) {
        by_message
            .entry((d.to.as_str(), d.subject.as_str()))
            .or_default()
            .push(d);
    }
    for ((to, subject), ds) in &by_message {
        if ds.len() > 1 {
            found.push(Violation::new(
                "sent at most once",
                format!(
                    "{to} received {} copies of {subject:?}: {:?}",
                    ds.len(),
                    ds.iter()
                        .map(|d| format!("{} from node {} at {} ms", d.message_id, d.node, d.at_ms))
                        .collect::<Vec<_>>()
                ),
            ));
        }
    }
    // At most one message per distinct event an endpoint sent.
    let mut events: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for op in ops {
        if let Call::Event { ep, event } = &op.call {
            events
                .entry(address(ep))
                .or_default()
                .insert(event.as_str());
        }
    }
    let mut triggered: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for d in delivered.iter().filter(|d| d.subject == event_subject) {
        triggered.entry(d.to.as_str()).or_default().push(d);
    }
    for (to, ds) in &triggered {
        let n_events = events.get(*to).map_or(0, |e| e.len());
        if ds.len() > n_events {
            found.push(Violation::new(
                "sent at most once",
                format!(
                    "{to} received {} messages of the event campaign for {n_events} events: {:?}",
                    ds.len(),
                    ds.iter()
                        .map(|d| format!("{} from node {} at {} ms", d.message_id, d.node, d.at_ms))
                        .collect::<Vec<_>>()
                ),
            ));
        }
    }
    for op in ops {
        if let (Call::Send { to, request }, Some((_, Answer::Sent(status)))) = (&op.call, &op.done)
        {
            if status == "SUCCESSFUL" && !by_message.keys().any(|(t, _)| t == to) {
                found.push(Violation::new(
                    "acknowledged sends were delivered",
                    format!(
                        "request {request} answered SUCCESSFUL for {to}, which received nothing"
                    ),
                ));
            }
        }
    }
    found
}
