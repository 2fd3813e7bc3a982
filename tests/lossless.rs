//! Lossless delivery: backpressure, borrowing in place, eviction of dead subscribers, and a
//! multi-process load test with nothing lost or duplicated.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use common::{
    BusName, ROLE, env, env_u64, finish_all, kill9, one_stress_test_at_a_time, per_profile,
    spawn_child, stopped_at, wait_for_stderr,
};
use shmbus::{
    Bus, BusConfig, Delivery, PublishError, PublisherConfig, RecvError, SubscriberConfig,
    TopicConfig, TopicError, WaitStrategy,
};

const T: Duration = Duration::from_secs(30);
const WATCHDOG: Duration = Duration::from_secs(300);

fn lossless(slots: u32, payload: u32) -> TopicConfig {
    TopicConfig {
        slots,
        payload_size: payload,
        delivery: Delivery::Lossless,
        ..Default::default()
    }
}

fn quick(timeout_ms: u64) -> PublisherConfig {
    PublisherConfig {
        timeout: Duration::from_millis(timeout_ms),
        ..Default::default()
    }
}

#[test]
fn a_full_ring_blocks_publishers_and_nothing_is_lost() {
    let name = BusName::new("ll-full");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(4, 8)).unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut p = topic.publisher_with(&quick(20)).unwrap();
    for i in 0..4u64 {
        p.publish(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(
        p.try_publish(&4u64.to_le_bytes()),
        Err(PublishError::WouldBlock)
    );
    assert!(matches!(p.try_loan(8), Err(PublishError::WouldBlock)));
    let start = std::time::Instant::now();
    assert_eq!(p.publish(&4u64.to_le_bytes()), Err(PublishError::Timeout));
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert!(topic.stats().backpressure >= 3, "{:?}", topic.stats());
    let mut buf = [0u8; 8];
    assert_eq!(sub.try_recv(&mut buf).unwrap().seq, 0);
    assert_eq!(p.try_publish(&4u64.to_le_bytes()), Ok(4), "one slot freed");
    for i in 1..=4u64 {
        let info = sub.try_recv(&mut buf).unwrap();
        assert_eq!((info.seq, u64::from_le_bytes(buf)), (i, i));
    }
    assert_eq!(sub.counts(), (5, 0));
    assert_eq!(sub.lag(), 0);
}

#[test]
fn without_subscribers_publishers_run_free_and_dropping_a_subscriber_unblocks() {
    let name = BusName::new("ll-free");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(4, 8)).unwrap();
    let mut p = topic.publisher_with(&quick(20)).unwrap();
    for i in 0..100u64 {
        p.try_publish(&i.to_le_bytes()).unwrap();
    }
    let sub = topic.subscriber().unwrap();
    for _ in 0..4 {
        p.try_publish(b"x").unwrap();
    }
    assert_eq!(p.try_publish(b"x"), Err(PublishError::WouldBlock));
    drop(sub);
    p.try_publish(b"x")
        .expect("a dropped subscriber unregisters at once");
}

#[test]
fn the_slowest_of_several_subscribers_holds_the_ring() {
    let name = BusName::new("ll-slowest");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(2, 8)).unwrap();
    let mut fast = topic.subscriber().unwrap();
    let mut slow = topic.subscriber().unwrap();
    let mut p = topic.publisher().unwrap();
    let mut buf = [0u8; 8];
    p.try_publish(b"a").unwrap();
    p.try_publish(b"b").unwrap();
    fast.try_recv(&mut buf).unwrap();
    fast.try_recv(&mut buf).unwrap();
    assert_eq!(p.try_publish(b"c"), Err(PublishError::WouldBlock));
    assert_eq!(slow.lag(), 2);
    slow.try_recv(&mut buf).unwrap();
    p.try_publish(b"c").unwrap();
    let stats = topic.stats();
    let lags: Vec<u64> = stats.subscribers.iter().map(|s| s.lag).collect();
    assert_eq!(lags, vec![1, 2]);
}

