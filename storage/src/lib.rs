//! herald's storage: the Raft log store, the state machine tables and the key
//! layout, written once against the [`engine::KvEngine`] trait and run on two
//! engines — RocksDB ([`rocks::RocksEngine`], one instance per node, a column
//! family per purpose) and an in-memory twin ([`mem::MemEngine`]) that loses
//! unsynced writes on a simulated crash.
//!
//! Contract: the state machine is the only writer of the `state` tables; each
//! applied entry is one atomic write together with its `applied` marker; log
//! entries are acknowledged only once durable (group commit across groups);
//! votes are synced before returning. No network, no HTTP, no actors here.

pub mod analytics;
pub mod apply;
pub mod engine;
pub mod error;
pub mod keys;
pub mod log_store;
pub mod mem;
pub mod reader;
pub mod rocks;
pub mod state_machine;
pub mod types;

pub use apply::{ApplyObserver, Change, EventRow};
pub use engine::{Cf, KvEngine, Visit, WriteBatch};
pub use error::{Result, StorageError};
pub use keys::{GroupId, META_GROUP};
pub use log_store::LogStore;
pub use mem::MemEngine;
pub use reader::Reader;
pub use rocks::RocksEngine;
pub use state_machine::StateMachine;
pub use types::*;
