//! In-memory engine that models the fsync boundary.
//!
//! Unsynced writes are visible at once but live only in a pending list until
//! a synced write or `sync_then` makes them durable; [`MemEngine::crash`]
//! throws the pending list away, as a power cut would. Used by tests now and
//! by the simulator later. Deterministic: no clock, no threads.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::engine::{Cf, KvEngine, Op, SyncDone, Visit, WriteBatch};
use crate::error::{Result, StorageError};

type Tree = BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

#[derive(Default)]
struct Inner {
    /// What a reader sees: durable plus pending writes.
    visible: Tree,
    /// What survives a crash.
    durable: Tree,
    /// Writes not yet durable, in issue order.
    pending: Vec<WriteBatch>,
    closed: bool,
    /// `sync_then` acknowledges without syncing (see `lie_about_syncs`).
    lying: bool,
}

#[derive(Default)]
pub struct MemEngine {
    inner: Mutex<Inner>,
}

fn apply(tree: &mut Tree, batch: &WriteBatch) {
    for op in &batch.ops {
        match op {
            Op::Put(cf, k, v) => {
                tree.insert((*cf, k.clone()), v.clone());
            }
            Op::Delete(cf, k) => {
                tree.remove(&(*cf, k.clone()));
            }
            Op::DeleteRange(cf, start, end) => {
                let keys: Vec<_> = tree
                    .range((*cf, start.clone())..(*cf, end.clone()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    tree.remove(&k);
                }
            }
        }
    }
}

impl MemEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: every write not yet synced is lost.
    pub fn crash(&self) {
        let mut g = self.inner.lock().expect("mem engine lock");
        g.pending.clear();
        g.visible = g.durable.clone();
    }

    /// Makes `sync_then` call back at once without making anything durable:
    /// a disk that acknowledges flushes it has not done. The Raft log store
    /// then acknowledges appends before they are durable, a bug planted by
    /// the simulator's `ack-before-durable` canary to prove it is caught.
    pub fn lie_about_syncs(&self, lying: bool) {
        self.inner.lock().expect("mem engine lock").lying = lying;
    }

    /// Number of writes that a crash would lose now.
    pub fn unsynced_writes(&self) -> usize {
        self.inner.lock().expect("mem engine lock").pending.len()
    }

    fn sync_locked(g: &mut Inner) {
        let pending = std::mem::take(&mut g.pending);
        for b in &pending {
            apply(&mut g.durable, b);
        }
    }
}

impl KvEngine for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let g = self.inner.lock().expect("mem engine lock");
        if g.closed {
            return Err(StorageError::Closed);
        }
        Ok(g.visible.get(&(cf, key.to_vec())).cloned())
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut g = self.inner.lock().expect("mem engine lock");
        if g.closed {
            return Err(StorageError::Closed);
        }
        apply(&mut g.visible, &batch);
        g.pending.push(batch);
        if sync {
            Self::sync_locked(&mut g);
        }
        Ok(())
    }

    fn sync_then(&self, done: SyncDone) {
        let res = {
            let mut g = self.inner.lock().expect("mem engine lock");
            if g.closed {
                Err(StorageError::Closed)
            } else {
                if !g.lying {
                    Self::sync_locked(&mut g);
                }
                Ok(())
            }
        };
        done(res);
    }

    fn last(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let g = self.inner.lock().expect("mem engine lock");
        if g.closed {
            return Err(StorageError::Closed);
        }
        if start >= end {
            return Ok(None);
        }
        Ok(g.visible
            .range((cf, start.to_vec())..(cf, end.to_vec()))
            .next_back()
            .map(|((_, k), v)| (k.clone(), v.clone())))
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        // Copy the range out so the visitor may call back into the engine.
        let items: Vec<(Vec<u8>, Vec<u8>)> = {
            let g = self.inner.lock().expect("mem engine lock");
            if g.closed {
                return Err(StorageError::Closed);
            }
            if start >= end {
                return Ok(());
            }
            g.visible
                .range((cf, start.to_vec())..(cf, end.to_vec()))
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect()
        };
        for (k, v) in items {
            if visit(&k, &v).is_break() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loses_only_unsynced_writes() {
        let e = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::State, b"a".to_vec(), b"1".to_vec());
        e.write(b, true).unwrap();
        let mut b = WriteBatch::new();
        b.put(Cf::State, b"b".to_vec(), b"2".to_vec());
        e.write(b, false).unwrap();
        assert_eq!(e.get(Cf::State, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(e.unsynced_writes(), 1);
        e.crash();
        assert_eq!(e.get(Cf::State, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(Cf::State, b"b").unwrap(), None);
    }

    #[test]
    fn sync_then_makes_earlier_writes_durable() {
        let e = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Raft, b"k".to_vec(), b"v".to_vec());
        e.write(b, false).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        e.sync_then(Box::new(move |r| tx.send(r.is_ok()).unwrap()));
        assert!(rx.recv().unwrap());
        e.crash();
        assert_eq!(e.get(Cf::Raft, b"k").unwrap(), Some(b"v".to_vec()));
    }
}
