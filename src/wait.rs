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
//! The fenced variant (the default where the kernel allows it). That locked instruction is paid
//! on every publish, and it waits until the slot's stores have left the store buffer: with a
//! subscriber reading right behind, a cache-line transfer per message (in 64 B streaming, 8% of
//! throughput lossy and up to 20% lossless on our test machine). A publisher whose process is
//! registered for global expedited membarriers (`sys::membarrier_register`, Linux 4.16+) replaces
//! its RMW by a plain load of `sleepers` after a compiler fence, and every subscriber issues
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` between its increment and its re-check, which
//! makes every CPU that runs a registered publisher execute a full barrier. Let that barrier
//! fall at point B in the publisher's instruction stream:
//!
//! * commit and load of `sleepers` both before B: the barrier drains the commit to memory before
//!   the membarrier call returns, so the subscriber's re-check, which follows, finds the message;
//! * the load after B: the subscriber's increment was visible before the barrier was sent (the
//!   call begins with a full barrier in the caller), so the publisher reads `n > 0` and wakes;
//! * a publisher not running during the call passes through a barrier when it is scheduled:
//!   one of the two cases above.
//!
//! (The commit cannot follow B while the load precedes it: the load comes after the commit in
//! program order, and the compiler fence keeps it there.) Publishers that could not register use
//! the RMW; the subscriber's side is the same for both. If the subscriber's membarrier fails
//! (a filtered system call in one process only), a fenced publisher can miss it: the subscriber
//! then sleeps at most [`UNFENCED_NAP`] at a time, which bounds the delay. Loom models neither
//! membarrier nor the IPI: the models check the RMW variant, and the argument above is the
//! kernel's documented guarantee (`membarrier(2)`), as used by userspace RCU.
//!
//! The futex calls are a parameter ([`Futex`]) so the protocol runs under loom with a model
//! futex.

use std::time::Duration;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence};

/// Longest sleep of a parked subscriber whose membarrier failed (see the module docs).
pub(crate) const UNFENCED_NAP: Duration = Duration::from_millis(1);

/// How a subscriber waits for the next message in `recv` and `recv_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Poll without sleeping (with the CPU's spin-wait hint, `PAUSE` on x86, between polls): the
    /// lowest latency, one CPU busy while waiting. Use only with a core to spare per spinning
    /// subscriber.
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
    /// The subscriber's half of the fenced handshake: a full barrier on every CPU running a
    /// registered publisher. False if it could not be issued.
    fn heavy_barrier(&self) -> bool;
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
    fn heavy_barrier(&self) -> bool {
        crate::sys::membarrier_global()
    }
}

/// How a publisher checks for sleepers after a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeCheck {
    /// An RMW on `sleepers` (works everywhere; what loom checks).
    Rmw,
    /// A plain load: only for a publisher whose process is registered for global expedited
    /// membarriers (see the module docs).
    Fenced,
}

impl WakeCheck {
    /// `Fenced` if this process could register for membarriers, else `Rmw`.
    #[cfg(not(loom))]
    pub(crate) fn for_this_process() -> WakeCheck {
        if crate::sys::membarrier_register() {
            WakeCheck::Fenced
        } else {
            WakeCheck::Rmw
        }
    }
}

/// The publisher's half: call after committing a slot. Returns true if it issued a wake.
#[inline]
pub(crate) fn wake_if_sleeping<F: Futex>(
    futex: &F,
    event: &AtomicU32,
    sleepers: &AtomicU32,
    wakes: &AtomicU64,
    check: WakeCheck,
) -> bool {
    let n = match check {
        // SYNC: an RMW (reads the latest value): if it precedes the subscriber's increment in
        // `park`, that increment acquires our commit; otherwise we see the sleeper and wake it.
        WakeCheck::Rmw => sleepers.fetch_add(0, Ordering::AcqRel),
        WakeCheck::Fenced => {
            // SYNC: the compiler keeps this load after the commit; the CPU may not, and the
            // subscriber's membarrier orders the two instead (see the module docs).
            compiler_fence(Ordering::SeqCst);
            sleepers.load(Ordering::Relaxed)
        }
    };
    if n == 0 {
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
    // SYNC: orders our increment before the re-check for fenced publishers (module docs).
    let fenced = futex.heavy_barrier();
    let ev = event.load(Ordering::Acquire);
    let found = ready();
    if found.is_none() {
        let timeout = if fenced {
            timeout
        } else {
            timeout.min(UNFENCED_NAP)
        };
        futex.wait(event, ev, timeout);
    }
    sleepers.fetch_sub(1, Ordering::SeqCst);
    found
}
