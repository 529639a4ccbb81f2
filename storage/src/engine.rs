//! The key-value engine contract that both stores implement.
//!
//! Everything above this trait (the Raft log store, the state machine, the
//! readers) is written once against it, so the RocksDB engine and the
//! in-memory engine run the same code. The contract:
//!
//! - A `write` is atomic: all of its operations become visible together.
//! - A write with `sync = true` is durable when `write` returns.
//! - A write with `sync = false` is visible at once but may be lost by a crash
//!   until a later synced write or `sync_then` completes; writes become durable
//!   in the order they were issued (one write-ahead log per engine).
//! - `sync_then` makes every write issued before the call durable, then calls
//!   `done` (possibly on another thread). It is how many Raft groups share one
//!   fsync (group commit).

use std::ops::ControlFlow;

use crate::error::Result;

/// A scan's visitor: called with each key and value in order; `Break` stops.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// Column families. Each is a separate keyspace; keys inside are laid out by
/// [`crate::keys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Raft logs, votes, committed ids and snapshots of every group.
    Raft,
    /// State machine tables of every group.
    State,
    /// Node-level facts: cluster identity, shard count.
    Node,
}

impl Cf {
    pub const ALL: [Cf; 3] = [Cf::Raft, Cf::State, Cf::Node];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Raft => "raft",
            Cf::State => "state",
            Cf::Node => "node",
        }
    }
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
    /// Deletes keys in `[start, end)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// An atomic group of writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<Op>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(cf, key.into(), value.into()));
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(cf, key.into()));
    }

    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.ops.push(Op::DeleteRange(cf, start.into(), end.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// Callback of [`KvEngine::sync_then`].
pub type SyncDone = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// A node's key-value engine (one per node, shared by every Raft group).
pub trait KvEngine: Send + Sync + 'static {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;

    /// Makes every write issued before this call durable, then calls `done`.
    fn sync_then(&self, done: SyncDone);

    /// Visits keys in `[start, end)` in ascending order until `visit` breaks.
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<()>;

    /// The last pair in `[start, end)`, if any.
    fn last(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>>;

    /// Collects up to `limit` pairs in `[start, end)`.
    fn scan_collect(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan(cf, start, end, &mut |k, v| {
            if out.len() >= limit {
                return ControlFlow::Break(());
            }
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }
}
