//! The measuring loops, shared by every transport so each figure comes from the same method.
//!
//! * **Ping-pong** (parent): one message in flight. The initiator reads the clock, sends, waits for
//!   the echo, reads the clock again and records half the round trip as the one-way latency. Both
//!   timestamps come from one process, so no cross-process clock comparison is involved, and a
//!   symmetric path (same payload, same wait mode both ways) makes half the round trip the one-way
//!   cost. Throughput is round trips per second. Each side writes and reads only the 8-byte
//!   sequence number ([`Endpoint::send_seq`], [`Endpoint::recv_seq`]): through private buffers
//!   that the transport copies (every transport but the shmbus borrow path), or in place.
//! * **Open loop** (parent publishes, children receive): message `i` is *intended* to leave at
//!   `start + i / rate` and carries that intended time; the receiver records `now - intended`. A
//!   publisher that falls behind (blocked in `write`, descheduled) sends late, and the delay lands
//!   in the latency of every message it held up: coordinated omission is counted, not hidden.
//! * **Stream** (parent publishes as fast as the transport accepts): one message in
//!   [`STREAM_STAMP_EVERY`] carries its send time (the others carry 0); receivers record
//!   `now - sent` for those and count every message and byte. Reading the clock costs about as
//!   much as handing over a small message on shared memory, so a clock read per message on each
//!   side would measure the clock instead of the transport.
//!
//! Every loop is bounded by a message count and by time. The first part of a run is warm-up and
//! not recorded (page faults, caches, the receiver's first wake-up).

use std::time::Duration;

use super::Result;
use super::clock::{now_ns, ns, wait_until};
use super::hist::{self, Hist};
use super::msg;
use super::transports::{Endpoint, Recv};

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Measuring time.
    pub duration: Duration,
    /// Most messages (or round trips) measured.
    pub max_count: u64,
}

impl Limits {
    /// Warm-up: a tenth of the duration, at most 100 ms.
    pub fn warmup(&self) -> Duration {
        (self.duration / 10).min(Duration::from_millis(100))
    }
}

/// Longest a single ping-pong round trip may take before the run is abandoned.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// Most warm-up round trips.
const WARMUP_ROUND_TRIPS: u64 = 2_000;

/// Stream messages skipped as warm-up by receivers.
pub const STREAM_WARMUP_MSGS: u64 = 1_000;

/// In a stream, one message in this many carries its send time (and the sender checks its end
/// time only then); the others carry 0, and receivers read the clock only for stamped ones.
pub const STREAM_STAMP_EVERY: u64 = 64;

/// What the parent measured in a ping-pong.
pub struct PingPong {
    /// One-way latency (round trip / 2), ns.
    pub hist: Hist,
    /// Round trips per second.
    pub round_trips_per_s: f64,
}

/// Runs the ping-pong initiator: warm-up, then measured round trips, then [`msg::END`].
///
/// # Errors
/// A transport error, a timeout, or a reply with the wrong sequence number.
pub fn pingpong(ep: &mut dyn Endpoint, payload: usize, limits: &Limits) -> Result<PingPong> {
    let mut out = vec![0u8; payload];
    let mut back = vec![0u8; payload];
    let mut seq = 0u64;
    let warm_end = now_ns() + ns(limits.warmup());
    while seq < WARMUP_ROUND_TRIPS && now_ns() < warm_end {
        round_trip(ep, &mut out, &mut back, seq)?;
        seq += 1;
    }
    let mut h = hist::new();
    let start = now_ns();
    let end = start + ns(limits.duration);
    let mut now = start;
    let mut count = 0u64;
    while count < limits.max_count && now < end {
        let t0 = now_ns();
        round_trip(ep, &mut out, &mut back, seq)?;
        now = now_ns();
        hist::record(&mut h, (now - t0) / 2);
        seq += 1;
        count += 1;
    }
    ep.send_seq(&mut out, msg::END)?;
    let secs = (now - start) as f64 / 1e9;
    Ok(PingPong {
        hist: h,
        round_trips_per_s: if secs > 0.0 { count as f64 / secs } else { 0.0 },
    })
}

/// Sends `seq` and waits for its echo. `out` and `back` are the initiator's private buffers
/// (used by the copy path; the borrow path writes and reads the header in place).
fn round_trip(ep: &mut dyn Endpoint, out: &mut [u8], back: &mut [u8], seq: u64) -> Result<()> {
    ep.send_seq(out, seq)?;
    let deadline = now_ns() + ns(ROUND_TRIP_TIMEOUT);
    match ep.recv_seq(back, deadline)? {
        Recv::Msg(got) if got == seq => Ok(()),
        Recv::Msg(got) => Err(format!("echo of {seq} came back as {got}").into()),
        Recv::Lost(n) => Err(format!("{n} ping-pong messages lost").into()),
        Recv::TimedOut => Err(format!("no echo of message {seq} within 5 s").into()),
    }
}

