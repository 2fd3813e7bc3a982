//! The per-slot seqlock: stamp encoding, writer begin/end, and the validated reader copy.
//!
//! A slot's `stamp` is `((seq + 1) << 2) | state`: the sequence number it holds (or is being
//! written with) and one of [`COMMITTED`], [`WRITING`], [`ABORTED`], [`REPAIRED`]; 0 means the slot
//! was never written. Stamps of one slot only grow, so a writer takes a slot with one CAS from any
//! older stamp, and a reader knows from one load whether the slot holds its sequence, an older
//! one (not yet written), or a newer one (it was overrun).
//!
//! Payload bytes are copied in and out with word-wise relaxed atomics (the "atomic memcpy" of
//! P1478 / RFC 3301), never with plain loads, and the reader re-checks the stamp after the copy
//! (Boehm, "Can seqlocks get along with programming language memory models?", 2012): bytes that
//! fail the check are discarded, never shown to the user.

use crate::sync::atomic::{AtomicU64, Ordering, fence};

/// The slot holds a complete message.
pub(crate) const COMMITTED: u64 = 0;
/// A writer owns the slot and is filling it.
pub(crate) const WRITING: u64 = 1;
/// The writer dropped its loan without publishing: no message, nothing lost.
pub(crate) const ABORTED: u64 = 2;
/// The writer died while writing; a peer closed the slot. Readers count it as lost.
pub(crate) const REPAIRED: u64 = 3;

/// Encodes a stamp.
#[inline]
pub(crate) const fn stamp(seq: u64, state: u64) -> u64 {
    ((seq.wrapping_add(1)) << 2) | state
}

/// Decodes a stamp into `(seq, state)`; `None` for a never-written slot.
#[inline]
pub(crate) const fn decode(stamp: u64) -> Option<(u64, u64)> {
    if stamp == 0 {
        None
    } else {
        Some(((stamp >> 2).wrapping_sub(1), stamp & 3))
    }
}

/// What a writer found when it tried to take a slot for `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// The slot is ours (stamp = WRITING for our seq).
    Acquired,
    /// An older sequence's writer still holds the slot: wait, or repair it if that writer died.
    Busy {
        /// The stamp we saw.
        stamp: u64,
    },
    /// A newer sequence already took the slot (we were a whole ring behind): our message was
    /// overrun before it was written.
    Superseded,
}

/// Tries to take the slot for `seq`: one CAS from any older, finished stamp.
#[inline]
pub(crate) fn begin_write(stamp_word: &AtomicU64, seq: u64) -> Begin {
    let mine = stamp(seq, WRITING);
    let mut cur = stamp_word.load(Ordering::Relaxed);
    loop {
        if let Some((s, state)) = decode(cur) {
            if s >= seq {
                return Begin::Superseded;
            }
            if state == WRITING {
                return Begin::Busy { stamp: cur };
            }
        }
        // SYNC: Acquire pairs with the Release stamp store in `end_write` of the previous writer
        // of this slot: its payload stores happen before ours, so they cannot land on top of
        // ours. Release pairs with the Acquire stamp load of a peer that checks whether we are
        // alive: it then sees our publisher record's `inflight = seq` (`any_live_holder`).
        match stamp_word.compare_exchange_weak(cur, mine, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                // SYNC: this Release fence pairs with the reader's Acquire fence in `read`: a
                // reader that sees any payload word we store after this point sees the WRITING
                // stamp (or a later one) on its re-check, and discards its copy.
                fence(Ordering::Release);
                return Begin::Acquired;
            }
            Err(now) => cur = now,
        }
    }
}

/// Takes the slot for `seq` when no other live writer can exist (a topic with one publisher
/// entry): one Release store instead of a CAS, so the store retires at once and the line's
/// transfer overlaps the payload writes instead of stalling them. The slot may still show a dead
/// publisher's WRITING or a peer's repair of an older sequence: both are older than `seq`, and a
/// peer's repair CAS against our WRITING(seq) fails, so overwriting them is correct.
#[inline]
pub(crate) fn begin_write_exclusive(stamp_word: &AtomicU64, seq: u64) {
    // SYNC: Release pairs with the Acquire stamp load of a peer that checks whether we are alive
    // (it then sees `inflight = seq` in our record), as in `begin_write`.
    stamp_word.store(stamp(seq, WRITING), Ordering::Release);
    // SYNC: as in `begin_write`: pairs with the reader's Acquire fence in `validate`.
    fence(Ordering::Release);
}

/// Closes a slot taken with [`begin_write`]: `state` is [`COMMITTED`] or [`ABORTED`].
#[inline]
pub(crate) fn end_write(stamp_word: &AtomicU64, seq: u64, state: u64) {
    // SYNC: Release pairs with the Acquire load of the stamp in `peek`: a reader that sees this
    // stamp sees every payload and header word stored before it. (Parked readers are handled by
    // the publisher's RMW on `sleepers` that follows; see `wait.rs`.)
    stamp_word.store(stamp(seq, state), Ordering::Release);
}

