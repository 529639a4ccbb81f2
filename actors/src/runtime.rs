//! Starts and stops everything one node runs below the HTTP API: the Raft
//! groups, a shard actor per data shard, and the request service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_cluster::{ClusterError, HostConfig, RaftHost, Transport};
use herald_storage::KvEngine;
use ractor::{Actor, ActorRef};

use crate::clock::Clock;
use crate::engagement::EngagementTable;
use crate::service::{Herald, ServiceConfig, ServiceError};
use crate::shard::{ShardActor, ShardArgs, ShardMsg, ShardObserver, ShardSettings, ShardStats};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("starting a shard actor: {0}")]
    Actor(String),
    #[error("finishing interrupted app deletions: {0}")]
    Recovery(String),
}

pub struct Runtime<E: KvEngine> {
    pub herald: Arc<Herald<E>>,
    pub host: Arc<RaftHost<E>>,
    shards: Vec<(ActorRef<ShardMsg>, tokio::task::JoinHandle<()>)>,
}

impl<E: KvEngine> Runtime<E> {
    pub async fn start(
        engine: Arc<E>,
        host_cfg: HostConfig,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        service_cfg: ServiceConfig,
        mut shard_settings: ShardSettings,
    ) -> Result<Self, StartError> {
        shard_settings.session_idle_timeout_ms = service_cfg.session_idle_timeout_ms;
        let indexes = Arc::new(crate::segment_indexes::SegmentIndexes::new(
            host_cfg.shards as usize + 1,
        ));
        let observer = Arc::new(ShardObserver::new(indexes.clone()));
        let host =
            Arc::new(RaftHost::start(engine, host_cfg, transport, Some(observer.clone())).await?);
        // Nodes of a cluster start in any order and at any pace: wait for a
        // majority of each group's voters as long as it takes, saying so.
        let mut waited = 0u64;
        loop {
            let e = match host.wait_ready(Duration::from_secs(10)).await {
                Ok(()) => break,
                Err(e @ herald_cluster::ClusterError::Unavailable(_)) => e,
                Err(e) => return Err(e.into()),
            };
            waited += 10;
            tracing::warn!(
                waited_secs = waited,
                error = %e,
                "waiting for every raft group to elect a leader (a majority of its voters must be up)"
            );
        }
        let started_ms = clock.now_ms();
        // One pass over the stored endpoints builds the segment indexes and
        // the engagement tables.
        let mut tables: BTreeMap<herald_storage::GroupId, EngagementTable> = BTreeMap::new();
        indexes
            .attach(
                host.reader().clone(),
                host.data_groups(),
                &mut |g, app, ep| tables.entry(g).or_default().endpoint(app, ep),
            )
            .map_err(|e| StartError::Recovery(format!("building segment indexes: {e}")))?;
        let (n, bytes) = indexes.stats();
        tracing::info!(
            endpoints = n,
            index_bytes = bytes,
            elapsed_ms = clock.now_ms() - started_ms,
            "segment indexes built"
        );
        let mut shards = Vec::new();
        let mut directory = BTreeMap::new();
        for g in host.data_groups() {
            let mut table = tables.remove(&g).unwrap_or_default();
            table
                .load_sessions(host.reader(), g)
                .map_err(|e| StartError::Recovery(format!("reading open sessions: {e}")))?;
            let args = ShardArgs {
                group: g,
                host: host.clone(),
                indexes: indexes.clone(),
                table: Some(table),
                clock: clock.clone(),
                settings: shard_settings.clone(),
            };
            let (actor, handle) = Actor::spawn(None, ShardActor::<E>::default(), args)
                .await
                .map_err(|e| StartError::Actor(e.to_string()))?;
            directory.insert(g, actor.clone());
            shards.push((actor, handle));
        }
        observer.set_shards(directory);
        // The shard actors built their engagement tables in `pre_start`.
        let mut table_bytes = 0;
        for (a, _) in &shards {
            if let Ok(s) = ractor::call!(a, ShardMsg::Stats) {
                table_bytes += s.engagement_bytes;
            }
        }
        let elapsed_ms = clock.now_ms() - started_ms;
        tracing::info!(
            endpoints = n,
            index_bytes = bytes,
            engagement_bytes = table_bytes,
            elapsed_ms,
            "in-memory tables built"
        );
        metrics::gauge!("herald_memory_tables_endpoints").set(n as f64);
        metrics::gauge!("herald_segment_index_bytes").set(bytes as f64);
        metrics::gauge!("herald_engagement_table_bytes").set(table_bytes as f64);
        metrics::gauge!("herald_memory_tables_build_seconds").set(elapsed_ms as f64 / 1000.0);
        let herald = Arc::new(Herald::new(host.clone(), clock, service_cfg));
        herald.set_segment_indexes(indexes);
        host.serve_app(Arc::new(crate::node_calls::NodeService::new(&herald)));
        // A node that restarts into a busy cluster may take longer than a
        // request's deadline to catch its meta replica up: these passes
        // retry while the cluster says "not now", saying so.
        let mut waited = 0u64;
        loop {
            let pass = async {
                herald.resume_deletions().await?;
                herald.fail_interrupted_jobs().await.map(|_| ())
            };
            match pass.await {
                Ok(()) => break,
                Err(e @ ServiceError::TooManyRequests(_)) => {
                    waited += 1;
                    tracing::warn!(attempt = waited, error = %e, "recovery passes wait for the cluster");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(StartError::Recovery(e.to_string())),
            }
        }
        Ok(Self {
            herald,
            host,
            shards,
        })
    }

    /// The shard actor of a data group.
    pub fn shard(&self, group: herald_storage::GroupId) -> Option<&ActorRef<ShardMsg>> {
        self.shards
            .get(group.checked_sub(1)? as usize)
            .map(|(a, _)| a)
    }

    /// Sum of every shard actor's statistics.
    pub async fn shard_stats(&self) -> ShardStats {
        let mut total = ShardStats::default();
        for (a, _) in &self.shards {
            if let Ok(s) = ractor::call!(a, ShardMsg::Stats) {
                total.endpoints += s.endpoints;
                total.open_sessions += s.open_sessions;
                total.resident_endpoint_actors += s.resident_endpoint_actors;
                total.activations += s.activations;
                total.passivations += s.passivations;
                total.engagement_bytes += s.engagement_bytes;
            }
        }
        total
    }

    /// Stops the actors, then the Raft groups.
    pub async fn shutdown(self) {
        for (a, h) in self.shards {
            a.stop(Some("node shutting down".into()));
            let _ = h.await;
        }
        self.host.shutdown().await;
    }
}
