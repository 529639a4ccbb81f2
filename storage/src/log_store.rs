//! openraft log storage for one group, on any [`KvEngine`].
//!
//! Entries are written unsynced (visible at once) and acknowledged to openraft
//! only after the engine's shared WAL sync covers them; votes are written
//! synced. All IO of one group is issued in order from openraft's single
//! storage task, which the engine's ordered WAL turns into ordered durability.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, ControlFlow, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader, StorageIOError};

use crate::engine::{Cf, KvEngine, WriteBatch};
use crate::keys::{self, tag, GroupId};
use crate::types::{Entry, LogId, RaftStorageError, TypeConfig, Vote};

pub(crate) fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl ToString,
) -> RaftStorageError {
    RaftStorageError::IO {
        source: StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())),
    }
}

fn read_err(e: impl ToString) -> RaftStorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_err(e: impl ToString) -> RaftStorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// Bytes of recently appended entries a group keeps in memory (65 groups on
/// a node: 16 MiB at most; applying right after commit needs only the last
/// few entries).
pub const TAIL_CACHE_BYTES: usize = 256 << 10;

/// The newest entries of the log, parsed, so that applying an entry right
/// after it commits does not read and parse it back from the engine.
///
/// Invariant: the cached indexes are contiguous and, when the cache is not
/// empty, its last index is the log's last index (every append enters the
/// cache; only the oldest entries are evicted; truncate and purge cut the
/// cache as they cut the log). So a range that starts inside the cache is
/// served from it whole.
#[derive(Default)]
struct TailCache {
    entries: BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
}

impl TailCache {
    fn insert(&mut self, entry: Entry, bytes: usize) {
        if let Some((_, old)) = self.entries.insert(entry.log_id.index, (entry, bytes)) {
            self.bytes -= old;
        }
        self.bytes += bytes;
        while self.bytes > TAIL_CACHE_BYTES {
            match self.entries.pop_first() {
                Some((_, (_, b))) => self.bytes -= b,
                None => break,
            }
        }
    }

    /// Drops the entries from `index` on (the log was truncated there).
    fn truncate_from(&mut self, index: u64) {
        let dropped = self.entries.split_off(&index);
        self.bytes -= dropped.values().map(|(_, b)| b).sum::<usize>();
    }

    /// Drops the entries up to and including `index` (the log was purged).
    fn purge_through(&mut self, index: u64) {
        let kept = self.entries.split_off(&index.saturating_add(1));
        let dropped = std::mem::replace(&mut self.entries, kept);
        self.bytes -= dropped.values().map(|(_, b)| b).sum::<usize>();
    }

    /// The entries of `[start, end)`, if the cache can answer for all of them.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        if start >= end {
            return Some(Vec::new());
        }
        let first = *self.entries.keys().next()?;
        if start < first {
            return None;
        }
        Some(
            self.entries
                .range(start..end)
                .map(|(_, (e, _))| e.clone())
                .collect(),
        )
    }
}

/// The Raft log of one group.
pub struct LogStore<E: KvEngine> {
    engine: Arc<E>,
    group: GroupId,
    tail: Arc<Mutex<TailCache>>,
}

impl<E: KvEngine> Clone for LogStore<E> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            group: self.group,
            tail: self.tail.clone(),
        }
    }
}

impl<E: KvEngine> LogStore<E> {
    pub fn new(engine: Arc<E>, group: GroupId) -> Self {
        Self {
            engine,
            group,
            tail: Arc::default(),
        }
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, TailCache> {
        self.tail.lock().expect("log tail cache lock")
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        tag: u8,
    ) -> Result<Option<T>, RaftStorageError> {
        match self
            .engine
            .get(Cf::Raft, &keys::single(self.group, tag))
            .map_err(read_err)?
        {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(read_err),
        }
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, RaftStorageError> {
        let start = keys::log(self.group, 0);
        let end = keys::prefix_end(&keys::table(self.group, tag::LOG));
        match self.engine.last(Cf::Raft, &start, &end).map_err(read_err)? {
            None => Ok(None),
            Some((_, v)) => {
                let entry: Entry = serde_json::from_slice(&v).map_err(read_err)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl<E: KvEngine> RaftLogReader<TypeConfig> for LogStore<E> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => Some(x.saturating_add(1)),
            Bound::Excluded(x) => Some(*x),
            Bound::Unbounded => None,
        };
        if let Some(hit) = self.tail().get(start, end.unwrap_or(u64::MAX)) {
            return Ok(hit);
        }
        let end_key = match end {
            Some(e) => keys::log(self.group, e),
            None => keys::prefix_end(&keys::table(self.group, tag::LOG)),
        };
        let mut out = Vec::new();
        let mut err = None;
        self.engine
            .scan(
                Cf::Raft,
                &keys::log(self.group, start),
                &end_key,
                &mut |_, v| {
                    match serde_json::from_slice::<Entry>(v) {
                        Ok(e) => out.push(e),
                        Err(e) => {
                            err = Some(e);
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                },
            )
            .map_err(read_err)?;
        if let Some(e) = err {
            return Err(read_err(e));
        }
        Ok(out)
    }
}

impl<E: KvEngine> RaftLogStorage<TypeConfig> for LogStore<E> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let last_purged: Option<LogId> = self.get_json(tag::LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), RaftStorageError> {
        let mut b = WriteBatch::new();
        let v = serde_json::to_vec(vote).map_err(write_err)?;
        b.put(Cf::Raft, keys::single(self.group, tag::VOTE), v);
        self.engine
            .write(b, true)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, RaftStorageError> {
        self.get_json(tag::VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        // Not synced: losing it only means re-applying from the snapshot point.
        let mut b = WriteBatch::new();
        b.put(
            Cf::Raft,
            keys::single(self.group, tag::COMMITTED),
            serde_json::to_vec(&committed).map_err(write_err)?,
        );
        self.engine.write(b, false).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        Ok(self.get_json::<Option<LogId>>(tag::COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut b = WriteBatch::new();
        let mut parsed = Vec::new();
        for e in entries {
            let v = serde_json::to_vec(&e).map_err(write_err)?;
            let bytes = v.len();
            b.put(Cf::Raft, keys::log(self.group, e.log_id.index), v);
            parsed.push((bytes, e));
        }
        self.engine.write(b, false).map_err(write_err)?;
        {
            let mut tail = self.tail();
            for (bytes, e) in parsed {
                tail.insert(e, bytes);
            }
        }
        self.engine.sync_then(Box::new(move |res| {
            callback.log_io_completed(res.map_err(|e| std::io::Error::other(e.to_string())));
        }));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let mut b = WriteBatch::new();
        b.delete_range(
            Cf::Raft,
            keys::log(self.group, log_id.index),
            keys::prefix_end(&keys::table(self.group, tag::LOG)),
        );
        self.engine.write(b, true).map_err(write_err)?;
        self.tail().truncate_from(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let mut b = WriteBatch::new();
        b.put(
            Cf::Raft,
            keys::single(self.group, tag::LAST_PURGED),
            serde_json::to_vec(&log_id).map_err(write_err)?,
        );
        b.delete_range(
            Cf::Raft,
            keys::log(self.group, 0),
            keys::log(self.group, log_id.index + 1),
        );
        self.engine.write(b, false).map_err(write_err)?;
        self.tail().purge_through(log_id.index);
        Ok(())
    }
}
