//! Publishes a numbered greeting every 100 ms on bus `demo`, topic `greetings`.
//!
//! Run in one terminal: `cargo run --example subscriber`, and in another:
//! `cargo run --example publisher` (options: `--bus NAME --topic NAME --count N
//! --interval-ms MS --wait-subscribers N`). The bus is created if it does not exist; remove it
//! with `shmbus rm demo`.

use std::time::{Duration, Instant};

use shmbus::{Bus, BusConfig, PublisherConfig};

struct Args {
    bus: String,
    topic: String,
    count: u64,
    interval: Duration,
    wait_subscribers: usize,
}

fn parse() -> Args {
    let mut a = Args {
        bus: "demo".into(),
        topic: "greetings".into(),
        count: u64::MAX,
        interval: Duration::from_millis(100),
        wait_subscribers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bus" => a.bus = value(),
            "--topic" => a.topic = value(),
            "--count" => a.count = value().parse().expect("--count N"),
            "--interval-ms" => a.interval = Duration::from_millis(value().parse().expect("ms")),
            "--wait-subscribers" => a.wait_subscribers = value().parse().expect("N"),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse();
    let bus = Bus::open_or_create(&args.bus, &BusConfig::default())?;
    let topic = bus.topic(&args.topic)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while topic.stats().subscribers.iter().filter(|s| s.alive).count() < args.wait_subscribers {
        if Instant::now() > deadline {
            return Err("no subscriber appeared within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Stamp each message with its publish time: the subscriber example prints its latency.
    let mut publisher = topic.publisher_with(&PublisherConfig {
        timestamps: true,
        ..Default::default()
    })?;
    println!(
        "publishing on {}/{} as publisher {}",
        args.bus,
        args.topic,
        publisher.id()
    );
    for n in 0..args.count {
        let text = format!("hello #{n} from pid {}", std::process::id());
        let seq = publisher.publish(text.as_bytes())?;
        println!("published seq {seq}: {text}");
        std::thread::sleep(args.interval);
    }
    Ok(())
}
