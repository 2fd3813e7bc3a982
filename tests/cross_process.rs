//! Behaviour across real processes: this test binary re-runs itself with a role (see
//! `common::spawn_child`); the `child` test below dispatches on it.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use common::{
    BusName, ROLE, env, env_u64, finish, finish_all, kill9, one_stress_test_at_a_time, per_profile,
    spawn_child, stopped_at, wait_for_stderr,
};
use shmbus::{
    Bus, BusConfig, BusError, PublisherConfig, RecvError, StartAt, SubscriberConfig, TopicConfig,
    WaitStrategy,
};

/// For publishers that may wait for a slot another publisher holds: a writer that is merely
/// pre-empted on a loaded machine must not make them give up (the default is 1 s).
const PATIENT: PublisherConfig = PublisherConfig {
    timeout: Duration::from_secs(30),
    liveness_window: Duration::from_millis(100),
    timestamps: false,
};

const WATCHDOG: Duration = Duration::from_secs(300);
const RECV: Duration = Duration::from_secs(30);

/// Entry point of every child process; a no-op when run as an ordinary test.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let bus = Bus::open(&env("BUS")).unwrap();
    match role.as_str() {
        "order-publisher" => order_publisher(&bus),
        "order-subscriber" => order_subscriber(&bus),
        "torn-publisher" => torn_publisher(&bus),
        "torn-subscriber" => torn_subscriber(&bus),
        "echo" => echo(&bus),
        "crash-publisher" => {
            // Stops at the crash point named by SHMBUS_CRASH_AT; the parent kills it there.
            let mut p = bus.publisher("t").unwrap();
            if std::env::var("SHMBUS_CRASH_AT").is_ok_and(|p| p == "loan-outstanding") {
                let mut loan = p.loan(4).unwrap();
                loan.as_mut_slice().copy_from_slice(b"dead");
                loan.publish();
            } else {
                p.publish(b"dead").unwrap();
            }
            unreachable!("the crash point should have stopped this process");
        }
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Two publishers and two subscribers in four processes: one total order.

fn order_publisher(bus: &Bus) {
    let tag = env_u64("TAG");
    let n = env_u64("N");
    let mut p = bus.open_topic("t").unwrap().publisher().unwrap();
    for i in 0..n {
        p.publish(&[tag.to_le_bytes(), i.to_le_bytes()].concat())
            .unwrap();
    }
}

fn order_subscriber(bus: &Bus) {
    let total = env_u64("N") * 2;
    let cfg = SubscriberConfig {
        start: StartAt::Oldest, // the ring holds every message: start time does not matter
        wait: WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(20),
        },
        ..Default::default()
    };
    let mut sub = bus.open_topic("t").unwrap().subscriber_with(&cfg).unwrap();
    let mut h = DefaultHasher::new();
    let mut next = [0u64; 2];
    for expected_seq in 0..total {
        let (seq, tag, i) = sub
            .recv_timeout_with(RECV, |info, b| {
                let word = |k: usize| u64::from_le_bytes(b[k * 8..k * 8 + 8].try_into().unwrap());
                (info.seq, word(0), word(1))
            })
            .unwrap();
        assert_eq!(seq, expected_seq, "no gaps: the ring holds every message");
        assert_eq!(
            i, next[tag as usize],
            "each publisher's messages stay in order"
        );
        next[tag as usize] += 1;
        (seq, tag, i).hash(&mut h);
    }
    println!("RESULT {:x}", h.finish());
}

