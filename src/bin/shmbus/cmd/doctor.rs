//! `shmbus doctor`: the machine settings that decide whether shmbus runs at all and how low and
//! steady its latency can be.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::{CliResult, human_size, out, out_json};
use crate::bench::machine;

/// Arguments of `shmbus doctor`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each check prints OK, WARN (worth changing) or INFO (good to know), with what to change. \
The exit status is 0 whatever the findings.")]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine as it is.
    Ok,
    /// Worth changing.
    Warn,
    /// Good to know; nothing to fix, or not determinable.
    Info,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Info => "INFO",
        }
    }
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name of the check.
    pub name: &'static str,
    /// OK / WARN / INFO.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to change (empty when nothing).
    pub advice: String,
}

fn check(name: &'static str, status: Status, detail: String, advice: &str) -> Check {
    Check {
        name,
        status,
        detail,
        advice: advice.to_owned(),
    }
}

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

const MIN_SHM: u64 = 256 << 20;

fn dev_shm() -> Check {
    let fstype = fs::read_to_string("/proc/mounts").ok().and_then(|m| {
        m.lines()
            .rev()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, mnt, ty) = (f.next()?, f.next()?, f.next()?);
                (mnt == "/dev/shm").then(|| ty.to_owned())
            })
            .next()
    });
    let st = match rustix::fs::statvfs("/dev/shm") {
        Ok(st) => st,
        Err(e) => {
            return check(
                "/dev/shm",
                Status::Warn,
                format!("cannot stat /dev/shm: {e}"),
                "shmbus needs a tmpfs at /dev/shm: `mount -t tmpfs -o size=1g tmpfs /dev/shm`",
            );
        }
    };
    let size = st.f_blocks.saturating_mul(st.f_frsize);
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let writable = rustix::fs::access("/dev/shm", rustix::fs::Access::WRITE_OK).is_ok();
    let detail = format!(
        "{}, size {}, {} free{}",
        fstype.as_deref().unwrap_or("unknown filesystem"),
        human_size(size),
        human_size(free),
        if writable {
            ""
        } else {
            ", NOT writable by this user"
        }
    );
    if !writable {
        return check(
            "/dev/shm",
            Status::Warn,
            detail,
            "buses cannot be created: fix /dev/shm's permissions (normally mode 1777)",
        );
    }
    if fstype.as_deref().is_some_and(|t| t != "tmpfs") {
        return check(
            "/dev/shm",
            Status::Warn,
            detail,
            "/dev/shm should be a tmpfs (memory), not a disk file system",
        );
    }
    if size < MIN_SHM || free < MIN_SHM {
        return check(
            "/dev/shm",
            Status::Warn,
            detail,
            "under 256 MiB: a default container has only 64 MB; start it with `--shm-size=1g` \
             (docker) or mount a larger tmpfs: `mount -o remount,size=1g /dev/shm`",
        );
    }
    check("/dev/shm", Status::Ok, detail, "")
}

fn cpus() -> Check {
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let online = read_trim("/sys/devices/system/cpu/online").unwrap_or_else(|| "?".into());
    let detail = format!("{usable} usable by this process (online: {online})");
    if usable < 2 {
        check(
            "cpus",
            Status::Warn,
            detail,
            "one CPU: a publisher and a subscriber take turns; a spinning subscriber would starve \
             the publisher. Use --wait park, or give the process more CPUs",
        )
    } else if usable < 4 {
        check(
            "cpus",
            Status::Info,
            detail,
            "few CPUs: spin only with a core to spare per spinning subscriber (`sub --wait park` \
             otherwise)",
        )
    } else {
        check("cpus", Status::Ok, detail, "")
    }
}

