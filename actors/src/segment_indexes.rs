//! The node's segment indexes: one [`SegmentIndex`] per hosted data shard,
//! kept in step with the state machine (every applied endpoint change is
//! applied to the index before the apply is acknowledged to the observer's
//! caller returns) and rebuilt from storage at start and after a snapshot
//! is installed. Dimensional segments are evaluated here, without reading a
//! single endpoint; campaign runs then read only the members.

use std::sync::{OnceLock, RwLock};

use herald_model::segment::SegmentDimensions;
use herald_model::segment_index::SegmentIndex;
use herald_model::wire::EndpointResponse;
use herald_storage::{Change, GroupId, KvEngine, Reader};

/// Rebuilds a group's index from what the reader sees.
type Rebuild = Box<dyn Fn(GroupId) -> herald_storage::Result<SegmentIndex> + Send + Sync>;

pub struct SegmentIndexes {
    /// By group id (group 0, the meta group, stays empty).
    groups: Vec<RwLock<SegmentIndex>>,
    rebuild: OnceLock<Rebuild>,
    /// Set once every group's index is built; until then nothing answers.
    ready: std::sync::atomic::AtomicBool,
}

impl SegmentIndexes {
    pub fn new(groups: usize) -> Self {
        Self {
            groups: (0..groups)
                .map(|_| RwLock::new(SegmentIndex::new()))
                .collect(),
            rebuild: OnceLock::new(),
            ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Connects the indexes to storage and builds every data group's index,
    /// showing each endpoint read to `each` too (so other in-memory tables
    /// are built in the same pass over storage).
    pub fn attach<E: KvEngine>(
        &self,
        reader: Reader<E>,
        data_groups: impl Iterator<Item = GroupId>,
        each: &mut dyn FnMut(GroupId, &str, &EndpointResponse),
    ) -> herald_storage::Result<()> {
        let first = reader.clone();
        let rebuild: Rebuild = Box::new(move |g| build(&reader, g, &mut |_, _| {}));
        self.rebuild.get_or_init(|| rebuild);
        for g in data_groups {
            if let Some(slot) = self.groups.get(g as usize) {
                let mut idx = slot.write().unwrap_or_else(|e| e.into_inner());
                *idx = build(&first, g, &mut |app, ep| each(g, app, ep))?;
            }
        }
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Whether the endpoint exists in `group` (as the index knows it).
    pub fn contains(&self, group: GroupId, app_id: &str, endpoint_id: &str) -> bool {
        self.slot(group).is_some_and(|s| {
            let idx = s.read().unwrap_or_else(|e| e.into_inner());
            idx.ordinal(app_id, endpoint_id).is_some()
        })
    }

    /// Endpoints indexed in `group`.
    pub fn endpoints(&self, group: GroupId) -> usize {
        self.slot(group)
            .map_or(0, |s| s.read().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Rebuilds under the group's write lock, so a change applied meanwhile
    /// (its observer call waits for the lock) lands after the rebuild.
    fn replace(&self, g: GroupId, rebuild: &Rebuild) -> herald_storage::Result<()> {
        if let Some(slot) = self.groups.get(g as usize) {
            let mut idx = slot.write().unwrap_or_else(|e| e.into_inner());
            *idx = rebuild(g)?;
        }
        Ok(())
    }

    pub fn applied(&self, group: GroupId, changes: &[Change]) {
        let Some(slot) = self.groups.get(group as usize) else {
            return;
        };
        let mut idx = slot.write().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            match c {
                Change::Endpoint {
                    app_id,
                    endpoint: Some(ep),
                    ..
                } => idx.upsert(app_id, ep),
                Change::Endpoint {
                    app_id,
                    endpoint_id,
                    endpoint: None,
                } => idx.remove(app_id, endpoint_id),
                Change::AppPurged { app_id } => idx.remove_app(app_id),
                Change::Session { .. } => {}
            }
        }
    }

    /// A snapshot replaced the group's state.
    pub fn reset(&self, group: GroupId) {
        if let Some(rebuild) = self.rebuild.get() {
            if let Err(e) = self.replace(group, rebuild) {
                tracing::error!(group, error = %e, "rebuilding a segment index failed");
            }
        }
    }

    fn slot(&self, group: GroupId) -> Option<&RwLock<SegmentIndex>> {
        if !self.ready.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.groups.get(group as usize)
    }

    /// Ids of the app's endpoints in `group` matching `dims` now; `None`
    /// when the group has no index here (the caller scans instead).
    pub fn members(
        &self,
        group: GroupId,
        app_id: &str,
        dims: &SegmentDimensions,
        now_ms: i64,
    ) -> Option<Vec<String>> {
        let idx = self.slot(group)?.read().unwrap_or_else(|e| e.into_inner());
        Some(
            idx.evaluate(app_id, dims, now_ms)
                .iter()
                .filter_map(|o| idx.endpoint_id(o).map(str::to_owned))
                .collect(),
        )
    }

    /// How many of the app's endpoints in `group` match `dims` now.
    pub fn count(
        &self,
        group: GroupId,
        app_id: &str,
        dims: &SegmentDimensions,
        now_ms: i64,
    ) -> Option<u64> {
        let idx = self.slot(group)?.read().unwrap_or_else(|e| e.into_inner());
        Some(idx.count(app_id, dims, now_ms))
    }

    /// Endpoints indexed and heap bytes held, over every group.
    pub fn stats(&self) -> (usize, usize) {
        self.groups.iter().fold((0, 0), |(n, b), slot| {
            let idx = slot.read().unwrap_or_else(|e| e.into_inner());
            (n + idx.len(), b + idx.heap_bytes())
        })
    }
}

fn build<E: KvEngine>(
    reader: &Reader<E>,
    g: GroupId,
    each: &mut dyn FnMut(&str, &EndpointResponse),
) -> herald_storage::Result<SegmentIndex> {
    let mut idx = SegmentIndex::new();
    reader.for_each_endpoint(g, &mut |app, ep| {
        idx.upsert(app, &ep);
        each(app, &ep);
    })?;
    Ok(idx)
}
