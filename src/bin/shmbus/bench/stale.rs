//! Removes what an earlier `shmbus bench` left behind when it was killed with SIGKILL (the one
//! way it cannot clean up): names that follow the benchmark's own patterns and carry the pid of a
//! process that no longer exists. A live pid, even a reused one, keeps its names.

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
    for bus in shmbus::Bus::list().unwrap_or_default() {
        // Buses: `bench-<pid>-<run>`.
        if is_stale(&bus, "bench-") && shmbus::Bus::remove(&bus).is_ok() {
            removed += 1;
        }
    }
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
