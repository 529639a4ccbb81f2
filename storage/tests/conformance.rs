//! Storage conformance: openraft's own storage suite and herald's checks, run
//! against both engines (RocksDB and the in-memory twin).

use std::sync::Arc;

use herald_model::wire::{EndpointRequest, EndpointUser};
use herald_storage::{
    ApplyLimits, CmdResult, Command, EndpointUpsert, KvEngine, LogStore, MemEngine, Reader,
    RocksEngine, StateMachine, TypeConfig, META_GROUP,
};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};

const GROUP: u32 = 3;

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore<MemEngine>, StateMachine<MemEngine>, ()> for MemBuilder {
    async fn build(
        &self,
    ) -> Result<((), LogStore<MemEngine>, StateMachine<MemEngine>), openraft::StorageError<u64>>
    {
        let e = Arc::new(MemEngine::new());
        Ok((
            (),
            LogStore::new(e.clone(), GROUP),
            StateMachine::open(e, GROUP, None)?,
        ))
    }
}

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore<RocksEngine>, StateMachine<RocksEngine>, tempfile::TempDir>
    for RocksBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            LogStore<RocksEngine>,
            StateMachine<RocksEngine>,
        ),
        openraft::StorageError<u64>,
    > {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Arc::new(RocksEngine::open(dir.path()).expect("open rocksdb"));
        Ok((
            dir,
            LogStore::new(e.clone(), GROUP),
            StateMachine::open(e, GROUP, None)?,
        ))
    }
}

#[test]
fn openraft_suite_on_memory_engine() {
    Suite::test_all(MemBuilder).expect("openraft storage suite");
}

#[test]
fn openraft_suite_on_rocksdb_engine() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite");
}

// ---- herald's own checks, generic over the engine ----------------------------------

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn limits() -> ApplyLimits {
    ApplyLimits {
        endpoint_bytes_max: 15 * 1024,
        endpoint_attributes_max: 250,
        session_idle_timeout_ms: 1_800_000,
        rollups: true,
    }
}

fn upsert(index: u64, id: &str, user: Option<&str>) -> Entry<TypeConfig> {
    let request = EndpointRequest {
        address: Some(format!("{id}@example.com")),
        channel_type: Some("EMAIL".into()),
        user: user.map(|u| EndpointUser {
            user_id: Some(u.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Command::UpsertEndpoints {
            app_id: "app1".into(),
            now_iso: "2026-11-29T00:00:00.000Z".into(),
            limits: limits(),
            items: vec![EndpointUpsert {
                endpoint_id: id.into(),
                request,
                seq: 0,
            }],
        }),
    }
}

async fn append_durably<E: KvEngine>(log: &mut LogStore<E>, entries: Vec<Entry<TypeConfig>>) {
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.expect("append");
}

/// Applied state survives reopening the engine's tables with a new state machine.
async fn applied_state_is_recovered<E: KvEngine>(engine: Arc<E>) {
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    let res = sm
        .apply(vec![
            upsert(1, "e1", Some("u1")),
            upsert(2, "e2", Some("u1")),
        ])
        .await
        .unwrap();
    assert!(matches!(&res[0], CmdResult::Written { endpoints, .. } if endpoints.len() == 1));
    drop(sm);
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));
    let reader = Reader::new(engine);
    let ep = reader
        .endpoint(GROUP, "app1", "e2")
        .unwrap()
        .expect("endpoint e2 stored");
    assert_eq!(ep.address.as_deref(), Some("e2@example.com"));
    assert_eq!(
        reader.user_endpoint_ids(GROUP, "app1", "u1").unwrap(),
        vec!["e1", "e2"]
    );
}

