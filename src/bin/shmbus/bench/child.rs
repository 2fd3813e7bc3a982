//! The second process of a run: `shmbus bench-child ...`, started by `shmbus bench` from its own
//! executable (`std::env::current_exe()`), never by hand.
//!
//! It talks to the parent through its standard streams: it prints `ready pinned=<0|1>` once its
//! end is connected (for shmbus: once its subscriber exists), then, for a receiver, its histogram
//! as `h <value_ns> <count>` lines, and finally `done count=.. lost=.. bytes=.. first_ns=..
//! last_ns=..`. Its standard input is a pipe from the parent that is never written: end of file
//! there means the parent is gone.
//!
//! Nothing outlives the parent or hangs: the child asks for `SIGKILL` when its parent dies
//! (`PR_SET_PDEATHSIG`), checks the parent is still the one that started it, exits on end of
//! file on standard input, and exits by itself after `--deadline-ms`.

use std::io::{self, BufWriter, Read, Write};
use std::process;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rustix::process::{Signal, getppid, set_parent_process_death_signal};

use super::Result;
use super::clock::now_ns;
use super::hist;
use super::machine::pin_to;
use super::plan::{DataPath, Mode, Transport};
use super::transports::{self, Shape};
use super::workload;

/// What a child does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Ping-pong: send every message back.
    Echo,
    /// One-way scenarios: receive and record latencies.
    Receive,
}

/// Arguments of `shmbus bench-child` (written by the parent).
#[derive(Debug, Args)]
pub struct ChildArgs {
    /// What to do.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Transport to connect with.
    #[arg(long, value_enum)]
    pub transport: Transport,
    /// Wait mode (shmbus), as in the JSON.
    #[arg(long)]
    pub mode: String,
    /// Message size in bytes.
    #[arg(long)]
    pub payload: usize,
    /// Rendezvous addresses (repeatable; meaning depends on the transport).
    #[arg(long = "addr")]
    pub addrs: Vec<String>,
    /// CPU to pin to.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// The parent's pid: the child exits if its parent is someone else.
    #[arg(long)]
    pub parent_pid: i32,
    /// Exit by itself after this many milliseconds.
    #[arg(long)]
    pub deadline_ms: u64,
    /// Messages (by sequence number) not recorded, as warm-up.
    #[arg(long, default_value_t = 0)]
    pub skip: u64,
    /// Spin phase of spin-then-park, in nanoseconds (the parent's `--spin`, not rounded: the
    /// echo must spin exactly as long as the initiator).
    #[arg(long, default_value_t = 50_000)]
    pub spin_ns: u64,
    /// shmbus: copy or borrow path.
    #[arg(long, value_enum, default_value = "copy")]
    pub path: DataPath,
    /// Ring slots (the parent's `--slots`); absent: the default for the payload.
    #[arg(long)]
    pub slots: Option<usize>,
}

/// Exit status when a watchdog ends the child.
const WATCHDOG_EXIT: i32 = 3;

/// Runs the child role.
///
/// # Errors
/// Connecting or measuring failed (the parent sees the child exit without `done`).
pub fn run(args: &ChildArgs) -> Result<()> {
    arm_watchdogs(args)?;
    let deadline_ns = now_ns() + args.deadline_ms * 1_000_000;
    let pinned = args.cpu.is_some_and(|cpu| pin_to(cpu).is_ok());
    let shape = Shape {
        transport: args.transport,
        mode: parse_mode(&args.mode)?,
        payload: args.payload,
        children: 1,
        duplex: args.role == Role::Echo,
        spin: Duration::from_nanos(args.spin_ns),
        path: args.path,
        slots: args.slots,
    };
    let mut ep = transports::open_child(&shape, &args.addrs)?;
    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(out, "ready pinned={}", u8::from(pinned))?;
    out.flush()?;
    match args.role {
        Role::Echo => {
            let count = workload::echo(&mut *ep, args.payload, deadline_ns)?;
            writeln!(
                out,
                "done count={count} lost=0 bytes=0 first_ns=0 last_ns=0"
            )?;
        }
        Role::Receive => {
            let r = workload::receive(&mut *ep, args.payload, args.skip, deadline_ns)?;
            for line in hist::to_lines(&r.hist) {
                writeln!(out, "{line}")?;
            }
            writeln!(
                out,
                "done count={} lost={} bytes={} first_ns={} last_ns={}",
                r.count, r.lost, r.bytes, r.first_ns, r.last_ns
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A mode name as the parent wrote it.
fn parse_mode(s: &str) -> Result<Mode> {
    match s {
        "blocking" => Ok(Mode::Blocking),
        other => Mode::from_str(other, false).map_err(|e| format!("--mode: {e}").into()),
    }
}

/// Makes sure the child never outlives its parent or its deadline.
fn arm_watchdogs(args: &ChildArgs) -> Result<()> {
    set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent may have died before the line above: then we were re-parented already.
    if getppid().map(|p| p.as_raw_nonzero().get()) != Some(args.parent_pid) {
        process::exit(WATCHDOG_EXIT);
    }
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        // The parent never writes: end of file (or an error) means it closed or died.
        while matches!(io::stdin().lock().read(&mut sink), Ok(n) if n > 0) {}
        process::exit(WATCHDOG_EXIT);
    });
    let limit = Duration::from_millis(args.deadline_ms) + Duration::from_secs(2);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("shmbus bench-child: deadline passed, exiting");
        process::exit(WATCHDOG_EXIT);
    });
    Ok(())
}
