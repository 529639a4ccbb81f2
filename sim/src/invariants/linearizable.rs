//! Endpoint gets are linearizable: a read returns a value whose write had
//! been invoked before the read completed, and no acknowledged write lies
//! wholly between that write and the read; a read that finds nothing comes
//! before every acknowledged write's completion.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{Answer, Call, Op};

pub fn check(ops: &[Op]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut writes: BTreeMap<&str, Vec<(&Op, u64)>> = BTreeMap::new();
    for op in ops {
        if let Call::Write { ep, v } = &op.call {
            writes.entry(ep.as_str()).or_default().push((op, *v));
        }
    }
    for r in ops {
        let (Call::Read { ep }, Some((r_done, Answer::Read(got)))) = (&r.call, &r.done) else {
            continue;
        };
        let ws = writes.get(ep.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let bad = match got {
            None => ws
                .iter()
                .find(|(w, _)| w.acked_at().is_some_and(|t| t <= r.invoked))
                .map(|(w, v)| {
                    format!(
                        "write of v={v} (op {}) completed before the read began",
                        w.id
                    )
                }),
            Some(v) => match ws.iter().find(|(_, wv)| wv == v) {
                None => Some(format!("v={v} was never written")),
                Some((w, _)) if w.invoked >= *r_done => Some(format!(
                    "its write (op {}) began after the read ended",
                    w.id
                )),
                Some((w, _)) => {
                    let w_done = w.acked_at();
                    ws.iter()
                        .find(|(x, _)| {
                            x.acked()
                                && w_done.is_some_and(|d| x.invoked >= d)
                                && x.completed_at().is_some_and(|t| t <= r.invoked)
                        })
                        .map(|(x, xv)| {
                            format!(
                                "write v={xv} (op {}) came wholly after op {} and before the read",
                                x.id, w.id
                            )
                        })
                }
            },
        };
        if let Some(why) = bad {
            found.push(Violation::new(
                "endpoint reads are linearizable",
                format!(
                    "read of {ep} (op {}, node {}, {}..{r_done} ms) got {got:?}: {why}",
                    r.id, r.node, r.invoked
                ),
            ));
        }
    }
    found
}
