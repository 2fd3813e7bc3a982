//! Removes what an earlier `shmbus bench` left behind when it was killed with SIGKILL (the one
//! way it cannot clean up): names that follow the benchmark's own patterns and carry the pid of a
//! process that no longer exists. A live pid, even a reused one, keeps its names. A bus must also
//! say so itself: its header names that pid as its creator; a bus someone named `bench-2024-06`
//! is not the benchmark's. Like the library, this assumes that every process using `/dev/shm`
//! and the temporary directory shares one pid namespace: a run in another namespace has pids
//! this one cannot see.

use std::fs;
use std::path::Path;

/// Removes stale benchmark names; returns how many were removed.
pub fn sweep() -> usize {
    let mut removed = 0;
    for name in names_in(Path::new("/dev/shm")) {
        // Floor and futex pages, ring objects: `shmbus-bench-<pid>-<run>`.
        if is_stale(&name, "shmbus-bench-") && rustix::shm::unlink(name.as_str()).is_ok() {
            removed += 1;
        }
        // The iceoryx2 transport's shared memory: `shmbus-bench-iox2-<pid>.<iceoryx2's name>`.
        let dead_iceoryx2 = iceoryx2_pid(&name).is_some_and(|pid| !pid_exists(pid));
        if dead_iceoryx2 && rustix::shm::unlink(name.as_str()).is_ok() {
            removed += 1;
        }
    }
    removed += sweep_buses();
    let tmp = std::env::temp_dir();
    for name in names_in(&tmp) {
        // Run directories: `shmbus-bench-<pid>-<n>`.
        if is_stale(&name, "shmbus-bench-") && fs::remove_dir_all(tmp.join(&name)).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Prefix of the shared-memory names of the iceoryx2 transport's domain for benchmark `pid`
/// (iceoryx2 appends its own names).
pub fn iceoryx2_prefix(pid: u32) -> String {
    format!("{IOX2}{pid}.")
}

/// The start of every name of [`iceoryx2_prefix`].
const IOX2: &str = "shmbus-bench-iox2-";

/// The benchmark pid in a name of [`iceoryx2_prefix`].
fn iceoryx2_pid(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(IOX2)?.split_once('.')?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// Unlinks the iceoryx2 transport's shared memory of this benchmark (at its end, when no process
/// of its domain is left): what a normal run keeps until then is iceoryx2's global management
/// segment; after a failed run, whatever its killed child held. Returns how many were removed.
pub fn remove_own_iceoryx2() -> usize {
    let own = iceoryx2_prefix(std::process::id());
    names_in(Path::new("/dev/shm"))
        .into_iter()
        .filter(|n| n.starts_with(&own) && rustix::shm::unlink(n.as_str()).is_ok())
        .count()
}

/// Removes the buses of dead benchmark runs: `bench-<pid>-<run>`, created by that pid.
fn sweep_buses() -> usize {
    shmbus::Bus::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|bus| {
            is_stale(bus, "bench-")
                && created_by(bus, bench_pid(bus, "bench-"))
                && shmbus::Bus::remove(bus).is_ok()
        })
        .count()
}

/// Whether bus `name` is one the benchmark made: its header (read from the object's bytes, not
/// through the library, so that a bus of another layout version is judged too) starts with the
/// magic and names `pid` as its creator (`creator_pid` sits at offset 32 in every layout version
/// so far). Or the header was never written: a creator killed while it sized and mapped the
/// object (most of `Bus::create`'s time) leaves it all zero, or empty; such an object is taken
/// for the benchmark's once it is a minute old, so that a creation in progress is never removed.
fn created_by(name: &str, pid: Option<u32>) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = fs::File::open(format!("/dev/shm/shmbus.{name}")) else {
        return false;
    };
    let mut head = [0u8; 36];
    let got = file.read_at(&mut head, 0).unwrap_or(0);
    let creator = u32::from_le_bytes([head[32], head[33], head[34], head[35]]);
    if got == head.len() && head[..8] == *b"SHMBUS\0\x01" {
        return Some(creator) == pid;
    }
    // Killed between writing `creator_pid` (first) and the magic (last): still its creator's.
    if got == head.len() && head[..8] == [0; 8] && Some(creator) == pid {
        return true;
    }
    let unwritten = head[..got].iter().all(|&b| b == 0);
    let old = file
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= HALF_MADE_AGE));
    unwritten && old
}

/// How old a bus whose header was never written must be before the sweeper removes it.
const HALF_MADE_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether process `pid` exists.
fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The entry names of a directory (none if it cannot be read).
fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Whether `name` is `<prefix><pid>-<number>` and no process `pid` exists.
fn is_stale(name: &str, prefix: &str) -> bool {
    bench_pid(name, prefix).is_some_and(|pid| !pid_exists(pid))
}

