//! Cross-language test: a C publisher (`examples/c/publisher.c`), a C++ subscriber
//! (`examples/cpp/subscriber.cpp`) and a Rust subscriber (this test binary, re-run with
//! `SHMBUS_XLANG_ROLE=rust-subscriber`) share one bus as three processes. Both subscribers must
//! see exactly the messages the publisher reports, with the same sequence numbers, in order.
//!
//! Bounded: the subscribers give up after 10 s without a message, and every child is killed
//! after 60 s (the test then fails). Skipped, with a message, if `cc` or `c++` is missing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use shmbus_core::{Bus, BusConfig, StartAt, SubscriberConfig};

const ROLE: &str = "SHMBUS_XLANG_ROLE";
const BUS: &str = "SHMBUS_XLANG_BUS";
const TOPIC: &str = "xlang/data";
const COUNT: usize = 200;
const TEST_NAME: &str = "c_publisher_cpp_and_rust_subscribers_agree";

/// Removes the bus when the test ends, pass or fail.
struct RemoveBus(String);

impl Drop for RemoveBus {
    fn drop(&mut self) {
        let _ = Bus::remove(&self.0);
    }
}

/// The Rust subscriber's role: print what arrives, in the examples' format.
fn rust_subscriber(bus_name: &str) {
    let bus = Bus::open(bus_name).expect("open bus");
    let cfg = SubscriberConfig {
        start: StartAt::Oldest,
        ..SubscriberConfig::default()
    };
    let mut sub = bus
        .topic(TOPIC)
        .expect("topic")
        .subscriber_with(&cfg)
        .expect("subscriber");
    let mut buf = vec![0u8; sub.capacity()];
    let mut received = 0;
    println!(); // libtest has printed "test NAME ... " without a newline
    while received < COUNT {
        match sub.recv_timeout(&mut buf, Duration::from_secs(10)) {
            Ok(info) => {
                let payload = String::from_utf8_lossy(&buf[..info.len]);
                println!("seq={} payload={payload}", info.seq);
                received += 1;
            }
            Err(shmbus_core::RecvError::Lost { first_seq, count }) => {
                println!("lost seq={first_seq} count={count}");
            }
            Err(e) => panic!("rust subscriber: {e}"),
        }
    }
}

/// `(seq, payload)` of each line of `text` that starts with `prefix` + "seq=".
fn messages(text: &str, prefix: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.strip_prefix("seq="))
        .map(|l| {
            let (seq, payload) = l.split_once(" payload=").expect("seq=N payload=P");
            (seq.parse().expect("sequence number"), payload.to_owned())
        })
        .collect()
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn c_publisher_cpp_and_rust_subscribers_agree() {
    if std::env::var(ROLE).as_deref() == Ok("rust-subscriber") {
        rust_subscriber(&std::env::var(BUS).expect("bus name"));
        return;
    }
    let (Some(cc), Some(cxx)) = (compiler("CC", "cc"), compiler("CXX", "c++")) else {
        return;
    };

    // Build the two example programs against the static library.
    let out = out_dir("xlang");
    let include = ffi_dir().join("include");
    let examples = ffi_dir().join("../examples");
    let (publisher, subscriber) = (out.join("c-publisher"), out.join("cpp-subscriber"));
    let mut c = Command::new(cc);
    c.args(C_FLAGS)
        .arg("-I")
        .arg(&include)
        .arg(examples.join("c/publisher.c"))
        .arg(static_lib())
        .args(STATIC_LIB_DEPS)
        .arg("-o")
        .arg(&publisher);
    compile(c);
    let mut cpp = Command::new(cxx);
    cpp.args(CXX_FLAGS)
        .arg("-I")
        .arg(&include)
        .arg(examples.join("cpp/subscriber.cpp"))
        .arg(static_lib())
        .args(STATIC_LIB_DEPS)
        .arg("-o")
        .arg(&subscriber);
    compile(cpp);

    // The bus and topic exist before anyone starts, with the default topic geometry the
    // examples ask for.
    let name = format!("xlang-{}", std::process::id());
    let _ = Bus::remove(&name);
    let bus = Bus::create(
        &name,
        &BusConfig {
            size: 4 << 20,
            ..BusConfig::default()
        },
    )
    .expect("create bus");
    let _cleanup = RemoveBus(name.clone());
    let topic = bus.topic(TOPIC).expect("topic");

    let count = COUNT.to_string();
    let cpp_sub = spawn(Command::new(&subscriber).args([&name, TOPIC, &count, "10000"]));
    let rust_sub = spawn(
        Command::new(std::env::current_exe().expect("current_exe"))
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(ROLE, "rust-subscriber")
            .env(BUS, &name),
    );

    // Start publishing once both subscribers are registered (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while topic.stats().subscribers.len() < 2 {
        if Instant::now() >= deadline {
            for mut child in [cpp_sub, rust_sub] {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("the subscribers did not register within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let c_pub = spawn(Command::new(&publisher).args([&name, TOPIC, &count, "1"]));

    let limit = Duration::from_secs(60);
    let outputs = [
        wait_bounded(c_pub, limit, "the C publisher"),
        wait_bounded(cpp_sub, limit, "the C++ subscriber"),
        wait_bounded(rust_sub, limit, "the Rust subscriber"),
    ];
    for (what, out) in ["C publisher", "C++ subscriber", "Rust subscriber"]
        .iter()
        .zip(&outputs)
    {
        assert!(
            out.status.success(),
            "the {what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = |i: usize| String::from_utf8_lossy(&outputs[i].stdout).into_owned();
    let published = messages(&text(0), "published ");
    let by_cpp = messages(&text(1), "");
    let by_rust = messages(&text(2), "");

    assert_eq!(published.len(), COUNT, "publisher output:\n{}", text(0));
    let seqs: Vec<u64> = published.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..COUNT as u64).collect::<Vec<_>>());
    assert_eq!(published[1].1, "hello 1 from C");
    assert_eq!(by_cpp, published, "C++ subscriber output:\n{}", text(1));
    assert_eq!(by_rust, published, "Rust subscriber output:\n{}", text(2));
}