/// Closes the slot of a dead writer: WRITING(seq) or any older stamp → REPAIRED(seq). Fails (false)
/// if the slot changed since `seen`.
pub(crate) fn repair(stamp_word: &AtomicU64, seen: u64, seq: u64) -> bool {
    stamp_word
        .compare_exchange(
            seen,
            stamp(seq, REPAIRED),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Copies `src` into the payload words with relaxed atomic stores. `words` must hold at least
/// `src.len()` bytes (the caller checked the length against the slot's capacity); panics if not.
#[inline]
pub(crate) fn store_payload(words: &[AtomicU64], src: &[u8]) {
    // Whole words first, over two slices of one length: one bounds check, and a loop the
    // compiler unrolls (zipping `words` with `chunks_exact` kept two exits per word).
    let (chunks, rest) = src.as_chunks::<8>();
    let (full, tail) = words.split_at(chunks.len());
    for (w, c) in full.iter().zip(chunks) {
        w.store(u64::from_ne_bytes(*c), Ordering::Relaxed);
    }
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        tail[0].store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

/// Copies `dst.len()` bytes out of the payload words with relaxed atomic loads (panics if
/// `words` hold fewer). The bytes are meaningless until the caller validates the stamp.
#[inline]
pub(crate) fn load_payload(words: &[AtomicU64], dst: &mut [u8]) {
    let (chunks, rest) = dst.as_chunks_mut::<8>();
    let (full, tail) = words.split_at(chunks.len());
    for (w, c) in full.iter().zip(chunks) {
        *c = w.load(Ordering::Relaxed).to_ne_bytes();
    }
    if !rest.is_empty() {
        let b = tail[0].load(Ordering::Relaxed).to_ne_bytes();
        let n = rest.len();
        rest.copy_from_slice(&b[..n]);
    }
}

/// What a reader found in the slot for `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// The slot holds an older sequence or was never written: `seq` is not published yet.
    NotYet {
        /// The stamp seen.
        stamp: u64,
    },
    /// `seq` is being written.
    Writing {
        /// The stamp seen.
        stamp: u64,
    },
    /// `seq` is committed; the stamp to validate against after copying.
    Committed {
        /// The stamp seen (Acquire).
        stamp: u64,
    },
    /// `seq` was aborted by its publisher (not a message).
    Aborted,
    /// `seq` was repaired after its writer died (lost).
    Repaired,
    /// A newer sequence took the slot: `seq` was overwritten.
    Overrun,
}

/// Classifies the slot for `seq` with one Acquire load.
#[inline]
pub(crate) fn peek(stamp_word: &AtomicU64, seq: u64) -> Peek {
    // SYNC: Acquire pairs with the Release in `end_write`.
    let s = stamp_word.load(Ordering::Acquire);
    match decode(s) {
        None => Peek::NotYet { stamp: s },
        Some((slot_seq, _)) if slot_seq < seq => Peek::NotYet { stamp: s },
        Some((slot_seq, _)) if slot_seq > seq => Peek::Overrun,
        Some((_, COMMITTED)) => Peek::Committed { stamp: s },
        Some((_, WRITING)) => Peek::Writing { stamp: s },
        Some((_, ABORTED)) => Peek::Aborted,
        Some(_) => Peek::Repaired,
    }
}

/// Ends a read begun by `peek` returning `Committed { stamp }`: true if no writer touched the
/// slot meanwhile, so everything loaded since is a consistent copy.
#[inline]
pub(crate) fn validate(stamp_word: &AtomicU64, seen: u64) -> bool {
    // SYNC: this Acquire fence pairs with the Release fence in `begin_write`: if any payload load
    // above saw a store of a later writer, this load sees that writer's stamp (or a later one).
    fence(Ordering::Acquire);
    stamp_word.load(Ordering::Relaxed) == seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_order() {
        for seq in [0u64, 1, 7, 1 << 40] {
            for state in [COMMITTED, WRITING, ABORTED, REPAIRED] {
                assert_eq!(decode(stamp(seq, state)), Some((seq, state)));
            }
            assert!(stamp(seq, REPAIRED) < stamp(seq + 1, COMMITTED));
        }
        assert_eq!(decode(0), None);
    }

    #[test]
    fn begin_write_takes_older_and_refuses_newer() {
        let w = AtomicU64::new(0);
        assert_eq!(begin_write(&w, 3), Begin::Acquired);
        assert_eq!(
            begin_write(&w, 7),
            Begin::Busy {
                stamp: stamp(3, WRITING)
            }
        );
        end_write(&w, 3, COMMITTED);
        assert_eq!(begin_write(&w, 2), Begin::Superseded);
        assert_eq!(begin_write(&w, 7), Begin::Acquired);
        assert_eq!(
            peek(&w, 7),
            Peek::Writing {
                stamp: stamp(7, WRITING)
            }
        );
        assert_eq!(peek(&w, 3), Peek::Overrun);
        assert_eq!(
            peek(&w, 11),
            Peek::NotYet {
                stamp: stamp(7, WRITING)
            }
        );
        assert!(repair(&w, stamp(7, WRITING), 7));
        assert_eq!(peek(&w, 7), Peek::Repaired);
    }

    #[test]
    fn payload_copies_any_length() {
        let words: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        for len in 0..=32 {
            let src: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            store_payload(&words, &src);
            let mut dst = vec![0xAA; len];
            load_payload(&words, &mut dst);
            assert_eq!(dst, src);
        }
    }
}
