//! loom models of the concurrency protocols, over process-local atomics (loom cannot model
//! shared memory between processes, but the protocol is the same between threads).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib loom`
//! (see `.ci/run`).

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use crate::gate;
use crate::seqlock::{self, Begin, Peek};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Futex};

/// A model futex: `wait` checks the word and sleeps under one lock, so a `wake_all` issued after
/// the word changed cannot slip between the check and the sleep (as the kernel guarantees).
#[derive(Default)]
struct ModelFutex {
    wakes: Mutex<u64>,
    cv: Condvar,
}

impl Futex for ModelFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, _timeout: std::time::Duration) {
        let mut g = self.wakes.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        let seen = *g;
        while *g == seen {
            g = self.cv.wait(g).unwrap();
        }
    }
    fn wake_all(&self, _word: &AtomicU32) {
        *self.wakes.lock().unwrap() += 1;
        self.cv.notify_all();
    }
    /// Not modelled: the models run the RMW publisher, which needs no barrier from us.
    fn heavy_barrier(&self) -> bool {
        true
    }
}

struct Slot {
    stamp: AtomicU64,
    words: Vec<AtomicU64>,
}

impl Slot {
    fn new(words: usize) -> Slot {
        Slot {
            stamp: AtomicU64::new(0),
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Writes message `seq` (every word = seq + 1) with the real writer protocol.
    fn write(&self, seq: u64) -> bool {
        match seqlock::begin_write(&self.stamp, seq) {
            Begin::Acquired => {
                let bytes: Vec<u8> = self
                    .words
                    .iter()
                    .flat_map(|_| (seq + 1).to_ne_bytes())
                    .collect();
                seqlock::store_payload(&self.words, &bytes);
                seqlock::end_write(&self.stamp, seq, seqlock::COMMITTED);
                true
            }
            _ => false,
        }
    }

    /// Reads message `seq` with the real reader protocol: `Some(words)` only if validated.
    fn read(&self, seq: u64) -> Option<Vec<u64>> {
        let Peek::Committed { stamp } = seqlock::peek(&self.stamp, seq) else {
            return None;
        };
        let mut bytes = vec![0u8; self.words.len() * 8];
        seqlock::load_payload(&self.words, &mut bytes);
        seqlock::validate(&self.stamp, stamp).then(|| {
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                .collect()
        })
    }
}

/// A reader racing a writer that laps the slot never accepts a torn or overwritten copy.
#[test]
fn loom_seqlock_reader_never_sees_a_torn_message() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(2));
        assert!(slot.write(0));
        let w = Arc::clone(&slot);
        let writer = thread::spawn(move || {
            assert!(w.write(1)); // the next lap of a one-slot ring
        });
        if let Some(words) = slot.read(0) {
            assert_eq!(words, vec![1, 1], "a validated copy is message 0, whole");
        }
        if let Some(words) = slot.read(1) {
            assert_eq!(words, vec![2, 2], "a validated copy is message 1, whole");
        }
        writer.join().unwrap();
    });
}

/// The single-publisher path (a plain store takes the slot) keeps readers safe too.
#[test]
fn loom_exclusive_writer_never_lets_a_torn_message_through() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(2));
        let w = Arc::clone(&slot);
        let writer = thread::spawn(move || {
            for seq in 0..2u64 {
                seqlock::begin_write_exclusive(&w.stamp, seq);
                let bytes: Vec<u8> = w
                    .words
                    .iter()
                    .flat_map(|_| (seq + 1).to_ne_bytes())
                    .collect();
                seqlock::store_payload(&w.words, &bytes);
                seqlock::end_write(&w.stamp, seq, seqlock::COMMITTED);
            }
        });
        for seq in 0..2u64 {
            if let Some(words) = slot.read(seq) {
                assert_eq!(words, vec![seq + 1, seq + 1], "a validated copy is whole");
            }
        }
        writer.join().unwrap();
    });
}

