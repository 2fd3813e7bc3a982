//! Wait strategies, and the sleep/wake handshake on a topic's futex word.
//!
//! The handshake (a Dekker pair; every operation named here is SeqCst):
//!
//! | subscriber (`park`)                  | publisher (`wake_if_sleeping`)        |
//! |--------------------------------------|---------------------------------------|
//! | `sleepers += 1`                      | commit the slot's stamp (swap)        |
//! | `ev = event`                         | `if sleepers > 0`:                    |
//! | re-check for a message (fence first) | `event += 1`; `FUTEX_WAKE` all        |
//! | `FUTEX_WAIT(event, ev, timeout)`     |                                       |
//! | `sleepers -= 1`                      |                                       |
//!
//! Either the publisher sees `sleepers > 0` and bumps `event` (so the futex wait returns at once
//! if it has not started yet), or the subscriber's re-check sees the new stamp. There is no third
//! outcome, so no wake-up is lost; the loom model `loom_tests::park_never_misses_a_wake` checks
//! this. When nobody sleeps, publishing costs one load of `sleepers` and no system call.
//!
//! The futex calls are a parameter ([`Futex`]) so the protocol runs under loom with a model
//! futex.

use std::time::Duration;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

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
        WaitStrategy::SpinThenPark { spin: Duration::from_micros(50) }
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

/// The publisher's half: call after committing a slot (the commit is a SeqCst swap).
/// Returns true if it issued a wake.
#[inline]
pub(crate) fn wake_if_sleeping<F: Futex>(
    futex: &F,
    event: &AtomicU32,
    sleepers: &AtomicU32,
    wakes: &AtomicU64,
) -> bool {
    // SYNC: SeqCst pairs with the SeqCst `sleepers` increment and fence in `park` (Dekker).
    if sleepers.load(Ordering::SeqCst) == 0 {
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
    // SYNC: SeqCst pairs with the SeqCst load of `sleepers` in `wake_if_sleeping`.
    sleepers.fetch_add(1, Ordering::SeqCst);
    let ev = event.load(Ordering::SeqCst);
    // SYNC: this SeqCst fence orders our announcement before the re-check's stamp loads, against
    // the publisher's SeqCst commit swap and `sleepers` load.
    fence(Ordering::SeqCst);
    let found = ready();
    if found.is_none() {
        futex.wait(event, ev, timeout);
    }
    sleepers.fetch_sub(1, Ordering::SeqCst);
    found
}