/// The pid in `<prefix><pid>-<number>`.
fn bench_pid(name: &str, prefix: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix(prefix)?.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set for [`child_creates_a_bus`] run as a child process.
    const CHILD: &str = "SHMBUS_STALE_TEST_CHILD";

    /// As a child: creates bus `bench-<own pid>-7` and exits, leaving it behind with a dead
    /// creator, as a killed benchmark does.
    #[test]
    fn child_creates_a_bus() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let name = format!("bench-{}-7", std::process::id());
        let bus = shmbus::Bus::create(&name, &shmbus::BusConfig::default()).unwrap();
        std::mem::forget(bus);
    }

    /// A bus named `bench-<pid>-7` left by a child that has exited.
    fn bus_of_a_dead_run() -> String {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "bench::stale::tests::child_creates_a_bus"])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let name = format!("bench-{}-7", child.id());
        let status = child.wait().unwrap();
        assert!(status.success(), "child: {status}");
        name
    }

    #[test]
    fn a_bus_is_swept_only_if_its_header_names_its_dead_creator() {
        // Named like a dead run's bus (no pid reaches 2^22 + 1), created by this live process:
        // someone's own bus, kept.
        let foreign = format!("bench-{}-{}", (1u32 << 22) + 1, std::process::id());
        let bus = shmbus::Bus::create(&foreign, &shmbus::BusConfig::default()).unwrap();
        drop(bus);
        sweep_buses();
        let kept = shmbus::Bus::list().unwrap().contains(&foreign);
        shmbus::Bus::remove(&foreign).unwrap();
        assert!(kept, "a bus whose header names a live creator was removed");
        // Buses left by dead runs, one of them of another layout version (which the library
        // cannot open): swept.
        let name = bus_of_a_dead_run();
        let old = bus_of_a_dead_run();
        {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new()
                .write(true)
                .open(format!("/dev/shm/shmbus.{old}"))
                .unwrap();
            f.write_all_at(&2u32.to_le_bytes(), 8).unwrap(); // layout_version
        }
        sweep_buses();
        let left = shmbus::Bus::list().unwrap();
        let (kept_new, kept_old) = (left.contains(&name), left.contains(&old));
        let _ = shmbus::Bus::remove(&name);
        let _ = shmbus::Bus::remove(&old);
        assert!(!kept_new, "the dead run's bus {name} was kept");
        assert!(!kept_old, "the dead run's layout-2 bus {old} was kept");
    }

    #[test]
    fn a_bus_whose_header_was_never_written_is_swept_once_it_is_old() {
        // A creator killed while it sized the object: zeros, no header. Named after a pid that
        // does not exist (2^22 + 2).
        let name = format!("bench-{}-{}", (1u32 << 22) + 2, std::process::id());
        let path = format!("/dev/shm/shmbus.{name}");
        let file = fs::File::create(&path).unwrap();
        file.set_len(4096).unwrap();
        sweep_buses();
        let young_kept = Path::new(&path).exists();
        let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        file.set_modified(two_minutes_ago).unwrap();
        sweep_buses();
        let old_kept = Path::new(&path).exists();
        let _ = fs::remove_file(&path);
        assert!(
            young_kept,
            "a header-less bus was removed at once: its creation may be going on"
        );
        assert!(
            !old_kept,
            "a header-less bus of a dead run, two minutes old, was kept"
        );
    }

    #[test]
    fn only_exact_patterns_match() {
        assert_eq!(bench_pid("shmbus-bench-123-4", "shmbus-bench-"), Some(123));
        assert_eq!(bench_pid("bench-77-0", "bench-"), Some(77));
        assert_eq!(bench_pid("bench-77", "bench-"), None);
        assert_eq!(bench_pid("bench-77-x", "bench-"), None);
        assert_eq!(bench_pid("bench-a-1", "bench-"), None);
        assert_eq!(bench_pid("shmbus-smoke-5", "shmbus-bench-"), None);
        // The iceoryx2 domain's names are not the floor's, and carry their pid before a dot.
        let iox2 = format!("{}iox2_abc_node.0_10_0.global_mgmt", iceoryx2_prefix(42));
        assert_eq!(bench_pid(&iox2, "shmbus-bench-"), None);
        assert_eq!(iceoryx2_pid(&iox2), Some(42));
        assert_eq!(iceoryx2_pid("shmbus-bench-iox2-x.y"), None);
        assert_eq!(iceoryx2_pid("iox2_abc"), None);
        assert!(!is_stale(
            &format!("bench-{}-1", std::process::id()),
            "bench-"
        ));
    }
}
