//! herald's actors and request service: a ractor shard actor per hosted data
//! shard (the compact engagement table, the idle-session sweep, the shard's
//! virtual endpoint actors with a resident cap), and [`service::Herald`], the
//! one place that turns an API operation into validated proposals and reads.
//!
//! Contract: nothing here touches HTTP, QUIC or RocksDB directly — storage
//! and the cluster come in as [`herald_cluster::RaftHost`], time as
//! [`clock::Clock`]. Every state change goes through a Raft proposal; the
//! actors' in-memory state is derived from applied changes and can always be
//! rebuilt from storage. No ractor global registry (per-node directories).

pub mod addresses;
pub mod analytics;
pub mod campaign_run;
pub mod campaigns;
#[cfg(feature = "canaries")]
pub mod canary;
pub mod clock;
pub mod credentials;
pub mod definitions;
pub mod delivery;
pub mod endpoint;
pub mod engagement;
pub mod inapp;
pub mod jobs;
pub mod node_calls;
pub mod otp;
pub mod push_channels;
pub mod runtime;
pub mod segment_indexes;
pub mod segments;
pub mod sends;
pub mod service;
pub mod shard;
pub mod sms;
pub mod streams;
pub mod templates;

pub use clock::{Clock, Entropy, SeededEntropy};
pub use runtime::Runtime;
pub use service::{Herald, ServiceConfig, ServiceError, TrackingConfig};