fn isolation() -> Check {
    let isolated = read_trim("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let nohz = read_trim("/sys/devices/system/cpu/nohz_full").unwrap_or_default();
    let show = |s: &str| {
        if s.is_empty() || s == "(null)" {
            "none".to_owned()
        } else {
            s.to_owned()
        }
    };
    let detail = format!("isolated: {}, nohz_full: {}", show(&isolated), show(&nohz));
    if show(&isolated) == "none" {
        check(
            "cpu isolation",
            Status::Info,
            detail,
            "for the steadiest tail, reserve cores with the kernel parameters `isolcpus=`, \
             `nohz_full=` and `rcu_nocbs=`, and pin publishers and subscribers there (taskset)",
        )
    } else {
        check(
            "cpu isolation",
            Status::Ok,
            detail,
            "pin latency-critical processes to the isolated CPUs",
        )
    }
}

fn clocksource() -> Check {
    let base = "/sys/devices/system/clocksource/clocksource0";
    let Some(cur) = read_trim(&format!("{base}/current_clocksource")) else {
        return check("clock source", Status::Info, "not readable".into(), "");
    };
    let avail = read_trim(&format!("{base}/available_clocksource")).unwrap_or_default();
    let detail = format!("{cur} (available: {avail})");
    match cur.as_str() {
        "tsc" => check("clock source", Status::Ok, detail, ""),
        "kvm-clock" | "arch_sys_counter" | "hyperv_clocksource_tsc_page" => check(
            "clock source",
            Status::Info,
            detail,
            "read in user space (vDSO), fine; `tsc` is a little cheaper where it is stable",
        ),
        _ => check(
            "clock source",
            Status::Warn,
            detail,
            "this clock is read through a system call (~1 µs per timestamp): use `tsc` if \
             available (`echo tsc > .../current_clocksource`, or boot with `clocksource=tsc`)",
        ),
    }
}

fn smt() -> Check {
    match read_trim("/sys/devices/system/cpu/smt/active").as_deref() {
        Some("0") => check("smt", Status::Ok, "off (or not supported)".into(), ""),
        Some("1") => check(
            "smt",
            Status::Info,
            "on: sibling hyperthreads share a core".into(),
            "pin latency-critical threads to different physical cores, or leave their siblings \
             idle (/sys/devices/system/cpu/cpuN/topology/thread_siblings_list)",
        ),
        _ => check(
            "smt",
            Status::Info,
            "unknown (/sys/devices/system/cpu/smt/active not readable)".into(),
            "",
        ),
    }
}

/// The effective `RemoveIPC=` of systemd-logind: `(value, file)` of the last setting found.
fn remove_ipc_setting() -> Option<(String, String)> {
    let mut files = vec!["/etc/systemd/logind.conf".to_owned()];
    for dir in [
        "/usr/lib/systemd/logind.conf.d",
        "/etc/systemd/logind.conf.d",
        "/run/systemd/logind.conf.d",
    ] {
        if let Ok(rd) = fs::read_dir(dir) {
            let mut v: Vec<String> = rd
                .flatten()
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".conf"))
                .collect();
            v.sort();
            files.extend(v);
        }
    }
    let mut found = None;
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let l = line.trim();
            if let Some(v) = l.strip_prefix("RemoveIPC")
                && let Some(v) = v.trim_start().strip_prefix('=')
            {
                found = Some((v.trim().to_ascii_lowercase(), f.clone()));
            }
        }
    }
    found
}

fn remove_ipc() -> Check {
    let systemd = std::path::Path::new("/run/systemd/system").exists();
    let setting = remove_ipc_setting();
    let (value, from) = match &setting {
        Some((v, f)) => (v.as_str(), format!("set in {f}")),
        None => ("yes", "the default".to_owned()),
    };
    let off = matches!(value, "no" | "false" | "0" | "off");
    let detail = format!(
        "RemoveIPC={value} ({from}){}",
        if systemd {
            ""
        } else {
            "; systemd is not running here"
        }
    );
    let advice = "systemd-logind removes a non-system user's shared memory (so their buses) when \
                  their last session ends: run services as system users, or set RemoveIPC=no in \
                  /etc/systemd/logind.conf";
    if off {
        check("RemoveIPC", Status::Ok, detail, "")
    } else if systemd {
        check("RemoveIPC", Status::Warn, detail, advice)
    } else {
        check("RemoveIPC", Status::Info, detail, advice)
    }
}

/// Whether `/proc` shows other users' processes: liveness of a bus's peers reads
/// `/proc/PID/stat` (docs/design.md §6).
fn proc_visibility() -> Check {
    match fs::read_to_string("/proc/mounts") {
        Ok(mounts) => proc_visibility_in(&mounts),
        Err(e) => check(
            "/proc",
            Status::Info,
            format!("cannot read /proc/mounts: {e}"),
            "",
        ),
    }
}

