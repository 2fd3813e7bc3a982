//! The `shmbus` command line, run as real processes against real buses: create, ls, info,
//! pub piped into sub across processes, hz, info --watch, gc (refusing a live bus, removing a
//! dead one), rm, doctor, and usage errors.
//!
//! Every child runs under a timeout and a watchdog that kills it after 300 s; readiness is
//! observed by polling `shmbus info --json`, never by sleeping a fixed time. Bus names contain
//! this process's id and are removed at the end whatever happens (drop guards).

#![cfg(feature = "cli")]

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_shmbus");
/// Longest any single command may take.
const STEP: Duration = Duration::from_secs(30);
/// After this, the watchdog kills every child still running (each step has its own [`STEP`]
/// bound: this only catches a child that no step waits for).
const WATCHDOG: Duration = Duration::from_secs(300);

/// Kills every registered child process after [`WATCHDOG`], so that no test can hang forever.
#[derive(Clone)]
struct Watchdog {
    pids: Arc<Mutex<Vec<u32>>>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let pids: Arc<Mutex<Vec<u32>>> = Arc::default();
        let p = Arc::clone(&pids);
        std::thread::spawn(move || {
            std::thread::sleep(WATCHDOG);
            for pid in p.lock().unwrap().drain(..) {
                eprintln!("watchdog: killing child {pid}");
                kill9(pid);
            }
        });
        Watchdog { pids }
    }

    fn watch(&self, pid: u32) {
        self.pids.lock().unwrap().push(pid);
    }

    /// Forgets a child that has been reaped: its pid may be reused by another process, which
    /// the watchdog must never signal.
    fn forget(&self, pid: u32) {
        self.pids.lock().unwrap().retain(|&p| p != pid);
    }
}

fn kill9(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// A running child that is killed and reaped if the test ends early.
struct Running {
    child: Option<Child>,
    what: String,
    /// Told when the child is reaped.
    dog: Watchdog,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits at most [`STEP`] for the child to exit; returns its status, stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + STEP;
        // Read the pipes on threads so that a chatty child cannot block on a full pipe.
        let mut so = child.stdout.take();
        let mut se = child.stderr.take();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = so.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = se.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.dog.forget(child.id());
                panic!("`{}` did not finish within {STEP:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.dog.forget(child.id());
        (status, t_out.join().unwrap(), t_err.join().unwrap())
    }

    /// Kills the child with SIGKILL and reaps it.
    fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.dog.forget(c.id());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.dog.forget(c.id());
        }
    }
}

/// Removes the named buses when dropped.
struct Buses(Vec<String>);

impl Drop for Buses {
    fn drop(&mut self) {
        for b in &self.0 {
            let _ = shmbus::Bus::remove(b);
        }
    }
}

/// Starts `shmbus ARGS` with piped stdin/stdout/stderr.
fn spawn(dog: &Watchdog, args: &[&str]) -> Running {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmbus");
    dog.watch(child.id());
    Running {
        child: Some(child),
        what: format!("shmbus {}", args.join(" ")),
        dog: dog.clone(),
    }
}

/// Runs `shmbus ARGS` with `stdin`; returns (exit code, stdout, stderr).
fn run_with(dog: &Watchdog, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut r = spawn(dog, args);
    {
        let mut i = r.child.as_mut().unwrap().stdin.take().unwrap();
        i.write_all(stdin.as_bytes()).unwrap();
    }
    let (st, o, e) = r.finish();
    (st.code().unwrap_or(-1), o, e)
}

fn run(dog: &Watchdog, args: &[&str]) -> (i32, String, String) {
    run_with(dog, args, "")
}

/// Runs `shmbus ARGS`, asserts success, returns stdout.
fn ok(dog: &Watchdog, args: &[&str]) -> String {
    let (code, o, e) = run(dog, args);
    assert_eq!(code, 0, "shmbus {args:?} failed\nstdout: {o}\nstderr: {e}");
    o
}

fn json(dog: &Watchdog, args: &[&str]) -> Value {
    let o = ok(dog, args);
    serde_json::from_str(&o).unwrap_or_else(|e| panic!("shmbus {args:?}: bad JSON ({e}): {o}"))
}

/// Polls `cond` every 10 ms until it holds, at most [`STEP`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `topic` of `bus` has exactly one registered subscriber (`what` names it).
fn wait_for_one_subscriber(dog: &Watchdog, bus: &str, topic: &str, what: &str) {
    wait_until(what, || {
        topic_info(dog, bus, topic)["subscribers"]
            .as_array()
            .is_some_and(|subs| subs.len() == 1)
    });
}