#[test]
fn samples_borrow_in_place_and_are_consumed_on_drop() {
    let name = BusName::new("ll-borrow");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(2, 64)).unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut p = topic.publisher().unwrap();
    p.publish(b"hello").unwrap();
    p.publish_value(&7u64).unwrap();
    {
        let sample = sub.recv_borrow_timeout(T).unwrap();
        assert_eq!(&*sample, b"hello");
        assert_eq!(sample.info().seq, 0);
        // While the sample lives, the ring stays full for the publisher.
        assert_eq!(p.try_publish(b"!"), Err(PublishError::WouldBlock));
    }
    p.try_publish(b"!")
        .expect("the dropped sample freed its slot");
    let sample = sub.try_recv_borrow().unwrap();
    assert_eq!(sample.read_value::<u64>(), Ok(7));
    assert_eq!(
        sample.read_value::<u32>(),
        Err(RecvError::BufferTooSmall { needed: 8 })
    );
    drop(sample);
    assert_eq!(&*sub.try_recv_borrow().unwrap(), b"!");
    assert!(matches!(sub.try_recv_borrow(), Err(RecvError::Empty)));
    assert_eq!(sub.counts(), (3, 0));
    // Lossy topics cannot lend slots: a publisher could overwrite them.
    let mut lossy = bus.topic("lossy").unwrap().subscriber().unwrap();
    assert!(matches!(
        lossy.try_recv_borrow(),
        Err(RecvError::NotLossless)
    ));
}

