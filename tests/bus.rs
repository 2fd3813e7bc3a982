//! Behaviour of one process (and its threads) through the public API.

mod common;

use std::time::{Duration, Instant};

use common::{BusName, per_profile};
use shmbus::{
    Bus, BusConfig, BusError, Delivery, PublishError, Publisher, PublisherConfig, RecvError,
    StartAt, SubscriberConfig, TopicConfig, TopicError, WaitStrategy,
};

const T: Duration = Duration::from_secs(5);

/// A publisher configuration that stamps every message.
fn stamping() -> PublisherConfig {
    PublisherConfig {
        timestamps: true,
        ..Default::default()
    }
}

fn small_topic(slots: u32, payload: u32) -> TopicConfig {
    TopicConfig {
        slots,
        payload_size: payload,
        ..Default::default()
    }
}

#[test]
fn messages_arrive_in_order_with_metadata() {
    let name = BusName::new("order");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let mut sub = bus.subscriber("a/b").unwrap();
    let mut publisher = bus
        .topic("a/b")
        .unwrap()
        .publisher_with(&stamping())
        .unwrap();
    let before = shmbus::monotonic_ns();
    for i in 0..100u32 {
        assert_eq!(publisher.publish(&i.to_le_bytes()).unwrap(), u64::from(i));
    }
    let mut buf = [0u8; 256];
    let mut last_ts = before;
    for i in 0..100u32 {
        let info = sub.try_recv(&mut buf).unwrap();
        assert_eq!(info.seq, u64::from(i));
        assert_eq!(info.len, 4);
        assert_eq!(&buf[..4], &i.to_le_bytes());
        assert_eq!(info.publisher_id, publisher.id());
        assert!(
            info.timestamp_ns >= last_ts,
            "timestamps follow the total order"
        );
        last_ts = info.timestamp_ns;
    }
    assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Empty));
    assert_eq!(sub.counts(), (100, 0));
    let stats = bus.topic("a/b").unwrap().stats();
    assert_eq!(
        (stats.published, stats.next_seq, stats.sleepers),
        (100, 100, 0)
    );
    assert_eq!(
        stats.wakes, 0,
        "with no subscriber asleep, publishing issues no FUTEX_WAKE"
    );
    assert_eq!(stats.publishers.len(), 1);
    assert_eq!(stats.publishers[0].id, publisher.id());
    assert_eq!(stats.subscribers.len(), 1);
}

#[test]
fn timestamps_are_opt_in() {
    let name = BusName::new("stamp");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic("t").unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut buf = [0u8; 256];

    assert!(!PublisherConfig::default().timestamps, "off by default");
    let mut plain = topic.publisher().unwrap();
    plain.publish(b"plain").unwrap();
    plain.loan(4).unwrap().publish();
    for _ in 0..2 {
        let info = sub.recv_timeout(&mut buf, T).unwrap();
        assert_eq!(info.publisher_id, plain.id());
        assert_eq!(info.timestamp_ns, 0, "a default publisher does not stamp");
    }

    let mut stamped = topic.publisher_with(&stamping()).unwrap();
    let before = shmbus::monotonic_ns();
    stamped.publish(b"stamped").unwrap();
    stamped.loan(4).unwrap().publish();
    let after = shmbus::monotonic_ns();
    for _ in 0..2 {
        let info = sub.recv_timeout(&mut buf, T).unwrap();
        assert_eq!(info.publisher_id, stamped.id());
        assert!(
            (before..=after).contains(&info.timestamp_ns),
            "{} not in {before}..={after}",
            info.timestamp_ns
        );
    }

    // An unstamped message stores 0 over the older stamp of a reused slot.
    let topic = bus.topic_with("small", &small_topic(2, 16)).unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut stamped = topic.publisher_with(&stamping()).unwrap();
    let mut plain = topic.publisher().unwrap();
    for _ in 0..2 {
        stamped.publish(b"s").unwrap();
        assert_ne!(sub.try_recv(&mut buf).unwrap().timestamp_ns, 0);
    }
    for _ in 0..2 {
        plain.publish(b"p").unwrap();
        assert_eq!(sub.try_recv(&mut buf).unwrap().timestamp_ns, 0);
    }
}