/// Runs the echo: returns every message to the sender until [`msg::END`] or `deadline_ns`.
/// Returns the number of messages echoed.
///
/// # Errors
/// A transport error or a lost message.
pub fn echo(ep: &mut dyn Endpoint, payload: usize, deadline_ns: u64) -> Result<u64> {
    let mut buf = vec![0u8; payload];
    let mut count = 0u64;
    loop {
        match ep.recv_seq(&mut buf, deadline_ns)? {
            Recv::Msg(msg::END) => return Ok(count),
            Recv::Msg(seq) => {
                // Copy path: sends back the buffer it received into (the sequence number is
                // already there); borrow path: writes the sequence number into a new slot.
                ep.send_seq(&mut buf, seq)?;
                count += 1;
            }
            Recv::Lost(n) => return Err(format!("echo: {n} messages lost").into()),
            Recv::TimedOut => return Err("echo: no end-of-run message before the deadline".into()),
        }
    }
}

/// Publishes at `rate` messages per second with intended-time stamps, then [`msg::END`].
/// Returns the number of messages sent (warm-up included).
///
/// A publisher that falls behind its schedule sends at once, and the delay counts in the
/// latency of every late message; one that falls more than [`max_lag`] behind gives up with an
/// error: the transport cannot take this rate, and the run would otherwise go on long past its
/// duration (until the children's deadline killed it).
///
/// # Errors
/// A transport error, or the publisher fell more than [`max_lag`] behind.
pub fn open_loop(ep: &mut dyn Endpoint, payload: usize, rate: u64, limits: &Limits) -> Result<u64> {
    let mut buf = vec![0u8; payload];
    let period = 1e9 / rate.max(1) as f64;
    let start = now_ns() + 1_000_000;
    let end = start.saturating_add(ns(limits.warmup() + limits.duration));
    let max_lag = ns(max_lag(limits));
    let mut sent = 0u64;
    while sent < limits.max_count {
        let intended = start.saturating_add((sent as f64 * period) as u64);
        if intended >= end {
            break;
        }
        let now = wait_until(intended);
        if now - intended > max_lag {
            return Err(format!(
                "open loop at {rate} msgs/s: the publisher fell {:.2} s behind its schedule after \
                 {sent} messages; this transport cannot keep up with this rate (lower --rate or \
                 --fanout-rate)",
                (now - intended) as f64 / 1e9
            )
            .into());
        }
        msg::put_seq(&mut buf, sent);
        msg::put_time(&mut buf, intended);
        ep.send(&buf)?;
        sent += 1;
    }
    finish(ep, &mut buf, sent)
}

/// How far behind its schedule an open-loop publisher may fall: the run's duration, at least
/// 5 s (a machine that stalls a process for a second or two must not fail the run).
pub fn max_lag(limits: &Limits) -> Duration {
    limits.duration.max(Duration::from_secs(5))
}

/// Publishes as fast as the transport accepts, stamping the send time of one message in
/// [`STREAM_STAMP_EVERY`], then [`msg::END`]. Returns the number of messages sent (warm-up
/// included).
///
/// # Errors
/// A transport error.
pub fn stream(ep: &mut dyn Endpoint, payload: usize, limits: &Limits) -> Result<u64> {
    let mut buf = vec![0u8; payload];
    let end = now_ns() + ns(limits.warmup() + limits.duration);
    let mut sent = 0u64;
    while sent < limits.max_count {
        let stamp = if sent.is_multiple_of(STREAM_STAMP_EVERY) {
            let now = now_ns();
            if now >= end {
                break;
            }
            now
        } else {
            0
        };
        msg::put_seq(&mut buf, sent);
        msg::put_time(&mut buf, stamp);
        ep.send(&buf)?;
        sent += 1;
    }
    finish(ep, &mut buf, sent)
}

/// Sends the end-of-run message, which carries the number of messages sent.
fn finish(ep: &mut dyn Endpoint, buf: &mut [u8], sent: u64) -> Result<u64> {
    msg::put_seq(buf, msg::END);
    msg::put_time(buf, sent);
    ep.send(buf)?;
    Ok(sent)
}

/// What a receiver measured.
pub struct Received {
    /// `now - stamp` of every measured stamped message, ns.
    pub hist: Hist,
    /// Messages measured: received from the first stamped message after warm-up up to the last
    /// stamped one, both included (every message, in open loop and fanout).
    pub count: u64,
    /// Messages lost: reported by the transport, or seen as gaps in the sequence numbers.
    pub lost: u64,
    /// Payload bytes of the `count` messages.
    pub bytes: u64,
    /// Clock at the first measured message.
    pub first_ns: u64,
    /// Clock at the last measured message.
    pub last_ns: u64,
}

