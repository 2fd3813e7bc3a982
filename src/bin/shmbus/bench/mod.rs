//! `shmbus bench`: one-way latency and throughput between real processes, next to the hardware
//! floor and to what a user would pick instead.
//!
//! # Method
//! * **Real processes.** The benchmark re-executes its own binary (`std::env::current_exe()`) as
//!   the hidden subcommand `shmbus bench-child` for the other end (see [`child`]). The parent
//!   (ping-pong initiator or publisher) pins itself to the first `--cpus` CPU and each child to
//!   the next ones; the report says whether pinning worked and whether the two CPUs are SMT
//!   siblings.
//! * **One clock.** Every timestamp is `CLOCK_MONOTONIC`, which all processes on the host share,
//!   recorded per message in an HdrHistogram (ns, 3 significant digits). The cost of reading it is
//!   printed: each sample pays two reads.
//! * **Ping-pong** reports one-way latency as round trip / 2, measured by the initiator alone: two
//!   reads of one clock in one process, so no cross-process clock comparison, and the path is
//!   symmetric (same payload and wait mode both ways).
//! * **Open loop** sends at a fixed rate; every message carries its *intended* send time and the
//!   receiver records `now - intended`, so a stalled sender or receiver shows up in the latency of
//!   every message it delayed (coordinated omission counted, not hidden).
//! * **Same method for every transport in the same run**: `floor` (one cache line ping-ponged
//!   through shared memory by busy-spinning), `ring` (a minimal single-writer seqlock ring with
//!   shmbus's slot geometry: the part of the cost any ring-buffer bus pays; ping-pong and stream),
//!   `futex` (raw cross-process futex ping-pong),
//!   `pipe`, `unix`, `tcp` (127.0.0.1, `TCP_NODELAY`), `shmbus` in each wait mode, on the copy
//!   path (lossy topics, `publish` / `recv_timeout` into buffers) and, in the payload sweep, on
//!   the borrow path (lossless topics, `loan` / `recv_borrow_timeout` in place), and `c`: shmbus
//!   with a C echo linked against `libshmbus.a` (see [`c_echo`]), to show the cost of the FFI.
//! * **Repeats.** Each configuration runs `--repeat` times, interleaved with the others; the table
//!   shows the median of the repeats for each percentile, the min-max of the repeat p50s, and the
//!   worst max. The verdict uses the worst p99.99 and max of any repeat.
//! * **Bounded and tidy.** Every loop is bounded by a count and a time; every child has watchdogs
//!   and exits if the parent dies; the parent kills and reaps only the children it started.
//!   Names (shared memory, FIFOs, sockets) contain the parent's pid and are removed at the end.

mod args;
mod c_echo;
pub mod child;
mod clock;
mod hist;
mod json;
pub mod machine;
mod msg;
mod output;
mod plan;
mod plot;
mod procs;
mod report;
#[allow(
    unsafe_code,
    reason = "the floor's, futex's and ring's shared memory; the module documents every block"
)]
mod shm;
mod stale;
mod transports;
mod workload;

use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use args::BenchArgs;
use args::Settings;
use machine::Machine;
use plan::{PlanOptions, RunSpec, Transport};
use report::RunRecord;

/// Errors of the benchmark: a message, with context where it helps.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result of the benchmark's fallible steps.
pub type Result<T> = std::result::Result<T, Error>;