#[test]
fn loans_publish_in_place_and_dropped_loans_are_skipped_without_loss() {
    let name = BusName::new("loan");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let mut sub = bus.subscriber("t").unwrap();
    let mut publisher = bus.publisher("t").unwrap();
    let mut loan = publisher.loan(5).unwrap();
    assert_eq!(loan.seq(), 0);
    loan.as_mut_slice().copy_from_slice(b"first");
    assert_eq!(loan.publish(), 0);
    let dropped = publisher.loan(3).unwrap();
    assert_eq!(dropped.seq(), 1);
    drop(dropped);
    let mut loan = publisher.loan(8).unwrap();
    *loan.as_mut_value::<u64>().unwrap() = 0xdead_beef;
    loan.publish();
    let mut buf = [0u8; 256];
    let a = sub.try_recv(&mut buf).unwrap();
    assert_eq!((&buf[..a.len], a.seq), (&b"first"[..], 0));
    let b = sub.try_recv(&mut buf).unwrap();
    assert_eq!(b.seq, 2, "the aborted sequence 1 is skipped");
    assert_eq!(
        u64::from_ne_bytes(buf[..8].try_into().unwrap()),
        0xdead_beef
    );
    assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Empty));
    assert_eq!(
        sub.counts(),
        (2, 0),
        "an aborted loan is not a lost message"
    );
    let stats = bus.topic("t").unwrap().stats();
    assert_eq!((stats.published, stats.aborted, stats.next_seq), (2, 1, 3));
}

#[test]
fn too_large_messages_are_refused_never_truncated() {
    let name = BusName::new("large");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &small_topic(4, 16)).unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut publisher = topic.publisher().unwrap();
    let err = publisher.publish(&[0u8; 17]).unwrap_err();
    assert_eq!(
        err,
        PublishError::TooLarge {
            len: 17,
            capacity: 16
        }
    );
    assert!(matches!(
        publisher.loan(17),
        Err(PublishError::TooLarge { .. })
    ));
    assert!(matches!(
        publisher.loan(16).unwrap().as_mut_value::<[u64; 3]>(),
        Err(PublishError::BadType { size: 24, .. })
    ));
    publisher.publish(&[7u8; 16]).unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        sub.try_recv(&mut small),
        Err(RecvError::BufferTooSmall { needed: 16 })
    );
    let mut buf = [0u8; 16];
    let info = sub.try_recv(&mut buf).unwrap();
    assert_eq!(
        (info.seq, info.len),
        (1, 16),
        "seq 0 was the aborted 16-byte loan"
    );
}

#[test]
fn a_slow_subscriber_learns_exactly_what_it_lost() {
    let name = BusName::new("lost");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &small_topic(8, 8)).unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut publisher = topic.publisher().unwrap();
    for i in 0..30u64 {
        publisher.publish(&i.to_le_bytes()).unwrap();
    }
    let mut buf = [0u8; 8];
    assert_eq!(
        sub.try_recv(&mut buf),
        Err(RecvError::Lost {
            first_seq: 0,
            count: 22
        })
    );
    for i in 22..30u64 {
        let info = sub.try_recv(&mut buf).unwrap();
        assert_eq!((info.seq, u64::from_le_bytes(buf)), (i, i));
    }
    assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Empty));
    assert_eq!(sub.counts(), (8, 22));
    let stats = topic.stats();
    assert_eq!(stats.subscribers.len(), 1);
    assert_eq!(
        (stats.subscribers[0].delivered, stats.subscribers[0].lost),
        (8, 22)
    );
    assert_eq!(stats.subscribers[0].lag, 0);
}

#[test]
fn start_at_oldest_reads_what_the_ring_still_holds() {
    let name = BusName::new("oldest");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &small_topic(4, 8)).unwrap();
    let mut publisher = topic.publisher().unwrap();
    for i in 0..6u64 {
        publisher.publish(&i.to_le_bytes()).unwrap();
    }
    let cfg = SubscriberConfig {
        start: StartAt::Oldest,
        ..Default::default()
    };
    let mut sub = topic.subscriber_with(&cfg).unwrap();
    let mut seqs = Vec::new();
    while let Ok(info) = sub.try_recv_with(|info, bytes| (info.seq, bytes.to_vec())) {
        assert_eq!(info.1, info.0.to_le_bytes());
        seqs.push(info.0);
    }
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    let mut fresh = topic.subscriber().unwrap();
    assert_eq!(
        fresh.next_seq(),
        6,
        "a default subscriber starts at the next message"
    );
    assert_eq!(fresh.try_recv(&mut [0u8; 8]), Err(RecvError::Empty));
}

#[test]
fn recv_timeout_times_out_with_every_wait_strategy() {
    let name = BusName::new("timeout");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    for wait in [
        WaitStrategy::Spin,
        WaitStrategy::Park,
        WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(200),
        },
    ] {
        let topic = bus.topic("t").unwrap();
        let mut sub = topic
            .subscriber_with(&SubscriberConfig {
                wait,
                ..Default::default()
            })
            .unwrap();
        let start = std::time::Instant::now();
        let r = sub.recv_timeout(&mut [0u8; 256], Duration::from_millis(20));
        assert_eq!(r, Err(RecvError::Timeout));
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "never returns early"
        );
    }
}

