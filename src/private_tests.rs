//! The ring code on a bus in this process's memory (`Bus::private`), so that Miri can run it:
//! shared memory cannot be mapped under Miri, and these tests are what it checks of the unsafe
//! pointer code (`segment`, `ring`, `seqlock`, the subscriber's borrowed samples) and, with two
//! threads, of the atomics' orderings and the park/wake handshake. They run in every `cargo test` too; small counts keep
//! them quick under Miri's interpreter.

use std::time::Duration;

use crate::{
    Bus, BusConfig, Delivery, PublisherConfig, RecvError, StartAt, SubscriberConfig, TopicConfig,
    WaitStrategy,
};

fn bus() -> Bus {
    let cfg = BusConfig {
        size: 64 * 1024,
        max_topics: 4,
        ..Default::default()
    };
    Bus::private(&cfg).expect("a private bus")
}

fn topic_config(slots: u32, delivery: Delivery, max_publishers: u32) -> TopicConfig {
    TopicConfig {
        slots,
        payload_size: 64,
        delivery,
        max_publishers,
        ..Default::default()
    }
}

/// Copies in and out, in place (loan), every length up to the payload size (the word copies'
/// tails), on the lean path (one publisher entry) and the general one.
#[test]
fn messages_of_every_length_round_trip() {
    let bus = bus();
    for (name, max_publishers) in [("lean", 1), ("general", 4)] {
        let topic = bus
            .topic_with(name, &topic_config(8, Delivery::Lossy, max_publishers))
            .unwrap();
        let mut sub = topic.subscriber().unwrap();
        let mut publisher = topic
            .publisher_with(&PublisherConfig {
                timestamps: true,
                ..Default::default()
            })
            .unwrap();
        let mut buf = [0u8; 64];
        for len in 0..=64usize {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let seq = if len % 2 == 0 {
                publisher.publish(&msg).unwrap()
            } else {
                let mut loan = publisher.loan(len).unwrap();
                loan.as_mut_slice().copy_from_slice(&msg);
                loan.publish()
            };
            let info = sub.try_recv(&mut buf).unwrap();
            assert_eq!((info.seq, info.len), (seq, len), "{name}");
            assert_eq!(&buf[..len], &msg[..], "{name}, {len} bytes");
            assert_ne!(info.timestamp_ns, 0);
        }
        assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Empty));
        // An aborted loan is skipped, not lost.
        drop(publisher.loan(3).unwrap());
        publisher.publish(b"after").unwrap();
        assert_eq!(sub.try_recv(&mut buf).unwrap().len, 5);
        assert_eq!(sub.counts(), (66, 0), "{name}");
    }
}

