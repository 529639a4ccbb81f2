//! openraft state machine for one group, on any [`KvEngine`].
//!
//! Each entry's table writes and the `applied` marker go in one atomic engine
//! write, so after a crash the tables and the marker agree and openraft
//! re-applies exactly the entries after it. Apply writes are not synced: the
//! log they come from is, and the engine's ordered WAL makes a later sync cover
//! them. Snapshots are the group's whole `state` range.

use std::io::Cursor;
use std::ops::ControlFlow;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};

use crate::apply::{apply_command, ApplyObserver, Txn};
use crate::engine::{Cf, KvEngine, WriteBatch};
use crate::keys::{self, tag, GroupId};
use crate::log_store::io_err;
use crate::types::{
    CmdResult, Entry, LogId, RaftStorageError, SnapshotMeta, StoredMembership, TypeConfig,
};

fn sm_err(verb: ErrorVerb, e: impl ToString) -> RaftStorageError {
    io_err(ErrorSubject::StateMachine, verb, e)
}

fn snap_err(verb: ErrorVerb, e: impl ToString) -> RaftStorageError {
    io_err(ErrorSubject::Snapshot(None), verb, e)
}

type Applied = (Option<LogId>, StoredMembership);

/// The state machine of one Raft group.
pub struct StateMachine<E: KvEngine> {
    engine: Arc<E>,
    group: GroupId,
    observer: Option<Arc<dyn ApplyObserver>>,
    applied: Applied,
    snapshot_seq: u64,
}

impl<E: KvEngine> StateMachine<E> {
    pub fn open(
        engine: Arc<E>,
        group: GroupId,
        observer: Option<Arc<dyn ApplyObserver>>,
    ) -> Result<Self, RaftStorageError> {
        let applied = match engine
            .get(Cf::State, &keys::single(group, tag::SM_APPLIED))
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            Some(v) => serde_json::from_slice(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
            None => (None, StoredMembership::default()),
        };
        Ok(Self {
            engine,
            group,
            observer,
            applied,
            snapshot_seq: 0,
        })
    }

    pub fn group(&self) -> GroupId {
        self.group
    }
}

/// Snapshot bytes: `[u32 key len][key][u32 value len][value]...`.
fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let total: usize = pairs.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(total);
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Key-value pairs of a snapshot, in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn decode_pairs(mut data: &[u8]) -> Result<Pairs, String> {
    let mut out = Vec::new();
    let take = |data: &mut &[u8]| -> Result<Vec<u8>, String> {
        if data.len() < 4 {
            return Err("truncated length".into());
        }
        let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if data.len() < 4 + n {
            return Err("truncated value".into());
        }
        let v = data[4..4 + n].to_vec();
        *data = &data[4 + n..];
        Ok(v)
    };
    while !data.is_empty() {
        let k = take(&mut data)?;
        let v = take(&mut data)?;
        out.push((k, v));
    }
    Ok(out)
}

/// Stored form of the current snapshot: `[u32 meta len][meta json][pairs]`.
fn encode_stored_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    let m = serde_json::to_vec(meta).expect("snapshot meta serializes");
    let mut out = Vec::with_capacity(4 + m.len() + data.len());
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(data);
    out
}

fn decode_stored_snapshot(v: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), String> {
    if v.len() < 4 {
        return Err("truncated snapshot".into());
    }
    let n = u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize;
    if v.len() < 4 + n {
        return Err("truncated snapshot meta".into());
    }
    let meta = serde_json::from_slice(&v[4..4 + n]).map_err(|e| e.to_string())?;
    Ok((meta, v[4 + n..].to_vec()))
}

/// Builds a snapshot from state read while no entry was being applied.
pub struct SnapshotBuilder<E: KvEngine> {
    engine: Arc<E>,
    group: GroupId,
    applied: Applied,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    seq: u64,
}

