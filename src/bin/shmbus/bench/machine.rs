//! Facts about the machine that every published number needs next to it, and CPU pinning.

use std::fs;
use std::io;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The machine facts printed before the table and written to the JSON.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPU model (`model name` in /proc/cpuinfo).
    pub cpu: String,
    /// CPUs this process may run on.
    pub cores: usize,
    /// Whether the two benchmark CPUs are SMT siblings (`None` if unknown or not pinned).
    pub smt_siblings: Option<bool>,
    /// Kernel name and release, as `uname -sr` prints them.
    pub kernel: String,
    /// Current clocksource (e.g. `tsc`; `hpet` or `acpi_pm` make clock reads slow).
    pub clocksource: String,
    /// Mean cost of one `clock_gettime(CLOCK_MONOTONIC)`, in ns.
    pub clock_read_ns: f64,
    /// Whether every benchmark process was pinned to its CPU (filled in after the runs).
    pub pinned: bool,
    /// The CPUs used: publisher/initiator first, then the receivers' (empty if not pinned).
    pub cpus: Vec<usize>,
}

impl Machine {
    /// Collects the facts; `cpus` are the CPUs the benchmark will pin to.
    pub fn collect(cpus: &[usize], clock_read_ns: f64) -> Self {
        let smt_siblings = match cpus {
            [a, b, ..] => smt_siblings(*a, *b),
            _ => None,
        };
        Self {
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            cores: allowed_cpus().map_or(0, |c| c.len()),
            smt_siblings,
            kernel: kernel(),
            clocksource: read_trimmed(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .unwrap_or_else(|| "unknown".into()),
            clock_read_ns,
            pinned: false,
            cpus: cpus.to_vec(),
        }
    }
}

/// Reads a small text file, trimmed; `None` if unreadable.
fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// The first `model name` of /proc/cpuinfo.
fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// `uname -sr`, from the same kernel fields /proc exposes.
fn kernel() -> String {
    let os = read_trimmed("/proc/sys/kernel/ostype").unwrap_or_else(|| "Linux".into());
    let release = read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    format!("{os} {release}")
}

/// Whether `b` is in `a`'s `thread_siblings_list` (with a != b).
fn smt_siblings(a: usize, b: usize) -> Option<bool> {
    let path = format!("/sys/devices/system/cpu/cpu{a}/topology/thread_siblings_list");
    let list = parse_cpu_list(&read_trimmed(&path)?)?;
    Some(a != b && list.contains(&b))
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => cpus.extend(lo.parse::<usize>().ok()?..=hi.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// The CPUs this process may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
///
/// # Errors
/// The error of `sched_setaffinity`, e.g. `EINVAL` if the CPU is offline or not allowed.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "CPU number too large",
        ));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// Interrupts handled so far by `cpus`, all sources together (timer, IPIs, devices), from
/// /proc/interrupts; `None` if it cannot be read or lacks a column for one of them. A spinning
/// process loses its CPU for the length of each one, so their rate during a run is the rate of
/// stalls the machine adds to every transport alike.
pub fn interrupts(cpus: &[usize]) -> Option<u64> {
    interrupts_by_cpu(cpus).map(|counts| counts.iter().sum())
}

/// As [`interrupts`], each CPU of `cpus` on its own (in the order given), from one read.
pub fn interrupts_by_cpu(cpus: &[usize]) -> Option<Vec<u64>> {
    parse_interrupts(&fs::read_to_string("/proc/interrupts").ok()?, cpus)
}

/// Whether this process ignores signal `sig` (as under `nohup` for SIGHUP): bit `sig - 1` of the
/// `SigIgn` mask in `/proc/self/status`. False if that cannot be read.
pub fn signal_ignored(sig: i32) -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| sig_ignored_in(&s, sig))
}

/// [`signal_ignored`] on a `/proc/PID/status` text.
fn sig_ignored_in(status: &str, sig: i32) -> bool {
    let mask = status_field(status, "SigIgn").and_then(|m| u64::from_str_radix(m, 16).ok());
    (1..=64).contains(&sig) && mask.is_some_and(|m| m >> (sig - 1) & 1 == 1)
}

/// The interrupts of each CPU of `cpus`, summed over every row of a /proc/interrupts text. The
/// first line names the columns (`CPU0 CPU1 ...`); each row is `NAME: count count ...
/// description`, and the rows with a single total (`ERR:`, `MIS:`) have no per-CPU columns and
/// are skipped. `None` if a CPU of `cpus` has no column, or if `cpus` is empty (nothing pinned:
/// no CPU's count is the run's).
fn parse_interrupts(text: &str, cpus: &[usize]) -> Option<Vec<u64>> {
    if cpus.is_empty() {
        return None;
    }
    let mut lines = text.lines();
    let columns: Vec<Option<usize>> = lines
        .next()?
        .split_whitespace()
        .map(|c| c.strip_prefix("CPU").and_then(|n| n.parse().ok()))
        .collect();
    let wanted: Vec<usize> = cpus
        .iter()
        .map(|&cpu| columns.iter().position(|&c| c == Some(cpu)))
        .collect::<Option<_>>()?;
    let mut totals = vec![0u64; wanted.len()];
    for line in lines {
        let Some((_, rest)) = line.split_once(':') else {
            continue;
        };
        let counts: Vec<u64> = rest
            .split_whitespace()
            .map_while(|f| f.parse().ok())
            .collect();
        if counts.len() < columns.len() {
            continue;
        }
        for (total, &i) in totals.iter_mut().zip(&wanted) {
            *total += counts[i];
        }
    }
    Some(totals)
}

