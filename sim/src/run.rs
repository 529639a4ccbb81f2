//! One simulated run: boot, set up the app, a chaos phase of faults and
//! client calls, a healing phase with faults off, then the checks.

use std::collections::{BTreeMap, BTreeSet};

use herald_model::wire::{CreateApplicationRequest, EmailChannelRequest};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use herald_actors::Herald;
use herald_storage::{MemEngine, NodeId};

use crate::canary::{self, Canary};
use crate::history::Answer;
use crate::invariants::{self, committed::Committed, Violation};
use crate::net::Faults;
use crate::senders::SenderFaults;
use crate::workload::{
    campaign_subject, endpoint_id, event_campaign_body, opted_endpoint, opted_id, segment_body,
    zone_of, CampaignSpec, EventLimits, Workload, APP, EVENT_CAMPAIGN, OPTED, SEGMENT,
};
use crate::world::{World, TICK};

#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub shards: u32,
    /// Steps of the chaos phase.
    pub steps: u64,
    pub endpoints: u64,
    pub max_skew_ms: i64,
    /// Print the trace as it happens.
    pub echo: bool,
    /// A planted bug to switch on.
    pub canary: Option<Canary>,
    /// Add and remove nodes during the chaos phase.
    pub membership: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 3,
            shards: 2,
            steps: 2_000,
            endpoints: 6,
            max_skew_ms: 500,
            echo: false,
            canary: None,
            membership: true,
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub hash: u64,
    pub trace_lines: u64,
    pub virtual_ms: i64,
    pub ops: usize,
    pub acked: usize,
    pub deliveries: usize,
    pub crashes: u32,
    /// Nodes' states and the trace's last lines, when something failed.
    pub dump: Vec<String>,
}

/// Steps the boot and the healing phase may take at most.
const BOOT_STEPS_MAX: u64 = 4_000;
const HEAL_STEPS_MAX: u64 = 8_000;

