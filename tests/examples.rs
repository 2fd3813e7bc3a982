//! End to end: the example programs, run as real processes the way a person runs them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BusName, ChildProcess, output_within};

/// Longer than any example's own timeout: a watchdog, not a bound they are expected to reach.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Where cargo puts the example binaries (built by `cargo test` alongside the tests).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} not built: run through `cargo test`",
        path.display()
    );
    path
}

#[test]
fn publisher_and_subscriber_examples_talk_across_processes() {
    let bus = BusName::new("examples");
    // Killed if the test fails half way; it also gives up by itself after 30 s without a message.
    let mut sub = ChildProcess::adopt(
        Command::new(example("subscriber"))
            .args(["--bus", &bus, "--count", "5", "--timeout-ms", "30000"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("subscribed to"), "{first}");
    let publisher = output_within(
        Command::new(example("publisher"))
            .stdin(Stdio::null())
            .args([
                "--bus",
                &bus,
                "--count",
                "5",
                "--interval-ms",
                "5",
                "--wait-subscribers",
                "1",
            ]),
        WATCHDOG,
    );
    assert!(
        publisher.status.success(),
        "{}",
        String::from_utf8_lossy(&publisher.stderr)
    );
    let received: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(sub.wait().unwrap().success());
    assert_eq!(received.len(), 5, "{received:?}");
    for (n, line) in received.iter().enumerate() {
        assert!(
            line.starts_with(&format!("seq {n} from publisher")),
            "{line}"
        );
        assert!(line.contains(&format!(": hello #{n} from pid")), "{line}");
    }
}

#[test]
fn pingpong_example_prints_a_latency_table() {
    let out = output_within(
        Command::new(example("pingpong"))
            .args(["--seconds", "0.5"])
            .stdin(Stdio::null()),
        WATCHDOG,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for mode in ["spin", "park"] {
        let row = text.lines().find(|l| l.starts_with(mode)).expect(mode);
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 8, "{row}");
        assert!(cols[1].parse::<u64>().unwrap() > 0, "{row}");
        assert!(cols[2..].iter().all(|c| c.ends_with("µs")), "{row}");
    }
}
