//! Every acknowledged write is readable after healing: an endpoint's final
//! value comes from a write that may have applied and that no acknowledged
//! write followed in real time (a write invoked after another completed
//! must win over it).

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{Call, Op};

/// `finals`: endpoint → the value read after healing (`None`: not found).
pub fn check(ops: &[Op], finals: &BTreeMap<String, Option<u64>>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut writes: BTreeMap<&str, Vec<(&Op, u64)>> = BTreeMap::new();
    for op in ops {
        if let Call::Write { ep, v } = &op.call {
            writes.entry(ep.as_str()).or_default().push((op, *v));
        }
    }
    for (ep, ws) in &writes {
        let Some(got) = finals.get(*ep) else {
            found.push(Violation::new(
                "acknowledged writes survive",
                format!("endpoint {ep} could not be read after healing"),
            ));
            continue;
        };
        let superseded = |w: &Op| {
            let Some(done) = w.acked_at() else {
                return false;
            };
            ws.iter()
                .any(|(later, _)| later.acked() && later.invoked >= done && later.id != w.id)
        };
        let allowed: Vec<u64> = ws
            .iter()
            .filter(|(w, _)| w.maybe_applied() && !superseded(w))
            .map(|(_, v)| *v)
            .collect();
        let any_acked = ws.iter().any(|(w, _)| w.acked());
        let ok = match got {
            Some(v) => allowed.contains(v),
            None => !any_acked,
        };
        if !ok {
            found.push(Violation::new(
                "acknowledged writes survive",
                format!(
                    "endpoint {ep} reads {got:?} after healing; allowed {allowed:?} (acknowledged: {:?})",
                    ws.iter().filter(|(w, _)| w.acked()).map(|(_, v)| *v).collect::<Vec<_>>()
                ),
            ));
        }
    }
    found
}