pub fn run(seed: u64, opts: &Options) -> Report {
    crate::panics::install();
    let _ = crate::panics::take();
    let mut world = World::new(seed, opts.nodes, opts.shards, opts.max_skew_ms, opts.echo);
    canary::plant(opts.canary);
    if opts.canary == Some(Canary::AckBeforeDurable) {
        for n in &world.nodes {
            n.engine().lie_about_syncs(true);
        }
    }
    if let Some(c) = opts.canary {
        world.trace.record(format!("canary {} planted", c.name()));
    }
    let mut committed = Committed::default();
    let mut violations = Vec::new();
    let mut crashes = 0u32;
    let ids: Vec<NodeId> = world.nodes.iter().map(|n| n.id).collect();
    for &id in &ids {
        world.start(id);
    }
    // Boot: every node serving.
    let mut steps = 0;
    while world.live_nodes().len() < ids.len() && steps < BOOT_STEPS_MAX {
        step(&mut world, &mut committed, &mut violations);
        steps += 1;
    }
    let mut wl = Workload::new(opts.endpoints);
    // The event campaign's caps: Daily binding, Total binding, or both.
    let caps = [(2, 0), (0, 2), (3, 2), (1, 3)];
    let (daily, total) = caps[world.rng.range(0, caps.len() as u64) as usize];
    let event_limits = EventLimits { daily, total };
    world
        .trace
        .record(format!("event campaign caps {event_limits:?}"));
    if world.live_nodes().len() < ids.len() {
        violations.push(Violation::new(
            "the cluster boots",
            format!(
                "only nodes {:?} were serving after {steps} steps",
                world.live_nodes()
            ),
        ));
    } else if !setup(&mut world, &mut committed, &mut violations, event_limits) {
        violations.push(Violation::new(
            "the cluster boots",
            "the app could not be created",
        ));
    } else {
        let removing = chaos(
            &mut world,
            &mut wl,
            &mut committed,
            &mut violations,
            opts,
            &mut crashes,
        );
        heal(
            &mut world,
            &mut wl,
            &mut committed,
            &mut violations,
            removing,
        );
    }
    let ops = wl.history.ops();
    let delivered = world.recorder.delivered();
    if violations.is_empty() {
        let finals = final_reads(&mut world, &mut wl, &mut committed, &mut violations);
        let last = final_campaign(&mut world, &mut wl, &mut committed, &mut violations);
        // After the campaign: a hard bounce of a send stalled since the
        // chaos phase may deactivate an endpoint until then.
        let states = final_states(&mut world, &wl, &mut committed, &mut violations);
        let ops = wl.history.ops();
        let delivered = world.recorder.delivered();
        let opted_out: BTreeSet<String> = states
            .iter()
            .filter(|(_, s)| s.opt_out.as_deref() == Some("ALL"))
            .map(|(ep, _)| ep.clone())
            .collect();
        if let Some(spec) = last.as_ref() {
            let cid = spec.id.clone();
            let acts = call(
                &mut world,
                1,
                2_000,
                &mut committed,
                &mut violations,
                move |h| {
                    Box::pin(async move { h.campaign_activities(APP, &cid, None, None).await.ok() })
                },
            )
            .flatten();
            for a in acts.map(|a| a.item).unwrap_or_default() {
                world.trace.record(format!(
                    "activity {} of campaign {}: total {:?}, successful {:?}, metrics {:?}",
                    a.id,
                    spec.id,
                    a.total_endpoint_count,
                    a.successful_endpoint_count,
                    a.execution_metrics
                ));
            }

            let inactive: BTreeSet<String> = states
                .iter()
                .filter(|(_, s)| s.status.as_deref() == Some("INACTIVE"))
                .map(|(ep, _)| ep.clone())
                .collect();
            let expected: BTreeMap<String, bool> = states
                .keys()
                .map(|ep| {
                    let quiet = spec.quiet
                        && zone_of(ep).is_some_and(|(_, h)| {
                            invariants::quiet::in_quiet_time(
                                crate::world::EPOCH_MS + world.now(),
                                h,
                            )
                        });
                    (ep.clone(), !opted_out.contains(ep) && !quiet)
                })
                .collect();
            violations.extend(invariants::reach::check(
                &expected,
                &delivered,
                &campaign_subject(&spec.id),
                &inactive,
                &world.recorder.bounced(),
            ));
        }
        violations.extend(invariants::durability::check(&ops, &finals));
        violations.extend(invariants::linearizable::check(&ops));
        violations.extend(invariants::once::check(&ops, &delivered));
        violations.extend(invariants::optout::check(&ops, &delivered, &opted_out));
        violations.extend(invariants::quiet::check(wl.campaigns.values(), &delivered));
        violations.extend(invariants::scheduled::check(
            wl.campaigns.values(),
            &delivered,
            opts.max_skew_ms,
        ));
        violations.extend(invariants::limits::check(event_limits, &delivered));
    }
    for v in &violations {
        world.trace.record(format!("VIOLATION {v}"));
    }
    let dump = if violations.is_empty() {
        Vec::new()
    } else {
        dump(&world)
    };
    let report = Report {
        seed,
        hash: world.trace.hash(),
        trace_lines: world.trace.lines(),
        virtual_ms: world.now(),
        ops: ops.len(),
        acked: ops.iter().filter(|o| o.acked()).count(),
        deliveries: delivered.len(),
        crashes,
        violations,
        dump,
    };
    world.stop_all();
    canary::plant(None);
    report
}

fn step(world: &mut World, committed: &mut Committed, violations: &mut Vec<Violation>) {
    world.step();
    violations.extend(committed.observe(world));
    for p in crate::panics::take() {
        world.trace.record(format!("panic {p}"));
        violations.push(Violation::new("no node panics", p));
    }
}

