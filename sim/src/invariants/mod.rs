//! The invariants, one per file. Each returns the violations it finds;
//! `committed` also runs after every step, the others on the history and the
//! deliveries once the cluster has healed.

pub mod committed;
pub mod durability;
pub mod limits;
pub mod linearizable;
pub mod liveness;
pub mod once;
pub mod optout;
pub mod quiet;
pub mod reach;
pub mod scheduled;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Self {
        Self {
            invariant,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}