impl<E: KvEngine> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<E> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let data = encode_pairs(&self.pairs);
        let (last_log_id, membership) = self.applied.clone();
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.seq),
            None => format!("0-0-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership: membership,
            snapshot_id,
        };
        let mut b = WriteBatch::new();
        b.put(
            Cf::Raft,
            keys::single(self.group, tag::SNAPSHOT),
            encode_stored_snapshot(&meta, &data),
        );
        self.engine
            .write(b, true)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        metrics::counter!("herald_storage_snapshots_built_total").increment(1);
        metrics::counter!("herald_storage_snapshot_bytes_total").increment(data.len() as u64);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<E: KvEngine> RaftStateMachine<TypeConfig> for StateMachine<E> {
    type SnapshotBuilder = SnapshotBuilder<E>;

    async fn applied_state(&mut self) -> Result<Applied, RaftStorageError> {
        Ok(self.applied.clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CmdResult>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        for entry in entries {
            let mut txn = Txn::new(self.engine.as_ref());
            let result = match &entry.payload {
                EntryPayload::Blank => CmdResult::Done,
                EntryPayload::Normal(cmd) => {
                    let r = apply_command(&mut txn, self.group, entry.log_id.index, cmd)
                        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                    if matches!(r, CmdResult::Rejected(_)) {
                        // Refused as a whole: keep only the applied marker.
                        txn = Txn::new(self.engine.as_ref());
                    }
                    r
                }
                EntryPayload::Membership(m) => {
                    self.applied.1 = StoredMembership::new(Some(entry.log_id), m.clone());
                    CmdResult::Done
                }
            };
            self.applied.0 = Some(entry.log_id);
            txn.put(
                keys::single(self.group, tag::SM_APPLIED),
                serde_json::to_vec(&self.applied).map_err(|e| sm_err(ErrorVerb::Write, e))?,
            );
            let changes = std::mem::take(&mut txn.changes);
            self.engine
                .write(txn.batch, false)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            if let (Some(o), false) = (&self.observer, changes.is_empty()) {
                o.applied(self.group, &changes);
            }
            results.push(result);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Read the state here, on the state machine's task, so no apply runs
        // concurrently with it and the snapshot is consistent.
        let (start, end) = keys::group_range(self.group);
        let mut pairs = Vec::new();
        let res = self.engine.scan(Cf::State, &start, &end, &mut |k, v| {
            pairs.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        });
        if let Err(e) = res {
            tracing::error!(group = self.group, error = %e, "reading state for a snapshot failed");
        }
        self.snapshot_seq += 1;
        SnapshotBuilder {
            engine: self.engine.clone(),
            group: self.group,
            applied: self.applied.clone(),
            pairs,
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let data = snapshot.into_inner();
        let pairs = decode_pairs(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let (start, end) = keys::group_range(self.group);
        let mut b = WriteBatch::new();
        b.delete_range(Cf::State, start.clone(), end.clone());
        for (k, v) in pairs {
            if k < start || k >= end {
                return Err(snap_err(
                    ErrorVerb::Read,
                    "snapshot holds a key of another group",
                ));
            }
            b.put(Cf::State, k, v);
        }
        let applied: Applied = (meta.last_log_id, meta.last_membership.clone());
        b.put(
            Cf::State,
            keys::single(self.group, tag::SM_APPLIED),
            serde_json::to_vec(&applied).map_err(|e| snap_err(ErrorVerb::Write, e))?,
        );
        b.put(
            Cf::Raft,
            keys::single(self.group, tag::SNAPSHOT),
            encode_stored_snapshot(meta, &data),
        );
        self.engine
            .write(b, true)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.applied = applied;
        if let Some(o) = &self.observer {
            o.reset(self.group);
        }
        metrics::counter!("herald_storage_snapshots_installed_total").increment(1);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let Some(v) = self
            .engine
            .get(Cf::Raft, &keys::single(self.group, tag::SNAPSHOT))
            .map_err(|e| snap_err(ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        let (meta, data) = decode_stored_snapshot(&v).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_pairs_round_trip() {
        let pairs = vec![
            (b"k1".to_vec(), b"v1".to_vec()),
            (b"k2".to_vec(), Vec::new()),
        ];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)).unwrap(), pairs);
        assert!(decode_pairs(&[0, 0, 0, 9, 1]).is_err());
    }
}