/// Runs one call to completion on `node`, stepping the world (bounded).
fn settle(
    world: &mut World,
    wl: &Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
    op_ids_before: usize,
) {
    let mut n = 0;
    while wl.history.ops()[op_ids_before..]
        .iter()
        .any(|o| o.done.is_none())
        && n < 4_000
    {
        step(world, committed, violations);
        n += 1;
    }
}

/// Runs `f` on `node`'s service to completion, stepping the world at most
/// `steps_max` times; `None` when it did not finish (or the node is down).
fn call<T, F>(
    world: &mut World,
    node: NodeId,
    steps_max: u64,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
    f: F,
) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<Herald<MemEngine>>) -> BoxFuture<'static, T> + Send + 'static,
{
    let herald = world.node(node).live()?.herald().clone();
    let slot = Arc::new(Mutex::new(None));
    let out = slot.clone();
    world.node(node).spawn(async move {
        let v = f(herald).await;
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
    });
    for _ in 0..steps_max {
        if let Some(v) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Some(v);
        }
        step(world, committed, violations);
    }
    let last = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    last
}

fn setup(
    world: &mut World,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
    event_limits: EventLimits,
) -> bool {
    for attempt in 0..20 {
        let ok = call(world, 1, 2_000, committed, violations, move |herald| {
            Box::pin(async move {
                let created = herald
                    .create_app(
                        APP.into(),
                        "us-east-1",
                        CreateApplicationRequest {
                            name: Some("sim".into()),
                            tags: None,
                        },
                    )
                    .await
                    .is_ok()
                    || herald.app(APP).await.is_ok();
                let channel = created
                    && herald
                        .update_email_channel(
                            APP,
                            EmailChannelRequest {
                                from_address: Some("sim@sim.example".into()),
                                identity: Some("sim.example".into()),
                                ..Default::default()
                            },
                        )
                        .await
                        .is_ok();
                let segment = channel
                    && (herald
                        .create_segment(APP, SEGMENT.into(), "us-east-1", segment_body())
                        .await
                        .is_ok()
                        || herald.segment(APP, SEGMENT, None).await.is_ok());
                let mut opted = segment;
                for k in 0..OPTED {
                    opted = opted
                        && herald
                            .update_endpoint(APP, &opted_id(k), opted_endpoint(k), "setup")
                            .await
                            .is_ok();
                }
                let body = event_campaign_body(event_limits, crate::world::EPOCH_MS - 60_000);
                opted
                    && (herald
                        .create_campaign(APP, EVENT_CAMPAIGN.into(), "us-east-1", body)
                        .await
                        .is_ok()
                        || herald.campaign(APP, EVENT_CAMPAIGN, None).await.is_ok())
            })
        });
        if ok == Some(true) {
            world
                .trace
                .record(format!("setup done after {} attempts", attempt + 1));
            return true;
        }
    }
    false
}

