//! `ring`: the protocol skeleton of shmbus's lossy ring and nothing else, as a reference point.
//!
//! Why: the floor ping-pongs one word in one cache line, but any ring-buffer bus writes each
//! message to a new slot (a new cache line, often two) under a per-slot seqlock. This transport
//! pays exactly that part and no more, with the same loops and clock as the others, so the gap
//! floor -> ring is what the structure of a ring costs on this machine and the gap ring ->
//! shmbus is what shmbus's own code adds (claiming, records, wake check, liveness, header
//! fields).
//!
//! What: one single-writer broadcast ring per direction (ping-pong: two rings, `0` parent to
//! echo and `1` back; the one-way scenarios: ring `0`) in one POSIX shared-memory object
//! ([`SharedMem`], named like the floor's page, so a killed run's leftovers are swept the same
//! way). The geometry is that of the benchmark's shmbus topics (`bus.rs`): a slot is
//! `round_up(32 + payload, 64)` bytes, the stamp (`u64`) at offset 0, the payload from offset
//! 32, and the ring has [`Shape::slots`] slots (`--slots`; 16384 at 64 B by default; always 2 for
//! the `ring2` transport, which is this code in a 2-slot ring). Nothing else is in the slot or the object: no
//! claim word, no publisher or subscriber records, no wake-up, no liveness.
//!
//! The seqlock, as in `src/seqlock.rs`: message `seq` goes to slot `seq & mask`; its stamp is
//! `((seq + 1) << 2) | 1` while it is written and `(seq + 1) << 2` once committed (0: never
//! written). The writer stores WRITING, a Release fence, the payload as relaxed 8-byte atomic
//! stores, then COMMITTED with Release. A reader waiting for `seq` busy-spins on the stamp
//! (Acquire) until it reaches COMMITTED(seq), copies the payload with relaxed atomic loads, and
//! re-reads the stamp after an Acquire fence: unchanged, the copy is the message; changed, or a
//! stamp of a newer sequence from the start, the writer lapped the reader and the messages it
//! overwrote are reported lost. Sequence numbers are the transport's own, counted by each end;
//! the benchmark's header (and [`msg::END`](super::super::msg::END)) is ordinary payload.
#![allow(
    clippy::disallowed_types,
    reason = "the crate's loom shim (crate::sync) is private to the library; this binary-only \
              module is never model-checked and uses std atomics on purpose"
)]

use std::sync::atomic::{AtomicU64, Ordering, fence};

use super::super::Result;
use super::super::clock::now_ns;
use super::super::plan::Mode;
use super::super::shm::SharedMem;
use super::{Endpoint, Names, Prepared, Recv, Rendezvous, Shape, addr};

/// Bytes before the payload in a slot (the stamp, then unused), as in a shmbus slot.
const SLOT_HEADER: usize = 32;

/// Slots are a whole number of cache lines, as in shmbus.
const LINE: usize = 64;

/// Spins between two deadline checks, as the floor's.
const SPINS_PER_CHECK: u32 = 1024;

/// Stamp bit: the slot is being written.
const WRITING: u64 = 1;

/// The stamp of a committed message `seq`.
#[inline]
const fn committed(seq: u64) -> u64 {
    (seq + 1) << 2
}

/// The sequence number a (non-zero) stamp carries.
#[inline]
const fn stamp_seq(stamp: u64) -> u64 {
    (stamp >> 2) - 1
}

/// The shape of one ring, in 8-byte words.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// Slots, a power of two.
    slots: u64,
    /// Words per slot.
    stride: usize,
    /// Message bytes a slot holds.
    payload: usize,
}

impl Geometry {
    /// The geometry of the benchmark's shmbus topics for `payload`-byte messages in rings of
    /// `slots` slots (a power of two).
    fn new(payload: usize, slots: usize) -> Self {
        Self {
            slots: slots as u64,
            stride: (SLOT_HEADER + payload).next_multiple_of(LINE) / 8,
            payload,
        }
    }

    /// Words per ring.
    fn ring_words(&self) -> usize {
        self.slots as usize * self.stride
    }

    /// Bytes of a shared object holding `rings` rings, rounded up to a multiple of the page size.
    fn object_bytes(&self, rings: usize) -> usize {
        (rings * self.ring_words() * 8).next_multiple_of(4096)
    }
}

/// Creates the rings and returns the parent's end (writer of ring 0, reader of ring 1).
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    check(shape)?;
    let geo = Geometry::new(shape.payload, shape.slots());
    let name = names.shm();
    let mem = SharedMem::create(&name, geo.object_bytes(rings(shape)))
        .map_err(|e| format!("shm_open({name}): {e}"))?;
    let end = RingEndpoint::new(mem, geo, Some(0), shape.duplex.then_some(1));
    Ok(Prepared {
        child_addrs: vec![vec![name]; shape.children],
        rendezvous: Box::new(Connected(end)),
    })
}

