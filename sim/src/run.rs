//! One simulated run: boot, set up the app, a chaos phase of faults and
//! client calls, a healing phase with faults off, then the checks.

use std::collections::BTreeMap;

use herald_model::wire::{CreateApplicationRequest, EmailChannelRequest};
use herald_storage::NodeId;

use crate::history::Answer;
use crate::invariants::{self, committed::Committed, Violation};
use crate::net::Faults;
use crate::senders::SenderFaults;
use crate::workload::{endpoint_id, Workload, APP};
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
    let mut world = World::new(seed, opts.nodes, opts.shards, opts.max_skew_ms, opts.echo);
    let mut leaders = Committed::default();
    let mut violations = Vec::new();
    let mut crashes = 0u32;
    let ids: Vec<NodeId> = world.nodes.iter().map(|n| n.id).collect();
    for &id in &ids {
        world.start(id);
    }
    // Boot: every node serving.
    let mut steps = 0;
    while world.live_nodes().len() < ids.len() && steps < BOOT_STEPS_MAX {
        world.step();
        violations.extend(leaders.observe(&world));
        steps += 1;
    }
    let mut wl = Workload::new(opts.endpoints);
    if world.live_nodes().len() < ids.len() {
        violations.push(Violation::new(
            "the cluster boots",
            format!(
                "only nodes {:?} were serving after {steps} steps",
                world.live_nodes()
            ),
        ));
    } else if !setup(&mut world, &mut leaders, &mut violations) {
        violations.push(Violation::new(
            "the cluster boots",
            "the app could not be created",
        ));
    } else {
        chaos(
            &mut world,
            &mut wl,
            &mut leaders,
            &mut violations,
            opts,
            &mut crashes,
        );
        heal(&mut world, &mut wl, &mut leaders, &mut violations);
    }
    let ops = wl.history.ops();
    let delivered = world.recorder.delivered();
    if violations.is_empty() {
        let finals = final_reads(&mut world, &mut wl, &mut leaders, &mut violations);
        violations.extend(invariants::durability::check(&ops, &finals));
        violations.extend(invariants::linearizable::check(&ops));
        violations.extend(invariants::once::check(&ops, &delivered));
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
    report
}

fn step(world: &mut World, leaders: &mut Committed, violations: &mut Vec<Violation>) {
    world.step();
    violations.extend(leaders.observe(world));
}

/// Runs one call to completion on `node`, stepping the world (bounded).
fn settle(
    world: &mut World,
    wl: &Workload,
    leaders: &mut Committed,
    violations: &mut Vec<Violation>,
    op_ids_before: usize,
) {
    let mut n = 0;
    while wl.history.ops()[op_ids_before..]
        .iter()
        .any(|o| o.done.is_none())
        && n < 4_000
    {
        step(world, leaders, violations);
        n += 1;
    }
}

fn setup(world: &mut World, leaders: &mut Committed, violations: &mut Vec<Violation>) -> bool {
    let done = std::sync::Arc::new(std::sync::Mutex::new(None::<bool>));
    for attempt in 0..20 {
        let Some(live) = world.node(1).live() else {
            return false;
        };
        let herald = live.herald().clone();
        let slot = done.clone();
        world.node(1).spawn(async move {
            let created = match herald
                .create_app(
                    APP.into(),
                    "us-east-1",
                    CreateApplicationRequest {
                        name: Some("sim".into()),
                        tags: None,
                    },
                )
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    herald.app(APP).await.is_ok() || {
                        let _ = e;
                        false
                    }
                }
            };
            let ok = created
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
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(ok);
        });
        let mut n = 0;
        while done.lock().unwrap_or_else(|p| p.into_inner()).is_none() && n < 2_000 {
            step(world, leaders, violations);
            n += 1;
        }
        if done.lock().unwrap_or_else(|p| p.into_inner()).take() == Some(true) {
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
    leaders: &mut Committed,
    violations: &mut Vec<Violation>,
    opts: &Options,
    crashes: &mut u32,
) {
    let n = world.nodes.len();
    world.recorder.set_faults(SenderFaults {
        temporary: world.rng.range(0, 100) as u32,
        permanent: world.rng.range(0, 20) as u32,
        unknown_delivered: world.rng.range(0, 30) as u32,
        unknown_lost: world.rng.range(0, 30) as u32,
        stall: world.rng.range(0, 50) as u32,
    });
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
                .filter(|x| !x.is_up())
                .map(|x| x.id)
                .collect();
            if let Some(&id) = world.rng.pick(&down) {
                world.start(id);
            }
        } else if world.rng.chance(3) {
            let from = world.rng.range(1, n as u64 + 1) as NodeId;
            let to = world.rng.range(1, n as u64 + 1) as NodeId;
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
        }
        wl.tick(world, 200);
        step(world, leaders, violations);
    }
}

fn heal(
    world: &mut World,
    wl: &mut Workload,
    leaders: &mut Committed,
    violations: &mut Vec<Violation>,
) {
    world.net.heal();
    world.net.set_faults(Faults::CALM);
    world.recorder.set_faults(SenderFaults::NONE);
    world
        .trace
        .record("healing: faults off, every node restarted".into());
    for id in world
        .nodes
        .iter()
        .filter(|x| !x.is_up())
        .map(|x| x.id)
        .collect::<Vec<_>>()
    {
        world.start(id);
    }
    let mut steps = 0;
    loop {
        let serving = world.live_nodes().len() == world.nodes.len()
            && invariants::liveness::leaderless_groups(world).is_empty()
            && wl.history.pending() == 0;
        if serving || steps >= HEAL_STEPS_MAX {
            break;
        }
        step(world, leaders, violations);
        steps += 1;
    }
    let waited = (steps as i64) * TICK.as_millis() as i64;
    violations.extend(invariants::liveness::not_serving(world, waited));
}

/// Reads every endpoint once the cluster has healed (retrying "not now").
fn final_reads(
    world: &mut World,
    wl: &mut Workload,
    leaders: &mut Committed,
    violations: &mut Vec<Violation>,
) -> BTreeMap<String, Option<u64>> {
    let mut finals = BTreeMap::new();
    for k in 0..wl.endpoints {
        for attempt in 0..10u64 {
            let node = (k + attempt) as NodeId % world.nodes.len() as NodeId + 1;
            let before = wl.history.ops().len();
            wl.read(world, node, k);
            settle(world, wl, leaders, violations, before);
            let answer = wl.history.ops().pop().and_then(|o| o.done).map(|(_, a)| a);
            if let Some(Answer::Read(v)) = answer {
                finals.insert(endpoint_id(k), v);
                break;
            }
        }
    }
    finals
}

/// Every node's state and the end of the trace, for a failure report.
fn dump(world: &World) -> Vec<String> {
    let mut out = Vec::new();
    for n in &world.nodes {
        let Some(live) = n.live() else {
            out.push(format!(
                "node {}: {} (incarnation {})",
                n.id,
                if n.is_up() { "starting" } else { "down" },
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
                "  group {g}: {:?} term {} leader {:?} last_log {:?} applied {:?}",
                m.state,
                m.current_term,
                m.current_leader,
                m.last_log_index,
                m.last_applied.map(|l| l.index)
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
