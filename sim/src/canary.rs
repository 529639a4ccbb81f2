//! Planted bugs, to prove the simulator catches what it claims to:
//!
//! - `ack-before-durable`: the nodes' engines acknowledge flushes they have
//!   not done, so Raft counts log entries as durable (and commits them on a
//!   quorum of such acknowledgements) before they are; crashes then lose
//!   acknowledged writes. Planted in the in-memory engine; always available.
//! - `send-before-intent`: direct sends go out before their send intents
//!   are committed (feature `canaries`), so a retried request sends again.
//! - `opt-out-after-decision`: UpdateEndpoint acknowledges an opt-out but
//!   applies it ten seconds later (feature `canaries`), so campaigns decide
//!   to send without seeing it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canary {
    AckBeforeDurable,
    SendBeforeIntent,
    OptOutAfterDecision,
}

impl std::str::FromStr for Canary {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ack-before-durable" => Ok(Canary::AckBeforeDurable),
            "send-before-intent" => Ok(Canary::SendBeforeIntent),
            "opt-out-after-decision" => Ok(Canary::OptOutAfterDecision),
            other => Err(format!(
                "unknown canary {other:?} (ack-before-durable, send-before-intent, opt-out-after-decision)"
            )),
        }
    }
}

impl Canary {
    pub fn name(self) -> &'static str {
        match self {
            Canary::AckBeforeDurable => "ack-before-durable",
            Canary::SendBeforeIntent => "send-before-intent",
            Canary::OptOutAfterDecision => "opt-out-after-decision",
        }
    }

    /// Whether this build can plant it.
    pub fn available(self) -> bool {
        match self {
            Canary::AckBeforeDurable => true,
            Canary::SendBeforeIntent | Canary::OptOutAfterDecision => cfg!(feature = "canaries"),
        }
    }
}

/// Switches the canaries that live in herald's own code on (or off) for
/// the current thread, which runs every node of a seed.
pub fn plant(c: Option<Canary>) {
    #[cfg(feature = "canaries")]
    herald_actors::canary::set(match c {
        Some(Canary::SendBeforeIntent) => herald_actors::canary::Canary::SendBeforeIntent,
        Some(Canary::OptOutAfterDecision) => herald_actors::canary::Canary::OptOutAfterDecision,
        _ => herald_actors::canary::Canary::None,
    });
    #[cfg(not(feature = "canaries"))]
    let _ = c;
}
