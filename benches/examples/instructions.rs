//! Instructions per operation of the hot path, counted rather than timed: timing on a noisy
//! machine moves by more than a small change to the code does, an instruction count does not.
//!
//! ```sh
//! cargo build --release -p shmbus-benches --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/instructions 100000
//! callgrind_annotate --inclusive=yes cg.out | grep 'instructions::'
//! ```
//!
//! Each operation is a function of its own that the loop calls `N` times (default 100000), so
//! its inclusive count divided by `N` is the instructions of one call: `shmbus_publish` (a 64-byte
//! `publish` by the only publisher of a lossy topic, the benchmark's case), `shmbus_receive` (a
//! `try_recv` that returns that message), `shmbus_empty` (a `try_recv` that finds nothing, one
//! turn of a busy-waiting receiver), and the same three for `hand_*`: the per-slot seqlock
//! protocol written out by hand over a 4-slot ring of the same geometry, with no claim word,
//! records, header fields, wake check or length checks. The difference is shmbus's own code.
//! The zero-copy pair on a lossless topic with one publisher entry (the benchmark's `borrow`
//! path): `shmbus_loan` (loan 64 bytes, write them in place, publish) and `shmbus_borrow` (a
//! `try_recv_borrow` that returns that message, a read of its first word, the sample dropped).
//! Without an argument the loop runs once: a quick check that the example still works.
#![allow(
    clippy::disallowed_types,
    reason = "the hand-written reference uses std atomics directly, as the benchmark's references do"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use shmbus::{Bus, BusConfig, Delivery, Publisher, Subscriber, TopicConfig};

#[inline(never)]
fn shmbus_publish(p: &mut Publisher, msg: &[u8]) {
    p.publish(msg).expect("publish");
}

#[inline(never)]
fn shmbus_receive(s: &mut Subscriber, buf: &mut [u8]) {
    s.try_recv(buf).expect("a message");
}

#[inline(never)]
fn shmbus_loan(p: &mut Publisher, msg: &[u8]) {
    let mut loan = p.loan(msg.len()).expect("loan");
    loan.as_mut_slice().copy_from_slice(msg);
    loan.publish();
}

#[inline(never)]
fn shmbus_borrow(s: &mut Subscriber) -> u8 {
    let sample = s.try_recv_borrow().expect("a message");
    sample[0]
}

#[inline(never)]
fn shmbus_empty(s: &mut Subscriber, buf: &mut [u8]) {
    assert!(s.try_recv(buf).is_err(), "no message");
}

/// The seqlock protocol alone: one writer, one reader, 4 slots of 16 words (a 32-byte header
/// whose first word is the stamp, then 64 bytes of payload), as in a shmbus slot.
struct Hand {
    words: Vec<AtomicU64>,
    sent: u64,
    next: u64,
}

const HAND_STRIDE: usize = 16;
const HAND_MASK: u64 = 3;

impl Hand {
    fn slot(&self, seq: u64) -> &[AtomicU64] {
        let base = (seq & HAND_MASK) as usize * HAND_STRIDE;
        &self.words[base..base + HAND_STRIDE]
    }
}

#[inline(never)]
fn hand_publish(h: &mut Hand, msg: &[u8]) {
    let seq = h.sent;
    let slot = h.slot(seq);
    slot[0].store(((seq + 1) << 2) | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    let (chunks, _) = msg.as_chunks::<8>();
    let (payload, _) = slot[4..].split_at(chunks.len());
    for (w, c) in payload.iter().zip(chunks) {
        w.store(u64::from_ne_bytes(*c), Ordering::Relaxed);
    }
    slot[0].store((seq + 1) << 2, Ordering::Release);
    h.sent = seq + 1;
}

/// One read attempt; inlined into the two counted functions so that each counts alone.
#[inline(always)]
fn hand_poll(h: &mut Hand, buf: &mut [u8]) -> bool {
    let seq = h.next;
    let slot = h.slot(seq);
    let want = (seq + 1) << 2;
    if slot[0].load(Ordering::Acquire) != want {
        return false;
    }
    let (chunks, _) = buf.as_chunks_mut::<8>();
    let (payload, _) = slot[4..].split_at(chunks.len());
    for (w, c) in payload.iter().zip(chunks) {
        *c = w.load(Ordering::Relaxed).to_ne_bytes();
    }
    fence(Ordering::Acquire);
    if slot[0].load(Ordering::Relaxed) != want {
        return false;
    }
    h.next = seq + 1;
    true
}

#[inline(never)]
fn hand_receive(h: &mut Hand, buf: &mut [u8]) {
    assert!(hand_poll(h, buf), "a message");
}

#[inline(never)]
fn hand_empty(h: &mut Hand, buf: &mut [u8]) {
    assert!(!hand_poll(h, buf), "no message");
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1, |a| a.parse().expect("a count of iterations"));
    let name = format!("instructions-{}", std::process::id());
    let _ = Bus::remove(&name);
    let bus = Bus::create(&name, &BusConfig::default()).expect("create a bus");
    let cfg = TopicConfig {
        slots: 4,
        payload_size: 64,
        max_publishers: 1,
        ..Default::default()
    };
    let run = || {
        let topic = bus.topic_with("t", &cfg)?;
        let (mut p, mut s) = (topic.publisher()?, topic.subscriber()?);
        let (msg, mut buf) = ([7u8; 64], [0u8; 64]);
        for _ in 0..n {
            shmbus_publish(&mut p, black_box(&msg));
            shmbus_receive(&mut s, black_box(&mut buf));
            shmbus_empty(&mut s, black_box(&mut buf));
        }
        // 1024 slots: a lossless publisher rescans the subscribers' cursors once a ring (64
        // records by default), which on 4 slots would add some 120 instructions to each loan.
        let lossless = TopicConfig {
            slots: 1024,
            delivery: Delivery::Lossless,
            ..cfg
        };
        let topic = bus.topic_with("l", &lossless)?;
        let (mut p, mut s) = (topic.publisher()?, topic.subscriber()?);
        for _ in 0..n {
            shmbus_loan(&mut p, black_box(&msg));
            black_box(shmbus_borrow(&mut s));
        }
        let mut h = Hand {
            words: (0..4 * HAND_STRIDE).map(|_| AtomicU64::new(0)).collect(),
            sent: 0,
            next: 0,
        };
        for _ in 0..n {
            hand_publish(&mut h, black_box(&msg));
            hand_receive(&mut h, black_box(&mut buf));
            hand_empty(&mut h, black_box(&mut buf));
        }
        Ok::<(), shmbus::TopicError>(())
    };
    let result = run();
    drop(bus);
    let _ = Bus::remove(&name);
    result.expect("topic, publisher and subscriber");
    println!("{n} rounds of each operation; count them under callgrind (see the source)");
}
