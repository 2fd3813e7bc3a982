//! Smoke test of `shmbus bench`: a `--quick` run of the real binary writes complete JSON, HDR
//! files and a plot, and leaves nothing behind. It checks shape and consistency only, never speed.
#![cfg(feature = "cli")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use json::Members;

/// Longest the benchmark may run before the test kills it.
const WATCHDOG: Duration = Duration::from_secs(120);

const TRANSPORTS: [&str; 9] = [
    "shmbus", "c", "floor", "ring", "ring2", "futex", "pipe", "unix", "tcp",
];
const SCENARIOS: [&str; 4] = ["pingpong", "open-loop", "stream", "fanout"];
const MODES: [&str; 4] = ["spin", "park", "spin-then-park", "blocking"];
const RUN_KEYS: [&str; 20] = [
    "scenario",
    "transport",
    "mode",
    "path",
    "payload_bytes",
    "slots",
    "subscribers",
    "rate_per_s",
    "repeat",
    "count",
    "lost",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "p99_9_ns",
    "p99_99_ns",
    "max_ns",
    "msgs_per_s",
    "interrupts_per_s",
    "preemptions",
];

/// Removes the test's directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether a C compiler (`$CC`, else `cc`) runs.
fn have_cc() -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    Command::new(&cc)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds `libshmbus.a` next to the benchmark binary (cargo does not build the C library for
/// another package's tests), so the `c` transport can run.
fn build_c_library() {
    let exe = Path::new(env!("CARGO_BIN_EXE_shmbus"));
    let profile_dir = exe.parent().expect("target/<profile>");
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .expect("profile folder");
    let target = profile_dir.parent().expect("target folder");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "shmbus-ffi", "--lib"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p shmbus-ffi failed");
    assert!(profile_dir.join("libshmbus.a").is_file());
}

#[test]
fn quick_bench_writes_complete_reports() {
    let with_c = have_cc();
    if with_c {
        build_c_library();
    } else {
        eprintln!("SKIPPED (c transport only): no working C compiler; set CC");
    }
    let dir = TempDir(std::env::temp_dir().join(format!("shmbus-smoke-{}", std::process::id())));
    fs::create_dir_all(&dir.0).unwrap();
    let (json_path, hdr_dir, svg) = (dir.0.join("b.json"), dir.0.join("hdr"), dir.0.join("b.svg"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmbus"));
    cmd.args([
        "bench",
        "--quick",
        "--duration",
        "50ms",
        "--payload",
        "8,64,1KiB,1MiB",
    ])
    .args(["--rate", "20000,1000", "--json"])
    .arg(&json_path)
    .arg("--hdr")
    .arg(&hdr_dir)
    .arg("--plot")
    .arg(&svg);
    let (status, out, bench_pid) = run_bench(cmd, &dir.0);
    assert!(status.success(), "bench failed ({status}):\n{out}");
    assert!(out.contains("verdict:"), "no verdict line:\n{out}");
    assert!(
        out.contains("tail of 64B spin ping-pong") && out.contains("same rank per second"),
        "no tail block:\n{out}"
    );

    let doc = json::parse(&fs::read_to_string(&json_path).unwrap()).expect("valid JSON");
    check_machine(doc.get("machine").expect("machine"));
    assert_eq!(doc.get("schema").and_then(json::Value::as_f64), Some(1.0));
    let runs = doc
        .get("runs")
        .and_then(json::Value::as_array)
        .expect("runs array");
    assert!(!runs.is_empty());
    for run in runs {
        check_run(run);
    }
    for t in TRANSPORTS.iter().filter(|&&t| with_c || t != "c") {
        assert!(runs.iter().any(|r| r.str("transport") == *t), "no {t} run");
    }
    if !with_c {
        assert!(
            out.contains("c transport skipped:"),
            "no note on the c transport:\n{out}"
        );
    }
    // Both paths at every size, in spin mode: the sweep runs the borrow path at every --payload
    // and the copy path at each but 64 B, which the ping-pong scenario covers.
    for payload in [8.0, 64.0, 1024.0, 1048576.0] {
        for path in ["copy", "borrow"] {
            assert!(
                runs.iter().any(|r| r.str("scenario") == "pingpong"
                    && r.str("transport") == "shmbus"
                    && r.str("mode") == "spin"
                    && r.str("path") == path
                    && r.num("payload_bytes") == payload),
                "no shmbus/spin/{path} ping-pong at {payload} B"
            );
        }
    }
    assert!(
        runs.iter()
            .all(|r| r["path"] != "borrow" || matches!(r.str("scenario"), "pingpong" | "stream")),
        "the borrow path is ping-pong and stream only"
    );
    // Lossless streaming: the borrow path in spin mode loses nothing.
    let lossless = runs
        .iter()
        .find(|r| r.str("scenario") == "stream" && r["path"] == "borrow")
        .expect("no lossless (borrow path) stream run");
    assert_eq!(lossless.num("lost"), 0.0, "{lossless:?}");
    assert!(out.contains("stream 64B shmbus/spin/borrow: "), "{out}");
    assert!(out.contains("sweep shmbus/spin borrow p50:"), "{out}");
    if with_c {
        assert!(out.contains("ffi 64B spin: one-way p50"), "{out}");
    }
    for s in SCENARIOS {
        assert!(runs.iter().any(|r| r.str("scenario") == s), "no {s} run");
    }
    // The ring: 64 B ping-pong and stream in spin mode, nothing else, and the ratio lines that
    // split floor -> shmbus into floor -> ring -> shmbus.
    for scenario in ["pingpong", "stream"] {
        assert!(
            runs.iter().any(|r| r.str("transport") == "ring"
                && r.str("scenario") == scenario
                && r.num("payload_bytes") == 64.0),
            "no ring {scenario} run"
        );
    }
    assert!(
        runs.iter()
            .filter(|r| r.str("transport") == "ring")
            .all(|r| {
                matches!(r.str("scenario"), "pingpong" | "stream")
                    && r.str("mode") == "spin"
                    && r.num("payload_bytes") == 64.0
            }),
        "ring runs other than 64 B spin ping-pong and stream"
    );
    // ring2: the same ring with 2 slots, 64 B spin ping-pong only, whatever --slots says.
    assert!(
        runs.iter()
            .filter(|r| r.str("transport") == "ring2")
            .all(|r| r.str("scenario") == "pingpong"
                && r.str("mode") == "spin"
                && r.num("payload_bytes") == 64.0
                && r.num("slots") == 2.0),
        "ring2 runs other than 64 B spin ping-pong with 2 slots"
    );
    for line in [
        "ratio 64B ring/spin to floor (median of per-repeat ratios): p50 ",
        "ratio 64B ring2/spin to floor (median of per-repeat ratios): p50 ",
        "ratio 64B shmbus/spin to ring (median of per-repeat ratios): p50 ",
        "stream 64B ring/spin: ",
    ] {
        assert!(out.contains(line), "no {line:?} line:\n{out}");
    }

    check_hdr_files(&hdr_dir);
    let plot = fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert!(plot.contains("99.99%") && plot.contains("shmbus/") && plot.contains("ring/spin"));
    assert_nothing_left(bench_pid);
}

/// `--slots` sets the ring of every transport that has one, is reported in the header and the
/// JSON, and only powers of two from 2 are accepted.
#[test]
fn slots_option_sizes_the_rings() {
    let dir = TempDir(std::env::temp_dir().join(format!("shmbus-slots-{}", std::process::id())));
    fs::create_dir_all(&dir.0).unwrap();
    let json_path = dir.0.join("b.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmbus"));
    cmd.args([
        "bench",
        "--quick",
        "--duration",
        "30ms",
        "--only",
        "pingpong",
    ])
    .args(["--mode", "spin", "--transport", "shmbus,ring,floor"])
    .args(["--slots", "2", "--json"])
    .arg(&json_path);
    let (status, out, bench_pid) = run_bench(cmd, &dir.0);
    assert!(status.success(), "bench failed ({status}):\n{out}");
    assert!(out.contains("rings: 2 slots (--slots)"), "{out}");
    let doc = json::parse(&fs::read_to_string(&json_path).unwrap()).expect("valid JSON");
    let runs = doc.get("runs").and_then(json::Value::as_array).unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for r in runs {
        assert_eq!(r.num("lost"), 0.0, "{r:?}");
        match r.str("transport") {
            "floor" => assert_eq!(r.get("slots"), Some(&json::Value::Null)),
            _ => assert_eq!(r.num("slots"), 2.0, "{r:?}"),
        }
    }
    assert_nothing_left(bench_pid);

    for bad in ["3", "1", "0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_shmbus"))
            .args(["bench", "--quick", "--slots", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--slots {bad}: {err}");
        assert!(err.contains("must be a power of two from 2"), "{err}");
    }
}

/// Options that leave no configuration are an error that says so, not an empty table.
#[test]
fn options_that_select_nothing_are_refused() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmbus"));
    cmd.args([
        "bench",
        "--quick",
        "--only",
        "stream",
        "--transport",
        "futex",
    ]);
    let err = refusal(cmd);
    assert!(err.contains("nothing to run"), "{err}");
}

/// Out-of-range values name their option and are usage errors (exit status 2, before anything
/// runs): a duration whose deadlines would not fit the clock's nanoseconds, zero rates or
/// repeats, a spin phase that is busy-waiting. An output file in a directory that does not exist
/// is a failure (exit status 1), found before the run, not after it.
#[test]
fn out_of_range_options_are_refused_by_name() {
    for (args, want, code) in [
        (
            ["--duration", "25h"].as_slice(),
            "--duration <DURATION>': at most 24 h",
            2,
        ),
        (
            ["--duration", "10000000000000000000"].as_slice(),
            "--duration",
            2,
        ),
        (
            ["--duration", "0"].as_slice(),
            "--duration <DURATION>': must be greater",
            2,
        ),
        (["--repeat", "0"].as_slice(), "--repeat", 2),
        (["--fanout-rate", "0"].as_slice(), "--fanout-rate", 2),
        (["--rate", "1000,0"].as_slice(), "--rate", 2),
        (
            ["--spin", "11ms"].as_slice(),
            "--spin <SPIN>': at most 10 ms",
            2,
        ),
        (
            ["--payload", "4"].as_slice(),
            "--payload <PAYLOAD>': 4 B: must be 8 B",
            2,
        ),
        (["--subscribers", "65"].as_slice(), "--subscribers", 2),
        (
            ["--json", "/nonexistent-dir/b.json"].as_slice(),
            "--json \"/nonexistent-dir/b.json\": \"/nonexistent-dir\" is not a directory",
            1,
        ),
        (
            [
                "--hdr",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml/hdr"),
            ]
            .as_slice(),
            "Cargo.toml\" is not a directory",
            1,
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmbus"));
        cmd.args(["bench", "--quick"]).args(args);
        let (status, err) = refusal_status(cmd);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(status.code(), Some(code), "{args:?}: {err}");
    }
}

/// The same CPU twice in `--cpus` is refused: two pinned processes would share it.
#[test]
fn a_cpu_given_twice_is_refused() {
    let cpu = first_allowed_cpu();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmbus"));
    cmd.args(["bench", "--quick", "--cpus", &format!("{cpu},{cpu}")]);
    let err = refusal(cmd);
    assert!(err.contains(&format!("CPU {cpu} is given twice")), "{err}");
}

/// On one CPU, two busy-waiting processes would take turns a time slice apart: the benchmark
/// skips those runs, says so, and runs the sleeping ones.
#[test]
fn one_cpu_runs_only_sleeping_processes() {
    let Ok(taskset) = which("taskset") else {
        println!("skipped: no taskset on this machine to confine the benchmark to one CPU");
        return;
    };
    let dir = TempDir(std::env::temp_dir().join(format!("shmbus-1cpu-{}", std::process::id())));
    fs::create_dir_all(&dir.0).unwrap();
    let json_path = dir.0.join("b.json");
    let cpu = first_allowed_cpu();
    let mut cmd = Command::new(taskset);
    cmd.args(["-c", &cpu, env!("CARGO_BIN_EXE_shmbus"), "bench", "--quick"])
        .args(["--duration", "30ms", "--only", "pingpong"])
        .args(["--transport", "shmbus,floor,futex", "--json"])
        .arg(&json_path);
    let (status, out, pid) = run_bench(cmd, &dir.0);
    assert!(status.success(), "bench failed ({status}):\n{out}");
    assert_nothing_left(pid);
    assert!(
        out.contains("1 CPU cannot host two busy-waiting processes"),
        "{out}"
    );
    let doc = json::parse(&fs::read_to_string(&json_path).unwrap()).expect("valid JSON");
    let runs = doc.get("runs").and_then(json::Value::as_array).unwrap();
    let kinds: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.str("transport"), r.str("mode")))
        .collect();
    assert_eq!(kinds, [("shmbus", "park"), ("futex", "park")], "{out}");
    // Nothing is pinned, so no CPU's interrupts are the run's: unknown, not 0.
    for r in runs {
        assert_eq!(r.get("interrupts_per_s"), Some(&json::Value::Null), "{r:?}");
    }
}

