//! The simulated cluster: N herald nodes in one process, each on its own
//! current-thread tokio runtime with a paused clock and a seeded scheduler.
//! The world advances every node by one tick in a fixed order, so a run is
//! a pure function of its seed. A crash drops the node's runtime (every
//! task it ran vanishes mid-step) and throws away the writes its in-memory
//! engine had not synced; a restart starts the real node code again on what
//! survived.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_actors::delivery::{DeliverySettings, Dispatcher};
use herald_actors::shard::ShardSettings;
use herald_actors::{Clock, Herald, Runtime, SeededEntropy, ServiceConfig};
use herald_channels::pacing::Backoff;
use herald_cluster::{HostConfig, RaftHost};
use herald_storage::{MemEngine, NodeId};

use crate::net::SimNet;
use crate::rng::SimRng;
use crate::senders::Recorder;
use crate::trace::Trace;

/// Virtual time one step advances every node by.
pub const TICK: Duration = Duration::from_millis(5);
/// The wall clock of a simulated run starts here (2025-11-29T10:00:00Z).
pub const EPOCH_MS: i64 = 1_764_410_400_000;

/// A node's wall clock: the world's virtual time plus the node's skew.
pub struct SimClock {
    now_ms: Arc<AtomicI64>,
    skew_ms: i64,
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        EPOCH_MS + self.now_ms.load(Ordering::SeqCst) + self.skew_ms
    }
}

/// What a started node offers the workload.
pub struct Live {
    pub runtime: Runtime<MemEngine>,
    pub dispatcher: Arc<Dispatcher>,
}

impl Live {
    pub fn herald(&self) -> &Arc<Herald<MemEngine>> {
        &self.runtime.herald
    }

    pub fn host(&self) -> &Arc<RaftHost<MemEngine>> {
        &self.runtime.host
    }
}

pub struct Node {
    pub id: NodeId,
    engine: Arc<MemEngine>,
    clock: Arc<SimClock>,
    /// Fixed election timeout of this node (distinct per node, drawn from
    /// the seed): openraft draws its own from the OS otherwise.
    election_ms: u64,
    rt: Option<tokio::runtime::Runtime>,
    live: Arc<Mutex<Option<Arc<Live>>>>,
    pub incarnation: u32,
    /// The member an added node joins through (every start, until each
    /// group has heard of it).
    join_via: Option<NodeId>,
    /// Removed from the cluster: never started again.
    pub removed: bool,
}

impl Node {
    pub fn engine(&self) -> &MemEngine {
        &self.engine
    }

    pub fn is_up(&self) -> bool {
        self.rt.is_some()
    }

    /// The node's service, once it has finished starting.
    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn spawn<F>(&self, f: F) -> bool
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.rt {
            Some(rt) => {
                drop(rt.spawn(f));
                true
            }
            None => false,
        }
    }
}

pub struct World {
    pub seed: u64,
    pub rng: SimRng,
    pub now_ms: Arc<AtomicI64>,
    pub net: Arc<SimNet>,
    pub recorder: Recorder,
    pub trace: Trace,
    pub nodes: Vec<Node>,
    pub shards: u32,
    members: BTreeMap<NodeId, String>,
    runtimes_built: u64,
    /// Election timeouts in use (each node's is distinct).
    election: Vec<u64>,
    max_skew_ms: i64,
}

/// Node `id`'s address in the cluster's member lists.
fn addr(id: NodeId) -> String {
    format!("sim-node-{id}")
}

/// A node that has never run, with its election timeout (distinct from
/// every other node's, so two nodes never time out together for ever) and
/// clock skew drawn from the seed.
fn new_node(
    id: NodeId,
    rng: &mut SimRng,
    election: &mut Vec<u64>,
    now_ms: &Arc<AtomicI64>,
    max_skew_ms: i64,
) -> Node {
    let mut e = rng.range(150, 400);
    while election.contains(&e) {
        e += 7;
    }
    election.push(e);
    let skew_ms = if max_skew_ms > 0 {
        rng.range(0, 2 * max_skew_ms as u64 + 1) as i64 - max_skew_ms
    } else {
        0
    };
    Node {
        id,
        engine: Arc::new(MemEngine::new()),
        clock: Arc::new(SimClock {
            now_ms: now_ms.clone(),
            skew_ms,
        }),
        election_ms: e,
        rt: None,
        live: Arc::new(Mutex::new(None)),
        incarnation: 0,
        join_via: None,
        removed: false,
    }
}