/// Two writers of the same slot (sequences one lap apart) never write at once: the later one
/// waits until the earlier commits, or gives up if it was superseded.
#[test]
fn loom_slot_writers_are_exclusive() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(1));
        let a = Arc::clone(&slot);
        let early = thread::spawn(move || a.write(0));
        let late = loop {
            match seqlock::begin_write(&slot.stamp, 1) {
                Begin::Acquired => break true,
                Begin::Superseded => break false,
                Begin::Busy { .. } => thread::yield_now(),
            }
        };
        assert!(late, "sequence 1 always gets the slot");
        // While we hold WRITING(1), the early writer either finished before or was superseded.
        slot.words[0].store(2, Ordering::Relaxed);
        seqlock::end_write(&slot.stamp, 1, seqlock::COMMITTED);
        early.join().unwrap();
        assert_eq!(slot.read(1), Some(vec![2]));
    });
}

/// The sole publisher of a lossy topic (`Publisher::publish_sole_lossy`) stores `inflight = seq`
/// before the claim and leaves it there after the commit, until the next publish stores the next
/// sequence. A subscriber that finds a claimed slot unwritten and looks for a live holder, as
/// `check_stuck` and `repair_if_abandoned` do, never repairs a slot under the live publisher:
/// whatever `inflight` it reads, the stamp it re-reads tells it the slot is not abandoned.
/// (Storing `inflight` after the claim fails this model. That the next sequence's `inflight`
/// store must be Release, so that it is not seen before the commit, loom cannot show: its repair
/// CAS always reads the latest stamp. The store is Release for weaker hardware than x86.)
#[test]
fn loom_sole_publisher_is_never_repaired_under_its_feet() {
    const IDLE: u64 = u64::MAX; // `layout::INFLIGHT_IDLE` (layout.rs is not built under loom)
    loom::model(|| {
        let claim = Arc::new(AtomicU64::new(0));
        let inflight = Arc::new(AtomicU64::new(IDLE));
        let slot = Arc::new(Slot::new(1));
        let (c, f, s) = (Arc::clone(&claim), Arc::clone(&inflight), Arc::clone(&slot));
        let publisher = thread::spawn(move || {
            // Message 0, then the start of message 1 (whose slot is another one).
            for seq in 0..2 {
                f.store(seq, Ordering::Release);
                c.store(seq + 1, Ordering::Release); // the claim word: next seq, no flags
                if seq == 0 {
                    seqlock::begin_write_exclusive(&s.stamp, 0);
                    s.words[0].store(1, Ordering::Relaxed);
                    seqlock::end_write(&s.stamp, 0, seqlock::COMMITTED);
                }
            }
        });
        let mut repaired = false;
        if gate::next_seq(&claim) > 0 {
            let seen = slot.stamp.load(Ordering::Acquire);
            if seen != seqlock::stamp(0, seqlock::COMMITTED) {
                let held = inflight.load(Ordering::Acquire) == 0; // the publisher is alive
                if !held && slot.stamp.load(Ordering::SeqCst) == seen {
                    repaired = seqlock::repair(&slot.stamp, seen, 0);
                }
            }
        }
        publisher.join().unwrap();
        assert!(!repaired, "a live publisher's slot was repaired");
        assert_eq!(slot.read(0), Some(vec![1]));
    });
}