fn chaos(
    world: &mut World,
    wl: &mut Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
    opts: &Options,
    crashes: &mut u32,
) -> Option<NodeId> {
    world.recorder.set_faults(SenderFaults {
        temporary: world.rng.range(0, 100) as u32,
        permanent: world.rng.range(0, 20) as u32,
        unknown_delivered: world.rng.range(0, 30) as u32,
        unknown_lost: world.rng.range(0, 30) as u32,
        stall: world.rng.range(0, 50) as u32,
    });
    let mut removal: Option<Removal> = None;
    for _ in 0..opts.steps {
        if world.rng.chance(3) {
            let up = world.up_nodes();
            if up.len() > 1 {
                let id = *world.rng.pick(&up).expect("a node is up");
                world.crash(id);
                wl.history.abandon(id, world.now());
                *crashes += 1;
            }
        } else if world.rng.chance(15) {
            let down: Vec<NodeId> = world
                .nodes
                .iter()
                .filter(|x| !x.is_up() && !x.removed)
                .map(|x| x.id)
                .collect();
            if let Some(&id) = world.rng.pick(&down) {
                world.start(id);
            }
        } else if world.rng.chance(3) {
            let n = world.nodes.len() as u64;
            let from = world.rng.range(1, n + 1) as NodeId;
            let to = world.rng.range(1, n + 1) as NodeId;
            if from != to {
                world.net.cut(from, to);
                world.trace.record(format!("cut link {from}->{to}"));
            }
        } else if world.rng.chance(4) {
            world.net.heal();
            world.trace.record("heal links".into());
        } else if world.rng.chance(3) {
            let f = Faults {
                latency_min_ms: 1,
                latency_max_ms: world.rng.range(2, 60),
                drop_per_mille: world.rng.range(0, 80) as u32,
                dup_per_mille: world.rng.range(0, 50) as u32,
            };
            world.net.set_faults(f);
            world.trace.record(format!("network {f:?}"));
        } else if opts.membership
            && world.rng.chance(1)
            && world.members().len() < NODES_MAX
            && removal.is_none()
        {
            world.add_node();
        } else if opts.membership && world.rng.chance(1) && world.members().len() > 3 {
            // Node 1 stays: the final checks call through it. A removal
            // that failed is retried (as an operator would) before any other.
            let members: Vec<NodeId> = world.members().into_iter().filter(|&m| m != 1).collect();
            let victim = match &removal {
                Some(r) if r.answer().is_some() || !r.running(world) => Some(r.node),
                Some(_) => None,
                None => world.rng.pick(&members).copied(),
            };
            if let Some(r) = victim.and_then(|id| Removal::start(world, id)) {
                removal = Some(r);
            }
        }
        if let Some(r) = &removal {
            if r.answer() == Some(Ok(())) {
                world.retire(r.node);
                wl.history.abandon(r.node, world.now());
                removal = None;
            }
        }
        wl.tick(world, 200);
        step(world, committed, violations);
        if !violations.is_empty() {
            break;
        }
    }
    removal.map(|r| r.node)
}

/// Nodes in the cluster at most (membership changes add up to it).
const NODES_MAX: usize = 5;

/// Removing a node from every group through another serving node, as
/// `herald cluster remove-node` does, while the chaos goes on. Once every
/// group has let the node go, it is stopped for good; a removal that failed
/// (faults, or the node it ran on crashed) is tried again later, and
/// finished after healing.
pub struct Removal {
    pub node: NodeId,
    via: NodeId,
    via_incarnation: u32,
    answer: Arc<Mutex<Option<Result<(), String>>>>,
}

impl Removal {
    pub fn start(world: &mut World, id: NodeId) -> Option<Removal> {
        let via = *world.live_nodes().iter().find(|&&n| n != id)?;
        let herald = world.node(via).live()?.herald().clone();
        world
            .trace
            .record(format!("remove node {id} through node {via}"));
        let answer = Arc::new(Mutex::new(None));
        let slot = answer.clone();
        let trace = world.trace.clone();
        world.node(via).spawn(async move {
            let r = remove_everywhere(&herald, id).await;
            trace.record(format!("removing node {id}: {r:?}"));
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        });
        Some(Removal {
            node: id,
            via,
            via_incarnation: world.node(via).incarnation,
            answer,
        })
    }