/// Starts `shmbus sub BUS TOPIC --count N --timeout 20s --json` and waits until it has
/// registered (it is then the topic's only subscriber).
fn start_json_sub(dog: &Watchdog, bus: &str, topic: &str, count: u32) -> Running {
    let count = count.to_string();
    let sub = spawn(
        dog,
        &[
            "sub",
            bus,
            topic,
            "--count",
            &count,
            "--timeout",
            "20s",
            "--json",
        ],
    );
    wait_for_one_subscriber(dog, bus, topic, "the subscriber to register");
    sub
}

/// The topic's object in `info BUS TOPIC --json`.
fn topic_info(dog: &Watchdog, bus: &str, topic: &str) -> Value {
    let v = json(dog, &["info", bus, topic, "--json"]);
    v["topics"][0].clone()
}

fn ls_entry(dog: &Watchdog, bus: &str) -> Option<Value> {
    let v = json(dog, &["ls", "--json"]);
    v.as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == bus)
        .cloned()
}

/// One stderr line, mentioning `needle`.
fn assert_one_line_error(e: &str, needle: &str) {
    assert_eq!(e.lines().count(), 1, "expected a one-line error, got: {e}");
    assert!(
        e.starts_with("shmbus: ") && e.contains(needle),
        "unexpected error: {e}"
    );
}

