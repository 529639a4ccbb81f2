//! What clients asked and what they were told, with virtual times: the
//! oracle's input. A request that timed out, hit a crashed node or got a
//! "try again" is unknown, not failed: it may have taken effect.

use std::sync::{Arc, Mutex};

use herald_actors::ServiceError;
use herald_storage::NodeId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Upsert endpoint `ep` with attribute `v` = [`v`].
    Write { ep: String, v: u64 },
    /// Get endpoint `ep`.
    Read { ep: String },
    /// A direct email to `to` under request (trace) id `request`.
    Send { to: String, request: String },
    /// CreateCampaign of an email campaign to every endpoint (its shape is
    /// in the workload's campaign specs).
    Campaign { id: String },
    /// UpdateEndpoint of `ep` with `OptOut: ALL` (nothing ever opts it back
    /// in).
    OptOut { ep: String },
    /// PutEvents of one event `event` of the triggering type for `ep`.
    Event { ep: String, event: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// Refused before anything changed (validation, not found).
    Rejected(String),
    /// It may or may not have taken effect.
    Unknown(String),
    /// A read's value of `v` (`None`: the endpoint was not found).
    Read(Option<u64>),
    /// A send's delivery status for its one address.
    Sent(String),
}

#[derive(Debug, Clone)]
pub struct Op {
    pub id: u64,
    pub node: NodeId,
    pub call: Call,
    pub invoked: i64,
    /// Completion time and answer; `None`: never answered (the node
    /// crashed under it, or the run ended).
    pub done: Option<(i64, Answer)>,
}

impl Op {
    pub fn acked(&self) -> bool {
        matches!(self.done, Some((_, Answer::Ok)))
    }

    /// Whether the write may have taken effect.
    pub fn maybe_applied(&self) -> bool {
        !matches!(self.done, Some((_, Answer::Rejected(_))))
    }

    pub fn completed_at(&self) -> Option<i64> {
        self.done.as_ref().map(|(t, _)| *t)
    }

    /// When the write is known to have taken effect: its acknowledgement.
    /// An unknown write may still take effect at any later time.
    pub fn acked_at(&self) -> Option<i64> {
        match &self.done {
            Some((t, Answer::Ok)) => Some(*t),
            _ => None,
        }
    }
}

#[derive(Clone, Default)]
pub struct History(Arc<Mutex<Vec<Op>>>);

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn invoke(&self, node: NodeId, call: Call, now: i64) -> u64 {
        let mut g = self.lock();
        let id = g.len() as u64;
        g.push(Op {
            id,
            node,
            call,
            invoked: now,
            done: None,
        });
        id
    }

    pub fn complete(&self, id: u64, now: i64, answer: Answer) {
        if let Some(op) = self.lock().get_mut(id as usize) {
            op.done = Some((now, answer));
        }
    }

    /// Calls in flight on a node that crashed will never be answered: they
    /// are unknown from now on.
    pub fn abandon(&self, node: NodeId, now: i64) {
        for op in self.lock().iter_mut() {
            if op.node == node && op.done.is_none() {
                op.done = Some((now, Answer::Unknown("the node crashed".into())));
            }
        }
    }

    pub fn ops(&self) -> Vec<Op> {
        self.lock().clone()
    }

    pub fn pending(&self) -> usize {
        self.lock().iter().filter(|o| o.done.is_none()).count()
    }
}

/// How a service error reads to a client that must not guess.
pub fn classify(e: &ServiceError) -> Answer {
    match e {
        ServiceError::BadRequest(m)
        | ServiceError::NotFound(m)
        | ServiceError::PayloadTooLarge(m) => Answer::Rejected(m.clone()),
        ServiceError::TooManyRequests(m) | ServiceError::Internal(m) => Answer::Unknown(m.clone()),
    }
}
