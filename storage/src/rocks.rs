//! The RocksDB engine: one instance per node, one column family per [`Cf`].
//!
//! Unsynced writes go to RocksDB's write-ahead log without an fsync; a single
//! syncer thread turns every `sync_then` request that is waiting into one WAL
//! sync (group commit), so 65 Raft groups appending at once pay for one fsync,
//! not 65. The syncer's queue is bounded: a full queue makes callers wait.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteOptions, DB};

use crate::engine::{Cf, KvEngine, Op, SyncDone, Visit, WriteBatch};
use crate::error::{Result, StorageError};

/// How many `sync_then` callers may wait for the syncer before new ones block.
pub const SYNC_QUEUE_MAX: usize = 16 * 1024;
/// Most callbacks served by one WAL sync.
const SYNC_BATCH_MAX: usize = 4096;

/// What RocksDB may hold in memory, whatever the data size: memtables of
/// all column families together, and one block cache shared by them (index
/// and filter blocks included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub memtables_bytes: usize,
    pub block_cache_bytes: usize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            memtables_bytes: 64 << 20,
            block_cache_bytes: 256 << 20,
        }
    }
}

/// How much freed memory the C allocator keeps (see [`tune_c_allocator`]).
pub const C_HEAP_KEEP_BYTES: i32 = 64 << 20;

/// RocksDB allocates every block it reads with the C allocator and frees it
/// when the block leaves the cache. glibc returns the free top of a heap to
/// the kernel once 128 KB are free there, so reading more data than the
/// block cache holds faults the same zero-filled (huge) pages in again and
/// again: 20% of a 10-million-event funnel query. The process calls this
/// once, before it opens an engine: glibc then keeps up to
/// [`C_HEAP_KEEP_BYTES`] free for reuse and serves allocations below that
/// from its heaps instead of fresh mappings. Other C libraries: no effect.
pub fn tune_c_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the
    // engine's threads allocate.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, C_HEAP_KEEP_BYTES);
        libc::mallopt(libc::M_MMAP_THRESHOLD, C_HEAP_KEEP_BYTES / 2);
    }
}

pub struct RocksEngine {
    db: Arc<DB>,
    sync_tx: Mutex<Option<SyncSender<SyncDone>>>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn rocks_err(e: rocksdb::Error) -> StorageError {
    StorageError::Rocks(e.to_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the engine under `path` with the default
    /// memory budget.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, MemoryBudget::default())
    }

    /// Opens (creating if needed) the engine under `path`.
    pub fn open_with(path: &Path, budget: MemoryBudget) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let cache = Cache::new_lru_cache(budget.block_cache_bytes.max(1 << 20));
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        // Most point reads look for keys that do not exist yet (a fresh
        // send's ledger row, a new endpoint): a Bloom filter per table
        // answers those without reading its blocks.
        table.set_bloom_filter(10.0, false);
        // Index and filter blocks are partitioned, the top level pinned and
        // the partitions cached with high priority: a whole table's index
        // block no longer has to be read (and LZ4-decompressed) again
        // whenever data blocks pushed it out of a small cache. Campaign
        // runs spent 40% of their CPU doing that.
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // One memtable may take a quarter of the budget, so flushes start
        // before the whole budget is in use.
        let memtable = (budget.memtables_bytes / 4).max(1 << 20);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        opts.set_max_background_jobs(2);
        opts.set_db_write_buffer_size(budget.memtables_bytes.max(4 << 20));
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_block_based_table_factory(&table);
            o.set_write_buffer_size(memtable);
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs).map_err(rocks_err)?);
        let (tx, rx) = sync_channel::<SyncDone>(SYNC_QUEUE_MAX);
        let db2 = db.clone();
        // The syncer is part of the real engine, outside every simulated path.
        #[allow(clippy::disallowed_methods)]
        let handle = std::thread::Builder::new()
            .name("herald-wal-sync".into())
            .spawn(move || syncer_loop(&db2, &rx))?;
        Ok(Self {
            db,
            sync_tx: Mutex::new(Some(tx)),
            syncer: Mutex::new(Some(handle)),
        })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError::Rocks(format!("missing column family {}", cf.name())))
    }

    /// Flushes the memtables and waits (at most `timeout`) until no flush or
    /// compaction is pending: benchmarks measure a settled database.
    pub fn settle(&self, timeout: std::time::Duration) -> Result<()> {
        let mut o = rocksdb::WaitForCompactOptions::default();
        o.set_flush(true);
        o.set_timeout(u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX));
        self.db.wait_for_compact(&o).map_err(rocks_err)
    }

    /// Syncs the WAL, stops the syncer and flushes memtables. Idempotent.
    pub fn close(&self) -> Result<()> {
        let tx = self.sync_tx.lock().expect("sync tx lock").take();
        drop(tx);
        if let Some(h) = self.syncer.lock().expect("syncer lock").take() {
            let _ = h.join();
        }
        self.db.flush_wal(true).map_err(rocks_err)?;
        self.db.flush().map_err(rocks_err)
    }
}

impl Drop for RocksEngine {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing rocksdb failed");
        }
    }
}

fn syncer_loop(db: &DB, rx: &Receiver<SyncDone>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        while waiting.len() < SYNC_BATCH_MAX {
            match rx.try_recv() {
                Ok(d) => waiting.push(d),
                Err(_) => break,
            }
        }
        let res = db.flush_wal(true).map_err(|e| e.to_string());
        metrics::counter!("herald_storage_wal_syncs_total").increment(1);
        for done in waiting {
            done(res.clone().map_err(StorageError::Rocks));
        }
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(rocks_err)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                Op::Put(cf, k, v) => wb.put_cf(self.cf(*cf)?, k, v),
                Op::Delete(cf, k) => wb.delete_cf(self.cf(*cf)?, k),
                Op::DeleteRange(cf, s, e) => wb.delete_range_cf(self.cf(*cf)?, s, e),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo).map_err(rocks_err)
    }

    fn sync_then(&self, done: SyncDone) {
        let tx = self.sync_tx.lock().expect("sync tx lock").clone();
        match tx {
            Some(tx) => {
                if let Err(e) = tx.send(done) {
                    (e.0)(Err(StorageError::Closed));
                }
            }
            None => done(Err(StorageError::Closed)),
        }
    }

    fn last(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(None);
        }
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_lower_bound(start.to_vec());
        ro.set_iterate_upper_bound(end.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, ro);
        it.seek_to_last();
        if it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                return Ok(Some((k.to_vec(), v.to_vec())));
            }
        }
        it.status().map_err(rocks_err)?;
        Ok(None)
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, ro);
        it.seek(start);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if visit(k, v).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(rocks_err)
    }
}
