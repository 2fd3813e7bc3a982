//! End to end: the example programs, run as real processes the way a person runs them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::BusName;

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
    let mut sub = Command::new(example("subscriber"))
        .args(["--bus", &bus, "--count", "5", "--timeout-ms", "30000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("subscribed to"), "{first}");
    let publisher = Command::new(example("publisher"))
        .args([
            "--bus",
            &bus,
            "--count",
            "5",
            "--interval-ms",
            "5",
            "--wait-subscribers",
            "1",
        ])
        .output()
        .unwrap();
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
    let out = Command::new(example("pingpong"))
        .args(["--seconds", "0.5"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
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