#[test]
fn delivery_mode_is_part_of_a_topic_identity() {
    let name = BusName::new("ll-mode");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    bus.topic_with("t", &lossless(4, 8)).unwrap();
    let lossy = TopicConfig {
        slots: 4,
        payload_size: 8,
        ..Default::default()
    };
    assert!(matches!(
        bus.topic_with("t", &lossy),
        Err(TopicError::DeliveryMismatch { .. })
    ));
    assert_eq!(
        bus.topic("t").unwrap().config().delivery,
        Delivery::Lossless
    );
    assert_eq!(
        Bus::open(&name).unwrap().topics()[0].1.delivery,
        Delivery::Lossless
    );
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// Entry point of the child processes; a no-op when run as an ordinary test.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let bus = Bus::open(&env("BUS")).unwrap();
    let topic = bus.open_topic("t").unwrap();
    match role.as_str() {
        "publisher" => {
            let tag = env_u64("TAG");
            let cfg = PublisherConfig {
                timeout: T,
                ..Default::default()
            };
            let mut p = topic.publisher_with(&cfg).unwrap();
            for i in 0..env_u64("N") {
                if i % 3 == 0 {
                    let mut loan = p.loan(16).unwrap();
                    loan.as_mut_slice()[..8].copy_from_slice(&tag.to_le_bytes());
                    loan.as_mut_slice()[8..].copy_from_slice(&i.to_le_bytes());
                    loan.publish();
                } else {
                    p.publish(&[tag.to_le_bytes(), i.to_le_bytes()].concat())
                        .unwrap();
                }
            }
        }
        "subscriber" => {
            let total = env_u64("N") * 2;
            let slow = env("SLOW") == "1";
            let cfg = SubscriberConfig {
                wait: WaitStrategy::SpinThenPark {
                    spin: Duration::from_micros(20),
                },
                ..Default::default()
            };
            let mut sub = topic.subscriber_with(&cfg).unwrap();
            eprintln!("SUBSCRIBED");
            let mut h = DefaultHasher::new();
            let mut next = [0u64; 2];
            for expected in 0..total {
                let sample = sub
                    .recv_borrow_timeout(T)
                    .expect("nothing is lost on a lossless topic");
                let word =
                    |k: usize| u64::from_le_bytes(sample[k * 8..k * 8 + 8].try_into().unwrap());
                let (tag, i) = (word(0), word(1));
                assert_eq!(sample.info().seq, expected);
                assert_eq!(
                    i, next[tag as usize],
                    "each publisher's messages in order, once"
                );
                next[tag as usize] += 1;
                (expected, tag, i).hash(&mut h);
                drop(sample);
                if slow && expected % 1024 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            assert_eq!(sub.counts(), (total, 0));
            println!("RESULT {:x}", h.finish());
        }
        "stuck-subscriber" => {
            // Registers, then stops at a crash point (SHMBUS_CRASH_AT) until killed: right after
            // registering, or holding a borrowed message (which it publishes itself).
            let mut sub = topic.subscriber().unwrap();
            topic.publisher().unwrap().publish(b"borrowed").unwrap();
            let _ = sub.recv_borrow_timeout(T);
            unreachable!("the crash point should have stopped this process");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn lossless_under_load_across_processes() {
    let _one = one_stress_test_at_a_time();
    let n: u64 = per_profile(20_000, 500_000);
    let name = BusName::new("ll-load");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    bus.topic_with("t", &lossless(64, 16)).unwrap();
    let vars = |tag: u64, slow: bool| {
        vec![
            ("BUS", name.0.clone()),
            ("N", n.to_string()),
            ("TAG", tag.to_string()),
            ("SLOW", if slow { "1" } else { "0" }.to_string()),
        ]
    };
    let mut subs = Vec::new();
    for slow in [false, true] {
        let mut s = spawn_child("child", "subscriber", &vars(0, slow));
        wait_for_stderr(&mut s, "SUBSCRIBED", WATCHDOG);
        subs.push(s);
    }
    let pubs: Vec<_> = (0..2)
        .map(|k| spawn_child("child", "publisher", &vars(k, false)))
        .collect();
    finish_all(pubs, WATCHDOG);
    let digests = finish_all(subs, WATCHDOG);
    assert_eq!(digests[0].len(), 1);
    assert_eq!(
        digests[0], digests[1],
        "both subscribers saw the same messages in the same order"
    );
    let stats = bus.topic("t").unwrap().stats();
    assert_eq!(stats.published, 2 * n);
    assert!(
        stats.backpressure > 0,
        "the slow subscriber held the publishers back"
    );
    assert_eq!(stats.evicted, 0, "live subscribers are never evicted");
}

fn dead_subscriber_is_evicted(point: &str) {
    let name = BusName::new("ll-evict");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(4, 8)).unwrap();
    let mut child = stopped_at("child", "stuck-subscriber", &name, point, &[]);
    let mut p = topic.publisher_with(&quick(100)).unwrap();
    let published_before = topic.stats().published;
    // The subscriber is alive (stopped): its cursor holds the ring; it is never evicted.
    let mut sent = 0;
    while p.publish(b"x").is_ok() {
        sent += 1;
        assert!(sent <= 4, "the live subscriber must hold the ring");
    }
    assert_eq!(topic.stats().evicted, 0);
    kill9(&mut child);
    // Dead now: a publisher blocked on it evicts it within the liveness window and resumes.
    let mut p = topic
        .publisher_with(&PublisherConfig {
            timeout: T,
            ..Default::default()
        })
        .unwrap();
    for _ in 0..20 {
        p.publish(b"y").unwrap();
    }
    let stats = topic.stats();
    assert_eq!(stats.evicted, 1, "{stats:?}");
    assert!(stats.subscribers.is_empty());
    assert_eq!(stats.published, published_before + sent + 20);
}

#[test]
fn a_dead_registered_subscriber_is_evicted() {
    dead_subscriber_is_evicted("subscriber-registered");
}

#[test]
fn a_subscriber_killed_while_holding_a_borrow_is_evicted() {
    dead_subscriber_is_evicted("subscriber-holding-borrow");
}

/// A lossless topic of 4 slots whose message 0 was claimed by a publisher killed mid-write,
/// and a subscriber (liveness window 20 ms) waiting at 0.
fn after_a_dead_publisher(name: &BusName) -> (Bus, shmbus::Topic, shmbus::Subscriber) {
    let bus = Bus::create(name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(4, 16)).unwrap();
    let cfg = SubscriberConfig {
        liveness_window: Duration::from_millis(20),
        ..Default::default()
    };
    let sub = topic.subscriber_with(&cfg).unwrap();
    let extra = [("N", "1".to_owned()), ("TAG", "0".to_owned())];
    let mut child = stopped_at("child", "publisher", name, "publish-after-begin", &extra);
    kill9(&mut child);
    (bus, topic, sub)
}

#[test]
fn a_publisher_killed_mid_write_is_skipped_on_a_lossless_topic() {
    let name = BusName::new("ll-deadpub");
    let (_bus, topic, mut sub) = after_a_dead_publisher(&name);
    topic.publisher().unwrap().publish(&[1u8; 16]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        sub.recv_timeout(&mut buf, T),
        Err(RecvError::Lost {
            first_seq: 0,
            count: 1
        })
    );
    assert_eq!(sub.recv_timeout(&mut buf, T).unwrap().seq, 1);
    assert_eq!(topic.stats().repaired, 1);
}

/// A live publisher waiting for room does not hold up the repair of a dead one's sequence. The
/// dead publisher's message 0 keeps the subscriber's cursor at 0, so the live one fills the ring
/// (1 to 3) and waits to publish 4; the subscriber must still close 0 and go on. (It did not: the
/// waiting publisher's record said "claiming", which a repairer takes as "may hold any
/// sequence", for as long as it waited.)
#[test]
fn a_publisher_waiting_for_room_does_not_block_the_repair_of_a_dead_one() {
    let name = BusName::new("ll-deadpub-full");
    let (_bus, topic, mut sub) = after_a_dead_publisher(&name);
    let writer = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            let mut p = topic.publisher_with(&quick(T.as_millis() as u64)).unwrap();
            (1..=4u8).map(|i| p.publish(&[i; 16])).collect::<Vec<_>>()
        })
    };
    // Until the writer waits for room (it publishes 1 to 3, then 4 finds the ring full).
    let deadline = std::time::Instant::now() + T;
    while topic.stats().backpressure == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never filled the ring"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut buf = [0u8; 16];
    // Ten seconds against a liveness window of 20 ms: the repair comes within two windows.
    let patience = Duration::from_secs(10);
    assert_eq!(
        sub.recv_timeout(&mut buf, patience),
        Err(RecvError::Lost {
            first_seq: 0,
            count: 1
        })
    );
    for seq in 1..=4 {
        assert_eq!(sub.recv_timeout(&mut buf, patience).unwrap().seq, seq);
        assert_eq!(buf, [seq as u8; 16]);
    }
    let published = writer.join().unwrap();
    assert_eq!(published, [Ok(1), Ok(2), Ok(3), Ok(4)]);
    assert_eq!(topic.stats().repaired, 1);
}