#[test]
fn four_processes_see_one_total_order() {
    let _one = one_stress_test_at_a_time();
    let n: u64 = per_profile(5_000, 50_000);
    let name = BusName::new("order");
    let bus = Bus::create(
        &name,
        &BusConfig {
            size: 32 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let cfg = TopicConfig {
        slots: 1 << 17,
        payload_size: 16,
        ..Default::default()
    };
    bus.topic_with("t", &cfg).unwrap();
    let vars = |tag: u64| {
        vec![
            ("BUS", name.0.clone()),
            ("N", n.to_string()),
            ("TAG", tag.to_string()),
        ]
    };
    let subs: Vec<_> = (0..2)
        .map(|k| spawn_child("child", "order-subscriber", &vars(k)))
        .collect();
    let pubs: Vec<_> = (0..2)
        .map(|k| spawn_child("child", "order-publisher", &vars(k)))
        .collect();
    finish_all(pubs, WATCHDOG);
    let digests = finish_all(subs, WATCHDOG);
    assert_eq!(digests[0].len(), 1);
    assert_eq!(
        digests[0], digests[1],
        "both subscribers saw the same sequence"
    );
    assert_eq!(bus.topic("t").unwrap().stats().published, 2 * n);
}

// ---------------------------------------------------------------------------------------------
// Torn-read detector: a tiny ring, constant laps, every word of every message checked, and
// exact loss accounting.

/// The payload of message `i` of publisher `tag`: `len` bytes, every word equal to `word`.
fn torn_pattern(tag: u64, i: u64) -> (usize, u64) {
    let word = (tag << 56) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 8;
    let len = 8 * (1 + (word % 16) as usize); // 8..=128 bytes
    (len, word)
}

fn torn_publisher(bus: &Bus) {
    let tag = env_u64("TAG");
    let n = env_u64("N");
    // Two publishers on 8 slots wait for each other's slots all the time.
    let mut p = bus
        .open_topic("t")
        .unwrap()
        .publisher_with(&PATIENT)
        .unwrap();
    let mut buf = [0u8; 128];
    for i in 0..n {
        let (len, word) = torn_pattern(tag, i);
        for c in buf[..len].chunks_exact_mut(8) {
            c.copy_from_slice(&word.to_ne_bytes());
        }
        if i % 2 == 0 {
            p.publish(&buf[..len]).unwrap();
        } else {
            let mut loan = p.loan(len).unwrap();
            loan.as_mut_slice().copy_from_slice(&buf[..len]);
            loan.publish();
        }
    }
}

fn torn_subscriber(bus: &Bus) {
    let total = env_u64("N") * env_u64("PUBLISHERS");
    let cfg = SubscriberConfig {
        wait: WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(50),
        },
        ..Default::default()
    };
    let mut sub = bus.open_topic("t").unwrap().subscriber_with(&cfg).unwrap();
    assert_eq!(
        sub.next_seq(),
        0,
        "subscribed before the publishers started"
    );
    eprintln!("SUBSCRIBED");
    let mut buf = [0u8; 128];
    let (mut delivered, mut lost) = (0u64, 0u64);
    while sub.next_seq() < total {
        match sub.recv_timeout(&mut buf, RECV) {
            Ok(info) => {
                let first = u64::from_ne_bytes(buf[..8].try_into().unwrap());
                let tag = first >> 56;
                let words: Vec<u64> = buf[..info.len]
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                    .collect();
                assert!(
                    words.iter().all(|&w| w == first),
                    "torn message at seq {}",
                    info.seq
                );
                assert_eq!(
                    8 * (1 + (first % 16) as usize),
                    info.len,
                    "length matches content"
                );
                assert!(tag < 2);
                delivered += 1;
            }
            Err(RecvError::Lost { count, .. }) => lost += count,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(delivered + lost, total, "delivered + lost = published");
    assert_eq!(sub.counts(), (delivered, lost));
    println!("RESULT {delivered} {lost}");
}

#[test]
fn torn_read_detector_and_exact_loss_accounting() {
    torn_run(
        2,
        TopicConfig {
            slots: 8,
            payload_size: 128,
            ..Default::default()
        },
    );
}

#[test]
fn torn_read_detector_on_a_single_publisher_topic() {
    // One publisher entry: slots are taken with a plain store instead of a CAS.
    let cfg = TopicConfig {
        slots: 8,
        payload_size: 128,
        max_publishers: 1,
        ..Default::default()
    };
    torn_run(1, cfg);
}

/// `publishers` processes publish `n` messages each through a ring of `cfg`; one subscriber
/// checks every word of every message and the loss accounting.
fn torn_run(publishers: u64, cfg: TopicConfig) {
    let _one = one_stress_test_at_a_time();
    let n: u64 = per_profile(100_000, 1_200_000 / publishers);
    let name = BusName::new("torn");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    bus.topic_with("t", &cfg).unwrap();
    let vars = |tag: u64| {
        vec![
            ("BUS", name.0.clone()),
            ("N", n.to_string()),
            ("TAG", tag.to_string()),
            ("PUBLISHERS", publishers.to_string()),
        ]
    };
    let mut sub = spawn_child("child", "torn-subscriber", &vars(0));
    wait_for_stderr(&mut sub, "SUBSCRIBED", WATCHDOG);
    let pubs: Vec<_> = (0..publishers)
        .map(|k| spawn_child("child", "torn-publisher", &vars(k)))
        .collect();
    finish_all(pubs, WATCHDOG);
    let result = finish(sub, WATCHDOG);
    let counts: Vec<u64> = result[0].split(' ').map(|x| x.parse().unwrap()).collect();
    assert_eq!(counts[0] + counts[1], publishers * n);
    assert!(counts[0] > 0, "some messages were delivered");
    eprintln!(
        "torn-read detector ({publishers} publisher(s)): {} delivered, {} lost of {}",
        counts[0],
        counts[1],
        publishers * n
    );
}

// ---------------------------------------------------------------------------------------------
// Lost wake-ups: both sides parked, ping-pong; the fallback nap is longer than the receive
// timeout, so a lost wake-up would fail the test instead of being rescued by a timer. On a kernel
// with membarrier (4.16+) the publishers are fenced (a plain load of `sleepers`, docs/design.md
// §5), so this checks that handshake; elsewhere the RMW one (which loom also checks). A
// subscriber whose membarrier call fails naps at most 1 ms, which would hide a lost wake-up here:
// that happens only where the system call is filtered.

fn parked() -> SubscriberConfig {
    SubscriberConfig {
        wait: WaitStrategy::Park,
        liveness_window: Duration::from_secs(3600),
        ..Default::default()
    }
}

fn echo(bus: &Bus) {
    let n = env_u64("N");
    let mut sub = bus
        .open_topic("ping")
        .unwrap()
        .subscriber_with(&parked())
        .unwrap();
    let mut p = bus.open_topic("pong").unwrap().publisher().unwrap();
    p.publish(b"ready").unwrap();
    let mut buf = [0u8; 8];
    for i in 0..n {
        let info = sub
            .recv_timeout(&mut buf, RECV)
            .expect("ping lost: a wake-up was missed");
        assert_eq!(u64::from_le_bytes(buf), i);
        jitter(i);
        p.publish(&buf[..info.len]).unwrap();
    }
}

/// A few hundred ns to a few µs of busy work, varying per message, to vary the interleavings.
fn jitter(i: u64) {
    let spins = (i.wrapping_mul(2_654_435_761) >> 7) % 2000;
    for _ in 0..spins {
        std::hint::spin_loop();
    }
}

#[test]
fn parked_subscribers_never_miss_a_wake_up() {
    let n: u64 = per_profile(3_000, 20_000);
    let name = BusName::new("wake");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let mut pong = bus
        .topic("pong")
        .unwrap()
        .subscriber_with(&parked())
        .unwrap();
    bus.topic("ping").unwrap();
    let child = spawn_child(
        "child",
        "echo",
        &[("BUS", name.0.clone()), ("N", n.to_string())],
    );
    let mut buf = [0u8; 8];
    pong.recv_timeout(&mut buf, RECV).expect("echo child ready");
    let mut ping = bus.topic("ping").unwrap().publisher().unwrap();
    for i in 0..n {
        jitter(i + 1);
        ping.publish(&i.to_le_bytes()).unwrap();
        pong.recv_timeout(&mut buf, RECV)
            .expect("pong lost: a wake-up was missed");
        assert_eq!(u64::from_le_bytes(buf), i);
    }
    finish(child, WATCHDOG);
    let stats = bus.topic("ping").unwrap().stats();
    assert!(stats.wakes > 0, "the parked echo child was woken by futex");
}

// ---------------------------------------------------------------------------------------------
// Crashes: a publisher killed at each point of its protocol never stops the subscribers.

fn publisher_killed_at(point: &str) {
    publisher_killed_at_on(point, &TopicConfig::default());
}

fn publisher_killed_at_on(point: &str, topic_cfg: &TopicConfig) {
    let name = BusName::new("crash");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", topic_cfg).unwrap();
    let cfg = SubscriberConfig {
        wait: WaitStrategy::Park,
        liveness_window: Duration::from_millis(20),
        ..Default::default()
    };
    let mut sub = topic.subscriber_with(&cfg).unwrap();
    let mut child = stopped_at("child", "crash-publisher", &name, point, &[]);
    kill9(&mut child);
    // A live publisher publishes after the dead one.
    let mut p = topic.publisher().unwrap();
    p.publish(b"after the crash").unwrap();
    let mut buf = [0u8; 256];
    let claimed = point != "publish-before-claim";
    if claimed {
        // The dead publisher's sequence 0 is reported lost (after the liveness window), never
        // delivered torn; then the live message arrives.
        assert_eq!(
            sub.recv_timeout(&mut buf, RECV),
            Err(RecvError::Lost {
                first_seq: 0,
                count: 1
            }),
            "{point}"
        );
    }
    let info = sub.recv_timeout(&mut buf, RECV).unwrap();
    assert_eq!(&buf[..info.len], b"after the crash", "{point}");
    assert_eq!(info.seq, u64::from(claimed));
    let stats = topic.stats();
    assert_eq!(stats.repaired, u64::from(claimed), "{point}");
    let dead: Vec<_> = stats.publishers.iter().filter(|p| !p.alive).collect();
    if topic_cfg.max_publishers > 1 {
        assert_eq!(
            dead.len(),
            1,
            "the dead publisher is visible as dead: {stats:?}"
        );
    } else {
        assert!(
            dead.is_empty(),
            "the live publisher took the dead one's only entry"
        );
    }
    // A record can be reused by the next publisher.
    drop(p);
    let mut again = topic.publisher().unwrap();
    again.publish(b"x").unwrap();
    assert_eq!(sub.recv_timeout(&mut buf, RECV).unwrap().len, 1);
}

#[test]
fn publisher_killed_before_claim() {
    publisher_killed_at("publish-before-claim");
}

#[test]
fn publisher_killed_after_claim_before_taking_the_slot() {
    publisher_killed_at("publish-after-claim");
}

#[test]
fn publisher_killed_while_writing() {
    publisher_killed_at("publish-after-begin");
}

#[test]
fn publisher_killed_mid_payload() {
    publisher_killed_at("publish-mid-payload");
}

#[test]
fn publisher_killed_with_a_loan_outstanding() {
    publisher_killed_at("loan-outstanding");
}

#[test]
fn publisher_killed_before_commit() {
    publisher_killed_at("publish-before-commit");
}

/// Every crash point of `publish` (`Publisher::publish_sole_lossy` and the general path).
const PUBLISH_CRASH_POINTS: [&str; 5] = [
    "publish-before-claim",
    "publish-after-claim",
    "publish-after-begin",
    "publish-mid-payload",
    "publish-before-commit",
];

#[test]
fn single_publisher_topic_survives_a_publisher_killed_anywhere_in_publish() {
    // One publisher entry on a lossy topic: `publish` takes its lean path (no CAS, no CLAIMING
    // step, `inflight` left at the last sequence); the next publisher takes over the dead one's
    // entry, and a claimed slot the dead one left is repaired, at every point of the path.
    let cfg = TopicConfig {
        max_publishers: 1,
        ..Default::default()
    };
    for point in PUBLISH_CRASH_POINTS {
        publisher_killed_at_on(point, &cfg);
    }
}

#[test]
fn a_dead_sole_publisher_is_repaired_by_the_subscribers_alone() {
    // One publisher entry, three messages already through it, and nobody takes the entry over
    // after the crash: the subscriber closes the sequence the dead publisher claimed from its
    // record alone (`inflight` = that sequence, owner dead), or, where it had not claimed one,
    // simply finds nothing.
    let topic_cfg = TopicConfig {
        max_publishers: 1,
        ..Default::default()
    };
    let sub_cfg = SubscriberConfig {
        wait: WaitStrategy::Park,
        liveness_window: Duration::from_millis(20),
        ..Default::default()
    };
    for point in PUBLISH_CRASH_POINTS {
        let name = BusName::new("crash-sole");
        let bus = Bus::create(&name, &BusConfig::default()).unwrap();
        let topic = bus.topic_with("t", &topic_cfg).unwrap();
        let mut sub = topic.subscriber_with(&sub_cfg).unwrap();
        let mut p = topic.publisher().unwrap();
        for i in 0..3u64 {
            p.publish(&i.to_le_bytes()).unwrap();
        }
        drop(p); // the entry is free for the child
        let mut child = stopped_at("child", "crash-publisher", &name, point, &[]);
        kill9(&mut child);
        let mut buf = [0u8; 64];
        for i in 0..3u64 {
            let info = sub.recv_timeout(&mut buf, RECV).unwrap();
            assert_eq!((info.seq, &buf[..8]), (i, &i.to_le_bytes()[..]), "{point}");
        }
        if point == "publish-before-claim" {
            // Bounded: a few liveness windows, in which nothing must arrive or be repaired.
            assert_eq!(
                sub.recv_timeout(&mut buf, Duration::from_millis(100)),
                Err(RecvError::Timeout),
                "{point}"
            );
            assert_eq!(topic.stats().repaired, 0, "{point}");
        } else {
            assert_eq!(
                sub.recv_timeout(&mut buf, RECV),
                Err(RecvError::Lost {
                    first_seq: 3,
                    count: 1
                }),
                "{point}"
            );
            assert_eq!(topic.stats().repaired, 1, "{point}");
        }
    }
}

#[test]
fn a_live_publisher_blocked_on_a_dead_writers_slot_repairs_it() {
    // Ring of 2: the dead publisher holds seq 0's slot; the live publisher's seq 2 needs the
    // same slot and must not wait forever.
    let name = BusName::new("crash-lap");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus
        .topic_with(
            "t",
            &TopicConfig {
                slots: 2,
                payload_size: 8,
                ..Default::default()
            },
        )
        .unwrap();
    let mut child = stopped_at(
        "child",
        "crash-publisher",
        &name,
        "publish-after-begin",
        &[],
    );
    kill9(&mut child);
    // Repaired at the first liveness check; a long stall must not turn that into a Timeout.
    let mut p = topic.publisher_with(&PATIENT).unwrap();
    for i in 1..=3u64 {
        assert_eq!(p.publish(&i.to_le_bytes()).unwrap(), i);
    }
    assert_eq!(topic.stats().repaired, 1);
}

#[test]
fn a_creator_that_dies_before_ready_is_reported() {
    let name = BusName::new("creator");
    let mut child = stopped_at(
        "child_creator",
        "creator",
        &name,
        "create-before-ready",
        &[],
    );
    let pid = child.id();
    kill9(&mut child);
    let fast = BusConfig {
        open_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    match Bus::open_with(&name, &fast) {
        Err(BusError::CreatorDied { pid: p }) => assert_eq!(p, pid),
        other => panic!("expected CreatorDied, got {other:?}"),
    }
    // The documented way out: remove and create again.
    Bus::remove(&name).unwrap();
    Bus::create(&name, &BusConfig::default()).unwrap();
}

#[test]
fn a_creator_that_dies_holding_the_topic_lock_does_not_block_others() {
    let name = BusName::new("topiclock");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let mut child = stopped_at(
        "child_creator",
        "topic-creator",
        &name,
        "topic-before-ready",
        &[],
    );
    kill9(&mut child);
    // The half-made topic was never marked ready; creating it again works.
    let topic = bus.topic("t").unwrap();
    assert_eq!(bus.topics().len(), 1);
    let mut sub = topic.subscriber().unwrap();
    topic.publisher().unwrap().publish(b"ok").unwrap();
    assert_eq!(sub.recv_timeout(&mut [0u8; 8], RECV).unwrap().len, 2);
}

/// Children that create (and therefore cannot open the bus first).
#[test]
fn child_creator() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "creator" => {
            let _ = Bus::create(&env("BUS"), &BusConfig::default());
        }
        "topic-creator" => {
            let bus = Bus::open(&env("BUS")).unwrap();
            let _ = bus.topic("t");
        }
        other => panic!("unknown role {other}"),
    }
    unreachable!("the crash point should have stopped this process");
}