/// Under a real-time scheduling policy the benchmark refuses to start, at once and saying why:
/// its processes and helper threads would starve one another and the machine's other tasks.
#[test]
fn a_realtime_policy_is_refused() {
    let Ok(chrt) = which("chrt") else {
        println!("skipped: no chrt on this machine to run the benchmark at real-time priority");
        return;
    };
    let permitted = Command::new(&chrt)
        .args(["-f", "1", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !permitted {
        println!("skipped: this process may not use a real-time policy (chrt -f 1 failed)");
        return;
    }
    // Options that are refused anyway (one CPU twice): should the policy check ever come after
    // them, or go, the test fails on the message instead of starting processes at real-time
    // priority on a CI machine.
    let cpu = first_allowed_cpu();
    let started = Instant::now();
    let mut cmd = Command::new(chrt);
    cmd.args(["-f", "1", env!("CARGO_BIN_EXE_shmbus"), "bench", "--quick"])
        .args(["--cpus", &format!("{cpu},{cpu}")]);
    let err = refusal(cmd);
    assert!(
        err.contains("runs under the real-time policy SCHED_FIFO"),
        "{err}"
    );
    assert!(started.elapsed() < WATCHDOG, "took {:?}", started.elapsed());
}

/// Runs a `shmbus bench` command that must be refused: checks that it fails and returns its
/// standard error.
fn refusal(cmd: Command) -> String {
    refusal_status(cmd).1
}

/// [`refusal`], with the exit status. Under the watchdog and one at a time like any benchmark:
/// should a check regress, the command runs a benchmark instead of refusing it.
fn refusal_status(mut cmd: Command) -> (std::process::ExitStatus, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir =
        TempDir(std::env::temp_dir().join(format!("shmbus-refusal-{}-{n}", std::process::id())));
    fs::create_dir_all(&dir.0).unwrap();
    let err_path = dir.0.join("stderr.txt");
    cmd.stderr(fs::File::create(&err_path).unwrap());
    let (status, _, _) = run_bench(cmd, &dir.0);
    let err = fs::read_to_string(&err_path).unwrap();
    assert!(!status.success(), "{err}");
    (status, err)
}

/// The first CPU this process may use (a container may not offer CPU 0).
fn first_allowed_cpu() -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status");
    allowed
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The path of `program` on `PATH`.
fn which(program: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

/// One benchmark at a time: each busy-spins on both CPUs of a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `cmd` (a `shmbus bench` command) with its output in `dir/stdout.txt` under the
/// watchdog, never two at once; returns its status, its output and its pid.
fn run_bench(mut cmd: Command, dir: &Path) -> (std::process::ExitStatus, String, u32) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stdout_path = dir.join("stdout.txt");
    let stdout = fs::File::create(&stdout_path).unwrap();
    let mut child = cmd.stdin(Stdio::null()).stdout(stdout).spawn().unwrap();
    let pid = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WATCHDOG {
            // SIGTERM first: the benchmark then stops after its current run and removes what it
            // made; SIGKILL only if it has not exited 10 s later.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let term = Instant::now();
            while child.try_wait().unwrap().is_none() && term.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("shmbus bench still running after {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, fs::read_to_string(stdout_path).unwrap(), pid)
}

fn check_machine(m: &json::Value) {
    for key in ["cpu", "kernel", "clocksource"] {
        assert!(!m.str(key).is_empty(), "machine.{key}");
    }
    assert!(m.num("cores") >= 1.0);
    assert!(m.num("clock_read_ns") > 0.0);
    assert!(matches!(m.get("pinned"), Some(json::Value::Bool(_))));
    assert!(matches!(
        m.get("smt_siblings"),
        Some(json::Value::Bool(_) | json::Value::Null)
    ));
}

fn check_run(r: &json::Value) {
    for key in RUN_KEYS {
        assert!(r.get(key).is_some(), "run without {key}: {r:?}");
    }
    // Interrupts on the pinned CPUs per second, or null when not pinned or not readable.
    if r.get("interrupts_per_s") != Some(&json::Value::Null) {
        assert!(r.num("interrupts_per_s") >= 0.0, "{r:?}");
    }
    // Involuntary context switches during the run: a count, or null when not readable.
    if r.get("preemptions") != Some(&json::Value::Null) {
        let n = r.num("preemptions");
        assert!(n >= 0.0 && n.fract() == 0.0, "{r:?}");
    }
    assert!(TRANSPORTS.contains(&r.str("transport")), "{r:?}");
    // `path` is "copy" or "borrow" on shmbus runs, null on every other transport.
    match r.str("transport") {
        "shmbus" => assert!(matches!(r.str("path"), "copy" | "borrow"), "{r:?}"),
        _ => assert_eq!(r.get("path"), Some(&json::Value::Null), "{r:?}"),
    }
    // `slots` is the ring size of the transports that have rings (the default: 4 MiB / payload,
    // 8 to 16384; always 2 for ring2), null on the others.
    match r.str("transport") {
        "ring2" => assert_eq!(r.num("slots"), 2.0, "{r:?}"),
        "shmbus" | "c" | "ring" => {
            let want = (4usize << 20) / r.num("payload_bytes") as usize;
            let want = want.clamp(8, 16384).next_power_of_two();
            assert_eq!(r.num("slots"), want as f64, "{r:?}");
        }
        _ => assert_eq!(r.get("slots"), Some(&json::Value::Null), "{r:?}"),
    }
    assert!(SCENARIOS.contains(&r.str("scenario")), "{r:?}");
    assert!(MODES.contains(&r.str("mode")), "{r:?}");
    assert!(r.num("count") > 0.0, "empty run: {r:?}");
    assert!(r.num("payload_bytes") >= 8.0 && r.num("subscribers") >= 1.0);
    assert!(r.num("msgs_per_s") > 0.0, "{r:?}");
    let rate = r.get("rate_per_s").unwrap();
    let has_rate = matches!(r.str("scenario"), "open-loop" | "fanout");
    assert_eq!(rate.is_number(), has_rate, "{r:?}");
    let p: Vec<f64> = [
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "p99_9_ns",
        "p99_99_ns",
        "max_ns",
    ]
    .iter()
    .map(|k| r.num(k))
    .collect();
    assert!(p[0] > 0.0, "{r:?}");
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {r:?}"
    );
}

fn check_hdr_files(dir: &Path) {
    let files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"),
            "{f:?}"
        );
        assert!(text.contains("#[Max     ="), "{f:?}");
    }
}

/// No shared-memory object, FIFO or socket directory of the benchmark's pid survives it.
fn assert_nothing_left(pid: u32) {
    let needle = format!("bench-{pid}-");
    let left: Vec<String> = fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .chain(fs::read_dir(std::env::temp_dir()).into_iter().flatten())
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(&needle))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The report as `serde_json` values, with the typed getters the checks use (they panic on a
/// wrong shape: this is a test).
mod json {
    pub use serde_json::Value;

    /// Parses a whole document.
    pub fn parse(text: &str) -> serde_json::Result<Value> {
        serde_json::from_str(text)
    }

    /// Typed members of a report object.
    pub trait Members {
        /// The string member `key`.
        fn str(&self, key: &str) -> &str;
        /// The number member `key`.
        fn num(&self, key: &str) -> f64;
    }

    impl Members for Value {
        fn str(&self, key: &str) -> &str {
            self.get(key)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{key} is not a string: {:?}", self.get(key)))
        }

        fn num(&self, key: &str) -> f64 {
            self.get(key)
                .and_then(Value::as_f64)
                .unwrap_or_else(|| panic!("{key} is not a number"))
        }
    }
}
