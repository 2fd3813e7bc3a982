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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1,4"), Some(vec![0, 1, 4]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
