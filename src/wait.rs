//! Wait strategies, and the sleep/wake handshake on a topic's futex word.
//!
//! The handshake. Both sides do a read-modify-write on `sleepers`, and an RMW always reads the
//! latest value of its word, so the two RMWs are ordered one way or the other:
//!
//! | subscriber (`park`)                  | publisher (`wake_if_sleeping`)        |
//! |--------------------------------------|---------------------------------------|
//! | `sleepers.fetch_add(1)` (AcqRel+)    | commit the slot's stamp (Release)     |
//! | `ev = event`                         | `n = sleepers.fetch_add(0)` (AcqRel+) |
//! | re-check for a message               | `if n > 0`: `event += 1`; `FUTEX_WAKE`|
//! | `FUTEX_WAIT(event, ev, timeout)`     |                                       |
//! | `sleepers -= 1`                      |                                       |
//!
//! * Publisher's RMW first: the subscriber's RMW reads from it (Acquire after Release), so the
//!   commit happens-before the re-check, which finds the message.
//! * Subscriber's RMW first: the publisher reads `n > 0`, bumps `event` and wakes; the futex wait
//!   either sees the new `event` and returns at once, or is already asleep and is woken.
//!
//! So no wake-up is lost, with acquire/release reasoning only (no reliance on SeqCst fences,
//! which loom does not model); `loom_tests::loom_park_never_misses_a_wake` checks it. When nobody
//! sleeps, publishing costs one uncontended RMW on `sleepers` (a line only parked subscribers
//! touch) and no system call. The RMW replaces a SeqCst store of the stamp, which costs the same
//! locked instruction on x86.
//!
//! The futex calls are a parameter ([`Futex`]) so the protocol runs under loom with a model
//! futex.

use std::time::Duration;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How a subscriber waits for the next message in `recv` and `recv_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Poll without pause: the lowest latency, one CPU busy while waiting. Use only with a
    /// core to spare per spinning subscriber.
    Spin,
    /// Poll for `spin`, then sleep on the topic's futex.
    SpinThenPark {
        /// How long to poll before sleeping.
        spin: Duration,
    },
    /// Sleep on the topic's futex at once: no CPU while waiting; each wake-up costs a system
    /// call in the publisher and a scheduler wake-up in the subscriber.
    Park,
}

impl Default for WaitStrategy {
    /// `SpinThenPark` for 50 µs: about the cost of one futex wake-up on a typical VM, so a
    /// subscriber never pays much more than twice the cheaper of the two.
    fn default() -> Self {
        WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(50),
        }
    }
}

/// The futex operations the handshake needs; [`SysFutex`] is the real one.
pub(crate) trait Futex {
    /// Sleeps while `*word == expected`, at most `timeout`; may return early.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration);
    /// Wakes every sleeper on `word`.
    fn wake_all(&self, word: &AtomicU32);
}

/// The shared (cross-process) Linux futex.
#[cfg(not(loom))]
pub(crate) struct SysFutex;

#[cfg(not(loom))]
impl Futex for SysFutex {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) {
        crate::sys::futex_wait(word, expected, timeout);
    }
    #[inline]
    fn wake_all(&self, word: &AtomicU32) {
        crate::sys::futex_wake_all(word);
    }
}

/// The publisher's half: call after committing a slot. Returns true if it issued a wake.
#[inline]
pub(crate) fn wake_if_sleeping<F: Futex>(
    futex: &F,
    event: &AtomicU32,
    sleepers: &AtomicU32,
    wakes: &AtomicU64,
) -> bool {
    // SYNC: an RMW (reads the latest value): if it precedes the subscriber's increment in
    // `park`, that increment acquires our commit; otherwise we see the sleeper and wake it.
    if sleepers.fetch_add(0, Ordering::AcqRel) == 0 {
        return false;
    }
    event.fetch_add(1, Ordering::SeqCst);
    futex.wake_all(event);
    wakes.fetch_add(1, Ordering::Relaxed);
    true
}

/// The subscriber's half: announce, re-check with `ready`, sleep at most `timeout`. Returns what
/// the re-check returned if it found something (`Some`), else `None` after the sleep.
pub(crate) fn park<F: Futex, T>(
    futex: &F,
    event: &AtomicU32,
    sleepers: &AtomicU32,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    // SYNC: AcqRel RMW pairs with the RMW in `wake_if_sleeping` (see the module docs).
    sleepers.fetch_add(1, Ordering::AcqRel);
    let ev = event.load(Ordering::Acquire);
    let found = ready();
    if found.is_none() {
        futex.wait(event, ev, timeout);
    }
    sleepers.fetch_sub(1, Ordering::SeqCst);
    found
}