#[test]
fn create_ls_info_pub_sub_gc_rm() {
    let dog = Watchdog::start();
    let pid = std::process::id();
    let live = format!("cli-{pid}-live");
    let dead = format!("cli-{pid}-dead");
    let _cleanup = Buses(vec![live.clone(), dead.clone()]);

    // create, and a clear error for a second create.
    let o = ok(
        &dog,
        &[
            "create",
            &live,
            "--size",
            "8M",
            "--mode",
            "600",
            "--topic",
            "t/x:64:128",
        ],
    );
    assert!(o.contains("created bus"), "{o}");
    let (code, _, e) = run(&dog, &["create", &live]);
    assert_eq!(code, 1);
    assert_one_line_error(&e, "already exists");

    // ls --json sees it with its size and topic count.
    let b = ls_entry(&dog, &live).expect("ls lists the new bus");
    assert_eq!(b["size"], 8 << 20);
    assert_eq!(b["topics"], 1);
    assert_eq!(b["creator_alive"], false);
    assert_eq!(b["state"], "stale", "only its exited creator is known: {b}");

    // info --json: geometry and zero counters.
    let info = json(&dog, &["info", &live, "--json"]);
    assert_eq!(info["bus"]["name"], live.as_str());
    assert_eq!(info["bus"]["size"], 8 << 20);
    let t = &info["topics"][0];
    assert_eq!(t["name"], "t/x");
    assert_eq!(t["slots"], 64);
    assert_eq!(t["payload_size"], 128);
    assert_eq!(t["max_publishers"], 16);
    assert_eq!(t["max_subscribers"], 64);
    assert_eq!(t["delivery"], "lossy");
    assert_eq!(t["next_seq"], 0);
    assert_eq!(t["published"], 0);

    // sub (started first) receives what pub reads from stdin, across processes.
    let sub = start_json_sub(&dog, &live, "t/x", 5);
    let (code, _, e) = run_with(&dog, &["pub", &live, "t/x"], "m0\nm1\nm2\nm3\nm4\n");
    assert_eq!(code, 0, "{e}");
    assert!(e.contains("published 5 messages"), "{e}");
    let (st, o, e) = sub.finish();
    assert!(st.success(), "sub failed: {e}");
    let msgs: Vec<Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(msgs.len(), 5, "{o}");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m["seq"], i as u64);
        assert_eq!(m["payload"], format!("m{i}"));
        assert_eq!(m["len"], 2);
        assert!(
            m["timestamp_ns"].as_u64().is_some_and(|t| t > 0),
            "pub stamps: {m}"
        );
    }
    assert!(e.contains("received 5 messages, lost 0"), "{e}");

    // The counters moved.
    let t = topic_info(&dog, &live, "t/x");
    assert_eq!(t["published"], 5);
    assert_eq!(t["next_seq"], 5);

    // A library publisher does not stamp by default: sub shows null times for its message.
    let sub = start_json_sub(&dog, &live, "t/x", 1);
    {
        let bus = shmbus::Bus::open(&live).unwrap();
        let mut publisher = bus.publisher("t/x").unwrap();
        publisher.publish(b"plain").unwrap();
    }
    let (st, o, e) = sub.finish();
    assert!(st.success(), "sub failed: {e}");
    let m: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(m["payload"], "plain", "{o}");
    assert!(
        m["timestamp_ns"].is_null() && m["time_unix_ns"].is_null(),
        "{o}"
    );

    // info --watch with a bounded count: one JSON line per refresh, rates from the second on.
    let o = ok(
        &dog,
        &[
            "info", &live, "t/x", "--json", "--watch", "100ms", "--count", "2",
        ],
    );
    let frames: Vec<Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 2, "{o}");
    assert!(frames[0]["topics"][0].get("published_per_s").is_none());
    assert_eq!(frames[1]["topics"][0]["published_per_s"], 0.0);
    // The text frames into a pipe: one after the other, no screen-control escape codes.
    let o = ok(
        &dog,
        &["info", &live, "t/x", "--watch", "100ms", "--count", "2"],
    );
    assert!(!o.contains('\x1b'), "{o:?}");
    assert_eq!(o.matches("Ctrl-C to quit").count(), 2, "{o}");

    // hz measures a paced publisher.
    let hz = spawn(&dog, &["hz", &live, "t/x", "--count", "5", "--json"]);
    wait_for_one_subscriber(&dog, &live, "t/x", "hz to subscribe");
    let (code, _, e) = run(
        &dog,
        &[
            "pub", &live, "t/x", "--count", "10", "--rate", "200", "-q", "tick",
        ],
    );
    assert_eq!(code, 0, "{e}");
    let (st, o, e) = hz.finish();
    assert!(st.success(), "hz failed: {e}");
    let last: Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    assert!(last["total"].as_u64().unwrap() >= 5, "{o}");

    // gc refuses a bus that a live process uses.
    let holder = spawn(&dog, &["sub", &live, "t/x", "-q"]);
    wait_for_one_subscriber(&dog, &live, "t/x", "the holder to register");
    let v = json(&dog, &["gc", "--json", &live]);
    assert_eq!(v[0]["action"], "skipped", "{v}");
    assert!(v[0]["reason"].as_str().unwrap().contains("in use"), "{v}");
    assert!(ls_entry(&dog, &live).is_some(), "gc removed a live bus");
    assert_eq!(ls_entry(&dog, &live).unwrap()["state"], "ok");
    holder.kill();

    // A dead bus: its creator and publisher is killed with SIGKILL.
    let p = spawn(
        &dog,
        &[
            "pub",
            &dead,
            "T",
            "--count",
            "1000000",
            "--rate",
            "10",
            "--create-bus",
            "-q",
            "x",
        ],
    );
    let victim = p.pid();
    wait_until("the publisher to create its bus and register", || {
        // Not `topic_info`: until the bus and topic exist, `info` fails.
        let (code, o, _) = run(&dog, &["info", &dead, "T", "--json"]);
        code == 0
            && serde_json::from_str::<Value>(&o).unwrap()["topics"][0]["publishers"]
                .as_array()
                .is_some_and(|p| p.len() == 1)
    });
    p.kill();
    let b = ls_entry(&dog, &dead).unwrap();
    assert_eq!(b["state"], "stale", "{b}");
    assert_eq!(b["creator_pid"], victim);
    let v = json(&dog, &["gc", "--dry-run", "--json", &dead, &live]);
    let action = |v: &Value, name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()["action"]
            .clone()
    };
    assert_eq!(action(&v, &dead), "would_remove", "{v}");
    assert!(ls_entry(&dog, &dead).is_some(), "--dry-run removed a bus");
    let v = json(&dog, &["gc", "--json", &dead]);
    assert_eq!(action(&v, &dead), "removed", "{v}");
    assert!(
        ls_entry(&dog, &dead).is_none(),
        "gc did not remove the dead bus"
    );

    // rm, and a clear error for a bus that does not exist.
    let o = ok(&dog, &["rm", &live]);
    assert!(o.contains("removed bus"), "{o}");
    let (code, _, e) = run(&dog, &["rm", &live]);
    assert_eq!(code, 1);
    assert_one_line_error(&e, "does not exist");
    let (code, _, e) = run(&dog, &["info", &live]);
    assert_eq!(code, 1);
    assert_one_line_error(&e, "does not exist");
}

