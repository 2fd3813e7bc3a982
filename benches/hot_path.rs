//! In-process costs of the hot path, so a change that slows it shows up in `cargo bench`.
//! The cross-process latency benchmark is `shmbus bench` (src/bin/shmbus/bench).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use shmbus::{
    Bus, BusConfig, Delivery, Publisher, RecvError, Subscriber, SubscriberConfig, TopicConfig,
    WaitStrategy,
};

struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Bus::remove(&self.0);
    }
}

fn bus(tag: &str) -> (Bus, Guard) {
    let name = format!("bench-{tag}-{}", std::process::id());
    let _ = Bus::remove(&name);
    (
        Bus::create(&name, &BusConfig::default()).unwrap(),
        Guard(name),
    )
}

fn single_thread(c: &mut Criterion) {
    let (bus, _g) = bus("single");
    let topic = bus
        .topic_with(
            "t",
            &TopicConfig {
                slots: 4096,
                payload_size: 1024,
                ..Default::default()
            },
        )
        .unwrap();
    let mut publisher = topic.publisher().unwrap();
    let msg = [7u8; 64];
    c.bench_function("publish 64 B, no subscriber", |b| {
        b.iter(|| publisher.publish(black_box(&msg)).unwrap())
    });
    c.bench_function("loan + publish 64 B", |b| {
        b.iter(|| {
            let mut loan = publisher.loan(64).unwrap();
            loan.as_mut_slice().copy_from_slice(black_box(&msg));
            loan.publish()
        })
    });
    let mut sub = topic.subscriber().unwrap();
    let mut buf = [0u8; 1024];
    c.bench_function("try_recv, empty", |b| {
        b.iter(|| assert_eq!(sub.try_recv(black_box(&mut buf)), Err(RecvError::Empty)))
    });
    publish_and_take(
        c,
        "publish + try_recv 64 B",
        &mut publisher,
        &mut sub,
        &msg,
        &mut buf,
    );
    // The same on a topic that admits one publisher, as the benchmark's topics do: the claim is
    // a plain load and store instead of a locked add (docs/design.md, section 4).
    let single = bus
        .topic_with(
            "single-publisher",
            &TopicConfig {
                slots: 4096,
                payload_size: 64,
                max_publishers: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let mut spub = single.publisher().unwrap();
    let mut ssub = single.subscriber().unwrap();
    publish_and_take(
        c,
        "publish + try_recv 64 B, one-publisher topic",
        &mut spub,
        &mut ssub,
        &msg,
        &mut buf,
    );
    let big = vec![1u8; 1024];
    publish_and_take(
        c,
        "publish + try_recv 1 KiB",
        &mut publisher,
        &mut sub,
        &big,
        &mut buf,
    );
    // A blocking receive that finds its message costs what try_recv costs: no clock read, no
    // call (it was 2x try_recv before the fast path was inlined).
    c.bench_function("publish + recv_timeout 64 B, message ready", |b| {
        b.iter(|| {
            publisher.publish(black_box(&msg)).unwrap();
            sub.recv_timeout(&mut buf, Duration::from_secs(1)).unwrap()
        })
    });
    // The zero-copy pair on a lossless topic: write 8 bytes in place, read them in place.
    let lossless = bus
        .topic_with(
            "lossless",
            &TopicConfig {
                slots: 4096,
                payload_size: 1024,
                delivery: Delivery::Lossless,
                ..Default::default()
            },
        )
        .unwrap();
    let mut lpub = lossless.publisher().unwrap();
    let mut lsub = lossless.subscriber().unwrap();
    c.bench_function("loan + recv_borrow_timeout 64 B, in place", |b| {
        b.iter(|| {
            let mut loan = lpub.loan(64).unwrap();
            loan.as_mut_slice()[..8].copy_from_slice(black_box(&msg[..8]));
            loan.publish();
            let sample = lsub.recv_borrow_timeout(Duration::from_secs(1)).unwrap();
            black_box(sample[0])
        })
    });
}

/// Times one publish of `msg` and the `try_recv` that takes it back into `buf`.
fn publish_and_take(
    c: &mut Criterion,
    name: &str,
    publisher: &mut Publisher,
    sub: &mut Subscriber,
    msg: &[u8],
    buf: &mut [u8],
) {
    c.bench_function(name, |b| {
        b.iter(|| {
            publisher.publish(black_box(msg)).unwrap();
            sub.try_recv(buf).unwrap()
        })
    });
}

/// The first two CPUs this process may use.
fn two_cpus() -> Option<(usize, usize)> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    let mut cpus = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("pin to an allowed CPU");
}

/// Round trip between two threads, both busy-spinning, each pinned to a CPU of its own (needs
/// two free cores to mean much; skipped with fewer than two).
fn two_threads(c: &mut Criterion) {
    let Some((cpu_a, cpu_b)) = two_cpus() else {
        println!("two-thread ping-pong skipped: needs two CPUs");
        return;
    };
    let (bus, _g) = bus("threads");
    let cfg = SubscriberConfig {
        wait: WaitStrategy::Spin,
        ..Default::default()
    };
    let mut pong = bus.topic("pong").unwrap().subscriber_with(&cfg).unwrap();
    let mut ping = bus.topic("ping").unwrap().publisher().unwrap();
    let mut echo_sub = bus.topic("ping").unwrap().subscriber_with(&cfg).unwrap();
    let mut echo_pub = bus.topic("pong").unwrap().publisher().unwrap();
    let echo = std::thread::spawn(move || {
        pin(cpu_b);
        let mut buf = [0u8; 64];
        loop {
            match echo_sub.recv_timeout(&mut buf, Duration::from_secs(5)) {
                Ok(info) if info.len == 0 => return,
                Ok(info) => {
                    echo_pub.publish(&buf[..info.len]).unwrap();
                }
                Err(RecvError::Timeout) => return,
                Err(_) => {}
            }
        }
    });
    // Criterion's own thread: pinned for this bench, set free again after it.
    let before = rustix::thread::sched_getaffinity(None).expect("own CPU set");
    pin(cpu_a);
    let msg = [1u8; 64];
    let mut buf = [0u8; 64];
    c.bench_function("two-thread ping-pong 64 B (round trip)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                ping.publish(&msg).unwrap();
                // The echo exits after 5 s without a message: a reply missing that long will
                // not come, and waiting for it would hang the bench.
                pong.recv_timeout(&mut buf, Duration::from_secs(10))
                    .expect("no echo within 10 s");
            }
            start.elapsed()
        })
    });
    ping.publish(&[]).unwrap();
    echo.join().unwrap();
    rustix::thread::sched_setaffinity(None, &before).expect("restore the CPU set");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = single_thread, two_threads
}
criterion_main!(benches);