/// A snapshot built on one engine and installed on another reproduces the state.
async fn snapshot_moves_state<E: KvEngine, F: KvEngine>(from: Arc<E>, to: Arc<F>) {
    let mut sm = StateMachine::open(from.clone(), GROUP, None).unwrap();
    sm.apply(vec![upsert(1, "a", None), upsert(2, "b", Some("u"))])
        .await
        .unwrap();
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut other = StateMachine::open(to.clone(), GROUP, None).unwrap();
    // Something the snapshot must replace.
    other.apply(vec![upsert(1, "stale", None)]).await.unwrap();
    other
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    let r = Reader::new(to);
    assert!(r.endpoint(GROUP, "app1", "stale").unwrap().is_none());
    assert!(r.endpoint(GROUP, "app1", "b").unwrap().is_some());
    assert_eq!(other.applied_state().await.unwrap().0, Some(log_id(1, 2)));
    assert_eq!(
        Reader::new(from).state_key_count(GROUP).unwrap(),
        r.state_key_count(GROUP).unwrap()
    );
}

/// A rejected command changes nothing but the applied marker.
async fn rejected_command_writes_nothing<E: KvEngine>(engine: Arc<E>) {
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    let mut too_big = upsert(1, "x", None);
    if let EntryPayload::Normal(Command::UpsertEndpoints { limits, items, .. }) =
        &mut too_big.payload
    {
        limits.endpoint_bytes_max = 10;
        items.insert(
            0,
            EndpointUpsert {
                endpoint_id: "first".into(),
                request: EndpointRequest::default(),
                seq: 0,
            },
        );
    }
    let res = sm.apply(vec![too_big]).await.unwrap();
    assert!(matches!(res[0], CmdResult::Rejected(_)), "{res:?}");
    let r = Reader::new(engine);
    assert!(
        r.endpoint(GROUP, "app1", "first").unwrap().is_none(),
        "half of a rejected batch was applied"
    );
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 1)));
}

/// Log entries acknowledged by the append callback survive a crash.
async fn acknowledged_log_survives_crash(engine: Arc<MemEngine>) {
    let mut log = LogStore::new(engine.clone(), GROUP);
    append_durably(&mut log, vec![upsert(1, "a", None), upsert(2, "b", None)]).await;
    engine.crash();
    let mut log = LogStore::new(engine, GROUP);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 2)));
    assert_eq!(log.try_get_log_entries(1..3).await.unwrap().len(), 2);
}

/// Unsynced state machine writes may be lost by a crash, but then the applied
/// marker goes with them, so openraft re-applies from the log.
async fn crash_keeps_tables_and_marker_consistent(engine: Arc<MemEngine>) {
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    sm.apply(vec![upsert(1, "a", None)]).await.unwrap();
    engine.crash();
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    let applied = sm.applied_state().await.unwrap().0;
    let present = Reader::new(engine)
        .endpoint(GROUP, "app1", "a")
        .unwrap()
        .is_some();
    assert_eq!(
        applied.is_some(),
        present,
        "tables and applied marker disagree after a crash"
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn rocks() -> (tempfile::TempDir, Arc<RocksEngine>) {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(RocksEngine::open(dir.path()).unwrap());
    (dir, e)
}

#[test]
fn applied_state_is_recovered_on_both_engines() {
    rt().block_on(applied_state_is_recovered(Arc::new(MemEngine::new())));
    let (_d, e) = rocks();
    rt().block_on(applied_state_is_recovered(e));
}

#[test]
fn snapshots_move_state_between_engines() {
    let (_d1, r1) = rocks();
    let (_d2, r2) = rocks();
    rt().block_on(snapshot_moves_state(Arc::new(MemEngine::new()), r1));
    rt().block_on(snapshot_moves_state(r2, Arc::new(MemEngine::new())));
}

#[test]
fn rejected_commands_write_nothing_on_both_engines() {
    rt().block_on(rejected_command_writes_nothing(Arc::new(MemEngine::new())));
    let (_d, e) = rocks();
    rt().block_on(rejected_command_writes_nothing(e));
}

fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(cmd),
    }
}

