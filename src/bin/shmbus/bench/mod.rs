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
//!   through shared memory by busy-spinning), `futex` (raw cross-process futex ping-pong),
//!   `pipe`, `unix`, `tcp` (127.0.0.1, `TCP_NODELAY`), and `shmbus` in each wait mode.
//! * **Repeats.** Each configuration runs `--repeat` times, interleaved with the others; the table
//!   shows the median of the repeats for each percentile, the min-max of the repeat p50s, and the
//!   worst max. The verdict uses the worst p99.99 and max of any repeat.
//! * **Bounded and tidy.** Every loop is bounded by a count and a time; every child has watchdogs
//!   and exits if the parent dies; the parent kills and reaps only the children it started.
//!   Names (shared memory, FIFOs, sockets) contain the parent's pid and are removed at the end.

pub mod child;
mod clock;
mod hist;
mod json;
mod machine;
mod msg;
mod plan;
mod plot;
mod procs;
mod report;
#[allow(
    unsafe_code,
    reason = "the floor's shared word; the module documents every block"
)]
mod shm;
mod transports;
mod workload;

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use machine::Machine;
use plan::{Mode, PlanOptions, RunSpec, Selection, Transport};
use report::RunRecord;
use workload::Limits;

/// Errors of the benchmark: a message, with context where it helps.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result of the benchmark's fallible steps.
pub type Result<T> = std::result::Result<T, Error>;

/// Options of `shmbus bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Scenarios: pingpong (64 B, every transport and mode), sweep (ping-pong at \
    each other --payload), open-loop (each --rate), stream (as fast as possible), fanout (one \
    publisher to each --subscribers count). Every run also measures the floor, the reference of \
    the p50/floor column."
)]
pub struct BenchArgs {
    /// Short run for CI: 100 ms per run and one repeat unless given (whole run well under 30 s).
    #[arg(long)]
    pub quick: bool,
    /// Measuring time of each run, after a warm-up of a tenth of it (e.g. `1s`, `250ms`)
    /// [default: 1s, 100ms with --quick].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Runs of each configuration [default: 3, 1 with --quick].
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Open-loop rates in messages per second (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u64, 1_000])]
    pub rate: Vec<u64>,
    /// Ping-pong payload sweep sizes in bytes (comma list; `1KiB`, `64k` accepted).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_values = ["8", "64", "1KiB", "64KiB"])]
    pub payload: Vec<usize>,
    /// Fanout subscriber counts (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 4])]
    pub subscribers: Vec<usize>,
    /// Fanout publishing rate in messages per second.
    #[arg(long, default_value_t = 10_000)]
    pub fanout_rate: u64,
    /// shmbus wait modes (comma list) [default: all; the sweep uses spin unless given].
    #[arg(long, value_delimiter = ',', value_enum)]
    pub mode: Vec<Mode>,
    /// CPUs to pin to: the initiator/publisher's first, then the other processes' [default: the
    /// first two this process may use].
    #[arg(long, value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// Run only these scenarios (repeatable or comma list).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<Selection>,
    /// Measure only these transports (repeatable or comma list).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub transport: Vec<Transport>,
    /// Write the results as JSON (schema 1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one HdrHistogram percentile-distribution file (values in µs) per configuration to DIR.
    #[arg(long, value_name = "DIR")]
    pub hdr: Option<PathBuf>,
    /// Write an SVG plot of the percentile curves to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Spin phase of the spin-then-park mode (e.g. `50us`).
    #[arg(long, value_parser = parse_duration, default_value = "50us")]
    pub spin: Duration,
    /// Most messages (or round trips) measured per run.
    #[arg(long, default_value_t = 20_000_000, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub max_count: u64,
}

