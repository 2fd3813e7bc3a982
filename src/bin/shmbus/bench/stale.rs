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
    bench_pid(name, prefix).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
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
        assert!(!is_stale(
            &format!("bench-{}-1", std::process::id()),
            "bench-"
        ));
    }
}