/// Involuntary context switches of process `pid` so far, all its threads together (the
/// `nonvoluntary_ctxt_switches` of each `/proc/<pid>/task/*/status`): the times another task
/// took its CPU while it could still run. `None` if the process is gone or nothing is readable.
pub fn preemptions(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = None;
    for task in tasks.flatten() {
        let status = fs::read_to_string(task.path().join("status")).ok();
        if let Some(n) = status.as_deref().and_then(parse_preemptions) {
            *total.get_or_insert(0) += n;
        }
    }
    total
}

/// The real-time scheduling policy of this process (`SCHED_FIFO`, `SCHED_RR` or
/// `SCHED_DEADLINE`), or `None` for the normal ones or if `/proc/self/stat` is unreadable.
pub fn realtime_policy() -> Option<&'static str> {
    policy_name(&fs::read_to_string("/proc/self/stat").ok()?)
}

/// The real-time policy named by field 41 (`policy`) of a `/proc/<pid>/stat` text.
fn policy_name(stat: &str) -> Option<&'static str> {
    // Fields 3 onwards follow the command name, which is in parentheses and may hold anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    match rest.split_whitespace().nth(41 - 3)? {
        "1" => Some("SCHED_FIFO"),
        "2" => Some("SCHED_RR"),
        "6" => Some("SCHED_DEADLINE"),
        _ => None,
    }
}

/// Involuntary context switches of the calling thread so far (`/proc/thread-self/status`).
pub fn thread_preemptions() -> Option<u64> {
    parse_preemptions(&fs::read_to_string("/proc/thread-self/status").ok()?)
}

/// The `nonvoluntary_ctxt_switches` of a /proc status text.
fn parse_preemptions(status: &str) -> Option<u64> {
    status_field(status, "nonvoluntary_ctxt_switches")?
        .parse()
        .ok()
}

/// The value of field `key` (`key:\tvalue`) of a `/proc/PID/status` text, trimmed.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1,4"), Some(vec![0, 1, 4]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn preemptions_are_read_from_status() {
        let status = "Name:\tshmbus\nvoluntary_ctxt_switches:\t12\n\
                      nonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_preemptions(status), Some(3));
        assert_eq!(parse_preemptions("Name:\tx\n"), None);
        // This process is readable and has a count.
        assert!(preemptions(std::process::id()).is_some());
    }

    #[test]
    fn realtime_policies_are_read_from_stat() {
        // 52 fields; the command name may hold spaces and parentheses. Field 41 is the policy.
        let stat = |policy: u32| {
            let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
            fields[41 - 3] = policy.to_string();
            format!("1234 (a (b) c) {}", fields.join(" "))
        };
        assert_eq!(policy_name(&stat(0)), None);
        assert_eq!(policy_name(&stat(1)), Some("SCHED_FIFO"));
        assert_eq!(policy_name(&stat(2)), Some("SCHED_RR"));
        assert_eq!(policy_name(&stat(3)), None); // SCHED_BATCH
        assert_eq!(policy_name(&stat(6)), Some("SCHED_DEADLINE"));
        assert_eq!(policy_name("1234 (x) S 1"), None);
        assert_eq!(policy_name(""), None);
    }

    #[test]
    fn interrupts_are_summed_per_cpu() {
        let text = "           CPU0       CPU1       CPU2\n\
                    \x20 24:          1          0          5  IO-APIC   5-edge      ACPI:Ged\n\
                    LOC:    5194410    4595344         10   Local timer interrupts\n\
                    RES:        100         20          3   Rescheduling interrupts\n\
                    ERR:          0\n\
                    MIS:          0\n";
        let total = |text: &str, cpus: &[usize]| {
            parse_interrupts(text, cpus).map(|c| c.iter().sum::<u64>())
        };
        assert_eq!(total(text, &[0]), Some(1 + 5_194_410 + 100));
        assert_eq!(total(text, &[1, 2]), Some(5 + 4_595_344 + 10 + 20 + 3));
        assert_eq!(
            parse_interrupts(text, &[2, 0]),
            Some(vec![5 + 10 + 3, 1 + 5_194_410 + 100])
        );
        assert_eq!(total(text, &[7]), None);
        assert_eq!(total(text, &[0, 7]), None);
        // Not pinned: unknown, not zero.
        assert_eq!(total(text, &[]), None);
        assert_eq!(total("", &[0]), None);
        // Rows cut short (a line of a newer kernel's format) are skipped, not misread.
        assert_eq!(total("CPU0 CPU1\nX: 1\nLOC: 2 3 timer\n", &[1]), Some(3));
    }

    #[test]
    fn ignored_signals_are_read_from_the_status_mask() {
        let status = "Name:\tshmbus\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\n";
        assert!(sig_ignored_in(status, 1)); // SIGHUP, as under nohup
        assert!(sig_ignored_in(status, 13)); // SIGPIPE
        assert!(!sig_ignored_in(status, 2));
        assert!(!sig_ignored_in("SigIgn:\tzz\n", 1));
        assert!(!sig_ignored_in(status, 0));
    }
}