/// A lossless subscriber that starts at the oldest message still in the ring registers after
/// publishers may have cached how far they can go: messages before its registration are not
/// held for it. They are delivered if still intact, and a borrowed one is a copy, which a
/// publisher overwriting its slot cannot change while the sample lives.
#[test]
fn an_oldest_start_on_a_lossless_topic_lends_copies_of_the_older_messages() {
    let name = BusName::new("oldest-lossless");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &lossless(4, 8)).unwrap();
    let mut publisher = topic.publisher().unwrap();
    for i in 0..6u8 {
        publisher.publish(&[i; 8]).unwrap(); // no subscriber: nothing holds the ring
    }
    let cfg = SubscriberConfig {
        start: shmbus::StartAt::Oldest,
        ..Default::default()
    };
    let mut sub = topic.subscriber_with(&cfg).unwrap();
    {
        let sample = sub.try_recv_borrow().unwrap();
        assert_eq!((sample.info().seq, &sample[..]), (2, &[2u8; 8][..]));
        // The publisher's room was computed before the subscriber came: it may take slot 2
        // again (sequence 6) now. The sample does not change under its holder.
        let overwrote = publisher.try_publish(&[66; 8]).is_ok();
        assert_eq!(
            &sample[..],
            &[2u8; 8][..],
            "overwrote the slot: {overwrote}"
        );
    }
    // What follows is delivered intact or reported lost, never torn; from the registration on
    // (sequence 6), nothing is lost.
    let mut seen = Vec::new();
    loop {
        match sub.try_recv_borrow() {
            Ok(s) => {
                let seq = s.info().seq;
                let want = if seq == 6 { 66 } else { seq as u8 };
                assert_eq!(&s[..], &[want; 8][..], "sequence {seq}");
                seen.push(seq);
            }
            Err(RecvError::Lost { first_seq, count }) => {
                assert!(first_seq + count <= 6, "lost {first_seq}+{count}");
            }
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen.last(), Some(&6), "{seen:?}");
}