#[test]
fn recv_timeout_takes_any_duration() {
    let name = BusName::new("timeout-limits");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic("t").unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut buf = [0u8; 256];
    assert_eq!(
        sub.recv_timeout(&mut buf, Duration::ZERO),
        Err(RecvError::Timeout),
        "a zero timeout on an empty topic times out at once"
    );
    let mut publisher = topic.publisher().unwrap();
    publisher.publish(b"ready").unwrap();
    // A deadline past what `Instant` can hold must not panic; the message is already there.
    let info = sub.recv_timeout(&mut buf, Duration::MAX).unwrap();
    assert_eq!((info.seq, &buf[..info.len]), (0, &b"ready"[..]));
}

#[test]
fn typed_values_round_trip() {
    let name = BusName::new("typed");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let mut sub = bus.subscriber("t").unwrap();
    let mut publisher = bus.publisher("t").unwrap();
    publisher.publish_value(&[1u32, 2, 3]).unwrap();
    let (info, v) = sub.recv_value_timeout::<[u32; 3]>(T).unwrap();
    assert_eq!((info.len, v), (12, [1, 2, 3]));
    publisher.publish(b"odd").unwrap();
    assert_eq!(
        sub.recv_value_timeout::<u64>(T),
        Err(RecvError::BufferTooSmall { needed: 3 })
    );
}

#[test]
fn topic_geometry_conflicts_are_errors() {
    let name = BusName::new("geom");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    bus.topic_with("t", &small_topic(16, 64)).unwrap();
    let err = bus.topic_with("t", &small_topic(32, 64)).unwrap_err();
    assert!(matches!(
        err,
        TopicError::GeometryMismatch {
            existing: (16, 64, 16, 64),
            ..
        }
    ));
    assert!(err.to_string().contains("slots=16"));
    // `topic` opens whatever exists; payload sizes are stored rounded to 8 bytes.
    assert_eq!(bus.topic("t").unwrap().config().slots, 16);
    bus.topic_with("u", &small_topic(16, 60)).unwrap();
    assert_eq!(
        bus.topic_with("u", &small_topic(16, 60))
            .unwrap()
            .config()
            .payload_size,
        64
    );
    assert!(matches!(
        bus.open_topic("nope"),
        Err(TopicError::NotFound(_))
    ));
    for bad in [small_topic(3, 8), small_topic(0, 8), small_topic(4, 0)] {
        assert!(matches!(
            bus.topic_with("v", &bad),
            Err(TopicError::InvalidConfig(_))
        ));
    }
}

#[test]
fn names_are_validated() {
    let name = BusName::new("names");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let long = "x".repeat(65);
    for bad in ["", "a b", "ä", "nul\0", long.as_str()] {
        assert!(
            matches!(bus.topic(bad), Err(TopicError::InvalidName(_))),
            "{bad:?}"
        );
    }
    bus.topic(&"y".repeat(64)).unwrap();
    bus.topic("Sensors/imu-0_raw.v2").unwrap();
    for bad in ["", "a/b", ".hidden", "sp ace"] {
        assert!(matches!(
            Bus::create(bad, &BusConfig::default()),
            Err(BusError::InvalidName(_))
        ));
    }
}

#[test]
fn table_arena_and_endpoint_limits_are_clear_errors() {
    let name = BusName::new("full");
    let cfg = BusConfig {
        size: 256 << 10,
        max_topics: 2,
        ..Default::default()
    };
    let bus = Bus::create(&name, &cfg).unwrap();
    bus.topic_with("a", &small_topic(2, 8)).unwrap();
    let big = small_topic(1 << 16, 1024);
    assert!(matches!(
        bus.topic_with("b", &big),
        Err(TopicError::ArenaFull { .. })
    ));
    let tiny = TopicConfig {
        max_publishers: 1,
        max_subscribers: 1,
        ..small_topic(2, 8)
    };
    let topic = bus.topic_with("b", &tiny).unwrap();
    assert_eq!(
        bus.topic("c").unwrap_err(),
        TopicError::TableFull { max_topics: 2 }
    );
    let p = topic.publisher().unwrap();
    assert_eq!(
        topic.publisher().unwrap_err(),
        TopicError::PublisherTableFull
    );
    drop(p);
    let _p = topic
        .publisher()
        .expect("a dropped publisher frees its entry");
    let s = topic.subscriber().unwrap();
    assert_eq!(
        topic.subscriber().unwrap_err(),
        TopicError::SubscriberTableFull
    );
    drop(s);
    topic
        .subscriber()
        .expect("a dropped subscriber frees its entry");
}

