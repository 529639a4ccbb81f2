//! herald's deterministic simulator: the real `actors/`, `cluster/` and
//! `storage/` code of N nodes in one process on virtual time.
//!
//! Contract:
//! - A run is a pure function of its seed and options: every fault, delay,
//!   sender outcome and client call is drawn from the seed, each node runs on
//!   a current-thread tokio runtime with a paused clock and a seeded
//!   scheduler, and openraft's election timeouts are fixed per node.
//! - Nodes use the in-memory engine (a crash loses unsynced writes), the
//!   in-process transport behind a faulty network, and recording senders.
//!   No real network, disk, threads or wall clock.
//! - Every run ends with faults off and all nodes up, then checks the
//!   invariants in `invariants/`; a failure names the seed to replay.

pub mod canary;
pub mod history;
pub mod invariants;
pub mod net;
pub mod panics;
pub mod rng;
pub mod run;
pub mod senders;
pub mod trace;
pub mod workload;
pub mod world;