/// Runs `shmbus bench`.
///
/// # Errors
/// Invalid options, an output that could not be written, or failed runs (the others are still
/// reported).
pub fn run(args: &BenchArgs) -> Result<()> {
    let limits = Limits {
        duration: args.duration.unwrap_or(if args.quick {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        }),
        max_count: args.max_count,
    };
    let repeat = args.repeat.unwrap_or(if args.quick { 1 } else { 3 });
    validate(args, &limits, repeat)?;
    let cpus = choose_cpus(args.cpus.as_deref())?;
    // Facts first: pinning shrinks the set of CPUs this process may use.
    let mut machine = Machine::collect(&cpus, 0.0);
    let parent_pinned = cpus.len() >= 2 && machine::pin_to(cpus[0]).is_ok();
    machine.clock_read_ns = clock::read_overhead_ns();
    let all_modes = [Mode::Spin, Mode::Park, Mode::SpinThenPark];
    let modes = if args.mode.is_empty() {
        &all_modes[..]
    } else {
        &args.mode[..]
    };
    let sweep_modes = if args.mode.is_empty() {
        &all_modes[..1]
    } else {
        &args.mode[..]
    };
    let (plan, notes) = plan::build(&PlanOptions {
        only: &args.only,
        transports: &args.transport,
        modes,
        sweep_modes,
        payloads: &args.payload,
        rates: &args.rate,
        subscribers: &args.subscribers,
        fanout_rate: args.fanout_rate,
        cpus: if cpus.len() >= 2 {
            cpus.len()
        } else {
            machine.cores
        },
    });
    print_header(&machine, &plan, repeat, &limits, &notes);
    let dir = RunDir::create()?;
    let ctx = procs::Ctx {
        exe: std::env::current_exe()?,
        cpus: if parent_pinned {
            cpus.clone()
        } else {
            Vec::new()
        },
        limits,
        spin: args.spin,
        dir: dir.0.clone(),
    };
    let stop = stop_on_signal();
    let (records, failures, children_pinned) = run_all(&ctx, &plan, repeat, &stop);
    machine.pinned = parent_pinned && children_pinned && !records.is_empty();
    let rows = report::rows(&records);
    print_results(&machine, &rows, &failures);
    write_outputs(args, &machine, &records, &rows)?;
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted: the table above has the runs that finished".into());
    }
    match failures.len() {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} runs failed (see above)",
            plan.len() * repeat as usize
        )
        .into()),
    }
}

/// Rejects options that cannot give a meaningful run.
fn validate(args: &BenchArgs, limits: &Limits, repeat: u32) -> Result<()> {
    if limits.duration.is_zero() || repeat == 0 {
        return Err("--duration and --repeat must be positive".into());
    }
    if let Some(&p) = args
        .payload
        .iter()
        .find(|&&p| !(msg::MIN_PINGPONG..=16 << 20).contains(&p))
    {
        return Err(format!("--payload {p}: must be 8 B to 16 MiB").into());
    }
    if args.rate.contains(&0) || args.fanout_rate == 0 {
        return Err("rates must be positive".into());
    }
    if let Some(&n) = args.subscribers.iter().find(|&&n| !(1..=64).contains(&n)) {
        return Err(format!("--subscribers {n}: must be 1 to 64").into());
    }
    Ok(())
}

/// The CPUs to pin to: `--cpus` (checked against the allowed set), or the first two allowed.
fn choose_cpus(requested: Option<&[usize]>) -> Result<Vec<usize>> {
    let allowed = machine::allowed_cpus()?;
    match requested {
        Some(cpus) => {
            if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(format!("--cpus: CPU {c} is not available to this process").into());
            }
            Ok(cpus.to_vec())
        }
        None => Ok(allowed.into_iter().take(2).collect()),
    }
}

/// Runs every configuration `repeat` times (repeats interleaved). Returns the records, the
/// failures, and whether every child pinned itself.
fn run_all(
    ctx: &procs::Ctx,
    plan: &[RunSpec],
    repeat: u32,
    stop: &AtomicBool,
) -> (Vec<RunRecord>, Vec<String>, bool) {
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
                        msgs_per_s: o.msgs_per_s,
                    });
                }
                Err(_) if stop.load(Ordering::Relaxed) => break,
                Err(e) => {
                    let line = format!("{} (repeat {}): {e}", spec.label(), rep + 1);
                    eprintln!(
                        "{}shmbus bench: run failed: {line}",
                        if progress { "\r\x1b[K" } else { "" }
                    );
                    failures.push(line);
                }
            }
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    (records, failures, pinned)
}