/// [`proc_visibility`] on a `/proc/mounts` text.
fn proc_visibility_in(mounts: &str) -> Check {
    let options = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[1] == "/proc" && f[2] == "proc").then(|| f[3].to_owned())
    });
    let Some(options) = options else {
        return check(
            "/proc",
            Status::Info,
            "no proc file system at /proc".into(),
            "",
        );
    };
    let hidepid = options
        .split(',')
        .find_map(|o| o.strip_prefix("hidepid="))
        .filter(|v| !matches!(*v, "0" | "off"));
    match hidepid {
        None => check(
            "/proc",
            Status::Ok,
            "every process visible (no hidepid): peers' liveness is read from /proc/PID/stat"
                .into(),
            "",
        ),
        Some(v) => check(
            "/proc",
            Status::Info,
            format!("mounted with hidepid={v}: other users' processes are hidden"),
            "a peer of another user is then known alive only by kill(pid, 0), without its start \
             time, so a reused pid keeps a dead peer's records held until it ends too: run a \
             bus's processes as one user, or mount /proc with gid= of a group they share",
        ),
    }
}

/// Whether publishers can check for parked subscribers without a locked instruction: that needs
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` and its registration (docs/design.md §5).
fn membarrier() -> Check {
    use rustix::thread::{MembarrierCommand, membarrier_query};
    let q = membarrier_query();
    let ok = q.contains_command(MembarrierCommand::GlobalExpedited)
        && q.contains_command(MembarrierCommand::RegisterGlobalExpedited);
    if ok {
        check(
            "membarrier",
            Status::Ok,
            "global expedited: available (publishers check for sleepers with a plain load)".into(),
            "",
        )
    } else {
        check(
            "membarrier",
            Status::Info,
            "global expedited: not available".into(),
            "publishers use a locked instruction per message to find parked subscribers (up \
             to a third slower streaming); it needs Linux 4.16 or later and the membarrier \
             system call allowed (seccomp)",
        )
    }
}

/// How long `interruptions` keeps each CPU busy while it counts.
const NOISE_SAMPLE: Duration = Duration::from_millis(200);

/// How long the spinning threads run before the counting starts (all of them on their CPUs).
const NOISE_SETTLE: Duration = Duration::from_millis(20);

/// Above this many interrupts a second on a busy CPU, a source worth moving is likely.
const NOISY_IRQS_PER_S: f64 = 1000.0;

/// Busy-waits until `t`.
fn spin_until(t: Instant) {
    while Instant::now() < t {
        std::hint::spin_loop();
    }
}

/// What one spinning thread of `interruptions` saw.
struct Busy {
    /// Its involuntary context switches per second (`None`: not pinned, or not readable).
    preempted_per_s: Option<f64>,
    /// The first thread only: each CPU's interrupts per second (`None`: not readable, or
    /// another thread).
    interrupts_per_s: Option<Vec<f64>>,
}

/// The detail line of `interruptions` for `(cpu, interrupts/s, pre-emptions/s)` per CPU: each
/// CPU for up to four, else the ranges and the CPU at the top of each.
fn noise_detail(rates: &[(usize, f64, Option<f64>)]) -> String {
    let pre_text = |p: Option<f64>| p.map_or("?".to_owned(), |p| format!("{p:.0}"));
    if rates.len() <= 4 {
        let parts: Vec<String> = rates
            .iter()
            .map(|&(cpu, irq, pre)| format!("CPU{cpu} {irq:.0} irq/s, {} preempt/s", pre_text(pre)))
            .collect();
        format!("busy {} ms: {}", NOISE_SAMPLE.as_millis(), parts.join("; "))
    } else {
        // Many CPUs: the range, and the CPU at the top of it.
        let most = |key: fn(&(usize, f64, Option<f64>)) -> f64| {
            rates
                .iter()
                .max_by(|a, b| key(a).total_cmp(&key(b)))
                .map_or(0, |r| r.0)
        };
        let irq_lo = rates.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
        let irq_hi = rates.iter().map(|r| r.1).fold(0.0f64, f64::max);
        let pres: Vec<f64> = rates.iter().filter_map(|r| r.2).collect();
        let pre_lo = pres.iter().copied().fold(f64::INFINITY, f64::min);
        let pre_hi = pres.iter().copied().fold(0.0f64, f64::max);
        format!(
            "busy {} ms, {} CPUs: {irq_lo:.0} to {irq_hi:.0} irq/s (most on CPU{}), {} to {} \
             preempt/s (most on CPU{})",
            NOISE_SAMPLE.as_millis(),
            rates.len(),
            most(|r| r.1),
            pre_text(pres.first().map(|_| pre_lo)),
            pre_text(pres.first().map(|_| pre_hi)),
            most(|r| r.2.unwrap_or(0.0)),
        )
    }
}

/// How often a busy CPU is interrupted and how often a busy thread on it is pre-empted, measured
/// with one spinning thread pinned to each CPU for [`NOISE_SAMPLE`] (an idle CPU skips its timer
/// tick, a CPU running a spinning subscriber does not). The threads count for themselves, and
/// the first one reads /proc/interrupts, so no thread of ours wakes on a measured CPU. Each
/// interrupt stops a spinning subscriber for microseconds and each pre-emption for up to a
/// scheduling slice: at a few hundred a second the first set a busy-spin p99.99 and the second
/// its max (see the tail block of `shmbus bench`).
fn interruptions() -> Check {
    let name = "interruptions";
    let cpus = match machine::allowed_cpus() {
        Ok(c) => c,
        Err(e) => return check(name, Status::Info, format!("cannot list CPUs: {e}"), ""),
    };
    let all = Arc::new(cpus.clone());
    let threads: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(i, &cpu)| {
            let all = Arc::clone(&all);
            std::thread::spawn(move || {
                let pinned = machine::pin_to(cpu).is_ok();
                spin_until(Instant::now() + NOISE_SETTLE);
                let count_irqs = || (i == 0).then(|| machine::interrupts_by_cpu(&all)).flatten();
                let (irq0, pre0, t0) =
                    (count_irqs(), machine::thread_preemptions(), Instant::now());
                spin_until(t0 + NOISE_SAMPLE);
                let (irq1, pre1) = (count_irqs(), machine::thread_preemptions());
                let secs = t0.elapsed().as_secs_f64();
                let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
                Busy {
                    preempted_per_s: pre0.zip(pre1).filter(|_| pinned).map(|(a, b)| rate(a, b)),
                    interrupts_per_s: irq0
                        .zip(irq1)
                        .map(|(a, b)| a.iter().zip(&b).map(|(&a, &b)| rate(a, b)).collect()),
                }
            })
        })
        .collect();
    let mut seen: Vec<Option<Busy>> = threads.into_iter().map(|t| t.join().ok()).collect();
    let Some(irqs) = seen
        .first_mut()
        .and_then(Option::as_mut)
        .and_then(|b| b.interrupts_per_s.take())
    else {
        return check(
            name,
            Status::Info,
            "cannot read /proc/interrupts".into(),
            "",
        );
    };
    // (cpu, interrupts/s, pre-emptions/s)
    let rates: Vec<(usize, f64, Option<f64>)> = cpus
        .iter()
        .zip(irqs)
        .zip(&seen)
        .map(|((&cpu, irq), busy)| (cpu, irq, busy.as_ref().and_then(|b| b.preempted_per_s)))
        .collect();
    let worst = rates.iter().map(|r| r.1).fold(0.0f64, f64::max);
    let detail = noise_detail(&rates);
    if worst > NOISY_IRQS_PER_S {
        check(
            name,
            Status::Warn,
            detail,
            &format!(
                "a CPU takes more than {NOISY_IRQS_PER_S:.0} interrupts a second: find the \
                 source in /proc/interrupts and keep it off the CPUs of spinning subscribers \
                 (`irqaffinity=`, /proc/irq/*/smp_affinity)"
            ),
        )
    } else {
        check(
            name,
            Status::Info,
            detail,
            "each interrupt stops a spinning subscriber for microseconds and each pre-emption \
             for up to a scheduling slice (milliseconds): they set busy-spin p99.99 and max \
             (`shmbus bench` counts both per run); `nohz_full=` stops the timer tick on \
             isolated CPUs, `irqaffinity=` keeps device interrupts off them",
        )
    }
}

fn memlock() -> Check {
    let r = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), human_size);
    let detail = format!(
        "RLIMIT_MEMLOCK soft {}, hard {}",
        show(r.current),
        show(r.maximum)
    );
    match r.current {
        Some(v) if v < 16 << 20 => check(
            "memlock",
            Status::Info,
            detail,
            "matters only to lock a bus in memory (mlock), which needs a limit of at least its \
             size (16 MiB by default): raise it with `ulimit -l`, LimitMEMLOCK= (systemd) or \
             /etc/security/limits.conf",
        ),
        _ => check("memlock", Status::Ok, detail, ""),
    }
}

fn governor() -> Check {
    let mut govs: Vec<String> = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/devices/system/cpu") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                && let Some(g) = read_trim(&format!(
                    "/sys/devices/system/cpu/{name}/cpufreq/scaling_governor"
                ))
                && !govs.contains(&g)
            {
                govs.push(g);
            }
        }
    }
    govs.sort();
    if govs.is_empty() {
        return check(
            "cpu governor",
            Status::Info,
            "not exposed (typical of VMs and containers)".into(),
            "",
        );
    }
    let detail = govs.join(", ");
    if govs.iter().all(|g| g == "performance") {
        check("cpu governor", Status::Ok, detail, "")
    } else {
        check(
            "cpu governor",
            Status::Warn,
            detail,
            "frequency scaling adds wake-up latency: `cpupower frequency-set -g performance`",
        )
    }
}

fn buses() -> Check {
    let names = shmbus::Bus::list().unwrap_or_default();
    let maps = super::procs::scan_mappings();
    let mut stale = 0;
    let mut unreadable = 0;
    for report in super::procs::inspect_listed(&names, &maps) {
        match report.state() {
            super::procs::State::Stale => stale += 1,
            super::procs::State::Unreadable(_) => unreadable += 1,
            super::procs::State::Ok => {}
        }
    }
    let detail = format!(
        "{} on this machine, {stale} stale, {unreadable} unreadable",
        names.len()
    );
    if stale + unreadable > 0 {
        check(
            "buses",
            Status::Info,
            detail,
            "`shmbus ls` shows them; `shmbus gc` removes stale ones",
        )
    } else {
        check("buses", Status::Ok, detail, "")
    }
}

/// Splits `text` into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Runs every check.
pub fn checks() -> Vec<Check> {
    vec![
        dev_shm(),
        cpus(),
        isolation(),
        smt(),
        clocksource(),
        governor(),
        membarrier(),
        interruptions(),
        memlock(),
        remove_ipc(),
        proc_visibility(),
        buses(),
    ]
}

/// Runs `shmbus doctor`.
pub fn run(args: &DoctorArgs) -> CliResult {
    let all = checks();
    if args.json {
        let v: Vec<_> = all
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "status": c.status.label(),
                    "detail": c.detail,
                    "advice": if c.advice.is_empty() { None } else { Some(&c.advice) },
                })
            })
            .collect();
        out_json(&json!({ "checks": v }))?;
        return Ok(());
    }
    let name_w = all.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for c in &all {
        text.push_str(&format!(
            "{:<4}  {:<name_w$}  {}\n",
            c.status.label(),
            c.name,
            c.detail
        ));
        if !c.advice.is_empty() && c.status != Status::Ok {
            let indent = " ".repeat(4 + 2 + name_w + 2);
            for (i, line) in wrap(&c.advice, 96usize.saturating_sub(indent.len() + 3).max(40))
                .iter()
                .enumerate()
            {
                let arrow = if i == 0 { "-> " } else { "   " };
                text.push_str(&format!("{indent}{arrow}{line}\n"));
            }
        }
    }
    let warns = all.iter().filter(|c| c.status == Status::Warn).count();
    text.push_str(&format!(
        "\n{} checks: {} ok, {warns} warn, {} info\n",
        all.len(),
        all.iter().filter(|c| c.status == Status::Ok).count(),
        all.iter().filter(|c| c.status == Status::Info).count()
    ));
    out(&text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidepid_is_found_in_the_mount_options() {
        let plain = "sysfs /sys sysfs rw 0 0\nproc /proc proc rw,nosuid,relatime 0 0\n";
        assert_eq!(proc_visibility_in(plain).status, Status::Ok);
        let hidden = "proc /proc proc rw,relatime,hidepid=invisible 0 0\n";
        let c = proc_visibility_in(hidden);
        assert_eq!(c.status, Status::Info);
        assert!(c.detail.contains("hidepid=invisible"), "{}", c.detail);
        let off = "proc /proc proc rw,hidepid=0 0 0\n";
        assert_eq!(proc_visibility_in(off).status, Status::Ok);
        assert_eq!(proc_visibility_in("").status, Status::Info);
    }

    #[test]
    fn noise_detail_lists_few_cpus_and_sums_up_many() {
        let two = [(0, 265.4, Some(35.0)), (1, 250.0, None)];
        assert_eq!(
            noise_detail(&two),
            "busy 200 ms: CPU0 265 irq/s, 35 preempt/s; CPU1 250 irq/s, ? preempt/s"
        );
        let many: Vec<(usize, f64, Option<f64>)> = (0..8)
            .map(|c| {
                (
                    c,
                    250.0 + c as f64 * 10.0,
                    Some(if c == 2 { 90.0 } else { 5.0 }),
                )
            })
            .collect();
        assert_eq!(
            noise_detail(&many),
            "busy 200 ms, 8 CPUs: 250 to 320 irq/s (most on CPU7), 5 to 90 preempt/s (most on CPU2)"
        );
    }
}
