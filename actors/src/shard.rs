//! The shard actor: one per hosted data shard.
//!
//! It owns the shard's engagement table (fed by the state machine's applied
//! changes), closes idle sessions on a timer by proposing a command through
//! Raft (so the decision is replicated and replayable), finishes address
//! hand-overs left pending (see [`crate::addresses`]), and hosts the shard's
//! virtual endpoint actors: activated on demand, passivated when idle, never
//! more than `endpoint_actors_max` resident (the least recently used goes).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use herald_cluster::RaftHost;
use herald_storage::{ApplyObserver, Change, Command, GroupId, KvEngine};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::clock::Clock;
use crate::endpoint::{EndpointActor, EndpointMsg};
use crate::engagement::{Engagement, EngagementTable};

#[derive(Debug, Clone)]
pub struct ShardSettings {
    /// A session without activity for this long is closed.
    pub session_idle_timeout_ms: i64,
    /// How often the shard looks for idle sessions and idle endpoint actors.
    pub sweep_interval: Duration,
    /// Resident endpoint actors per shard at most.
    pub endpoint_actors_max: usize,
    /// An endpoint actor idle this long is passivated.
    pub endpoint_actor_idle_ms: i64,
    /// Address claims younger than this are left to the request that made
    /// them; older ones still pending are handed over by the sweep.
    pub claim_grace_ms: i64,
    /// A send intent without an outcome after this long is resolved as
    /// UNKNOWN_FAILURE by the sweep (longer than any send can take).
    pub send_unresolved_ms: i64,
    /// Send-ledger rows older than this are forgotten by the sweep. Longer
    /// than the dedup window (a retried request must still find its rows).
    pub send_retention_ms: i64,
    /// Days raw events are kept when the app sets nothing.
    pub event_retention_days: u32,
    /// How often the shard's leader expires raw events past retention.
    pub event_expiry_every_ms: i64,
}