/// A flag set by SIGINT or SIGTERM: the benchmark stops after the current run (whose children
/// got the terminal's SIGINT too), removes its names and reports what it measured. A second
/// signal exits at once.
fn stop_on_signal() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for forbidden signals; without it a signal just kills us.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

/// Prints what is about to run and on what.
fn print_header(m: &Machine, plan: &[RunSpec], repeat: u32, limits: &Limits, notes: &[String]) {
    let per_run = (limits.duration + limits.warmup()).as_secs_f64() + 0.05;
    println!(
        "shmbus bench: {} configurations x {repeat} repeats, {:?} per run (about {:.0} s)",
        plan.len(),
        limits.duration,
        per_run * (plan.len() * repeat as usize) as f64
    );
    println!(
        "machine: {}, {} CPUs, {}, clocksource {}, clock read {:.1} ns",
        m.cpu, m.cores, m.kernel, m.clocksource, m.clock_read_ns
    );
    match m.cpus.as_slice() {
        [first, rest @ ..] if !rest.is_empty() => println!(
            "cpus: initiator/publisher on CPU {first}, others on CPU {:?}; SMT siblings: {}",
            rest,
            m.smt_siblings
                .map_or("unknown", |s| if s { "yes (shared core)" } else { "no" })
        ),
        _ => println!("cpus: not pinned (fewer than two CPUs available)"),
    }
    for note in notes {
        println!("note: {note}");
    }
    let _ = std::io::stdout().flush();
}

/// Prints the table, the verdict and the failures.
fn print_results(m: &Machine, rows: &[report::Row], failures: &[String]) {
    println!();
    print!("{}", report::table(rows));
    println!();
    println!(
        "p50..p99.99: median of the repeats; p50 range: lowest-highest repeat p50; max: worst repeat; \
         msgs/s: round trips/s for pingpong, deliveries/s otherwise; pingpong latency = round trip / 2; \
         open-loop and fanout latency = receive time - intended send time"
    );
    println!(
        "pinned: {}",
        if m.pinned {
            "yes, every process on its CPU"
        } else {
            "no"
        }
    );
    println!("{}", report::verdict(rows));
    for f in failures {
        println!("FAILED: {f}");
    }
}

/// Writes `--json`, `--hdr` and `--plot`.
fn write_outputs(
    args: &BenchArgs,
    m: &Machine,
    records: &[RunRecord],
    rows: &[report::Row],
) -> Result<()> {
    if let Some(path) = &args.json {
        write_file(path, &json::render(m, records))?;
    }
    if let Some(dir) = &args.hdr {
        fs::create_dir_all(dir).map_err(|e| format!("create {dir:?}: {e}"))?;
        for r in rows {
            write_file(
                &dir.join(hdr_file_name(&r.spec)),
                &hist::percentile_distribution(&r.merged, 1000.0),
            )?;
        }
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "shmbus bench: one-way latency by percentile ({}, {})",
            m.cpu, m.kernel
        );
        write_file(path, &plot::render(rows, &title))?;
    }
    Ok(())
}

/// `pingpong-shmbus-spin-64B-1sub.hdr`, `open-loop-pipe-blocking-64B-1sub-1000ps.hdr`.
fn hdr_file_name(s: &RunSpec) -> String {
    let rate = s.rate.map_or(String::new(), |r| format!("-{r}ps"));
    format!(
        "{}-{}-{}-{}B-{}sub{rate}.hdr",
        s.scenario.as_str(),
        s.transport.as_str(),
        s.mode.as_str(),
        s.payload,
        s.subscribers
    )
}

/// Writes `contents` to `path`, naming the path in the error.
fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|e| format!("write {path:?}: {e}").into())
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

/// Parses `1s`, `250ms`, `50us`, `2.5s`, `100ns`, `1m` (a bare number is seconds).
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?}"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        u => return Err(format!("unknown unit {u:?} (use ns, us, ms, s, m)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses `64`, `1KiB`, `1k`, `64KiB`, `1MiB`, `1M` (powers of two).
fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        u => return Err(format!("unknown unit {u:?} (use B, KiB, MiB)")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("8"), Ok(8));
        assert!(parse_size("x").is_err());
    }
}