#[test]
fn create_open_and_remove_report_clear_errors() {
    let name = BusName::new("lifecycle");
    assert!(matches!(Bus::open(&name), Err(BusError::NotFound(_))));
    assert!(matches!(Bus::remove(&name), Err(BusError::NotFound(_))));
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    assert!(matches!(
        Bus::create(&name, &BusConfig::default()),
        Err(BusError::AlreadyExists(_))
    ));
    let info = bus.info();
    assert_eq!(
        (info.size, info.mode, info.max_topics),
        (16 << 20, 0o600, 64)
    );
    assert!(info.creator_alive);
    assert_eq!(info.creator_pid, std::process::id());
    assert!(Bus::list().unwrap().contains(&name.0));
    let meta = std::fs::metadata(format!("/dev/shm/shmbus.{}", &*name)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let other = Bus::open(&name).unwrap();
    assert_eq!(other.info().created_at_unix_ns, info.created_at_unix_ns);
    Bus::remove(&name).unwrap();
    assert!(matches!(Bus::open(&name), Err(BusError::NotFound(_))));
    // Handles opened before the removal keep working.
    let mut sub = bus.subscriber("t").unwrap();
    other
        .publisher("t")
        .unwrap()
        .publish(b"still here")
        .unwrap();
    assert_eq!(sub.recv_timeout(&mut [0u8; 256], T).unwrap().len, 10);
    let bad = BusConfig {
        size: 1024,
        ..Default::default()
    };
    assert!(matches!(
        Bus::create(&name, &bad),
        Err(BusError::InvalidConfig(_))
    ));
    let bad = BusConfig {
        max_topics: 0,
        ..Default::default()
    };
    assert!(matches!(
        Bus::create(&name, &bad),
        Err(BusError::InvalidConfig(_))
    ));
}

/// Overwrites `len` bytes at `offset` of a bus's shared-memory object.
fn poke(name: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/shmbus.{name}"))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn damaged_or_foreign_headers_are_refused_on_open() {
    let fast = BusConfig {
        open_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let cases: [(u64, &[u8], &str); 5] = [
        (0, b"NOTSHMBU", "magic"),
        (8, &99u32.to_le_bytes(), "version"),
        (16, &1u64.to_le_bytes(), "fingerprint"),
        (24, &4096u64.to_le_bytes(), "total_size"),
        (56, &5000u32.to_le_bytes(), "max_topics"),
    ];
    for (offset, bytes, what) in cases {
        let name = BusName::new("corrupt");
        drop(Bus::create(&name, &BusConfig::default()).unwrap());
        poke(&name, offset, bytes);
        let err = Bus::open_with(&name, &fast).unwrap_err();
        match (what, &err) {
            (
                "version",
                BusError::VersionMismatch {
                    found: 99,
                    expected,
                },
            ) => {
                assert_eq!(*expected, shmbus::LAYOUT_VERSION);
            }
            ("fingerprint", BusError::LayoutMismatch { .. }) => {}
            ("magic", BusError::Corrupt { field: "magic", .. })
            | (
                "total_size",
                BusError::Corrupt {
                    field: "total_size",
                    ..
                },
            )
            | (
                "max_topics",
                BusError::Corrupt {
                    field: "max_topics",
                    ..
                },
            ) => {}
            _ => panic!("{what}: unexpected {err:?}"),
        }
        assert!(!err.to_string().is_empty());
    }
    // Not ready and not ours: refused at once, without waiting for the timeout.
    let name = BusName::new("foreign");
    drop(Bus::create(&name, &BusConfig::default()).unwrap());
    poke(&name, 0, b"FOREIGN!");
    poke(&name, 12, &0u32.to_le_bytes());
    let slow = BusConfig {
        open_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    assert!(matches!(
        Bus::open_with(&name, &slow),
        Err(BusError::Corrupt { field: "magic", .. })
    ));
    // A segment whose creator never marked it ready: NotInitialized while the creator (us)
    // lives.
    let name = BusName::new("unready");
    drop(Bus::create(&name, &BusConfig::default()).unwrap());
    poke(&name, 12, &0u32.to_le_bytes());
    assert!(matches!(
        Bus::open_with(&name, &fast),
        Err(BusError::NotInitialized)
    ));
}

#[test]
fn a_corrupt_topic_entry_is_an_error_not_a_crash() {
    let name = BusName::new("badtopic");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    bus.topic_with("t", &small_topic(8, 8)).unwrap();
    // Topic entry 0 starts at 256; its ring_offset is at +96. Point it outside the arena.
    poke(&name, 256 + 96, &u64::MAX.to_le_bytes());
    let again = Bus::open(&name).unwrap();
    assert!(matches!(again.open_topic("t"), Err(TopicError::Corrupt(_))));
    // slot_count (+72) that is not a power of two.
    poke(&name, 256 + 72, &3u32.to_le_bytes());
    assert!(matches!(again.open_topic("t"), Err(TopicError::Corrupt(_))));
}

/// Reads the `u64` at `offset` of a bus's shared-memory object.
fn peek_u64(name: &str, offset: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/dev/shm/shmbus.{name}")).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, offset).unwrap();
    u64::from_le_bytes(b)
}

/// Offset of topic entry 0's ring block (its `ring_offset`, at +96 of the entry at 256).
fn first_ring(name: &str) -> u64 {
    peek_u64(name, 256 + 96)
}

/// The owner word of process `pid`, as the library records it: pid << 32 | start time (field 22
/// of /proc/PID/stat) & 0xffff_ffff.
fn owner_word_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let start: u64 = rest
        .split_whitespace()
        .nth(22 - 3)
        .unwrap()
        .parse()
        .unwrap();
    (u64::from(pid) << 32) | (start & 0xffff_ffff)
}

/// This process's owner word.
fn my_owner_word() -> u64 {
    owner_word_of(std::process::id())
}

/// The topic-creation lock names its holder by pid and start time, so a holder that died is
/// replaced even when its pid now belongs to a live process, this one included; a live holder
/// still makes creation wait.
#[test]
fn a_dead_lock_holder_whose_pid_was_reused_does_not_block_topic_creation() {
    const LOCK: u64 = 104; // SegmentHeader::topic_lock
    let name = BusName::new("lockreuse");
    let cfg = BusConfig {
        open_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let bus = Bus::create(&name, &cfg).unwrap();
    // Our own pid with another start time: the process that had our pid before us.
    poke(&name, LOCK, &(my_owner_word() + 1).to_le_bytes());
    bus.topic("mine").unwrap();
    assert_eq!(peek_u64(&name, LOCK), 0, "released after use");
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let live = owner_word_of(child.id());
    // A live process's pid with another start time: its pid's previous owner, dead.
    poke(&name, LOCK, &(live ^ 1).to_le_bytes());
    let reused = bus.topic("reused");
    // The live process itself; and a live process that could not read its start time (0):
    // only its pid is compared, so it is not taken for dead.
    poke(&name, LOCK, &live.to_le_bytes());
    let held = bus.topic("held");
    poke(&name, LOCK, &(live & !0xffff_ffff).to_le_bytes());
    let unknown = bus.topic("held");
    child.kill().unwrap();
    child.wait().unwrap();
    reused.unwrap();
    assert!(matches!(held, Err(TopicError::LockTimeout)), "{held:?}");
    assert!(
        matches!(unknown, Err(TopicError::LockTimeout)),
        "{unknown:?}"
    );
    // Now that it is dead, its lock is taken over.
    bus.topic("held").unwrap();
}

#[test]
fn a_segment_that_is_not_whole_pages_is_refused() {
    let name = BusName::new("pages");
    drop(Bus::create(&name, &BusConfig::default()).unwrap());
    let path = format!("/dev/shm/shmbus.{}", name.0);
    let len = std::fs::metadata(&path).unwrap().len();
    // Eight bytes more, and a header that agrees on every size: the arena would then end past
    // the object (sizes are rounded up to whole pages).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len + 8)
        .unwrap();
    poke(&name, 24, &(len + 8).to_le_bytes()); // total_size
    let arena_offset = peek_u64(&name, 72);
    poke(&name, 80, &(len + 4096 - arena_offset).to_le_bytes()); // arena_size, as rounded up
    let fast = BusConfig {
        open_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    match Bus::open_with(&name, &fast) {
        Err(BusError::Corrupt {
            field: "total_size",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_counters_and_claim_word_give_wrong_numbers_not_panics() {
    let name = BusName::new("counters");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let cfg = TopicConfig {
        max_publishers: 1,
        ..small_topic(8, 8)
    };
    let topic = bus.topic_with("t", &cfg).unwrap();
    let mut publisher = topic.publisher().unwrap();
    publisher.publish(b"a").unwrap();
    let ring = first_ring(&name);
    // RingHeader: retired_published at +144, retired_aborted at +152.
    poke(&name, ring + 144, &u64::MAX.to_le_bytes());
    poke(&name, ring + 152, &u64::MAX.to_le_bytes());
    let stats = topic.stats();
    assert_eq!(stats.published, 0, "u64::MAX + 1 published, wrapped"); // no overflow panic
    assert_eq!(stats.aborted, u64::MAX);
    // The claim word (+0) at its largest: the only publisher's claim wraps instead of
    // overflowing.
    poke(&name, ring, &u64::MAX.to_le_bytes());
    publisher.publish(b"b").unwrap();
    assert!(!bus.stats().is_empty());
}

/// Publishes `msg` in a thread under a 30 s watchdog (what these tests guard against is a
/// publish that never returns); gives the publisher back with the result and the time it took.
fn publish_under_watchdog(
    mut publisher: Publisher,
    msg: &'static [u8],
) -> (Publisher, Result<u64, PublishError>, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = publisher.publish(msg);
        let _ = tx.send((publisher, result, started.elapsed()));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("publish still waiting after 30 s")
}

/// A topic of 2 slots of 8 bytes for 2 publishers and 2 subscribers, on a bus of its own: a
/// publisher is a whole ring behind after two messages. (The slot offsets poked below follow
/// from this geometry.)
fn two_publisher_topic(tag: &str) -> (BusName, Bus, shmbus::Topic) {
    let name = BusName::new(tag);
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let cfg = TopicConfig {
        slots: 2,
        payload_size: 8,
        max_publishers: 2,
        max_subscribers: 2,
        ..Default::default()
    };
    let topic = bus.topic_with("t", &cfg).unwrap();
    (name, bus, topic)
}

/// What a hostile writer can leave in a slot is reported lost, never read past or waited on: a
/// stamp that names no sequence (1 to 3, below the first a writer can store) or a committed
/// message longer than the slot. Both receive paths, each of which decides the common cases
/// inline: the copy (lossy topic, into a buffer larger than the slot, so that the inline length
/// check is the one that must catch it) and the borrow (lossless topic). A later message, in
/// the other slot, still arrives (a hostile stamp keeps writers out of its own slot).
#[test]
fn hostile_slot_contents_are_reported_on_both_receive_paths() {
    const COMMITTED_0: u64 = 4; // the stamp of sequence 0, committed
    let cases: [(u64, Option<u32>); 4] = [(1, None), (2, None), (3, None), (COMMITTED_0, Some(9))];
    for delivery in [Delivery::Lossy, Delivery::Lossless] {
        for (stamp, len) in cases {
            let what = format!("{delivery:?}, stamp {stamp}, length {len:?}");
            let name = BusName::new("hostile");
            let bus = Bus::create(&name, &BusConfig::default()).unwrap();
            let cfg = TopicConfig {
                delivery,
                ..small_topic(2, 8)
            };
            let topic = bus.topic_with("t", &cfg).unwrap();
            let mut sub = topic.subscriber().unwrap();
            // Ring header 384 bytes, 16 publisher and 64 subscriber records of 128, then the
            // slots; the slot header: stamp at +0, length at +8.
            let slot0 = first_ring(&name) + 384 + (16 + 64) * 128;
            if let Some(len) = len {
                poke(&name, slot0 + 8, &len.to_le_bytes());
            }
            poke(&name, slot0, &stamp.to_le_bytes());
            let lost = RecvError::Lost {
                first_seq: 0,
                count: 1,
            };
            let mut buf = [0u8; 64];
            if delivery == Delivery::Lossless {
                match sub.try_recv_borrow() {
                    Err(e) => assert_eq!(e, lost, "{what}"),
                    Ok(sample) => panic!("{what}: delivered {:?}", &*sample),
                }
            } else {
                assert_eq!(sub.try_recv(&mut buf), Err(lost), "{what}");
            }
            let mut p = topic.publisher().unwrap();
            p.publish(b"0").unwrap();
            p.publish(b"1").unwrap();
            let info = sub.try_recv(&mut buf).unwrap();
            assert_eq!((info.seq, &buf[..info.len]), (1, &b"1"[..]), "{what}");
        }
    }
}

/// On a topic with one publisher entry, `publish` takes the lean path and a loan the general
/// one; mixed on one publisher, in either order, they make one sequence, every message is
/// delivered, and both counters count.
#[test]
fn lean_publishes_and_loans_mix_on_a_single_publisher_topic() {
    let name = BusName::new("mix");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let cfg = TopicConfig {
        max_publishers: 1,
        ..small_topic(4, 16)
    };
    let topic = bus.topic_with("t", &cfg).unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut p = topic.publisher().unwrap();
    let mut buf = [0u8; 16];
    let mut expect = Vec::new();
    // Three laps of the 4-slot ring, so that each path takes slots the other one used.
    for lap in 0..3u8 {
        let seq = p.publish(&[lap, 0]).unwrap();
        expect.push((seq, vec![lap, 0]));
        let mut loan = p.loan(2).unwrap();
        loan.as_mut_slice().copy_from_slice(&[lap, 1]);
        expect.push((loan.publish(), vec![lap, 1]));
        drop(p.loan(2).unwrap()); // aborted: its sequence is skipped by subscribers
        let seq = p.publish(&[lap, 3]).unwrap();
        expect.push((seq, vec![lap, 3]));
        for (seq, msg) in expect.drain(..) {
            let info = sub.try_recv(&mut buf).unwrap();
            assert_eq!((info.seq, &buf[..info.len]), (seq, &msg[..]));
        }
        assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Empty));
    }
    let stats = topic.stats();
    assert_eq!(
        (stats.published, stats.aborted, stats.repaired),
        (9, 3, 0),
        "{stats:?}"
    );
}

/// A publisher that gives up on a held slot soon.
const QUICK: PublisherConfig = PublisherConfig {
    timeout: Duration::from_millis(300),
    liveness_window: Duration::from_millis(100),
    timestamps: false,
};

/// A slot held by a writer a ring behind that is alive and never finishes: publishing gives
/// up after the publisher's timeout instead of waiting for ever. A record that names a process
/// which had our pid before us (another start time) is dead: its slot is repaired.
#[test]
fn a_slot_held_for_ever_times_out_and_a_reused_pid_is_dead() {
    let (name, _bus, topic) = two_publisher_topic("held");
    let mut publisher = topic.publisher_with(&QUICK).unwrap();
    assert_eq!(publisher.publish(b"0").unwrap(), 0);
    assert_eq!(publisher.publish(b"1").unwrap(), 1);
    let ring = first_ring(&name);
    // Ring header 384 bytes, 2 publisher and 2 subscriber records of 128, then 64-byte slots.
    let slot = |i: u64| ring + 384 + 4 * 128 + 64 * i;
    let other = ring + 384 + 128; // publisher record 1: owner +0, inflight +16
    let writing = |seq: u64| ((seq + 1) << 2) | 1;
    // Slot 0 shows sequence 0 being written, and record 1, owned by this very process, holds it.
    poke(&name, slot(0), &writing(0).to_le_bytes());
    poke(&name, other + 16, &0u64.to_le_bytes());
    poke(&name, other, &my_owner_word().to_le_bytes());
    let (mut publisher, result, waited) = publish_under_watchdog(publisher, b"2");
    assert_eq!(result, Err(PublishError::Timeout));
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // The same record, but with another start time: a process that had our pid before us.
    // Publishing (sequence 3 goes to slot 1; 4 to slot 0 again) repairs the slot and goes on.
    poke(&name, other, &(my_owner_word() ^ 1).to_le_bytes());
    assert_eq!(publisher.publish(b"3").unwrap(), 3);
    assert_eq!(publisher.publish(b"4").unwrap(), 4);
    assert!(topic.stats().repaired >= 1);
}

/// A publisher that gave up on a slot held by a live loan leaves its sequence to be reported
/// lost, but the loan's slot is not closed under it: the loan's bytes are delivered as the
/// loan's message and never as anyone else's.
#[test]
fn a_sequence_given_up_on_a_live_loan_is_lost_without_touching_the_loan() {
    let (_name, _bus, topic) = two_publisher_topic("loanheld");
    let mut a = topic.publisher().unwrap();
    let mut b = topic.publisher_with(&QUICK).unwrap();
    let mut loan = a.loan(8).unwrap(); // sequence 0, slot 0, held
    loan.as_mut_slice().copy_from_slice(b"AAAAAAAA");
    assert_eq!(b.publish(b"1").unwrap(), 1);
    let mut sub = topic.subscriber().unwrap(); // starts at 2
    // Sequence 2 needs slot 0: B waits for the loan, then gives up.
    let (mut b, result, _) = publish_under_watchdog(b, b"2");
    assert_eq!(result, Err(PublishError::Timeout));
    // While the loan lives, sequence 2 is neither delivered nor repaired over the loan.
    let mut buf = [0u8; 8];
    assert_eq!(
        sub.recv_timeout(&mut buf, Duration::from_millis(400)),
        Err(RecvError::Timeout)
    );
    assert_eq!(loan.publish(), 0);
    // Then the slot is closed for 2 (reported lost), and the topic goes on.
    assert_eq!(
        sub.recv_timeout(&mut buf, T),
        Err(RecvError::Lost {
            first_seq: 2,
            count: 1
        })
    );
    assert_eq!(b.publish(b"3").unwrap(), 3);
    assert_eq!(b.publish(b"4").unwrap(), 4); // slot 0 again
    for (seq, bytes) in [(3, b"3"), (4, b"4")] {
        let info = sub.recv_timeout(&mut buf, T).unwrap();
        assert_eq!((info.seq, &buf[..info.len]), (seq, &bytes[..]));
    }
}

#[test]
fn threads_racing_to_create_get_one_bus_and_one_topic() {
    let name = BusName::new("race");
    let buses: Vec<Bus> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let bus = Bus::open_or_create(&name, &BusConfig::default()).unwrap();
                    bus.topic("shared").unwrap();
                    bus
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = buses[0].info().created_at_unix_ns;
    assert!(buses.iter().all(|b| b.info().created_at_unix_ns == created));
    assert_eq!(buses[0].topics().len(), 1);
    assert_eq!(buses[0].info().topics, 1);
}

#[test]
fn threads_share_a_bus_and_see_one_total_order() {
    const N: u64 = per_profile(2_000, 50_000);
    let name = BusName::new("threads");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let topic = bus.topic_with("t", &small_topic(1 << 17, 16)).unwrap();
    let mut subs: Vec<_> = (0..2).map(|_| topic.subscriber().unwrap()).collect();
    std::thread::scope(|s| {
        for tag in 0..2u64 {
            let topic = topic.clone();
            s.spawn(move || {
                let mut p = topic.publisher().unwrap();
                for i in 0..N {
                    p.publish(&[tag.to_le_bytes(), i.to_le_bytes()].concat())
                        .unwrap();
                }
            });
        }
    });
    let mut orders = Vec::new();
    for sub in &mut subs {
        let mut order = Vec::new();
        let mut next = [0u64; 2];
        while let Ok((tag, i)) = sub.try_recv_with(|_, b| {
            (
                u64::from_le_bytes(b[..8].try_into().unwrap()),
                u64::from_le_bytes(b[8..16].try_into().unwrap()),
            )
        }) {
            assert_eq!(
                i, next[tag as usize],
                "each publisher's messages stay in order"
            );
            next[tag as usize] += 1;
            order.push((tag, i));
        }
        assert_eq!(next, [N, N]);
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1]);
}

/// A topic with one publisher entry claims without a locked instruction (a load and a store, not
/// an RMW), while subscribers register with an RMW on the same word. Subscribers created while
/// it publishes start where it has not yet published past and read on in order, and every
/// sequence number is claimed exactly once (each message carries the count of messages before
/// it, which must equal its sequence number).
#[test]
fn subscribers_registering_during_a_single_publisher_stream_start_cleanly() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let name = BusName::new("excl");
    let bus = Bus::create(&name, &BusConfig::default()).unwrap();
    let cfg = TopicConfig {
        max_publishers: 1,
        ..small_topic(1 << 12, 16)
    };
    let topic = bus.topic_with("t", &cfg).unwrap();
    let n: u64 = per_profile(20_000, 200_000);
    // The publisher goes on past `n` until this many subscribers have registered while it ran,
    // so that the race is tested however the two threads are scheduled.
    const REGISTERED: u32 = 3;
    let registered = AtomicU32::new(0);
    let done = AtomicBool::new(false);
    let mut subscribers = 0u32;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut p = topic.publisher().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut i = 0u64;
            while i < n || registered.load(Ordering::Acquire) < REGISTERED {
                assert!(
                    std::time::Instant::now() < deadline,
                    "fewer than {REGISTERED} subscribers registered in 60 s"
                );
                assert_eq!(p.publish(&i.to_le_bytes()).unwrap(), i);
                if i.is_multiple_of(64) {
                    std::thread::yield_now(); // room for the other thread on a loaded machine
                }
                i += 1;
            }
            done.store(true, Ordering::Release);
        });
        let mut buf = [0u8; 16];
        // One bound for the whole run: a receive that times out because the publisher was
        // stalled (a loaded machine, a sanitizer) looks again, until the publisher is done.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done.load(Ordering::Acquire) {
            assert!(
                std::time::Instant::now() < deadline,
                "publisher not done after 60 s"
            );
            let mut sub = topic.subscriber().unwrap();
            subscribers += 1;
            registered.fetch_add(1, Ordering::Release);
            let start = sub.next_seq();
            let mut last: Option<u64> = None;
            for _ in 0..20 {
                match sub.recv_timeout(&mut buf, Duration::from_millis(200)) {
                    Ok(info) => {
                        let carried = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        assert_eq!(carried, info.seq, "a sequence claimed twice or skipped");
                        assert!(info.seq >= start, "seq {} before start {start}", info.seq);
                        if let Some(prev) = last {
                            assert!(info.seq > prev, "{} after {prev}", info.seq);
                        }
                        last = Some(info.seq);
                    }
                    Err(RecvError::Lost { .. }) => {} // overrun by the fast publisher: lossy
                    Err(RecvError::Timeout) if done.load(Ordering::Acquire) => break,
                    Err(RecvError::Timeout) => {} // the publisher stalled: look again
                    Err(e) => panic!("subscriber {subscribers}: {e}"),
                }
            }
        }
    });
    assert!(subscribers >= REGISTERED);
}