impl Default for ShardSettings {
    fn default() -> Self {
        Self {
            session_idle_timeout_ms: 30 * 60 * 1000,
            sweep_interval: Duration::from_secs(10),
            endpoint_actors_max: 1024,
            endpoint_actor_idle_ms: 60_000,
            claim_grace_ms: 5_000,
            send_unresolved_ms: 60 * 60 * 1000,
            send_retention_ms: 7 * 24 * 60 * 60 * 1000,
            event_retention_days: 90,
            event_expiry_every_ms: 10 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    pub endpoints: usize,
    pub open_sessions: usize,
    pub resident_endpoint_actors: usize,
    pub activations: u64,
    pub passivations: u64,
    /// Heap bytes of the engagement table.
    pub engagement_bytes: usize,
}

pub enum ShardMsg {
    Applied(Vec<Change>),
    Reset,
    Engagement {
        app_id: String,
        endpoint_id: String,
        reply: RpcReplyPort<Option<Engagement>>,
    },
    /// Returns the endpoint's actor, activating it if needed.
    Activate {
        app_id: String,
        endpoint_id: String,
        reply: RpcReplyPort<ActorRef<EndpointMsg>>,
    },
    Stats(RpcReplyPort<ShardStats>),
    Sweep,
}

pub struct ShardActor<E: KvEngine> {
    _e: std::marker::PhantomData<fn() -> E>,
}

impl<E: KvEngine> Default for ShardActor<E> {
    fn default() -> Self {
        Self {
            _e: std::marker::PhantomData,
        }
    }
}

pub struct ShardArgs<E: KvEngine> {
    pub group: GroupId,
    pub host: Arc<RaftHost<E>>,
    /// Which endpoints exist (the engagement table keeps only exceptions).
    pub indexes: Arc<crate::segment_indexes::SegmentIndexes>,
    /// The engagement table built at start; `None`: build it from storage.
    pub table: Option<EngagementTable>,
    pub clock: Arc<dyn Clock>,
    pub settings: ShardSettings,
}

struct Resident {
    actor: ActorRef<EndpointMsg>,
    last_used_ms: i64,
}

pub struct ShardState<E: KvEngine> {
    args: ShardArgs<E>,
    table: EngagementTable,
    resident: BTreeMap<(String, String), Resident>,
    sweeping: Arc<std::sync::atomic::AtomicBool>,
    handing_over: Arc<std::sync::atomic::AtomicBool>,
    /// When raw events were last expired (ms; 0: never).
    expired_at: Arc<std::sync::atomic::AtomicI64>,
    stats: ShardStats,
}

impl<E: KvEngine> ShardState<E> {
    /// The endpoint's engagement; `None` if it does not exist.
    fn engagement(&self, app_id: &str, endpoint_id: &str) -> Option<Engagement> {
        self.args
            .indexes
            .contains(self.args.group, app_id, endpoint_id)
            .then(|| self.table.get(app_id, endpoint_id))
    }

    fn evict(&mut self, key: &(String, String)) {
        if let Some(r) = self.resident.remove(key) {
            r.actor.stop(Some("passivated".into()));
            self.stats.passivations += 1;
            metrics::counter!("herald_endpoint_actor_passivations_total").increment(1);
        }
    }
}

impl<E: KvEngine> Actor for ShardActor<E> {
    type Msg = ShardMsg;
    type State = ShardState<E>;
    type Arguments = ShardArgs<E>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        mut args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let table = match args.table.take() {
            Some(t) => t,
            None => EngagementTable::rebuild(args.host.reader(), args.group)?,
        };
        // Shards sweep at evenly spread offsets: all of them sweeping at once
        // (each proposing to every other shard) stalled requests for 150 ms+.
        let shards = args.host.data_groups().count().max(1) as u32;
        let interval = args.settings.sweep_interval;
        let offset = interval.mul_f64(f64::from(args.group % shards) / f64::from(shards));
        let me = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            me.send_interval(interval, || ShardMsg::Sweep);
        });
        Ok(ShardState {
            args,
            table,
            resident: BTreeMap::new(),
            sweeping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            handing_over: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            expired_at: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            stats: ShardStats::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Applied(changes) => {
                for c in &changes {
                    st.table.apply(c);
                    let key = match c {
                        Change::Endpoint {
                            app_id,
                            endpoint_id,
                            ..
                        }
                        | Change::Session {
                            app_id,
                            endpoint_id,
                            ..
                        } => Some((app_id.clone(), endpoint_id.clone())),
                        Change::AppPurged { .. } => None,
                    };
                    if let Some(key) = key {
                        if let Some(r) = st.resident.get(&key) {
                            let _ = r
                                .actor
                                .cast(EndpointMsg::Changed(st.engagement(&key.0, &key.1)));
                        }
                    }
                    if let Change::AppPurged { app_id } = c {
                        let gone: Vec<_> = st
                            .resident
                            .keys()
                            .filter(|(a, _)| a == app_id)
                            .cloned()
                            .collect();
                        for k in gone {
                            st.evict(&k);
                        }
                    }
                }
            }
            ShardMsg::Reset => {
                st.table = EngagementTable::rebuild(st.args.host.reader(), st.args.group)?;
                let keys: Vec<_> = st.resident.keys().cloned().collect();
                for k in keys {
                    st.evict(&k);
                }
            }
            ShardMsg::Engagement {
                app_id,
                endpoint_id,
                reply,
            } => {
                let _ = reply.send(st.engagement(&app_id, &endpoint_id));
            }
            ShardMsg::Activate {
                app_id,
                endpoint_id,
                reply,
            } => {
                let now = st.args.clock.now_ms();
                let key = (app_id, endpoint_id);
                if let Some(r) = st.resident.get_mut(&key) {
                    r.last_used_ms = now;
                    let _ = reply.send(r.actor.clone());
                    return Ok(());
                }
                while st.resident.len() >= st.args.settings.endpoint_actors_max.max(1) {
                    let lru = st
                        .resident
                        .iter()
                        .min_by_key(|(_, r)| r.last_used_ms)
                        .map(|(k, _)| k.clone());
                    match lru {
                        Some(k) => st.evict(&k),
                        None => break,
                    }
                }
                let initial = st.engagement(&key.0, &key.1);
                let (actor, _) =
                    Actor::spawn(None, EndpointActor, (key.0.clone(), key.1.clone(), initial))
                        .await?;
                st.stats.activations += 1;
                metrics::counter!("herald_endpoint_actor_activations_total").increment(1);
                st.resident.insert(
                    key,
                    Resident {
                        actor: actor.clone(),
                        last_used_ms: now,
                    },
                );
                let _ = reply.send(actor);
            }
            ShardMsg::Stats(reply) => {
                let mut s = st.stats;
                s.endpoints = st.args.indexes.endpoints(st.args.group);
                s.open_sessions = st.table.open_sessions();
                s.engagement_bytes = st.table.heap_bytes();
                s.resident_endpoint_actors = st.resident.len();
                let _ = reply.send(s);
            }
            ShardMsg::Sweep => {
                let now = st.args.clock.now_ms();
                let idle_ms = st.args.settings.endpoint_actor_idle_ms;
                let idle: Vec<_> = st
                    .resident
                    .iter()
                    .filter(|(_, r)| now - r.last_used_ms >= idle_ms)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in idle {
                    st.evict(&k);
                }
                let timeout = st.args.settings.session_idle_timeout_ms;
                let any_idle = st.table.open_sessions_idle_since(now - timeout);
                if any_idle && !st.sweeping.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    let host = st.args.host.clone();
                    let group = st.args.group;
                    let flag = st.sweeping.clone();
                    // Proposing waits for commit; do it off the actor's loop.
                    tokio::spawn(async move {
                        let cmd = Command::CloseIdleSessions {
                            now_ms: now,
                            idle_timeout_ms: timeout,
                        };
                        match host.propose(group, cmd).await {
                            Ok(r) => tracing::debug!(group, result = ?r, "closed idle sessions"),
                            Err(e) => {
                                tracing::debug!(group, error = %e, "idle session sweep not proposed")
                            }
                        }
                        flag.store(false, std::sync::atomic::Ordering::SeqCst);
                    });
                }
                if !st
                    .handing_over
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    let host = st.args.host.clone();
                    let group = st.args.group;
                    let flag = st.handing_over.clone();
                    let before_ms = now - st.args.settings.claim_grace_ms;
                    let sends_before_ms = now - st.args.settings.send_unresolved_ms;
                    let forget_before_ms = now - st.args.settings.send_retention_ms;
                    let expire = {
                        let last = st.expired_at.load(std::sync::atomic::Ordering::SeqCst);
                        let due = now - last >= st.args.settings.event_expiry_every_ms;
                        if due && st.args.host.is_leader(group) {
                            st.expired_at
                                .store(now, std::sync::atomic::Ordering::SeqCst);
                            Some(st.args.settings.event_retention_days)
                        } else {
                            None
                        }
                    };
                    tokio::spawn(async move {
                        if let Some(days) = expire {
                            match crate::analytics::expire_events(&host, group, now, days).await {
                                Ok(0) => {}
                                Ok(n) => {
                                    metrics::counter!("herald_events_expired_total").increment(n);
                                    tracing::info!(
                                        group,
                                        events = n,
                                        "expired raw events past retention"
                                    );
                                }
                                Err(e) => {
                                    tracing::warn!(group, error = %e, "raw event expiry failed")
                                }
                            }
                        }
                        match crate::sends::resolve_open_sends(&host, group, sends_before_ms, now)
                            .await
                        {
                            Ok(0) => {}
                            Ok(n) => {
                                metrics::counter!("herald_sends_resolved_unknown_total")
                                    .increment(n);
                                tracing::warn!(
                                    group,
                                    sends = n,
                                    "resolved sends left without outcome as UNKNOWN_FAILURE"
                                )
                            }
                            Err(e) => {
                                tracing::warn!(group, error = %e, "open sends not resolved")
                            }
                        }
                        match crate::sends::forget_sends(&host, group, forget_before_ms).await {
                            Ok(0) => {}
                            Ok(n) => {
                                metrics::counter!("herald_send_ledger_rows_forgotten_total")
                                    .increment(n);
                                tracing::debug!(
                                    group,
                                    rows = n,
                                    "forgot send-ledger rows past retention"
                                )
                            }
                            Err(e) => {
                                tracing::warn!(group, error = %e, "send-ledger retention sweep failed")
                            }
                        }
                        match crate::addresses::finish_pending(&host, group, before_ms).await {
                            Ok(0) => {}
                            Ok(n) => {
                                metrics::counter!(
                                    "herald_address_handovers_finished_by_sweep_total"
                                )
                                .increment(n);
                                tracing::info!(
                                    group,
                                    claims = n,
                                    "finished pending address hand-overs"
                                )
                            }
                            Err(e) => {
                                tracing::warn!(group, error = %e, "pending address hand-overs not finished")
                            }
                        }
                        flag.store(false, std::sync::atomic::Ordering::SeqCst);
                    });
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let keys: Vec<_> = st.resident.keys().cloned().collect();
        for k in keys {
            st.evict(&k);
        }
        Ok(())
    }
}

/// Routes the state machines' applied changes to the shard actors.
pub struct ShardObserver {
    shards: OnceLock<BTreeMap<GroupId, ActorRef<ShardMsg>>>,
    /// Updated synchronously, inside the apply.
    indexes: Arc<crate::segment_indexes::SegmentIndexes>,
}

impl ShardObserver {
    pub fn new(indexes: Arc<crate::segment_indexes::SegmentIndexes>) -> Self {
        Self {
            shards: OnceLock::new(),
            indexes,
        }
    }

    pub fn set_shards(&self, shards: BTreeMap<GroupId, ActorRef<ShardMsg>>) {
        let _ = self.shards.set(shards);
    }
}

impl ApplyObserver for ShardObserver {
    fn applied(&self, group: GroupId, changes: &[Change]) {
        self.indexes.applied(group, changes);
        if let Some(a) = self.shards.get().and_then(|s| s.get(&group)) {
            let _ = a.cast(ShardMsg::Applied(changes.to_vec()));
        }
    }

    fn reset(&self, group: GroupId) {
        self.indexes.reset(group);
        if let Some(a) = self.shards.get().and_then(|s| s.get(&group)) {
            let _ = a.cast(ShardMsg::Reset);
        }
    }
}