/// Receives until [`msg::END`] (or `deadline_ns`), recording latencies of stamped messages with
/// sequence >= `skip` (a stamp of 0 means "not stamped": no clock read, counted only).
///
/// # Errors
/// A transport error, or the deadline passing before the end-of-run message.
pub fn receive(
    ep: &mut dyn Endpoint,
    payload: usize,
    skip: u64,
    deadline_ns: u64,
) -> Result<Received> {
    let mut buf = vec![0u8; payload];
    let mut r = Received {
        hist: hist::new(),
        count: 0,
        lost: 0,
        bytes: 0,
        first_ns: 0,
        last_ns: 0,
    };
    let (mut next, mut reported) = (0u64, 0u64);
    // Messages and bytes since the first measured stamped message, included.
    let (mut since_first, mut bytes_since_first) = (0u64, 0u64);
    loop {
        match ep.recv(&mut buf, deadline_ns)? {
            Recv::Msg(len) => {
                let seq = msg::seq(&buf);
                if seq == msg::END {
                    // Messages that never arrived at the end are lost too.
                    r.lost += msg::time(&buf).saturating_sub(next).max(reported);
                    return Ok(r);
                }
                // A gap the transport reported counts once, whichever way it was seen.
                r.lost += (seq.saturating_sub(next)).max(reported);
                reported = 0;
                next = seq + 1;
                let stamp = msg::time(&buf);
                if seq >= skip && (stamp != 0 || since_first > 0) {
                    since_first += 1;
                    bytes_since_first += len as u64;
                }
                if seq >= skip && stamp != 0 {
                    let now = now_ns();
                    hist::record(&mut r.hist, now.saturating_sub(stamp));
                    if r.first_ns == 0 {
                        r.first_ns = now;
                    }
                    r.last_ns = now;
                    r.count = since_first;
                    r.bytes = bytes_since_first;
                }
            }
            Recv::Lost(n) => reported += n,
            Recv::TimedOut => {
                return Err("receiver: no end-of-run message before the deadline".into());
            }
        }
    }
}

/// Open-loop warm-up messages to skip at `rate`.
pub fn open_loop_skip(rate: u64, limits: &Limits) -> u64 {
    (rate as f64 * limits.warmup().as_secs_f64()) as u64
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// An in-memory transport: `send` queues a copy, `recv` takes the oldest (or times out).
    #[derive(Default)]
    struct Queue(VecDeque<Vec<u8>>);

    impl Endpoint for Queue {
        fn send(&mut self, msg: &[u8]) -> Result<()> {
            self.0.push_back(msg.to_vec());
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8], _deadline_ns: u64) -> Result<Recv> {
            Ok(match self.0.pop_front() {
                Some(m) => {
                    buf.copy_from_slice(&m);
                    Recv::Msg(m.len())
                }
                None => Recv::TimedOut,
            })
        }
    }

    /// A transport that takes 300 ms per send, and counts them.
    struct Slow {
        sends: u32,
    }

    impl Endpoint for Slow {
        fn send(&mut self, _msg: &[u8]) -> Result<()> {
            self.sends += 1;
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        }

        fn recv(&mut self, _buf: &mut [u8], _deadline_ns: u64) -> Result<Recv> {
            Ok(Recv::TimedOut)
        }
    }

    #[test]
    fn an_open_loop_that_cannot_keep_up_gives_up_with_a_clear_error() {
        let limits = Limits {
            duration: Duration::from_millis(100),
            max_count: 1 << 30,
        };
        let mut slow = Slow { sends: 0 };
        let err = open_loop(&mut slow, 64, 1000, &limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot keep up with this rate"), "{err}");
        // Once it lags max_lag (5 s) behind: about 17 sends of 300 ms, not the hundred and more
        // the schedule held (100 ms at 1000/s, and the warm-up).
        assert!(slow.sends < 100, "{} sends", slow.sends);
    }

    #[test]
    fn stream_stamps_one_message_in_64_and_counts_every_one() {
        let limits = Limits {
            duration: Duration::from_secs(10),
            max_count: 10_000,
        };
        let mut q = Queue::default();
        let sent = stream(&mut q, 64, &limits).unwrap();
        assert_eq!(sent, 10_000, "bounded by the count, not the time");
        let stamped = q.0.iter().filter(|m| msg::time(m) != 0).count();
        // Messages 0, 64, ..., 9984 carry a time; the END message carries the count.
        assert_eq!(stamped as u64, sent.div_ceil(STREAM_STAMP_EVERY) + 1);
        let r = receive(&mut q, 64, 1_000, u64::MAX).unwrap();
        // Measured from the first stamped message at or after the warm-up (1024) to the last
        // (9984), both included; every one counted, only the stamped ones timed.
        assert_eq!(r.count, 9984 - 1024 + 1);
        assert_eq!(r.bytes, r.count * 64);
        assert_eq!(r.hist.len(), (9984 - 1024) / STREAM_STAMP_EVERY + 1);
        assert_eq!(r.lost, 0);
        assert!(r.first_ns > 0 && r.last_ns >= r.first_ns);
    }
}
