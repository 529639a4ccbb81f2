//! herald's delivery transports: SMTP (`smtp`), webhooks (`webhook`), APNs
//! over HTTP/2 (`apns`), FCM's HTTP v1 API (`fcm`) and SMS over SMPP 3.4
//! (`smpp`). Contract: each
//! transport speaks one real protocol to a real peer, classifies failures
//! as permanent, temporary (possibly with the provider's Retry-After) or
//! invalid, bounds every wait with a deadline and every pool or queue with
//! a size, and never retries on its own: retry budgets, rate limits and the
//! send-once ledger belong to the channel actors above it. The dev outbox
//! (`outbox`) stands in for SMTP when none is configured: a bounded NDJSON
//! log on local disk, not fsynced. `pacing` holds the pure token-bucket and
//! backoff arithmetic those actors use; it reads no clock and draws no
//! randomness (time and random numbers are passed in).

pub mod apns;
mod corked;
pub mod fcm;
pub mod outbox;
pub mod pacing;
pub mod smpp;
pub mod smtp;
pub mod transport;
pub mod webhook;
