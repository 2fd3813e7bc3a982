//! Prints every message on bus `demo`, topic `greetings`, with its one-way latency (for
//! messages from publishers that stamp them, `PublisherConfig::timestamps`, as the publisher
//! example does).
//!
//! Run in one terminal: `cargo run --example subscriber`, and in another:
//! `cargo run --example publisher`. Options: `--bus NAME --topic NAME --count N`
//! (exit after N messages) and `--timeout-ms MS` (exit after that long without a message).

use std::time::Duration;

use shmbus::{Bus, BusConfig, RecvError, SubscriberConfig, WaitStrategy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut bus_name, mut topic, mut count, mut timeout) = (
        "demo".to_string(),
        "greetings".to_string(),
        u64::MAX,
        Duration::from_secs(3600),
    );
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bus" => bus_name = value,
            "--topic" => topic = value,
            "--count" => count = value.parse()?,
            "--timeout-ms" => timeout = Duration::from_millis(value.parse()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let bus = Bus::open_or_create(&bus_name, &BusConfig::default())?;
    let cfg = SubscriberConfig {
        wait: WaitStrategy::Park,
        ..Default::default()
    };
    let mut sub = bus.topic(&topic)?.subscriber_with(&cfg)?;
    println!("subscribed to {bus_name}/{topic}");
    let mut buf = vec![0u8; sub.capacity()];
    let mut received = 0;
    while received < count {
        match sub.recv_timeout(&mut buf, timeout) {
            Ok(info) => {
                // 0: the publisher does not stamp its messages.
                let after = match info.timestamp_ns {
                    0 => "(not timestamped)".to_string(),
                    ts => format!(
                        "after {:.1} µs",
                        shmbus::monotonic_ns().saturating_sub(ts) as f64 / 1e3
                    ),
                };
                println!(
                    "seq {} from publisher {} {after}: {}",
                    info.seq,
                    info.publisher_id,
                    String::from_utf8_lossy(&buf[..info.len])
                );
                received += 1;
            }
            Err(RecvError::Lost { first_seq, count }) => {
                println!("lost {count} message(s) from seq {first_seq}");
            }
            Err(RecvError::Timeout) => {
                println!("no message for {timeout:?}; exiting");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
