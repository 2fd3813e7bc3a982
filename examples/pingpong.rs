//! Ping-pong between two processes over shmbus: one-way latency (round trip / 2) of 64-byte
//! messages, for a busy-spinning and a parked (futex) receiver.
//!
//! Run: `cargo run --release --example pingpong` (options: `--seconds S` per mode, default 2).
//! It starts its own second process and removes the bus it creates. For the full benchmark,
//! with baselines and the alternatives, run `shmbus bench`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmbus::{Bus, BusConfig, RecvError, SubscriberConfig, TopicConfig, WaitStrategy};

const PAYLOAD: usize = 64;
/// Set in the last byte of a ping to end the child.
const STOP: u8 = 0xff;
/// Round trips not recorded at the start (page-ins, first wake-ups).
const WARMUP: u64 = 10;
const TIMEOUT: Duration = Duration::from_secs(10);

fn wait_of(mode: &str) -> WaitStrategy {
    match mode {
        "spin" => WaitStrategy::Spin,
        "park" => WaitStrategy::Park,
        other => panic!("unknown mode {other}"),
    }
}

/// The second process: answer every ping with the same bytes until STOP.
fn child(bus: &str, mode: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open(bus)?;
    let cfg = SubscriberConfig {
        wait: wait_of(mode),
        ..Default::default()
    };
    let mut ping = bus.topic("ping")?.subscriber_with(&cfg)?;
    let mut pong = bus.topic("pong")?.publisher()?;
    pong.publish(b"ready")?;
    let mut buf = [0u8; PAYLOAD];
    loop {
        let info = ping.recv_timeout(&mut buf, TIMEOUT)?;
        if buf[PAYLOAD - 1] == STOP {
            return Ok(());
        }
        pong.publish(&buf[..info.len])?;
    }
}

fn run_mode(
    bus: &Bus,
    mode: &str,
    seconds: f64,
) -> Result<Histogram<u64>, Box<dyn std::error::Error>> {
    let cfg = SubscriberConfig {
        wait: wait_of(mode),
        ..Default::default()
    };
    let mut pong = bus.topic("pong")?.subscriber_with(&cfg)?;
    let mut ping = bus.topic("ping")?.publisher()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", bus.name(), mode])
        .stdin(Stdio::null())
        .spawn()?;
    let mut buf = [0u8; PAYLOAD];
    pong.recv_timeout(&mut buf, TIMEOUT)?; // "ready"
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut msg = [0u8; PAYLOAD];
    let mut i = 0u64;
    while Instant::now() < end {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let t0 = shmbus::monotonic_ns();
        ping.publish(&msg)?;
        match pong.recv_timeout(&mut buf, TIMEOUT) {
            Ok(_) => {}
            Err(RecvError::Lost { .. }) => continue,
            Err(e) => {
                eprintln!(
                    "parent at {i}: {e:?}\nping {:?}\npong {:?}",
                    bus.topic("ping")?.stats(),
                    bus.topic("pong")?.stats()
                );
                return Err(e.into());
            }
        }
        let rtt = shmbus::monotonic_ns() - t0;
        if i >= WARMUP {
            hist.record((rtt / 2).max(1))?;
        }
        i += 1;
    }
    msg[PAYLOAD - 1] = STOP;
    ping.publish(&msg)?;
    child.wait()?;
    Ok(hist)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], &args[3]);
    }
    let seconds = match args.get(1).map(String::as_str) {
        Some("--seconds") => args.get(2).ok_or("--seconds S")?.parse()?,
        Some(other) => return Err(format!("unknown option {other}").into()),
        None => 2.0,
    };
    let name = format!("pingpong-{}", std::process::id());
    let bus = Bus::create(&name, &BusConfig::default())?;
    // Each topic has one publisher at a time, and says so: publishing then needs no locked
    // instruction (see `TopicConfig::max_publishers`). The child opens them as they are.
    let topic_cfg = TopicConfig {
        max_publishers: 1,
        ..Default::default()
    };
    for topic in ["ping", "pong"] {
        bus.topic_with(topic, &topic_cfg)?;
    }
    println!("one-way latency, {PAYLOAD}-byte messages, round trip / 2, {seconds} s per mode");
    println!(
        "{:<6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "mode", "messages", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    let mut result = Ok(());
    for mode in ["spin", "park"] {
        match run_mode(&bus, mode, seconds) {
            Ok(h) => {
                let q = |p: f64| format!("{:.2}µs", h.value_at_quantile(p) as f64 / 1e3);
                println!(
                    "{:<6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    mode,
                    h.len(),
                    q(0.5),
                    q(0.9),
                    q(0.99),
                    q(0.999),
                    q(0.9999),
                    format!("{:.2}µs", h.max() as f64 / 1e3)
                );
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    Bus::remove(&name)?;
    result
}