/// Imported segment members are added once, removed with their segment,
/// and purged with their app.
async fn segment_members_follow_segment_and_app<E: KvEngine>(engine: Arc<E>) {
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    let add = |i, seg: &str, ids: &[&str]| {
        entry(
            i,
            Command::AddSegmentMembers {
                app_id: "app1".into(),
                segment_id: seg.into(),
                endpoint_ids: ids.iter().map(|s| s.to_string()).collect(),
            },
        )
    };
    let res = sm
        .apply(vec![
            add(1, "s1", &["a", "b"]),
            add(2, "s1", &["b", "c"]),
            add(3, "s2", &["a"]),
        ])
        .await
        .unwrap();
    assert_eq!(res[1], CmdResult::Count(1), "b was a member already");
    let r = Reader::new(engine.clone());
    let members = |seg: &str| {
        let mut out = Vec::new();
        r.for_each_segment_member(GROUP, "app1", seg, &mut |id| {
            out.push(id);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        out
    };
    assert_eq!(members("s1"), vec!["a", "b", "c"]);
    assert!(r.is_segment_member(GROUP, "app1", "s2", "a").unwrap());
    assert!(!r.is_segment_member(GROUP, "app1", "s2", "b").unwrap());
    sm.apply(vec![entry(
        4,
        Command::RemoveSegmentMembers {
            app_id: "app1".into(),
            segment_id: "s1".into(),
        },
    )])
    .await
    .unwrap();
    assert!(members("s1").is_empty());
    assert_eq!(members("s2"), vec!["a"]);
    sm.apply(vec![entry(
        5,
        Command::PurgeApp {
            app_id: "app1".into(),
        },
    )])
    .await
    .unwrap();
    assert!(members("s2").is_empty());
}

#[test]
fn segment_members_on_both_engines() {
    rt().block_on(segment_members_follow_segment_and_app(Arc::new(
        MemEngine::new(),
    )));
    let (_d, e) = rocks();
    rt().block_on(segment_members_follow_segment_and_app(e));
}

/// Every group, meta and data alike, records retired node ids, and a
/// snapshot carries them to the replica that installs it.
async fn retired_nodes_are_kept_per_group<E: KvEngine>(engine: Arc<E>) {
    let r = Reader::new(engine.clone());
    for group in [META_GROUP, GROUP] {
        let mut sm = StateMachine::open(engine.clone(), group, None).unwrap();
        let res = sm
            .apply(vec![entry(1, Command::RetireNode { node: 4 })])
            .await
            .unwrap();
        assert_eq!(res, vec![CmdResult::Done], "group {group}");
        assert!(r.is_retired(group, 4).unwrap());
        assert!(!r.is_retired(group, 5).unwrap());
    }
    let mut sm = StateMachine::open(engine.clone(), GROUP, None).unwrap();
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let other = Arc::new(MemEngine::new());
    let mut replica = StateMachine::open(other.clone(), GROUP, None).unwrap();
    replica
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    let r = Reader::new(other);
    assert!(r.is_retired(GROUP, 4).unwrap());
    assert!(!r.is_retired(META_GROUP, 4).unwrap(), "each group its own");
}

#[test]
fn retired_nodes_on_both_engines() {
    rt().block_on(retired_nodes_are_kept_per_group(Arc::new(MemEngine::new())));
    let (_d, e) = rocks();
    rt().block_on(retired_nodes_are_kept_per_group(e));
}

#[test]
fn memory_engine_crash_semantics() {
    rt().block_on(acknowledged_log_survives_crash(Arc::new(MemEngine::new())));
    rt().block_on(crash_keeps_tables_and_marker_consistent(Arc::new(
        MemEngine::new(),
    )));
}

#[test]
fn rocksdb_reopen_keeps_acknowledged_log() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let e = Arc::new(RocksEngine::open(dir.path()).unwrap());
        let mut log = LogStore::new(e.clone(), GROUP);
        append_durably(&mut log, vec![upsert(1, "a", None)]).await;
        drop(log);
        e.close().unwrap();
    });
    rt().block_on(async {
        let e = Arc::new(RocksEngine::open(dir.path()).unwrap());
        let mut log = LogStore::new(e, GROUP);
        assert_eq!(
            log.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 1))
        );
    });
}