impl World {
    pub fn new(seed: u64, nodes: usize, shards: u32, max_skew_ms: i64, echo: bool) -> Self {
        let now_ms = Arc::new(AtomicI64::new(0));
        let trace = Trace::new(now_ms.clone(), echo);
        let mut rng = SimRng::new(seed);
        let ids: Vec<NodeId> = (1..=nodes as NodeId).collect();
        let members = ids.iter().map(|id| (*id, addr(*id))).collect();
        let mut election: Vec<u64> = Vec::new();
        let nodes = ids
            .iter()
            .map(|&id| new_node(id, &mut rng, &mut election, &now_ms, max_skew_ms))
            .collect();
        let recorder = Recorder::new(seed, trace.clone(), now_ms.clone());
        Self {
            seed,
            rng,
            now_ms,
            net: SimNet::new(seed),
            recorder,
            trace,
            nodes,
            shards,
            members,
            runtimes_built: 0,
            election,
            max_skew_ms,
        }
    }

    /// The nodes that are members (not removed), up or down.
    pub fn members(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| !n.removed)
            .map(|n| n.id)
            .collect()
    }

    /// Adds a node that joins the cluster through the lowest live member,
    /// and starts it; its id (`None`: no member is serving).
    pub fn add_node(&mut self) -> Option<NodeId> {
        let via = *self.live_nodes().first()?;
        let id = self.nodes.len() as NodeId + 1;
        let mut node = new_node(
            id,
            &mut self.rng,
            &mut self.election,
            &self.now_ms,
            self.max_skew_ms,
        );
        node.join_via = Some(via);
        self.nodes.push(node);
        self.trace
            .record(format!("add node {id} (joins through node {via})"));
        self.start(id);
        Some(id)
    }

    /// Whether `id` is a joining node whose contact has left the cluster
    /// (it cannot join through it; its operator would restart it with
    /// another `--join`).
    pub fn joins_through_removed(&self, id: NodeId, leaving: Option<NodeId>) -> bool {
        self.node(id)
            .join_via
            .is_some_and(|via| self.node(via).removed || Some(via) == leaving)
    }

    /// Points joining node `id` at a live member other than `avoid`.
    pub fn repoint_join(&mut self, id: NodeId, avoid: Option<NodeId>) {
        let live = self
            .live_nodes()
            .into_iter()
            .find(|&n| n != id && Some(n) != avoid);
        if let Some(via) = live {
            self.node_mut(id).join_via = Some(via);
        }
    }

    /// Stops `id` for good once the cluster has let it go.
    pub fn retire(&mut self, id: NodeId) {
        if self.node(id).is_up() {
            self.crash(id);
        }
        self.node_mut(id).removed = true;
        self.trace.record(format!("node {id} removed for good"));
    }

    pub fn now(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts (or restarts) `id` on what its engine kept.
    pub fn start(&mut self, id: NodeId) {
        assert!(!self.node(id).is_up(), "node {id} is already up");
        assert!(!self.node(id).removed, "node {id} was removed");
        self.runtimes_built += 1;
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        seed[8..].copy_from_slice(&self.runtimes_built.to_le_bytes());
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_time().start_paused(true);
        // Needs `--cfg tokio_unstable` (.cargo/config.toml); a RUSTFLAGS
        // from the environment replaces it, and then `select!` choices are
        // not replayed (the run still works, its trace hash may vary).
        #[cfg(tokio_unstable)]
        builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed));
        #[cfg(not(tokio_unstable))]
        let _ = seed;
        let rt = builder.build().expect("a current-thread runtime");
        // A joining node pointed at a member that has left since is pointed
        // at a live one (as its operator would change `--join`).
        if self.joins_through_removed(id, None) {
            self.repoint_join(id, None);
        }
        let shards = self.shards;
        let members = self.members.clone();
        let transport = self.net.transport_of(id);
        let sender = Arc::new(self.recorder.for_node(id));
        let entropy_seed = self.rng.next_u64();
        let trace = self.trace.clone();
        let node = self.node_mut(id);
        node.incarnation += 1;
        let incarnation = node.incarnation;
        let engine = node.engine.clone();
        let clock = node.clock.clone();
        let live = node.live.clone();
        let election_ms = node.election_ms;
        let join = node.join_via.map(|via| ((via, addr(via)), addr(id)));
        // A joining node knows only itself, as `herald serve --join` does.
        let members = if join.is_some() {
            BTreeMap::from([(id, addr(id))])
        } else {
            members
        };
        drop(rt.spawn(async move {
            let host = HostConfig {
                node_id: id,
                shards,
                heartbeat_ms: 50,
                election_timeout_min_ms: election_ms,
                election_timeout_max_ms: election_ms + 1,
                request_timeout: Duration::from_secs(5),
                members,
                join,
                ..HostConfig::default()
            };
            let shard_settings = ShardSettings::default();
            let runtime = match Runtime::start(
                engine,
                host,
                transport,
                clock.clone(),
                ServiceConfig::default(),
                shard_settings,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    trace.record(format!("node {id} failed to start: {e}"));
                    return;
                }
            };
            let dispatcher = Arc::new(Dispatcher::new(
                sender.clone(),
                BTreeMap::new(),
                sender,
                clock,
                Arc::new(SeededEntropy::new(entropy_seed)),
                DeliverySettings {
                    queue_max: 1_000,
                    admit_timeout: Duration::from_secs(2),
                    backoff: Backoff {
                        base_ms: 50,
                        max_ms: 500,
                        attempts_max: 4,
                    },
                    ..DeliverySettings::default()
                },
            ));
            runtime.herald.set_dispatcher(dispatcher.clone());
            drop(tokio::spawn(
                runtime
                    .herald
                    .clone()
                    .run_campaign_scheduler(futures::future::pending::<()>()),
            ));
            // Placement as a node runs it: R=3, replacing members down 3 s.
            let host = runtime.host.clone();
            drop(tokio::spawn(async move {
                host.run_placement(3, Duration::from_millis(500), Duration::from_secs(3))
                    .await;
            }));
            trace.record(format!("node {id} (incarnation {incarnation}) is serving"));
            *live.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Live {
                runtime,
                dispatcher,
            }));
        }));
        self.net.node_up(id, rt.handle().clone());
        self.node_mut(id).rt = Some(rt);
        self.trace
            .record(format!("start node {id} (incarnation {incarnation})"));
    }

    /// Kills `id` mid-step: its tasks vanish and its unsynced writes are
    /// lost.
    pub fn crash(&mut self, id: NodeId) {
        let unsynced = self.node(id).engine.unsynced_writes();
        self.net.node_down(id);
        let node = self.node_mut(id);
        let rt = node.rt.take();
        let live = node.live.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The runtime first, so no task of this node runs (or writes) again.
        drop(rt);
        drop(live);
        node.engine.crash();
        self.trace
            .record(format!("crash node {id} (lost {unsynced} unsynced writes)"));
    }

    /// Advances virtual time by one tick on every running node.
    pub fn step(&mut self) {
        self.now_ms
            .fetch_add(TICK.as_millis() as i64, Ordering::SeqCst);
        for node in &self.nodes {
            if let Some(rt) = &node.rt {
                rt.block_on(async { tokio::time::sleep(TICK).await });
            }
        }
    }

    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect()
    }

    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.live().is_some())
            .map(|n| n.id)
            .collect()
    }

    /// Stops every node (end of a run), dropping their runtimes.
    pub fn stop_all(&mut self) {
        for n in &mut self.nodes {
            let rt = n.rt.take();
            drop(rt);
            n.live.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_all();
    }
}
