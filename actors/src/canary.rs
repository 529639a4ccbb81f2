//! Planted bugs for the simulator's canaries (feature `canaries`, built
//! only for tests): each stays off unless the simulator switches it on for
//! the thread that runs a seed (every simulated node runs on that thread),
//! and exists to prove the simulator catches that class of bug.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canary {
    None,
    /// Direct sends go out before their intents are committed to the send
    /// ledger (the intents are committed after), so a retried request
    /// cannot see that its messages were already sent.
    SendBeforeIntent,
    /// UpdateEndpoint acknowledges `OptOut: ALL` but applies the opt-out
    /// ten seconds later, so send decisions made in between miss it.
    OptOutAfterDecision,
}

thread_local! {
    static ACTIVE: Cell<Canary> = const { Cell::new(Canary::None) };
}

/// Switches `c` on for this thread (`Canary::None`: all off).
pub fn set(c: Canary) {
    ACTIVE.with(|a| a.set(c));
}

pub fn is(c: Canary) -> bool {
    ACTIVE.with(|a| a.get() == c)
}
