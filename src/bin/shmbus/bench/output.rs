//! What `shmbus bench` prints and writes: header, table and verdict, JSON, HDR files, plot.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Result;
use super::args::{BenchArgs, Settings};
use super::machine::Machine;
use super::plan::RunSpec;
use super::report::{self, RunRecord};
use super::transports::{DEFAULT_SLOTS, RING_BYTES, default_slots};
use super::{hist, json, plot};

/// Prints what is about to run and on what.
pub fn print_header(m: &Machine, plan: &[RunSpec], settings: &Settings, notes: &[String]) {
    let (limits, repeat) = (&settings.limits, settings.repeat);
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
        _ => println!("cpus: not pinned (fewer than two CPUs available, or pinning refused)"),
    }
    match settings.slots {
        Some(n) => println!("rings: {n} slots (--slots) for shmbus, c, ring and iceoryx2"),
        None => println!(
            "rings: {} MiB / payload slots, {} to {} ({} at 64 B) for shmbus, c, ring and \
             iceoryx2 (--slots to change)",
            RING_BYTES >> 20,
            DEFAULT_SLOTS.0,
            DEFAULT_SLOTS.1,
            default_slots(64)
        ),
    }
    for note in notes {
        println!("note: {note}");
    }
    let _ = std::io::stdout().flush();
}

/// How to read the table.
const LEGEND: &str = "\
p50..p99.99, msgs/s: median of the repeats; p50 range: lowest-highest repeat p50; max: worst repeat
p50/floor:          median over repeats of (p50 / the floor's p50 in the same repeat)
pingpong:           one-way = round trip / 2 (one process, one clock); msgs/s = round trips/s
open-loop, fanout:  receive time - intended send time (coordinated omission counted)
stream:             receive time - send time (mostly queueing), one message in 64 stamped;
                    msgs/s = deliveries/s
path (shmbus):      copy = lossy topic, publish + recv_timeout copy all N bytes in and out;
                    borrow = lossless topic, loan + recv_borrow_timeout, header written/read in place
c:                  shmbus ping-pong whose echo is a C program on libshmbus.a (copy path)
ring:               minimal seqlock ring (stamp + payload per slot, shmbus's geometry): what any ring bus pays
ring2:              the same ring with 2 slots (whatever --slots says): the cost of cycling through lines";

/// The legend line of the iceoryx2 transport (only in builds that have it).
#[cfg(feature = "bench-iceoryx2")]
const ICEORYX2_LEGEND: Option<&str> = Some(super::transports::iox2::LEGEND);
#[cfg(not(feature = "bench-iceoryx2"))]
const ICEORYX2_LEGEND: Option<&str> = None;

/// The legend line of the aeron transport (only in builds that have it).
#[cfg(feature = "bench-aeron")]
const AERON_LEGEND: Option<&str> = Some(super::transports::aeron::LEGEND);
#[cfg(not(feature = "bench-aeron"))]
const AERON_LEGEND: Option<&str> = None;

/// Prints the table, the verdict and the failures.
pub fn print_results(m: &Machine, rows: &[report::Row], failures: &[report::Failure]) {
    println!();
    print!("{}", report::table(rows));
    println!();
    for summary in [
        report::sweep_summary(rows),
        report::ffi_summary(rows),
        report::ratios(rows),
        report::tail(rows),
        report::throughput(rows),
    ] {
        if !summary.is_empty() {
            println!("{summary}");
        }
    }
    println!("{LEGEND}");
    for line in [ICEORYX2_LEGEND, AERON_LEGEND].into_iter().flatten() {
        println!("{line}");
    }
    println!(
        "pinned: {}",
        if m.pinned {
            "yes, every process on its CPU"
        } else {
            "no"
        }
    );
    println!("{}", report::verdict(rows, failures));
    for f in failures {
        println!("FAILED: {f}");
    }
}

/// Writes `--json`, `--hdr` and `--plot`.
pub fn write_outputs(
    args: &BenchArgs,
    m: &Machine,
    records: &[RunRecord],
    rows: &[report::Row],
) -> Result<()> {
    if let Some(path) = &args.json {
        write_file(path, &json::render(m, records, args.slots))?;
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

/// Checks before anything runs that `--json`, `--hdr` and `--plot` can be written: a typo in a
/// path would otherwise surface only after the whole run, with its results lost. Writes nothing:
/// a file that exists must be writable (`/dev/stdout` is fine), one that does not must be
/// creatable in its directory; the `--hdr` directory, likewise, or its parent.
///
/// # Errors
/// The first path that cannot be written, and why.
pub fn check_outputs(args: &BenchArgs) -> Result<()> {
    use rustix::fs::{Access, access};
    let parent = |path: &std::path::Path| match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for (option, path) in [("--json", &args.json), ("--plot", &args.plot)] {
        let Some(path) = path else { continue };
        if path.is_dir() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(format!("{option} {path:?}: is a directory").into());
        }
        let target = if path.exists() {
            path.clone()
        } else if path.symlink_metadata().is_ok() {
            return Err(format!("{option} {path:?}: a symbolic link to nothing").into());
        } else {
            let dir = parent(path);
            if !dir.is_dir() {
                return Err(format!("{option} {path:?}: {dir:?} is not a directory").into());
            }
            dir
        };
        access(&target, Access::WRITE_OK)
            .map_err(|e| format!("{option} {path:?}: cannot write {target:?}: {e}"))?;
    }
    if let Some(dir) = &args.hdr {
        // The nearest existing ancestor (a dangling symlink counts as existing) is where
        // `create_dir_all` will write: it must be a writable directory.
        let mut target = dir.clone();
        while !target.exists() && target.symlink_metadata().is_err() {
            let up = parent(&target);
            if up == target {
                break; // `.` itself is gone: `access` says so below
            }
            target = up;
        }
        if !target.is_dir() {
            return Err(format!("--hdr {dir:?}: {target:?} is not a directory").into());
        }
        access(&target, Access::WRITE_OK)
            .map_err(|e| format!("--hdr {dir:?}: cannot write {target:?}: {e}"))?;
    }
    Ok(())
}

/// `pingpong-shmbus-spin-copy-64B-1sub.hdr`, `pingpong-shmbus-spin-borrow-1048576B-1sub.hdr`,
/// `open-loop-pipe-blocking-64B-1sub-1000ps.hdr` (the path only for shmbus).
fn hdr_file_name(s: &RunSpec) -> String {
    let rate = s.rate.map_or(String::new(), |r| format!("-{r}ps"));
    let path = s.path.map_or(String::new(), |p| format!("-{}", p.as_str()));
    format!(
        "{}-{}-{}{path}-{}B-{}sub{rate}.hdr",
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
