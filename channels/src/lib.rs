//! herald's delivery transports. Contract: each transport speaks one real
//! protocol to a real peer, classifies failures as permanent, temporary or
//! invalid, bounds every wait with a deadline and every pool or queue with a
//! size, and never retries on its own: retry budgets, rate limits and the
//! send-once ledger belong to the channel actors above it.

pub mod smtp;
pub mod webhook;
