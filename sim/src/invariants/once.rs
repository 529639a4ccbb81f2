//! Sends happen once: no recipient receives the same message twice (a
//! direct send's request, even when the client retried it on another node;
//! a campaign, even when its run moved between nodes); and a send answered
//! SUCCESSFUL was really delivered.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{Answer, Call, Op};
use crate::senders::Delivery;

pub fn check(ops: &[Op], delivered: &[Delivery]) -> Vec<Violation> {
    let mut found = Vec::new();
    // Each direct send and each campaign has its own subject.
    let mut by_message: BTreeMap<(&str, &str), Vec<&Delivery>> = BTreeMap::new();
    for d in delivered {
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