/// A repair of an unwritten claimed slot and the slow (live) writer of that slot: exactly one
/// wins, and a reader sees either the message or the repair, never both or neither.
#[test]
fn loom_repair_and_late_writer_exclude_each_other() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(1));
        let w = Arc::clone(&slot);
        let writer = thread::spawn(move || w.write(0));
        let repaired = seqlock::repair(&slot.stamp, 0, 0);
        let wrote = writer.join().unwrap();
        assert!(
            repaired ^ wrote,
            "exactly one of repair and write takes the slot"
        );
        match seqlock::peek(&slot.stamp, 0) {
            Peek::Repaired => assert!(repaired),
            Peek::Committed { .. } => assert!(wrote),
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// The park/wake handshake never loses a wake-up: a subscriber parked without a timeout is
/// always woken by the publisher's commit (loom reports a deadlock otherwise).
#[test]
fn loom_park_never_misses_a_wake() {
    loom::model(|| {
        let futex = Arc::new(ModelFutex::default());
        let event = Arc::new(AtomicU32::new(0));
        let sleepers = Arc::new(AtomicU32::new(0));
        let wakes = Arc::new(AtomicU64::new(0));
        let slot = Arc::new(Slot::new(1));
        let (f, e, s, k, sl) = (
            Arc::clone(&futex),
            Arc::clone(&event),
            Arc::clone(&sleepers),
            Arc::clone(&wakes),
            Arc::clone(&slot),
        );
        let publisher = thread::spawn(move || {
            assert!(sl.write(0));
            wait::wake_if_sleeping(&*f, &e, &s, &k, wait::WakeCheck::Rmw);
        });
        loop {
            let found = wait::park(&*futex, &event, &sleepers, std::time::Duration::MAX, || {
                slot.read(0)
            });
            if found.is_some() || slot.read(0).is_some() {
                break;
            }
        }
        publisher.join().unwrap();
        assert_eq!(sleepers.load(Ordering::SeqCst), 0);
    });
}

/// Lossless gate: a publisher racing a subscriber's registration never claims the sequence that
/// would overwrite the slot the subscriber starts at (ring of one slot, so any overrun shows).
#[test]
fn loom_lossless_gate_respects_a_registering_subscriber() {
    loom::model(|| {
        const SLOTS: u64 = 1;
        let claim = Arc::new(AtomicU64::new(0));
        let owner = Arc::new(AtomicU32::new(0));
        let cursor = Arc::new(AtomicU64::new(0));
        let (c, o, k) = (Arc::clone(&claim), Arc::clone(&owner), Arc::clone(&cursor));
        let publisher = thread::spawn(move || {
            let mut limit = 0;
            let slowest = |claim: u64| {
                if o.load(Ordering::Acquire) != 0 {
                    k.load(Ordering::Acquire)
                } else {
                    claim
                }
            };
            let mut claimed = Vec::new();
            for _ in 0..3 {
                match gate::try_claim(&c, &mut limit, SLOTS, &slowest) {
                    Ok(seq) => claimed.push(seq),
                    Err(_) => break,
                }
            }
            claimed
        });
        owner.store(1, Ordering::Relaxed); // the record CAS; published by `register`
        let start = gate::register(&claim, &cursor);
        let claimed = publisher.join().unwrap();
        // Claiming `seq` overwrites the slot of `seq - SLOTS`: it must be before `start`.
        assert!(
            claimed.iter().all(|&seq| seq < start + SLOTS),
            "{claimed:?} vs start {start}"
        );
    });
}

/// Lossless gate: a publisher waits for the slowest subscriber and resumes as it reads; the
/// subscriber reads every message (no overwrite), in order.
#[test]
fn loom_lossless_publisher_waits_for_the_slowest_cursor() {
    loom::model(|| {
        const SLOTS: u64 = 1;
        const N: u64 = 2;
        let claim = Arc::new(AtomicU64::new(0));
        let cursor = Arc::new(AtomicU64::new(0));
        let slot = Arc::new(Slot::new(1));
        let start = gate::register(&claim, &cursor);
        assert_eq!(start, 0);
        let (c, k, sl) = (Arc::clone(&claim), Arc::clone(&cursor), Arc::clone(&slot));
        let publisher = thread::spawn(move || {
            let mut limit = 0;
            for _ in 0..N {
                let seq = loop {
                    match gate::try_claim(&c, &mut limit, SLOTS, |_| k.load(Ordering::Acquire)) {
                        Ok(seq) => break seq,
                        Err(_) => thread::yield_now(),
                    }
                };
                assert!(sl.write(seq));
            }
        });
        for seq in 0..N {
            let words = loop {
                if let Some(w) = slot.read(seq) {
                    break w;
                }
                thread::yield_now();
            };
            assert_eq!(words, vec![seq + 1]);
            // SYNC under test: the Release store of the cursor (as in `advance_to`).
            cursor.store(seq + 1, Ordering::Release);
        }
        publisher.join().unwrap();
    });
}