/// Runs `shmbus bench`.
///
/// # Errors
/// Invalid options, an output that could not be written, an interruption, or failed runs (the
/// others are still reported).
pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(policy) = machine::realtime_policy() {
        return Err(realtime_refusal(policy).into());
    }
    let stop = stop_on_signal();
    let settings = args.settings()?;
    output::check_outputs(args)?;
    let cpus = choose_cpus(args.cpus.as_deref())?;
    // Facts first: pinning shrinks the set of CPUs this process may use.
    let mut machine = Machine::collect(&cpus, 0.0);
    let parent_pinned = cpus.len() >= 2 && machine::pin_to(cpus[0]).is_ok();
    if !parent_pinned {
        // Nothing runs where it was meant to: no CPUs to name, no siblings to report.
        machine.cpus.clear();
        machine.smt_siblings = None;
    }
    machine.clock_read_ns = clock::read_overhead_ns();
    let usable_cpus = if cpus.len() >= 2 {
        cpus.len()
    } else {
        machine.cores
    };
    let (mut plan, mut notes) = build_plan(args, &settings, usable_cpus);
    let dir = RunDir::create()?;
    let c_echo = prepare_c_echo(&mut plan, &mut notes, &dir.0);
    if plan.is_empty() {
        let mut why = String::from(
            "nothing to run: no configuration matches these options (--only, --transport, --mode)",
        );
        for n in &notes {
            why.push_str("\nnote: ");
            why.push_str(n);
        }
        return Err(why.into());
    }
    // Only a run that will go ahead sweeps: a refused command changes nothing.
    let stale = stale::sweep();
    output::print_header(&machine, &plan, &settings, &notes);
    match stale {
        0 => {}
        n => println!("removed {n} names left by benchmark runs that were killed"),
    }
    let ctx = procs::Ctx {
        exe: std::env::current_exe()?,
        cpus: if parent_pinned { cpus } else { Vec::new() },
        limits: settings.limits,
        spin: args.spin,
        dir: dir.0.clone(),
        c_echo,
        slots: args.slots,
    };
    let done = run_all(&ctx, &plan, settings.repeat, &stop);
    // No process of the benchmark's iceoryx2 domain is left: its shared memory can go.
    stale::remove_own_iceoryx2();
    machine.pinned = parent_pinned && done.children_pinned && !done.records.is_empty();
    let rows = report::rows(&done.records);
    output::print_results(&machine, &rows, &done.failures);
    output::write_outputs(args, &machine, &done.records, &rows)?;
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted: the table above has the runs that finished".into());
    }
    match done.failures.len() {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} runs failed (see above)",
            plan.len() * settings.repeat as usize
        )
        .into()),
    }
}

/// The list of runs for these options on `cpus` usable CPUs, and notes on what was left out.
fn build_plan(args: &BenchArgs, settings: &Settings, cpus: usize) -> (Vec<RunSpec>, Vec<String>) {
    plan::build(&PlanOptions {
        only: &args.only,
        transports: &args.transport,
        modes: &settings.modes,
        sweep_modes: &settings.sweep_modes,
        payloads: &args.payload,
        rates: &args.rate,
        subscribers: &args.subscribers,
        fanout_rate: args.fanout_rate,
        cpus,
    })
}

/// Why the benchmark does not run under a real-time scheduling policy (`chrt -f ...`).
///
/// Its processes start on the parent's CPU, and each has helper threads there (line readers,
/// watchdogs) besides the measuring thread. Under the normal policy they share the CPU in time
/// slices; at one real-time priority, a thread that runs (the parent's measuring loop, or its
/// child-reaping loop) keeps the others off that CPU until it blocks, and the kernel's real-time
/// throttling (`sched_rt_runtime_us`) only lends the CPU to normal tasks, not to them. Measured on
/// our test machine under `chrt -f 1`: a 0.5 s ping-pong ran for minutes, a `--quick` run of
/// park and pipe ping-pongs overran its deadline, and the machine's other tasks (a shell, a
/// `timeout` meant to stop it) waited as long. A harness that runs at real-time priority would
/// need every helper thread on a CPU of its own; this one refuses instead.
fn realtime_refusal(policy: &str) -> String {
    format!(
        "this process runs under the real-time policy {policy}: the benchmark's processes and \
         their helper threads share CPUs, and at real-time priority they starve one another and \
         every other task (on our test machine a 0.5 s run stalled for minutes); run it under \
         the normal policy, without chrt"
    )
}

/// Builds the C echo if the plan has `c` runs; if it cannot be built here, drops those runs and
/// says why (the rest of the benchmark runs as usual).
fn prepare_c_echo(plan: &mut Vec<RunSpec>, notes: &mut Vec<String>, dir: &Path) -> Option<PathBuf> {
    if !plan.iter().any(|s| s.transport == Transport::C) {
        return None;
    }
    match c_echo::build(dir) {
        Ok(c) => {
            notes.push(format!("c: echo built with {}", c.description));
            Some(c.exe)
        }
        Err(why) => {
            plan.retain(|s| s.transport != Transport::C);
            notes.push(format!("c transport skipped: {why}"));
            None
        }
    }
}

