//! `sim`: runs seeds of the simulator. `--seeds N` runs seeds 0..N and
//! prints one line per failure with the command that replays it;
//! `--reproduce S` runs one seed and prints its trace hash last.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clap::Parser;
use herald_sim::run::{run, Options, Report};

#[derive(Parser, Debug)]
#[command(name = "sim", about = "herald's deterministic cluster simulator")]
struct Args {
    /// Run seeds FIRST..FIRST+N and report failures.
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed of --seeds.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run one seed (with --steps for a long run).
    #[arg(long)]
    seed: Option<u64>,
    /// Run one seed and print the hash of its full trace as the last line.
    #[arg(long)]
    reproduce: Option<u64>,
    /// Steps (5 ms each) of the chaos phase.
    #[arg(long, default_value_t = 2_000)]
    steps: u64,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Largest clock skew between nodes, either way.
    #[arg(long, default_value_t = 500)]
    skew_ms: i64,
    /// Print the trace as the run goes.
    #[arg(long)]
    trace: bool,
    /// Plant a bug the simulator must catch: ack-before-durable,
    /// send-before-intent, opt-out-after-decision (the last two need
    /// `--features canaries`).
    #[arg(long)]
    canary: Option<herald_sim::canary::Canary>,
    /// Keep the cluster's nodes as they are (by default nodes are added
    /// and removed during the chaos phase).
    #[arg(long)]
    no_membership: bool,
    /// Seeds run side by side (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

fn replay_command(args: &Args, seed: u64) -> String {
    let defaults = Options::default();
    let mut cmd = format!("sim --reproduce {seed}");
    if args.steps != defaults.steps {
        cmd += &format!(" --steps {}", args.steps);
    }
    if args.nodes != defaults.nodes {
        cmd += &format!(" --nodes {}", args.nodes);
    }
    if args.shards != defaults.shards {
        cmd += &format!(" --shards {}", args.shards);
    }
    if args.no_membership {
        cmd += " --no-membership";
    }
    if args.skew_ms != defaults.max_skew_ms {
        cmd += &format!(" --skew-ms {}", args.skew_ms);
    }
    if let Some(c) = args.canary {
        cmd += &format!(" --canary {}", c.name());
    }
    cmd
}

fn print_report(r: &Report) {
    println!(
        "seed {}: {} violations, {} ops ({} acknowledged), {} deliveries, {} crashes, {} virtual ms, {} trace lines",
        r.seed,
        r.violations.len(),
        r.ops,
        r.acked,
        r.deliveries,
        r.crashes,
        r.virtual_ms,
        r.trace_lines
    );
    for v in &r.violations {
        println!("  VIOLATION {v}");
    }
    for line in &r.dump {
        println!("  {line}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // herald's and openraft's logs, for a replay (`RUST_LOG=info sim
    // --reproduce S`); off unless asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    let opts = Options {
        nodes: args.nodes.clamp(1, 7),
        shards: args.shards.max(1),
        steps: args.steps,
        echo: args.trace,
        canary: args.canary,
        max_skew_ms: args.skew_ms.max(0),
        membership: !args.no_membership,
        ..Options::default()
    };
    if let Some(c) = args.canary.filter(|c| !c.available()) {
        eprintln!("canary {} needs a build with --features canaries", c.name());
        return ExitCode::from(2);
    }
    if let Some(seed) = args.reproduce.or(args.seed) {
        let r = run(seed, &opts);
        print_report(&r);
        if args.reproduce.is_some() {
            println!("trace-hash {:016x}", r.hash);
        }
        return if r.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let n = args.seeds.unwrap_or(100);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get()))
        .max(1);
    let next = AtomicU64::new(args.first);
    let end = args.first + n;
    let failed = Mutex::new(Vec::new());
    // The harness, not a simulated path: it reports real seeds per minute.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    // Each seed runs wholly on one thread, so threads do not change results.
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= end {
                    break;
                }
                let r = run(seed, &opts);
                if !r.violations.is_empty() {
                    println!(
                        "seed {seed} FAILED: {} — replay: {}",
                        r.violations[0],
                        replay_command(&args, seed)
                    );
                    failed.lock().unwrap_or_else(|p| p.into_inner()).push(seed);
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    println!(
        "{n} seeds in {secs:.1} s ({:.0} seeds/minute), {} failed",
        n as f64 * 60.0 / secs.max(0.001),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
