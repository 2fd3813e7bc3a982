//! Helpers shared by the integration tests: unique bus names that are removed on drop, and
//! re-running this test binary as a child process with a role.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A bus name unique to this process and call; the bus is removed when the guard drops.
pub struct BusName(pub String);

impl BusName {
    pub fn new(tag: &str) -> BusName {
        static N: AtomicUsize = AtomicUsize::new(0);
        BusName(format!(
            "test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl std::ops::Deref for BusName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for BusName {
    fn drop(&mut self) {
        let _ = shmbus::Bus::remove(&self.0);
    }
}

/// Serialises the stress tests of one test binary (libtest runs two tests at once by default):
/// each runs several busy processes, and two of them at once would put four or more on a 2-core
/// machine, where a writer pre-empted mid-message stalls the peers waiting for its slot.
pub fn one_stress_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The environment variable naming a child's role.
pub const ROLE: &str = "SHMBUS_TEST_ROLE";

/// A child process a test started. Killed and reaped when dropped before [`finish`] took it: a
/// test that fails half way leaves no process of its own running (busy, on a 2-core machine)
/// while the tests after it run.
pub struct ChildProcess(Option<Child>);

impl std::ops::Deref for ChildProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a child not yet finished")
    }
}

impl std::ops::DerefMut for ChildProcess {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a child not yet finished")
    }
}

impl ChildProcess {
    /// Takes charge of a child started otherwise.
    pub fn adopt(child: Child) -> ChildProcess {
        ChildProcess(Some(child))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // Nothing is signalled if it was already reaped (`kill9`).
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts this test binary again, running only `entry` (a `#[test]` that dispatches on
/// [`ROLE`]), with `role` and extra environment variables. The child's stdout is piped.
pub fn spawn_child(entry: &str, role: &str, env: &[(&str, String)]) -> ChildProcess {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    ChildProcess(Some(cmd.spawn().expect("spawn child")))
}

/// Waits for a child to exit, killing it after `limit` (the watchdog). Returns its stdout lines
/// that start with `RESULT ` (without the prefix), and panics if it failed.
pub fn finish(mut child: ChildProcess, limit: Duration) -> Vec<String> {
    let mut child = child.0.take().expect("a child not yet finished");
    wait_within(&mut child, limit, "child");
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest may print "test child ... " on the same line first.
    stdout
        .lines()
        .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_owned()))
        .collect()
}

/// [`finish`] for each child, in order: their `RESULT` lines, one list per child. If one fails,
/// the others are killed (on drop).
pub fn finish_all(children: Vec<ChildProcess>, limit: Duration) -> Vec<Vec<String>> {
    children.into_iter().map(|c| finish(c, limit)).collect()
}

/// Waits for `child` to exit; kills and reaps it, and panics naming it `what`, if it is still
/// running after `limit` (the watchdog).
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` to completion with its stdout and stderr captured, as `Command::output` does, but
/// kills it and panics if it is still running after `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Drained while it runs, so that a full pipe never stops it.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let status = wait_within(&mut child, limit, &format!("{cmd:?}"));
    std::process::Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Waits until the child prints a stderr line containing `marker` (e.g. a crash point), or
/// panics after `limit`. The child's stderr is consumed up to that line.
pub fn wait_for_stderr(child: &mut Child, marker: &str, limit: Duration) {
    let stderr = child.stderr.take().expect("stderr piped");
    let marker_text = marker.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut found = false;
        // Keep draining after the marker, so the child never writes into a closed pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !found && line.contains(&marker) {
                found = true;
                let _ = tx.send(Ok(()));
            } else if !found {
                seen.push(line);
            }
        }
        if !found {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(stderr)) => {
            let _ = child.wait();
            panic!("child exited before printing {marker_text:?}; stderr:\n{stderr}");
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not print {marker_text:?} within {limit:?}");
        }
    }
}

/// Sends SIGKILL to a child we started and reaps it.
pub fn kill9(child: &mut Child) {
    child.kill().expect("kill");
    child.wait().expect("reap");
}

/// An environment variable a parent passed to this child; panics if missing.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

/// [`env`], parsed as a number.
pub fn env_u64(key: &str) -> u64 {
    env(key).parse().unwrap()
}

/// Starts a child on bus `bus` with `SHMBUS_CRASH_AT=point` and waits until it stops there. The
/// caller kills it (with [`kill9`]) when it is ready to.
pub fn stopped_at(
    entry: &str,
    role: &str,
    bus: &str,
    point: &str,
    extra: &[(&str, String)],
) -> ChildProcess {
    let mut env = vec![
        ("BUS", bus.to_owned()),
        ("SHMBUS_CRASH_AT", point.to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let mut child = spawn_child(entry, role, &env);
    wait_for_stderr(
        &mut child,
        &format!("CRASH-POINT {point}"),
        Duration::from_secs(300),
    );
    child
}

/// How many messages a stress test sends: `debug` in a debug build (slow, unoptimised
/// atomics), `release` in a release build, where the race windows are narrow and need volume.
pub const fn per_profile(debug: u64, release: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}