/// Maps the parent's rings and returns a child's end (reader of ring 0, writer of ring 1).
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    check(shape)?;
    let geo = Geometry::new(shape.payload, shape.slots());
    let name = addr(addrs, 0)?;
    let mem = SharedMem::open(name, geo.object_bytes(rings(shape)))
        .map_err(|e| format!("shm_open({name}): {e}"))?;
    Ok(Box::new(RingEndpoint::new(
        mem,
        geo,
        shape.duplex.then_some(1),
        Some(0),
    )))
}

/// Rejects shapes the ring does not measure.
fn check(shape: &Shape) -> Result<()> {
    if shape.mode != Mode::Spin {
        return Err("ring busy-spins only (mode spin)".into());
    }
    if shape.duplex && shape.children != 1 {
        return Err("ring ping-pong has exactly one echo".into());
    }
    Ok(())
}

/// Rings in the object: one per direction.
fn rings(shape: &Shape) -> usize {
    if shape.duplex { 2 } else { 1 }
}

/// A parent end that needs no connecting: children map the object by name.
struct Connected(RingEndpoint);

impl Rendezvous for Connected {
    fn connect(self: Box<Self>, _deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.0))
    }
}

/// One process's end: the writer of one ring and/or a reader of another.
struct RingEndpoint {
    /// The shared object (unlinked on drop by the creator).
    mem: SharedMem,
    /// Every ring's shape.
    geo: Geometry,
    /// First word of the ring this end writes, if it sends.
    tx: Option<usize>,
    /// First word of the ring this end reads, if it receives.
    rx: Option<usize>,
    /// Sequence number of the next message this end writes.
    sent: u64,
    /// Sequence number of the next message this end reads.
    next: u64,
}

impl RingEndpoint {
    /// An end writing ring `tx` and reading ring `rx` (ring indices in the object).
    fn new(mem: SharedMem, geo: Geometry, tx: Option<usize>, rx: Option<usize>) -> Self {
        let words = geo.ring_words();
        Self {
            mem,
            geo,
            tx: tx.map(|r| r * words),
            rx: rx.map(|r| r * words),
            sent: 0,
            next: 0,
        }
    }

    /// The words of the slot of `seq` in the ring starting at word `base`.
    #[inline]
    fn slot(&self, base: usize, seq: u64) -> &[AtomicU64] {
        let start = base + (seq & (self.geo.slots - 1)) as usize * self.geo.stride;
        &self.mem.words()[start..start + self.geo.stride]
    }
}

impl Endpoint for RingEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let base = self.tx.ok_or("this end only receives")?;
        if msg.len() > self.geo.payload {
            return Err(format!(
                "{}-byte message in a {}-byte slot",
                msg.len(),
                self.geo.payload
            )
            .into());
        }
        let seq = self.sent;
        let (stamp, payload) = self.slot(base, seq).split_at(SLOT_HEADER / 8);
        // SYNC: Relaxed: the WRITING stamp publishes nothing by itself; the fence below orders
        // it before the payload stores for the readers' validation.
        stamp[0].store(committed(seq) | WRITING, Ordering::Relaxed);
        // SYNC: this Release fence pairs with the reader's Acquire fence in `recv`: a reader
        // whose payload loads see any store below sees WRITING(seq) or a later stamp on its
        // re-check, and discards its copy.
        fence(Ordering::Release);
        store_words(payload, msg);
        // SYNC: Release pairs with the reader's Acquire stamp load in `recv`: a reader that sees
        // COMMITTED(seq) sees every payload word stored above.
        stamp[0].store(committed(seq), Ordering::Release);
        self.sent = seq + 1;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv> {
        let base = self.rx.ok_or("this end only sends")?;
        if buf.len() > self.geo.payload {
            return Err(format!(
                "{}-byte buffer for a {}-byte slot",
                buf.len(),
                self.geo.payload
            )
            .into());
        }
        let seq = self.next;
        let want = committed(seq);
        let (stamp, payload) = self.slot(base, seq).split_at(SLOT_HEADER / 8);
        let Some(mut seen) = wait_stamp(&stamp[0], want, deadline_ns) else {
            return Ok(Recv::TimedOut);
        };
        if seen == want {
            load_words(payload, buf);
            // SYNC: this Acquire fence pairs with the writer's Release fence in `send`: if any
            // payload load above saw a store of a later message, this load sees that message's
            // WRITING stamp (or a later one).
            fence(Ordering::Acquire);
            let again = stamp[0].load(Ordering::Relaxed);
            if again == seen {
                self.next = seq + 1;
                return Ok(Recv::Msg(buf.len()));
            }
            // Overwritten while we copied: the copy is discarded.
            seen = again;
        }
        // A newer message took the slot: everything up to `newer - slots` is gone.
        let newer = stamp_seq(seen);
        let next = (seq + 1).max((newer + 1).saturating_sub(self.geo.slots));
        self.next = next;
        Ok(Recv::Lost(next - seq))
    }
}

/// Busy-spins until `stamp` holds COMMITTED(seq) (`want`) or a newer message's stamp, and returns
/// it; `None` once `deadline_ns` passes. Older stamps and WRITING(seq) mean "not yet".
#[inline]
fn wait_stamp(stamp: &AtomicU64, want: u64, deadline_ns: u64) -> Option<u64> {
    loop {
        for _ in 0..SPINS_PER_CHECK {
            // SYNC: Acquire pairs with the Release store of COMMITTED in `send`.
            let s = stamp.load(Ordering::Acquire);
            if s >= want && s != want | WRITING {
                return Some(s);
            }
            std::hint::spin_loop();
        }
        if now_ns() >= deadline_ns {
            return None;
        }
    }
}

