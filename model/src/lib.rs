//! herald-model: the pure data model and rules of herald.
//!
//! Owns the Pinpoint wire shapes (`wire`), documented quotas (`limits`), input
//! validation (`validate`), endpoint upsert semantics (`endpoint`), session rules
//! (`session`), ISO-8601 handling (`time`), data placement hashing (`hash`),
//! id/ARN formats (`ids`), replica placement (`placement`), import/export job shapes and file formats (`import`),
//! message template shapes and checks (`template`), per-recipient template
//! rendering (`render`), segment definitions and membership (`segment`),
//! shard-local segment indexes (`segment_index`),
//! campaign shapes, treatment assignment and limits (`campaign`), mobile push
//! messages and APNs/FCM payloads (`push`), SMS encoding and segmentation
//! (`sms`), analytics rollups and queries (`analytics`), Pinpoint KPIs (`kpi`), and schedule,
//! time-zone and quiet-time math (`schedule`).
//!
//! Contract: no IO, no async, no clock reads (time is always passed in), no
//! randomness, no global state; every function is deterministic. Anything that is
//! serialized uses `BTreeMap`, never `HashMap`, so bytes are stable. The placement
//! and cohort hashes in `hash` are fixed forever. Depends on no other herald crate.

pub mod analytics;
pub mod campaign;
pub mod channel;
pub mod endpoint;
pub mod hash;
pub mod ids;
pub mod import;
pub mod inapp;
pub mod kpi;
pub mod limits;
pub mod message;
pub mod otp;
pub mod placement;
pub mod push;
pub mod render;
pub mod schedule;
pub mod segment;
pub mod segment_index;
pub mod session;
pub mod sms;
pub mod stream;
pub mod template;
pub mod time;
pub mod tracking;
pub mod validate;
pub mod wire;
