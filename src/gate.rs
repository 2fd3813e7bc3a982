//! Lossless flow control: the gate that keeps publishers at most a ring ahead of the slowest
//! subscriber, and the registration that makes a new subscriber's cursor visible to it. Pure
//! protocol over atomics, so the loom models in `loom_tests` check this exact code.
//!
//! The topic's `claim` word holds the next sequence in its low 56 bits and a registration epoch
//! in its top 8 bits. Publishers claim with a CAS on the whole word (lossless) or a `fetch_add(1)`
//! (lossy); a registering subscriber bumps the epoch with an RMW.
//!
//! Invariant: a publisher claims sequence `c` only if `c < slowest + slots`, where `slowest` is
//! the lowest cursor of the registered subscribers it saw, capped at a claim value it read. The
//! slot of `c` last held `c - slots`, which every such subscriber has read.
//!
//! Registration: take the record (owner), store a provisional cursor `c1` (the claim seen now),
//! bump the epoch with an AcqRel RMW that returns the claim `c2 >= c1`, start at `c2`. For any
//! publisher, either its scan read a claim word before the bump, so `c ≤ c2` and it claims below
//! `c2 + slots` at most (never the slot of `c2`), or it read the bump or later, so it acquired our
//! owner and cursor stores and is held at `c1 + slots`. A publisher's CAS that raced with the bump
//! fails (the word changed) and it looks again. Every step is an RMW or acquire/release: no
//! reliance on a SeqCst total order (which loom does not model).

use crate::sync::atomic::{AtomicU64, Ordering};

/// Bits of the claim word that hold the sequence.
pub(crate) const SEQ_BITS: u32 = 56;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// The sequence in a claim word.
#[inline]
pub(crate) const fn seq_of(word: u64) -> u64 {
    word & SEQ_MASK
}

/// The next sequence to be claimed (Acquire).
#[inline]
pub(crate) fn next_seq(claim: &AtomicU64) -> u64 {
    seq_of(claim.load(Ordering::Acquire))
}

/// Lossy claim: one `fetch_add`, never waits.
#[inline]
pub(crate) fn claim_lossy(claim: &AtomicU64) -> u64 {
    // SYNC: AcqRel: the Release half orders the publisher's CLAIMING store before the claim, so
    // a peer that acquires `claim` past our sequence sees CLAIMING (or later) in our record
    // (`publisher::any_live_holder`).
    seq_of(claim.fetch_add(1, Ordering::AcqRel))
}

/// Lossy claim by the only publisher a topic can have (one publisher entry): a load and a Release
/// store, no locked instruction. A subscriber's registration RMW (`register`) that lands between
/// the two is overwritten; on a lossy topic that loses nothing: the epoch is read by lossless
/// publishers only, and the subscriber starts at the sequence its RMW read, which is this claim
/// or an earlier one, so it receives this message. A dead previous owner of the entry makes no
/// more stores, and a live one keeps the entry (`take_record` takes only dead owners' entries).
#[inline]
pub(crate) fn claim_lossy_exclusive(claim: &AtomicU64) -> u64 {
    let w = claim.load(Ordering::Relaxed);
    // SYNC: Release, as the Release half of `claim_lossy`'s RMW: a peer that acquires `claim`
    // past our sequence sees our CLAIMING (or later) in our record.
    // Wrapping: the word is shared memory, and another process may have written anything there.
    claim.store(w.wrapping_add(1), Ordering::Release);
    seq_of(w)
}

/// Tries to claim the next sequence under the gate. `limit` caches `slowest + slots` between
/// scans; `slowest(c)` returns the lowest registered cursor (`c` if none is lower).
/// `Err(c)` means the ring is full at sequence `c`.
#[inline]
pub(crate) fn try_claim(
    claim: &AtomicU64,
    limit: &mut u64,
    slots: u64,
    slowest: impl Fn(u64) -> u64,
) -> Result<u64, u64> {
    // SYNC: Acquire pairs with the Release half of `register`'s epoch bump (and the release
    // sequence of claims after it): a publisher that reads the bumped word sees the new owner
    // and cursor when it scans.
    let mut w = claim.load(Ordering::Acquire);
    loop {
        let c = seq_of(w);
        if c >= *limit {
            *limit = slowest(c).min(c) + slots;
            if c >= *limit {
                return Err(c);
            }
        }
        // SYNC: AcqRel as in `claim_lossy`; fails if a registration bumped the epoch since `w`.
        match claim.compare_exchange_weak(w, w.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Ok(c),
            Err(now) => w = now,
        }
    }
}

/// Registers a subscriber's cursor (see the module docs); returns the sequence it starts at.
/// The caller has taken the record (its owner word) before calling.
pub(crate) fn register(claim: &AtomicU64, cursor: &AtomicU64) -> u64 {
    let c1 = next_seq(claim);
    cursor.store(c1, Ordering::Relaxed);
    // SYNC: the Release half publishes the owner and provisional cursor stores above to every
    // publisher that reads this word or a later one; the RMW reads the latest claim.
    let c2 = seq_of(claim.fetch_add(1 << SEQ_BITS, Ordering::AcqRel));
    // SYNC: Release, as every cursor advance (`Subscriber::advance_to`).
    cursor.store(c2, Ordering::Release);
    c2
}
