//! The parent side of one run: start the children, connect, measure, collect, reap.
//!
//! Children are this executable re-run as `shmbus bench-child`. Their stdout lines reach the
//! parent through one reader thread each. A watchdog thread kills them (only them: it holds
//! their `Child` handles) if the run overstays its deadline, which also unblocks a parent stuck
//! in a blocking read or write on a byte stream; dropping [`Children`] kills and reaps whatever is
//! left, on error paths too.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Result;
use super::child::Role;
use super::clock::{now_ns, ns};
use super::hist::{self, Hist};
use super::machine;
use super::plan::{DataPath, RunSpec, Scenario, Transport};
use super::transports::{self, Names, Shape};
use super::workload::{self, Limits};

/// Time the children get to start, connect and report ready.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra time, beyond the measuring time, before the watchdog kills the children.
const RUN_GRACE: Duration = Duration::from_secs(15);

/// What the parent needs to start a run.
pub struct Ctx {
    /// This executable.
    pub exe: PathBuf,
    /// CPUs: the parent's first, then the children's (empty: no pinning).
    pub cpus: Vec<usize>,
    /// Count and time bounds of a run.
    pub limits: Limits,
    /// Spin phase of spin-then-park.
    pub spin: Duration,
    /// Private directory for FIFOs and sockets.
    pub dir: PathBuf,
    /// The compiled C echo of the `c` transport (`None`: not built, no `c` runs).
    pub c_echo: Option<PathBuf>,
    /// `--slots`: ring slots instead of the default for the payload.
    pub slots: Option<usize>,
}

/// The result of one run.
pub struct Outcome {
    /// One-way latencies (all receivers merged), ns.
    pub hist: Hist,
    /// Round trips (ping-pong) or messages delivered (others) per second.
    pub msgs_per_s: f64,
    /// Round trips measured (ping-pong), or messages the receivers counted in their measured
    /// window (others; summed over receivers). A stream times one message in 64, so its
    /// histogram holds fewer samples than this.
    pub count: u64,
    /// Messages lost.
    pub lost: u64,
    /// Whether every child pinned itself.
    pub children_pinned: bool,
    /// Interrupts per second on the pinned CPUs while the parent measured (warm-up included);
    /// `None` if not pinned or /proc/interrupts is unreadable.
    pub interrupts_per_s: Option<f64>,
    /// Involuntary context switches of the parent and its children while the parent measured
    /// (warm-up included); `None` if not readable.
    pub preemptions: Option<u64>,
}