/// A subscriber lapped by the publisher is told exactly what it lost, and reads on.
#[test]
fn a_lapped_subscriber_learns_what_it_lost() {
    let bus = bus();
    let topic = bus
        .topic_with("t", &topic_config(4, Delivery::Lossy, 1))
        .unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut publisher = topic.publisher().unwrap();
    for i in 0..10u8 {
        publisher.publish(&[i; 16]).unwrap();
    }
    let mut buf = [0u8; 64];
    assert_eq!(
        sub.try_recv(&mut buf),
        Err(RecvError::Lost {
            first_seq: 0,
            count: 6
        })
    );
    for i in 6..10u8 {
        let info = sub.try_recv(&mut buf).unwrap();
        assert_eq!((info.seq, &buf[..16]), (u64::from(i), &[i; 16][..]));
    }
    assert_eq!(sub.counts(), (4, 6));
    // Starting at the oldest message the ring still holds.
    let mut late = topic
        .subscriber_with(&SubscriberConfig {
            start: StartAt::Oldest,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(late.try_recv(&mut buf).unwrap().seq, 6);
}

/// Lossless: borrowed samples point into the slot and hold the publisher back until released.
#[test]
fn borrowed_samples_hold_the_ring_until_released() {
    let bus = bus();
    let topic = bus
        .topic_with("t", &topic_config(2, Delivery::Lossless, 1))
        .unwrap();
    let mut sub = topic.subscriber().unwrap();
    let mut publisher = topic.publisher().unwrap();
    publisher.publish(b"one").unwrap();
    publisher.publish(b"two").unwrap();
    assert_eq!(
        publisher.try_publish(b"three"),
        Err(crate::PublishError::WouldBlock)
    );
    {
        let sample = sub.try_recv_borrow().unwrap();
        assert_eq!(&sample[..], b"one");
        assert_eq!(sample.info().seq, 0);
    }
    publisher.try_publish(b"three").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(sub.try_recv(&mut buf).unwrap().len, 3);
    assert_eq!(&*sub.try_recv_borrow().unwrap(), b"three");
    assert_eq!(sub.try_recv(&mut buf), Err(RecvError::Empty));
}

/// Two threads, a tiny ring: every message arrives whole and in order, or is reported lost
/// (lossy), or arrives exactly once (lossless, with a blocked publisher and a spinning
/// subscriber).
#[test]
fn two_threads_pass_messages_without_tearing_or_losing_count() {
    const N: u64 = if cfg!(miri) { 40 } else { 2_000 };
    let bus = bus();
    for (name, delivery) in [("lossy", Delivery::Lossy), ("lossless", Delivery::Lossless)] {
        let topic = bus.topic_with(name, &topic_config(4, delivery, 1)).unwrap();
        let mut sub = topic
            .subscriber_with(&SubscriberConfig {
                wait: WaitStrategy::Spin,
                ..Default::default()
            })
            .unwrap();
        let publisher_topic = topic.clone();
        let writer = std::thread::spawn(move || {
            let mut p = publisher_topic.publisher().unwrap();
            for i in 0..N {
                // Every word of the message says which message it is.
                let msg: Vec<u8> = (0..5).flat_map(|_| i.to_le_bytes()).collect();
                assert_eq!(p.publish(&msg).unwrap(), i);
                std::thread::yield_now();
            }
        });
        let mut buf = [0u8; 64];
        let (mut delivered, mut lost, mut next) = (0u64, 0u64, 0u64);
        while delivered + lost < N {
            match sub.recv_timeout(&mut buf, Duration::from_secs(60)) {
                Ok(info) => {
                    assert_eq!(info.seq, next, "{name}: in order");
                    assert_eq!(info.len, 40);
                    for word in buf[..40].chunks(8) {
                        assert_eq!(word, info.seq.to_le_bytes(), "{name}: torn");
                    }
                    delivered += 1;
                    next += 1;
                }
                Err(RecvError::Lost { first_seq, count }) => {
                    assert_eq!(first_seq, next, "{name}");
                    assert_eq!(
                        delivery,
                        Delivery::Lossy,
                        "nothing is lost on a lossless topic"
                    );
                    lost += count;
                    next += count;
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
        writer.join().unwrap();
        assert_eq!(sub.counts(), (delivered, lost), "{name}");
    }
}

/// A slot whose committed length is more than the topic's payload (a hostile or buggy writer)
/// is reported lost on the copy and the borrow paths, and nothing past the slot is read: under
/// Miri an out-of-bounds read would be an error, not a wrong byte.
#[test]
fn an_impossible_length_is_lost_not_read() {
    use crate::sync::atomic::Ordering;
    let bus = bus();
    for (name, delivery) in [("lossy", Delivery::Lossy), ("lossless", Delivery::Lossless)] {
        let topic = bus.topic_with(name, &topic_config(2, delivery, 1)).unwrap();
        let mut sub = topic.subscriber().unwrap();
        let mut publisher = topic.publisher().unwrap();
        publisher.publish(b"0").unwrap();
        publisher.publish(b"1").unwrap();
        for seq in 0..2 {
            topic
                .ring
                .slot(seq)
                .len
                .store(u32::MAX - seq as u32, Ordering::Relaxed);
        }
        let lost = |seq| RecvError::Lost {
            first_seq: seq,
            count: 1,
        };
        let mut buf = [0u8; 64];
        assert_eq!(sub.try_recv(&mut buf), Err(lost(0)), "{name}");
        if delivery == Delivery::Lossless {
            assert_eq!(sub.try_recv_borrow().err(), Some(lost(1)), "{name}");
        } else {
            assert_eq!(sub.try_recv(&mut buf), Err(lost(1)), "{name}");
        }
        publisher.publish(b"2").unwrap();
        assert_eq!(sub.try_recv(&mut buf).unwrap().seq, 2, "{name}");
    }
}

/// A subscriber parked on the topic's futex is woken by each publish (under Miri: its futex
/// model, which reports a deadlock if a wake is lost).
#[test]
fn a_parked_subscriber_is_woken_by_each_publish() {
    const N: u64 = if cfg!(miri) { 5 } else { 200 };
    let bus = bus();
    let topic = bus
        .topic_with("t", &topic_config(8, Delivery::Lossy, 1))
        .unwrap();
    let mut sub = topic
        .subscriber_with(&SubscriberConfig {
            wait: WaitStrategy::Park,
            ..Default::default()
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let publisher_topic = topic.clone();
    let writer = std::thread::spawn(move || {
        let mut p = publisher_topic.publisher().unwrap();
        for i in 0..N {
            // One message per receive: the subscriber has parked (or is about to) each time.
            rx.recv().unwrap();
            p.publish(&i.to_le_bytes()).unwrap();
        }
    });
    let mut buf = [0u8; 64];
    for i in 0..N {
        tx.send(()).unwrap();
        let info = sub.recv_timeout(&mut buf, Duration::from_secs(60)).unwrap();
        assert_eq!((info.seq, &buf[..8]), (i, &i.to_le_bytes()[..]));
    }
    writer.join().unwrap();
}
