//! Sends happen once: no recipient of a direct send receives it twice, even
//! when the client retried the request on another node; and a send answered
//! SUCCESSFUL was really delivered.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{Answer, Call, Op};
use crate::senders::Delivery;

pub fn check(ops: &[Op], delivered: &[Delivery]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut by_to: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for d in delivered {
        by_to.entry(d.to.as_str()).or_default().push(d);
    }
    for (to, ds) in &by_to {
        if ds.len() > 1 {
            found.push(Violation::new(
                "sent at most once",
                format!(
                    "{to} received {} copies: {:?}",
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
            if status == "SUCCESSFUL" && !by_to.contains_key(to.as_str()) {
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
