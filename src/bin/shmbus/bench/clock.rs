//! The one clock of the benchmark: `CLOCK_MONOTONIC`, in nanoseconds.
//!
//! Every process on the host reads the same `CLOCK_MONOTONIC`, so a timestamp taken in one process
//! and compared in another gives a one-way latency without any clock synchronisation. It is the
//! clock `shmbus::monotonic_ns()` and `MessageInfo::timestamp_ns` use.

use std::hint::black_box;
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// Below this distance `wait_until` spins instead of sleeping (`nanosleep` overshoots by ~50 µs).
const SPIN_BELOW_NS: u64 = 200_000;

/// Reads `CLOCK_MONOTONIC` in nanoseconds.
#[inline]
pub fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    // Monotonic time is non-negative and fits u64 nanoseconds for 584 years of uptime.
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Converts a duration to nanoseconds, saturating.
pub fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Waits until `now_ns() >= t`: sleeps while far away, then spins for precision. Returns the
/// time it saw (`>= t`; later if the caller was already late).
pub fn wait_until(t: u64) -> u64 {
    loop {
        let now = now_ns();
        if now >= t {
            return now;
        }
        let left = t - now;
        if left > SPIN_BELOW_NS {
            std::thread::sleep(Duration::from_nanos(left - SPIN_BELOW_NS));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Mean cost of one `clock_gettime(CLOCK_MONOTONIC)`, in ns (every latency sample pays two).
pub fn read_overhead_ns() -> f64 {
    const N: u64 = 200_000;
    for _ in 0..1_000 {
        black_box(now_ns());
    }
    let start = now_ns();
    for _ in 0..N {
        black_box(now_ns());
    }
    let end = now_ns();
    (end - start) as f64 / N as f64
}