#[test]
fn doctor_json_parses() {
    let dog = Watchdog::start();
    let v = json(&dog, &["doctor", "--json"]);
    let checks = v["checks"].as_array().expect("checks");
    assert!(checks.len() >= 8, "{v}");
    for c in checks {
        assert!(
            ["OK", "WARN", "INFO"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
    }
    assert!(checks.iter().any(|c| c["name"] == "/dev/shm"));
    // What a busy CPU sees: measured per CPU, or why not.
    let noise = checks
        .iter()
        .find(|c| c["name"] == "interruptions")
        .expect("an interruptions check");
    let detail = noise["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("busy 200 ms") || detail.starts_with("cannot "),
        "{noise}"
    );
    // Which wake check publishers use here: OK with membarrier, INFO (with advice) without.
    let mb = checks
        .iter()
        .find(|c| c["name"] == "membarrier")
        .expect("a membarrier check");
    assert!(
        mb["detail"]
            .as_str()
            .unwrap()
            .starts_with("global expedited: "),
        "{mb}"
    );
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let dog = Watchdog::start();
    let pid = std::process::id();
    let (code, _, _) = run(&dog, &["create"]);
    assert_eq!(code, 2, "a missing argument is a usage error");
    let (code, _, e) = run(&dog, &["create", "x", "--size", "12Q"]);
    assert_eq!(code, 2);
    assert!(e.contains("unknown size unit"), "{e}");
    let (code, _, e) = run(
        &dog,
        &["sub", &format!("cli-{pid}-none"), "t", "--count", "1"],
    );
    assert_eq!(code, 1);
    assert_one_line_error(&e, "does not exist");
    let (code, _, e) = run(&dog, &["create", "bad name"]);
    assert_eq!(code, 1);
    assert_one_line_error(&e, "invalid bus name");
    // A bad topic spec leaves no half-made bus behind.
    let name = format!("cli-{pid}-bad");
    let _cleanup = Buses(vec![name.clone()]);
    let (code, _, e) = run(&dog, &["create", &name, "--topic", "t:3:64"]);
    assert_eq!(code, 1);
    assert_one_line_error(&e, "power of two");
    assert!(
        shmbus::Bus::open(&name).is_err(),
        "the bus should not exist"
    );
    // A mode that would lock the owner out of its own bus.
    let (code, _, e) = run(&dog, &["create", &name, "--mode", "444"]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("the owner needs read and write"), "{e}");
    // --slots alone on an existing topic compares the slots only, not the default payload.
    ok(&dog, &["create", &name, "--topic", "t:8:64"]);
    // Non-ASCII in --hex is "not hex", not a panic (exit 101).
    let (code, _, e) = run(&dog, &["pub", &name, "t", "--hex", "a\u{e9}b"]);
    assert_eq!(code, 1, "{e}");
    assert_one_line_error(&e, "only hex digits");
    ok(&dog, &["pub", &name, "t", "--slots", "8", "x"]);
    let (code, _, e) = run(&dog, &["pub", &name, "t", "--slots", "16", "x"]);
    assert_eq!(code, 1, "{e}");
    assert_one_line_error(
        &e,
        "exists with 8 slots of 64 bytes, not the 16 slots asked for",
    );
    // A sign is not a hex digit either (`from_str_radix` alone would take `+f` as 15).
    let (code, _, e) = run(&dog, &["pub", &name, "t", "--hex", "+f+f"]);
    assert_eq!(code, 1, "{e}");
    assert_one_line_error(&e, "'+' is not a hex digit");
    // A bad message is refused before anything is created: no bus, no topic.
    let fresh = format!("cli-{pid}-hex");
    let _cleanup_fresh = Buses(vec![fresh.clone()]);
    let (code, _, e) = run(&dog, &["pub", &fresh, "t", "--create-bus", "--hex", "zz"]);
    assert_eq!(code, 1, "{e}");
    assert_one_line_error(&e, "'z' is not a hex digit");
    assert!(
        shmbus::Bus::open(&fresh).is_err(),
        "a refused message should leave no bus"
    );
    let (code, _, e) = run(&dog, &["pub", &name, "t2", "--hex", "zz"]);
    assert_eq!(code, 1, "{e}");
    assert!(
        !ok(&dog, &["info", &name, "--json"]).contains("\"t2\""),
        "a refused message should leave no topic"
    );
    // A failure after some messages went out is still one line, and says what went out.
    let (code, _, e) = run_with(
        &dog,
        &["pub", &name, "t"],
        &format!("first\n{}\n", "x".repeat(65)),
    );
    assert_eq!(code, 1, "{e}");
    assert_one_line_error(&e, "stdin line 2");
    assert!(e.contains("before that, published 1 message "), "{e}");
    // Zero where zero would end the command before it did anything is a usage error.
    for args in [
        ["sub", name.as_str(), "t", "--timeout", "0"].as_slice(),
        ["sub", name.as_str(), "t", "--count", "0"].as_slice(),
        ["info", name.as_str(), "--watch", "--count", "0"].as_slice(),
        ["info", name.as_str(), "--watch", "0"].as_slice(),
        ["hz", name.as_str(), "t", "--every", "0"].as_slice(),
        ["pub", name.as_str(), "t", "--rate=-1", "x"].as_slice(),
        ["pub", name.as_str(), "t", "--count", "0", "x"].as_slice(),
    ] {
        let (code, _, e) = run(&dog, args);
        assert_eq!(code, 2, "{args:?}: {e}");
    }
    // `--watch` takes an optional value, so a topic after it is read as the interval: the error
    // says where the topic goes.
    let (code, _, e) = run(&dog, &["info", &name, "--watch", "t"]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("a topic goes before --watch"), "{e}");
}
