//! The Raft host on one node: every group elects this node, proposals are
//! applied by the owning group, reads after a barrier see them, and a restart
//! on the same engine keeps everything and the shard count.

use std::sync::Arc;
use std::time::Duration;

use herald_cluster::{ClusterError, HostConfig, LocalTransport, RaftHost};
use herald_storage::{CmdResult, Command, KvEngine, MemEngine, META_GROUP};

mod common;
use common::upsert;

fn cfg(shards: u32) -> HostConfig {
    HostConfig {
        shards,
        heartbeat_ms: 50,
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        ..HostConfig::default()
    }
}

async fn start<E: KvEngine>(engine: Arc<E>, shards: u32) -> RaftHost<E> {
    let host = RaftHost::start(engine, cfg(shards), Arc::new(LocalTransport::new()), None)
        .await
        .expect("start");
    host.wait_ready(Duration::from_secs(10))
        .await
        .expect("leaders");
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_through_the_owning_group_and_survive_restart() {
    let engine = Arc::new(MemEngine::new());
    let host = start(engine.clone(), 4).await;
    assert_eq!(host.rafts().len(), 5, "meta group plus 4 shards");
    let ids: Vec<String> = (0..20).map(|i| format!("ep-{i}")).collect();
    for id in &ids {
        let g = host.group_of("app", id);
        let r = host.propose(g, upsert(id)).await.unwrap();
        assert!(
            matches!(r, CmdResult::Written { ref endpoints, .. } if endpoints.len() == 1),
            "{r:?}"
        );
    }
    // Endpoints spread over more than one shard and each lives in its own.
    let groups: std::collections::BTreeSet<_> =
        ids.iter().map(|id| host.group_of("app", id)).collect();
    assert!(groups.len() > 1);
    for id in &ids {
        let g = host.group_of("app", id);
        host.read_barrier(g).await.unwrap();
        assert!(host.reader().endpoint(g, "app", id).unwrap().is_some());
        let other = host.data_groups().find(|x| *x != g).unwrap();
        assert!(host.reader().endpoint(other, "app", id).unwrap().is_none());
    }
    // A data command sent to the meta group is refused by its state machine.
    host.shutdown().await;
    drop(host);

    // Restart with a different configured shard count: the recorded one wins.
    let host = start(engine, 16).await;
    assert_eq!(host.shards(), 4);
    for id in &ids {
        let g = host.group_of("app", id);
        host.read_barrier(g).await.unwrap();
        assert!(
            host.reader().endpoint(g, "app", id).unwrap().is_some(),
            "{id} lost on restart"
        );
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_group_refuses_data_commands() {
    let host = start(Arc::new(MemEngine::new()), 2).await;
    let r = host
        .propose(1, Command::RemoveApp { app_id: "x".into() })
        .await
        .unwrap();
    assert!(matches!(r, CmdResult::Rejected(_)), "{r:?}");
    let r = host
        .propose(META_GROUP, Command::RemoveApp { app_id: "x".into() })
        .await
        .unwrap();
    assert_eq!(r, CmdResult::App(None));
    assert!(matches!(
        host.propose(99, Command::RemoveApp { app_id: "x".into() })
            .await,
        Err(ClusterError::NoSuchGroup(99))
    ));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_built_and_logs_purged() {
    let engine = Arc::new(MemEngine::new());
    let mut c = cfg(1);
    c.snapshot_every_entries = 50;
    c.log_kept_after_snapshot = 5;
    let host = RaftHost::start(
        engine.clone(),
        c.clone(),
        Arc::new(LocalTransport::new()),
        None,
    )
    .await
    .unwrap();
    host.wait_ready(Duration::from_secs(10)).await.unwrap();
    for i in 0..120 {
        host.propose(1, upsert(&format!("e{i}"))).await.unwrap();
    }
    let raft = host.rafts()[1].clone();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 50),
            "snapshot built",
        )
        .await
        .unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some(), "log purged")
        .await
        .unwrap();
    host.shutdown().await;
    drop(host);
    // Restart from snapshot + remaining log.
    let host = RaftHost::start(engine, c, Arc::new(LocalTransport::new()), None)
        .await
        .unwrap();
    host.wait_ready(Duration::from_secs(10)).await.unwrap();
    host.read_barrier(1).await.unwrap();
    for i in 0..120 {
        assert!(
            host.reader()
                .endpoint(1, "app", &format!("e{i}"))
                .unwrap()
                .is_some(),
            "e{i} lost"
        );
    }
    host.shutdown().await;
}