/// Timeouts too long to add to the clock mean no limit, not a panic.
#[test]
fn huge_timeouts_mean_no_limit() {
    let name = BusName::new("huge");
    drop(Bus::create(&name, &BusConfig::default()).unwrap());
    let forever = BusConfig {
        open_timeout: Duration::MAX,
        ..Default::default()
    };
    let bus = Bus::open_with(&name, &forever).unwrap();
    let cfg = TopicConfig {
        delivery: shmbus::Delivery::Lossless,
        ..small_topic(2, 8)
    };
    let topic = bus.topic_with("t", &cfg).unwrap(); // takes the table lock
    let mut sub = topic.subscriber().unwrap();
    let patient = PublisherConfig {
        timeout: Duration::MAX,
        liveness_window: Duration::MAX,
        ..Default::default()
    };
    let mut publisher = topic.publisher_with(&patient).unwrap();
    publisher.publish(b"0").unwrap();
    publisher.publish(b"1").unwrap();
    // The ring is full: the next publish waits for the subscriber, which reads once the
    // publish has begun waiting (as backpressure shows), under a watchdog either way.
    let reader = std::thread::spawn(move || {
        let start = Instant::now();
        while topic.stats().backpressure == 0 && start.elapsed() < T {
            std::thread::sleep(Duration::from_millis(1)); // polls a condition, does not spin
        }
        let mut buf = [0u8; 8];
        sub.recv_timeout(&mut buf, T).unwrap();
    });
    let (_, result, _) = publish_under_watchdog(publisher, b"2");
    assert_eq!(result, Ok(2));
    reader.join().unwrap();
}