/// The CPUs to pin to: `--cpus` (checked against the allowed set), or the first two allowed.
fn choose_cpus(requested: Option<&[usize]>) -> Result<Vec<usize>> {
    let allowed = machine::allowed_cpus()?;
    match requested {
        Some(cpus) => {
            if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(format!("--cpus: CPU {c} is not available to this process").into());
            }
            // Two processes pinned to one CPU take turns a time slice apart (4 ms a hop).
            let repeated = (1..cpus.len()).find(|&i| cpus[..i].contains(&cpus[i]));
            if let Some(c) = repeated.map(|i| cpus[i]) {
                return Err(format!(
                    "--cpus: CPU {c} is given twice; each process needs a CPU of its own"
                )
                .into());
            }
            Ok(cpus.to_vec())
        }
        None => Ok(allowed.into_iter().take(2).collect()),
    }
}

/// What [`run_all`] measured.
struct Done {
    /// One record per successful run.
    records: Vec<RunRecord>,
    /// Each failed run and why.
    failures: Vec<report::Failure>,
    /// Whether every child pinned itself.
    children_pinned: bool,
}

/// Runs every configuration `repeat` times, repeats interleaved, until done or `stop` is set.
fn run_all(ctx: &procs::Ctx, plan: &[RunSpec], repeat: u32, stop: &AtomicBool) -> Done {
    let progress = std::io::stderr().is_terminal();
    let total = plan.len() * repeat as usize;
    let (mut records, mut failures, mut pinned) = (Vec::new(), Vec::new(), true);
    let mut run_no = 0u64;
    for rep in 0..repeat {
        for spec in plan {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            run_no += 1;
            if progress {
                eprint!(
                    "\r\x1b[K[{run_no}/{total}] repeat {}: {}",
                    rep + 1,
                    spec.label()
                );
            }
            match procs::run(ctx, spec, run_no) {
                Ok(o) => {
                    pinned &= o.children_pinned;
                    records.push(RunRecord {
                        spec: *spec,
                        repeat: rep,
                        summary: hist::Summary::of(&o.hist),
                        hist: o.hist,
                        lost: o.lost,
                        count: o.count,
                        msgs_per_s: o.msgs_per_s,
                        interrupts_per_s: o.interrupts_per_s,
                        preemptions: o.preemptions,
                    });
                }
                Err(_) if stop.load(Ordering::Relaxed) => break,
                Err(e) => {
                    let failure = report::Failure {
                        spec: *spec,
                        repeat: rep,
                        error: e.to_string(),
                    };
                    eprintln!(
                        "{}shmbus bench: run failed: {failure}",
                        if progress { "\r\x1b[K" } else { "" }
                    );
                    failures.push(failure);
                }
            }
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    Done {
        records,
        failures,
        children_pinned: pinned,
    }
}

/// A flag set by SIGINT or SIGTERM (and SIGHUP when neither stdout nor stderr is a terminal):
/// the benchmark stops after the current run (whose children got the terminal's SIGINT too),
/// removes its names and reports what it measured. A second signal exits at once.
fn stop_on_signal() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut signals = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
    // SIGHUP only when the output goes to files or pipes: after a hangup every write to the
    // terminal fails, so results printed there would be lost anyway; then its default action
    // ends the run, and the next run removes what it left. Never when it is ignored (`nohup`):
    // the run is meant to outlive the hangup.
    if !std::io::stdout().is_terminal()
        && !std::io::stderr().is_terminal()
        && !machine::signal_ignored(signal_hook::consts::SIGHUP)
    {
        signals.push(signal_hook::consts::SIGHUP);
    }
    for sig in signals {
        // Registration fails only for forbidden signals; without it a signal just kills us.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

/// The run's private directory (mode 0700) for FIFOs and socket paths, removed on drop.
struct RunDir(PathBuf);

impl RunDir {
    /// Creates `$TMPDIR/shmbus-bench-<pid>-<n>` (a fresh name if one exists).
    fn create() -> Result<Self> {
        let base = std::env::temp_dir();
        for n in 0..100 {
            let path = base.join(format!("shmbus-bench-{}-{n}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("create {path:?}: {e}").into()),
            }
        }
        Err("could not create a run directory".into())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