/// Copies `src` into `words` with relaxed 8-byte atomic stores (a short tail padded with zeros).
/// The same word copy as the crate's `seqlock::store_payload`, kept separate on purpose: the
/// reference must not move when shmbus's code changes (and that module is private). Whole words
/// go over two slices of one length, which the compiler unrolls; a reference slower than it need
/// be would flatter shmbus.
#[inline]
fn store_words(words: &[AtomicU64], src: &[u8]) {
    let (chunks, rest) = src.as_chunks::<8>();
    let (full, tail) = words.split_at(chunks.len());
    for (w, c) in full.iter().zip(chunks) {
        // SYNC: Relaxed: ordered by the fence before and the Release stamp store after.
        w.store(u64::from_ne_bytes(*c), Ordering::Relaxed);
    }
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        tail[0].store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

/// Fills `dst` from `words` with relaxed 8-byte atomic loads. The bytes mean nothing until the
/// caller has re-checked the stamp.
#[inline]
fn load_words(words: &[AtomicU64], dst: &mut [u8]) {
    let (chunks, rest) = dst.as_chunks_mut::<8>();
    let (full, tail) = words.split_at(chunks.len());
    for (w, c) in full.iter().zip(chunks) {
        // SYNC: Relaxed: ordered by the Acquire stamp load before and the fence after.
        *c = w.load(Ordering::Relaxed).to_ne_bytes();
    }
    if !rest.is_empty() {
        let b = tail[0].load(Ordering::Relaxed).to_ne_bytes();
        let n = rest.len();
        rest.copy_from_slice(&b[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::default_slots;
    use super::*;

    #[test]
    fn geometry_matches_the_shmbus_topics() {
        let g = Geometry::new(64, default_slots(64));
        assert_eq!((g.slots, g.stride * 8), (16384, 128));
        let g = Geometry::new(8, default_slots(8));
        assert_eq!((g.slots, g.stride * 8), (16384, 64));
        let g = Geometry::new(1 << 20, default_slots(1 << 20));
        assert_eq!(g.slots, 8);
        assert!(Geometry::new(64, 2).object_bytes(2).is_multiple_of(4096));
        assert!(g.object_bytes(2).is_multiple_of(4096));
    }

    #[test]
    fn stamps_order_and_decode() {
        for seq in [0u64, 1, 4095, 1 << 40] {
            assert_eq!(stamp_seq(committed(seq)), seq);
            assert_eq!(stamp_seq(committed(seq) | WRITING), seq);
            assert!(committed(seq) | WRITING < committed(seq + 1));
        }
    }

    #[test]
    fn delivers_in_order_and_counts_a_lapped_reader_s_losses() {
        let name = format!("shmbus-bench-{}-{}", std::process::id(), u32::MAX);
        let geo = Geometry::new(64, default_slots(64));
        let mem = SharedMem::create(&name, geo.object_bytes(1)).unwrap();
        let mut tx = RingEndpoint::new(mem, geo, Some(0), None);
        let mut rx = RingEndpoint::new(
            SharedMem::open(&name, geo.object_bytes(1)).unwrap(),
            geo,
            None,
            Some(0),
        );
        let (mut out, mut got) = ([0u8; 64], [0u8; 64]);
        let soon = || now_ns() + 1_000_000;
        assert_eq!(rx.recv(&mut got, soon()).unwrap(), Recv::TimedOut);
        for seq in 0..3u64 {
            out[..8].copy_from_slice(&seq.to_le_bytes());
            tx.send(&out).unwrap();
        }
        for seq in 0..3u64 {
            assert_eq!(rx.recv(&mut got, soon()).unwrap(), Recv::Msg(64));
            assert_eq!(got[..8], seq.to_le_bytes());
        }
        // Five messages more than the ring holds: 3..8 are overwritten, 8.. are all there.
        let last = 3 + geo.slots + 5;
        for seq in 3..last {
            out[..8].copy_from_slice(&seq.to_le_bytes());
            tx.send(&out).unwrap();
        }
        let (mut lost, mut first) = (0, None);
        loop {
            match rx.recv(&mut got, soon()).unwrap() {
                Recv::Lost(n) => lost += n,
                Recv::Msg(_) => {
                    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
                    first.get_or_insert(seq);
                    if seq == last - 1 {
                        break;
                    }
                }
                Recv::TimedOut => panic!("ring ran dry before {}", last - 1),
            }
        }
        assert_eq!((lost, first), (5, Some(8)));
    }

    #[test]
    fn words_round_trip_with_a_tail() {
        let words: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        let src: Vec<u8> = (1..=27).collect();
        store_words(&words, &src);
        let mut dst = [0u8; 27];
        load_words(&words, &mut dst);
        assert_eq!(&dst[..], &src[..]);
    }
}