    pub fn answer(&self) -> Option<Result<(), String>> {
        self.answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the node running it is still the one it ran on.
    fn running(&self, world: &World) -> bool {
        let n = world.node(self.via);
        n.live().is_some() && n.incarnation == self.via_incarnation
    }
}

async fn remove_everywhere(herald: &Herald<MemEngine>, id: NodeId) -> Result<(), String> {
    herald
        .host()
        .remove_node(id)
        .await
        .map_err(|e| e.to_string())
}

/// Tries of finishing a removal after healing, a second apart.
const REMOVAL_TRIES_MAX: usize = 20;

/// Finishes a removal the chaos phase left undone (faults are off now).
fn finish_removal(
    world: &mut World,
    wl: &Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
    id: NodeId,
) {
    for attempt in 0..REMOVAL_TRIES_MAX {
        if attempt > 0 {
            // A leader may be unknown for a moment (a restarted node).
            for _ in 0..200 {
                step(world, committed, violations);
            }
        }
        // Through another node each time: one may know no leader of a group.
        let others: Vec<NodeId> = world
            .live_nodes()
            .into_iter()
            .filter(|&n| n != id)
            .collect();
        let Some(&via) = others.get(attempt % others.len().max(1)) else {
            step(world, committed, violations);
            continue;
        };
        let done = call(world, via, 4_000, committed, violations, move |h| {
            Box::pin(async move { remove_everywhere(&h, id).await })
        });
        world
            .trace
            .record(format!("finishing the removal of node {id}: {done:?}"));
        if done == Some(Ok(())) {
            world.retire(id);
            wl.history.abandon(id, world.now());
            return;
        }
    }
    violations.push(Violation::new(
        "the healed cluster serves",
        format!("removing node {id} did not finish after healing"),
    ));
}

fn heal(
    world: &mut World,
    wl: &mut Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
    removing: Option<NodeId>,
) {
    world.net.heal();
    world.net.set_faults(Faults::CALM);
    world.recorder.set_faults(SenderFaults::NONE);
    world
        .trace
        .record("healing: faults off, every node restarted".into());
    // A node still joining through a node removed since is restarted
    // pointed at a live member.
    for id in world.members() {
        if world.joins_through_removed(id, removing) && world.node(id).live().is_none() {
            world.repoint_join(id, removing);
            if world.node(id).is_up() {
                world.crash(id);
            }
        }
    }
    // A node half removed may belong to no group any more (it would never
    // finish starting): the others must serve without it, and its removal
    // is finished then. It is started all the same: its process runs until
    // its removal is through, as an operator's would (a join of its that
    // is still under way is refused by the groups it has left).
    for id in world
        .nodes
        .iter()
        .filter(|x| !x.is_up() && !x.removed)
        .map(|x| x.id)
        .collect::<Vec<_>>()
    {
        world.start(id);
    }
    let mut steps = 0;
    let wanted = |world: &World| {
        world
            .members()
            .iter()
            .filter(|&&m| Some(m) != removing)
            .count()
    };
    loop {
        let serving = world
            .live_nodes()
            .iter()
            .filter(|&&n| Some(n) != removing)
            .count()
            >= wanted(world)
            && invariants::liveness::leaderless_groups(world).is_empty()
            && wl.history.pending() == 0;
        if serving || steps >= HEAL_STEPS_MAX {
            break;
        }
        step(world, committed, violations);
        steps += 1;
    }
    if let Some(id) = removing {
        finish_removal(world, wl, committed, violations, id);
    }
    let waited = (steps as i64) * TICK.as_millis() as i64;
    violations.extend(invariants::liveness::not_serving(world, waited));
}

/// Reads every endpoint once the cluster has healed (retrying "not now").
fn final_reads(
    world: &mut World,
    wl: &mut Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
) -> BTreeMap<String, Option<u64>> {
    let mut finals = BTreeMap::new();
    for k in 0..wl.endpoints {
        for attempt in 0..10u64 {
            let live = world.live_nodes();
            let Some(&node) = live.get(((k + attempt) % live.len().max(1) as u64) as usize) else {
                step(world, committed, violations);
                continue;
            };
            let before = wl.history.ops().len();
            wl.read(world, node, k);
            settle(world, wl, committed, violations, before);
            let answer = wl.history.ops().pop().and_then(|o| o.done).map(|(_, a)| a);
            if let Some(Answer::Read(v)) = answer {
                finals.insert(endpoint_id(k), v);
                break;
            }
        }
    }
    finals
}

/// What the final checks need of an endpoint.
struct FinalState {
    status: Option<String>,
    opt_out: Option<String>,
}

/// Every `ep-k` and `opt-k` endpoint that exists once the cluster has
/// healed, with its status and opt-out.
fn final_states(
    world: &mut World,
    wl: &Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
) -> BTreeMap<String, FinalState> {
    let mut out = BTreeMap::new();
    let eps = (0..wl.endpoints)
        .map(endpoint_id)
        .chain((0..OPTED).map(opted_id));
    for ep in eps {
        let id = ep.clone();
        let got = call(world, 1, 2_000, committed, violations, move |h| {
            Box::pin(async move {
                h.endpoint(APP, &id).await.ok().map(|e| FinalState {
                    status: e.endpoint_status,
                    opt_out: e.opt_out,
                })
            })
        })
        .flatten();
        if let Some(s) = got {
            out.insert(ep, s);
        }
    }
    out
}

/// Steps a campaign created after healing may take to complete at most.
const CAMPAIGN_STEPS_MAX: u64 = 8_000;

/// Creates one more campaign (immediate; with quiet time or not, from the
/// seed) once the cluster has healed and waits until it has completed; its
/// spec, or `None` (with a violation) when it did not.
fn final_campaign(
    world: &mut World,
    wl: &mut Workload,
    committed: &mut Committed,
    violations: &mut Vec<Violation>,
) -> Option<CampaignSpec> {
    let before = wl.history.ops().len();
    let spec = CampaignSpec {
        id: wl.next_campaign_id(),
        quiet: world.rng.chance(500),
        start_ms: None,
    };
    let id = spec.id.clone();
    wl.campaign(world, 1, spec.clone());
    settle(world, wl, committed, violations, before);
    let answer = wl.history.ops().pop().and_then(|o| o.done).map(|(_, a)| a);
    if answer != Some(Answer::Ok) {
        violations.push(Violation::new(
            "the healed cluster serves",
            format!("creating campaign {id} after healing answered {answer:?}"),
        ));
        return None;
    }
    let mut waited = 0;
    while waited < CAMPAIGN_STEPS_MAX {
        let cid = id.clone();
        let status = call(world, 1, 1_000, committed, violations, move |h| {
            Box::pin(async move {
                h.campaign(APP, &cid, None)
                    .await
                    .ok()
                    .and_then(|c| c.state.and_then(|s| s.campaign_status))
            })
        })
        .flatten();
        if status.as_deref() == Some("COMPLETED") {
            world.trace.record(format!("campaign {id} completed"));
            return Some(spec);
        }
        for _ in 0..200 {
            step(world, committed, violations);
        }
        waited += 200;
    }
    violations.push(Violation::new(
        "the healed cluster serves",
        format!("campaign {id}, created after healing, did not complete"),
    ));
    None
}

/// Every node's state and the end of the trace, for a failure report.
fn dump(world: &World) -> Vec<String> {
    let mut out = Vec::new();
    for n in &world.nodes {
        let Some(live) = n.live() else {
            out.push(format!(
                "node {}: {} (incarnation {})",
                n.id,
                if n.removed {
                    "removed"
                } else if n.is_up() {
                    "starting"
                } else {
                    "down"
                },
                n.incarnation
            ));
            continue;
        };
        out.push(format!(
            "node {}: serving (incarnation {})",
            n.id, n.incarnation
        ));
        for (g, raft) in live.host().rafts().iter().enumerate() {
            let m = raft.metrics();
            let m = m.borrow();
            out.push(format!(
                "  group {g}: {:?} term {} leader {:?} last_log {:?} applied {:?} membership {:?}",
                m.state,
                m.current_term,
                m.current_leader,
                m.last_log_index,
                m.last_applied.map(|l| l.index),
                m.membership_config.membership().get_joint_config()
            ));
        }
    }
    out.push(format!(
        "network: cut links {:?}, {:?}",
        world.net.cut_links(),
        world.net.stats()
    ));
    out.push("trace (last lines):".into());
    out.extend(world.trace.tail(120));
    out
}