/// Runs `spec` once; `run_no` makes its names unique.
///
/// # Errors
/// Any failure of setup, measurement or a child.
pub fn run(ctx: &Ctx, spec: &RunSpec, run_no: u64) -> Result<Outcome> {
    let shape = Shape {
        transport: spec.transport,
        mode: spec.mode,
        payload: spec.payload,
        children: spec.subscribers,
        duplex: spec.scenario == Scenario::Pingpong,
        spin: ctx.spin,
        path: spec.path.unwrap_or(DataPath::Copy),
        slots: ctx.slots,
    };
    let names = Names {
        dir: ctx.dir.clone(),
        tag: format!("{}-{run_no}", std::process::id()),
    };
    let prepared = transports::prepare(&shape, &names)?;
    let skip = match spec.scenario {
        Scenario::OpenLoop | Scenario::Fanout => {
            workload::open_loop_skip(spec.rate.unwrap_or(1), &ctx.limits)
        }
        Scenario::Stream => workload::STREAM_WARMUP_MSGS,
        Scenario::Pingpong => 0,
    };
    let deadline = SETUP_TIMEOUT + ctx.limits.duration * 2 + RUN_GRACE;
    let children = Children::spawn(ctx, spec, &prepared.child_addrs, skip, deadline)?;
    let setup_end = now_ns() + ns(SETUP_TIMEOUT);
    let mut ep = prepared.rendezvous.connect(setup_end)?;
    let pinned = children.wait_ready(setup_end)?;
    let limits = &ctx.limits;
    // Interrupts on this run's CPUs, not on every CPU of `--cpus` (a ping-pong on 2 of 5).
    let cpus = run_cpus(&ctx.cpus, prepared.child_addrs.len());
    let irq_start = (now_ns(), machine::interrupts(&cpus));
    let preempted_start = children.preemptions();
    let measured = match spec.scenario {
        Scenario::Pingpong => Some(workload::pingpong(&mut *ep, spec.payload, limits)?),
        Scenario::OpenLoop | Scenario::Fanout => {
            workload::open_loop(&mut *ep, spec.payload, spec.rate.unwrap_or(1), limits)?;
            None
        }
        Scenario::Stream => {
            workload::stream(&mut *ep, spec.payload, limits)?;
            None
        }
    };
    let interrupts_per_s = match (irq_start, machine::interrupts(&cpus)) {
        ((t0, Some(n0)), Some(n1)) if n1 >= n0 => {
            let secs = now_ns().saturating_sub(t0) as f64 / 1e9;
            (secs > 0.0).then(|| (n1 - n0) as f64 / secs)
        }
        _ => None,
    };
    let preemptions = match (preempted_start, children.preemptions()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let reports = children.collect(now_ns() + ns(RUN_GRACE))?;
    drop(ep);
    children.reap()?;
    Ok(match measured {
        Some(pp) => Outcome {
            count: pp.hist.len(),
            hist: pp.hist,
            msgs_per_s: pp.round_trips_per_s,
            lost: 0,
            children_pinned: pinned,
            interrupts_per_s,
            preemptions,
        },
        None => Outcome {
            interrupts_per_s,
            preemptions,
            ..merge(reports, pinned)
        },
    })
}

/// Combines the receivers' reports into one outcome (without the run's interrupt and
/// pre-emption counts, which the caller adds).
fn merge(reports: Vec<Report>, pinned: bool) -> Outcome {
    let mut h = hist::new();
    let (mut count, mut lost) = (0u64, 0u64);
    // A receiver's count runs from its first timed message to its last, both included: it
    // spans count - 1 intervals, which are what the rate is made of.
    let mut after_first = 0u64;
    let (mut first, mut last) = (u64::MAX, 0u64);
    for r in &reports {
        // Same bounds and precision on both sides: adding cannot fail.
        let _ = h.add(&r.hist);
        count += r.count;
        lost += r.lost;
        if r.count > 0 {
            after_first += r.count - 1;
            first = first.min(r.first_ns);
            last = last.max(r.last_ns);
        }
    }
    let secs = last.saturating_sub(first) as f64 / 1e9;
    Outcome {
        hist: h,
        msgs_per_s: if secs > 0.0 {
            after_first as f64 / secs
        } else {
            0.0
        },
        count,
        lost,
        children_pinned: pinned,
        interrupts_per_s: None,
        preemptions: None,
    }
}

/// A child's final report.
struct Report {
    /// Its latencies (empty for an echo).
    hist: Hist,
    /// Messages measured.
    count: u64,
    /// Messages lost.
    lost: u64,
    /// Clock at its first measured message.
    first_ns: u64,
    /// Clock at its last measured message.
    last_ns: u64,
}

/// A line from child `.0`, or its end of output (`None`).
type Line = (usize, Option<String>);

/// The running children of one run.
struct Children {
    /// Their handles, shared with the watchdog.
    procs: Arc<Mutex<Vec<Child>>>,
    /// Their stdin pipes: closing them tells the children the parent is gone.
    stdins: Vec<ChildStdin>,
    /// Lines from every child.
    lines: Receiver<Line>,
    /// Dropped to stop the watchdog.
    stop_watchdog: Option<Sender<()>>,
    /// The watchdog thread.
    watchdog: Option<JoinHandle<()>>,
}

impl Children {
    /// Starts one child per address list.
    fn spawn(
        ctx: &Ctx,
        spec: &RunSpec,
        addrs: &[Vec<String>],
        skip: u64,
        deadline: Duration,
    ) -> Result<Self> {
        let procs = Arc::new(Mutex::new(Vec::new()));
        let (line_tx, lines) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let watchdog = {
            let procs = Arc::clone(&procs);
            std::thread::spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(deadline) {
                    eprintln!("shmbus bench: run overstayed its deadline, killing its children");
                    kill_all(&procs);
                }
            })
        };
        let mut children = Self {
            procs,
            stdins: Vec::new(),
            lines,
            stop_watchdog: Some(stop_tx),
            watchdog: Some(watchdog),
        };
        for (i, child_addrs) in addrs.iter().enumerate() {
            let mut cmd = match spec.transport {
                Transport::C => c_echo_command(ctx, spec, child_addrs, deadline)?,
                _ => child_command(ctx, spec, child_addrs, i, skip, deadline),
            };
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))?;
            let stdout = child.stdout.take().ok_or("child without stdout")?;
            children.stdins.extend(child.stdin.take());
            lock(&children.procs).push(child);
            let tx = line_tx.clone();
            std::thread::spawn(move || forward_lines(i, stdout, &tx));
        }
        Ok(children)
    }

    /// Involuntary context switches so far of this process and every child, summed; `None` if
    /// any of them cannot be read.
    fn preemptions(&self) -> Option<u64> {
        let pids: Vec<u32> = lock(&self.procs).iter().map(Child::id).collect();
        std::iter::once(std::process::id())
            .chain(pids)
            .map(machine::preemptions)
            .sum()
    }

    /// Waits for every child's `ready` line; returns whether all of them pinned.
    fn wait_ready(&self, deadline_ns: u64) -> Result<bool> {
        let mut pinned = true;
        for _ in 0..self.stdins.len() {
            let (i, line) = self.next_line(deadline_ns)?;
            match line
                .as_deref()
                .and_then(|l| l.strip_prefix("ready pinned="))
            {
                Some(p) => pinned &= p == "1",
                None => return Err(format!("child {i} failed to start: {line:?}").into()),
            }
        }
        Ok(pinned)
    }

    /// Collects every child's histogram and `done` line.
    fn collect(&self, deadline_ns: u64) -> Result<Vec<Report>> {
        let n = self.stdins.len();
        let mut reports: Vec<Report> = (0..n).map(|_| Report::empty()).collect();
        let mut done = vec![false; n];
        while done.contains(&false) {
            let (i, line) = self.next_line(deadline_ns)?;
            let Some(line) = line else {
                match done[i] {
                    true => continue,
                    false => return Err(format!("child {i} exited without reporting").into()),
                }
            };
            let r = &mut reports[i];
            if let Some(rest) = line.strip_prefix("h ") {
                hist::add_line(&mut r.hist, rest)?;
            } else if let Some(rest) = line.strip_prefix("done ") {
                r.parse_done(rest)?;
                done[i] = true;
            } else {
                return Err(format!("child {i}: unexpected line {line:?}").into());
            }
        }
        Ok(reports)
    }

    /// The next line of any child, before `deadline_ns`.
    fn next_line(&self, deadline_ns: u64) -> Result<Line> {
        let left = Duration::from_nanos(deadline_ns.saturating_sub(now_ns()));
        self.lines
            .recv_timeout(left)
            .map_err(|_| "timed out waiting for a child".into())
    }

    /// Waits for every child to exit (killing stragglers after a grace period) and checks their
    /// exit status.
    fn reap(mut self) -> Result<()> {
        let deadline = now_ns() + ns(Duration::from_secs(5));
        let mut failed = Vec::new();
        for child in lock(&self.procs).iter_mut() {
            let status = loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if now_ns() >= deadline {
                    let _ = child.kill();
                    break child.wait()?;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            if !status.success() {
                failed.push(status.to_string());
            }
        }
        self.stop();
        match failed.is_empty() {
            true => Ok(()),
            false => Err(format!("children exited with {}", failed.join(", ")).into()),
        }
    }

    /// Stops the watchdog.
    fn stop(&mut self) {
        drop(self.stop_watchdog.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stdins.clear();
        kill_all(&self.procs);
        self.stop();
    }
}

impl Report {
    /// A report with nothing in it yet.
    fn empty() -> Self {
        Self {
            hist: hist::new(),
            count: 0,
            lost: 0,
            first_ns: 0,
            last_ns: 0,
        }
    }

    /// Parses `count=.. lost=.. bytes=.. first_ns=.. last_ns=..`.
    fn parse_done(&mut self, rest: &str) -> Result<()> {
        for kv in rest.split_ascii_whitespace() {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("bad field {kv:?}"))?;
            let v: u64 = v.parse().map_err(|_| format!("bad number in {kv:?}"))?;
            match k {
                "count" => self.count = v,
                "lost" => self.lost = v,
                "first_ns" => self.first_ns = v,
                "last_ns" => self.last_ns = v,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Kills and reaps every child still in `procs` (only our own children: these handles).
fn kill_all(procs: &Mutex<Vec<Child>>) {
    for child in lock(procs).iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Locks, ignoring poisoning (the data is a list of handles, always consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends every line of `stdout` to `tx`, then `None`.
fn forward_lines(i: usize, stdout: std::process::ChildStdout, tx: &Sender<Line>) {
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(l) => {
                if tx.send((i, Some(l))).is_err() {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    let _ = tx.send((i, None));
}

/// The command line of child `i`.
fn child_command(
    ctx: &Ctx,
    spec: &RunSpec,
    addrs: &[String],
    i: usize,
    skip: u64,
    deadline: Duration,
) -> Command {
    let role = if spec.scenario == Scenario::Pingpong {
        Role::Echo
    } else {
        Role::Receive
    };
    let mut cmd = Command::new(&ctx.exe);
    cmd.arg("bench-child")
        .args([
            "--role",
            if role == Role::Echo {
                "echo"
            } else {
                "receive"
            },
        ])
        .args(["--transport", spec.transport.as_str()])
        .args(["--mode", spec.mode.as_str()])
        .args(["--payload", &spec.payload.to_string()])
        .args(["--parent-pid", &std::process::id().to_string()])
        .args(["--deadline-ms", &deadline.as_millis().to_string()])
        .args(["--skip", &skip.to_string()])
        .args(["--spin-ns", &ns(ctx.spin).to_string()])
        .args(["--path", spec.path.unwrap_or(DataPath::Copy).as_str()]);
    if let Some(n) = ctx.slots {
        cmd.args(["--slots", &n.to_string()]);
    }
    for a in addrs {
        cmd.args(["--addr", a]);
    }
    if let Some(cpu) = child_cpu(&ctx.cpus, i) {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// The CPU child `i` is pinned to: the CPUs after the first (this process's) in turn; `None`
/// when fewer than two are given (nothing is pinned).
fn child_cpu(cpus: &[usize], i: usize) -> Option<usize> {
    match cpus {
        [_, children @ ..] if !children.is_empty() => Some(children[i % children.len()]),
        _ => None,
    }
}

/// The CPUs a run with `children` child processes uses: the first of `cpus` (this process) and
/// those its children are pinned to ([`child_cpu`]). Empty when nothing is pinned.
fn run_cpus(cpus: &[usize], children: usize) -> Vec<usize> {
    let mut used: Vec<usize> = cpus.iter().take(1).copied().collect();
    for cpu in (0..children).filter_map(|i| child_cpu(cpus, i)) {
        if !used.contains(&cpu) {
            used.push(cpu);
        }
    }
    used
}

/// The command line of the C echo (`c` transport, ping-pong only): positional arguments
/// `BUS PAYLOAD MODE SPIN_NS CPU PARENT_PID DEADLINE_MS` (CPU -1: no pinning); it speaks the
/// same `ready` / `done` protocol as `bench-child --role echo` and has the same watchdogs.
fn c_echo_command(
    ctx: &Ctx,
    spec: &RunSpec,
    addrs: &[String],
    deadline: Duration,
) -> Result<Command> {
    let exe = ctx.c_echo.as_ref().ok_or("the C echo was not built")?;
    if spec.scenario != Scenario::Pingpong {
        return Err("the c transport measures ping-pong only".into());
    }
    let bus = addrs.first().ok_or("no bus name for the C echo")?;
    let cpu = child_cpu(&ctx.cpus, 0).map_or("-1".to_owned(), |c| c.to_string());
    let mut cmd = Command::new(exe);
    cmd.args([
        bus.as_str(),
        &spec.payload.to_string(),
        spec.mode.as_str(),
        &ctx.spin.as_nanos().to_string(),
        &cpu,
        &std::process::id().to_string(),
        &deadline.as_millis().to_string(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::{child_cpu, run_cpus};

    #[test]
    fn a_run_counts_the_cpus_it_uses_only() {
        // Ping-pong (one child) with --cpus 0,1,2,3,4: this process on 0, the echo on 1.
        assert_eq!(run_cpus(&[0, 1, 2, 3, 4], 1), [0, 1]);
        // Fan-out to 4 over 3 CPUs: the children take turns on 1 and 2.
        assert_eq!(run_cpus(&[0, 1, 2], 4), [0, 1, 2]);
        // Not pinned.
        assert!(run_cpus(&[], 2).is_empty());
        // What the children are pinned to: the CPUs after the first, in turn.
        assert_eq!(child_cpu(&[0, 1, 2], 3), Some(2));
        assert_eq!(child_cpu(&[0], 0), None);
    }
}
