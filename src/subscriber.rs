//! Subscribers: a private cursor over a topic's ring, validated copies, loss reporting, waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, KnownLayout};

use crate::error::{RecvError, TopicError};
use crate::layout::SubRecord;
use crate::publisher::{LIVENESS_WINDOW, repair_if_abandoned};
use crate::ring::Ring;
use crate::seqlock::{self, Peek};
use crate::sync::atomic::Ordering;
use crate::wait::{self, SysFutex, WaitStrategy};
use crate::{gate, topic};

/// Where a new subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartAt {
    /// At the next message published after the subscriber is created.
    #[default]
    Next,
    /// At the oldest message still in the ring (up to `slots` messages back). On a lossless
    /// topic, delivery is guaranteed from the next message on; the older ones are delivered if
    /// no publisher overwrites them first (else reported as [`RecvError::Lost`]), and borrowing
    /// one lends a copy.
    Oldest,
}

/// Options of a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberConfig {
    /// How `recv` and `recv_timeout` wait.
    pub wait: WaitStrategy,
    /// Where reading starts.
    pub start: StartAt,
    /// How long the next message may stay claimed but unwritten before this subscriber checks
    /// whether its writer died (and closes the slot if so). A parked subscriber also wakes this
    /// often to make that check. Default 100 ms.
    pub liveness_window: Duration,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            wait: WaitStrategy::default(),
            start: StartAt::Next,
            liveness_window: LIVENESS_WINDOW,
        }
    }
}

/// What a receive returns besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    /// Sequence number in the topic's total order (0, 1, 2, … across all publishers).
    pub seq: u64,
    /// Payload length in bytes.
    pub len: usize,
    /// When it was published: CLOCK_MONOTONIC in ns (see [`monotonic_ns`](crate::monotonic_ns)),
    /// read just before the message was committed, if its publisher stamps messages
    /// ([`PublisherConfig::timestamps`](crate::PublisherConfig::timestamps)); 0 otherwise (the
    /// default).
    pub timestamp_ns: u64,
    /// The publisher's id ([`Publisher::id`](crate::Publisher::id)).
    pub publisher_id: u32,
}

/// Receives every message of one topic, in order.
///
/// A subscriber has its own cursor. On a lossy topic, if it falls more than the ring's `slots`
/// messages behind, the oldest messages are overwritten and the next receive returns
/// [`RecvError::Lost`] with their exact range; the following one continues with the oldest
/// message still available. On a lossless topic publishers wait for it instead. Payloads
/// are copied out with atomic loads and validated against the slot's seqlock, so a receive never
/// returns a torn or overwritten message.
///
/// `Subscriber` is `Send` but not `Sync` (methods take `&mut self`).
///
/// # Examples
/// ```
/// # let name = format!("doc-sub-{}", std::process::id());
/// use std::time::Duration;
/// let bus = shmbus::Bus::create(&name, &shmbus::BusConfig::default())?;
/// let mut subscriber = bus.subscriber("greetings")?;
/// let mut publisher = bus.publisher("greetings")?;
/// publisher.publish(b"hello")?;
/// let mut buf = [0u8; 256];
/// let info = subscriber.recv_timeout(&mut buf, Duration::from_secs(1))?;
/// assert_eq!(&buf[..info.len], b"hello");
/// # drop((publisher, subscriber, bus)); shmbus::Bus::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Subscriber {
    ring: Arc<Ring>,
    index: u32,
    next: u64,
    wait: WaitStrategy,
    liveness_window: Duration,
    delivered: u64,
    lost: u64,
    empty_polls: u32,
    stuck_since: Option<Instant>,
    scratch: Vec<u8>,
    /// The sequence our registration made the lossless gate protect (the claim our epoch bump
    /// read): publishers that had not seen us may still overwrite the older messages that
    /// `StartAt::Oldest` reads, so those are never lent in place (see `Sample`).
    guarded_from: u64,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.ring.name)
            .field("next", &self.next)
            .field("wait", &self.wait)
            .finish()
    }
}

/// Empty polls between two checks for a slot stuck in the hands of a dead writer.
const STUCK_CHECK_EVERY: u32 = 4096;

/// Whether a slot stamp seen for `seq` means "nothing yet" (`Peek::NotYet`, `Peek::Writing`):
/// never written, an older sequence, or `seq` being written. Stamps 1 to 3 name no sequence a
/// writer can hold (a hostile writer's): not pending, so that `poll_mode` decodes them.
#[inline(always)]
fn pending(stamp: u64, seq: u64) -> bool {
    (stamp < seqlock::stamp(seq, seqlock::COMMITTED)
        && (stamp == 0 || stamp >= seqlock::stamp(0, seqlock::COMMITTED)))
        || stamp == seqlock::stamp(seq, seqlock::WRITING)
}

impl Subscriber {
    pub(crate) fn new(ring: Arc<Ring>, cfg: &SubscriberConfig) -> Result<Subscriber, TopicError> {
        let (index, _generation) = topic::take_record(
            ring.geom.max_subscribers,
            |i| {
                let r = ring.sub_record(i);
                (&r.owner, &r.generation)
            },
            |_| {},
        )
        .ok_or(TopicError::SubscriberTableFull)?;
        let rec = ring.sub_record(index);
        // Registers our cursor with the lossless gate (harmless on lossy topics).
        let claim = gate::register(&ring.header().claim, &rec.cursor);
        let next = match cfg.start {
            StartAt::Next => claim,
            StartAt::Oldest => claim.saturating_sub(u64::from(ring.geom.slot_count)),
        };
        rec.cursor.store(next, Ordering::Release);
        rec.delivered.store(0, Ordering::Relaxed);
        crate::crash_point("subscriber-registered");
        rec.lost.store(0, Ordering::Relaxed);
        Ok(Subscriber {
            ring,
            index,
            next,
            wait: cfg.wait,
            liveness_window: cfg.liveness_window.max(Duration::from_millis(1)),
            delivered: 0,
            lost: 0,
            empty_polls: 0,
            stuck_since: None,
            scratch: Vec::new(),
            guarded_from: claim,
        })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.ring.name
    }

    /// The largest message on this topic: a buffer of this size always suffices.
    pub fn capacity(&self) -> usize {
        self.ring.geom.payload_size as usize
    }

    /// Sequence number of the next message this subscriber will read.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// How many messages have been published (claimed) that this subscriber has not read yet.
    pub fn lag(&self) -> u64 {
        gate::next_seq(&self.ring.header().claim).saturating_sub(self.next)
    }

    /// Messages delivered and lost so far: `(delivered, lost)`.
    pub fn counts(&self) -> (u64, u64) {
        (self.delivered, self.lost)
    }

    /// The wait strategy used by `recv` and `recv_timeout`.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    #[inline]
    fn record(&self) -> &SubRecord {
        self.ring.sub_record(self.index)
    }

    #[inline]
    fn advance_to(&mut self, next: u64) {
        self.next = next;
        self.empty_polls = 0;
        self.stuck_since = None;
        // SYNC: Release pairs with the Acquire cursor load in
        // `publisher::slowest_cursor`: our reads of the slots before `next` happen before a
        // lossless publisher overwrites them.
        self.record().cursor.store(next, Ordering::Release);
    }

    /// Counts message `seq` as delivered and moves past it.
    #[inline]
    fn consume(&mut self, seq: u64) {
        self.delivered += 1;
        self.record()
            .delivered
            .store(self.delivered, Ordering::Relaxed);
        self.advance_to(seq + 1);
    }

    #[inline]
    fn lose(&mut self, first_seq: u64, next: u64) -> RecvError {
        let count = next - first_seq;
        self.lost += count;
        self.record().lost.store(self.lost, Ordering::Relaxed);
        self.advance_to(next);
        RecvError::Lost { first_seq, count }
    }

    /// One attempt to read the next message into `buf`.
    ///
    /// The two outcomes of nearly every call, a committed message that fits and nothing yet
    /// (with its occasional stuck-slot check), are decided here, inlined into the caller's loop;
    /// everything else (and any doubt: a length out of range, a torn copy, an overrun) goes to
    /// `poll_mode`, which looks at the slot again from the start.
    #[inline(always)]
    fn poll(&mut self, buf: &mut [u8], check_stuck: bool) -> Result<MessageInfo, RecvError> {
        let seq = self.next;
        let (slot, words) = self.ring.slot_and_payload(seq);
        let committed = seqlock::stamp(seq, seqlock::COMMITTED);
        // SYNC: Acquire pairs with the Release in `end_write`, as in `seqlock::peek`.
        let stamp = slot.stamp.load(Ordering::Acquire);
        if stamp == committed {
            let len = slot.len.load(Ordering::Relaxed) as usize;
            // `words` hold `payload_size` bytes: a longer length is a hostile writer's, a
            // longer message than `buf` is the caller's error; both are `poll_mode`'s to report.
            if len <= words.len() * 8 && len <= buf.len() {
                let timestamp_ns = slot.timestamp_ns.load(Ordering::Relaxed);
                let publisher_id = slot.publisher.load(Ordering::Relaxed);
                seqlock::load_payload(words, &mut buf[..len]);
                if seqlock::validate(&slot.stamp, stamp) {
                    self.consume(seq);
                    return Ok(MessageInfo {
                        seq,
                        len,
                        timestamp_ns,
                        publisher_id,
                    });
                }
            }
        } else if pending(stamp, seq) {
            return Err(self.empty(seq, stamp, check_stuck));
        }
        self.poll_mode(Some(buf), check_stuck)
    }

    /// [`poll`](Self::poll) for a borrow (lossless topics): the message is validated and left
    /// in place, not consumed; the same two outcomes inline, the rest to `poll_mode`. (Its first
    /// look at the slot is written out again rather than shared with `poll` through a helper
    /// returning the header: tried, that took the copy receive from 117 to 128 instructions.)
    #[inline(always)]
    fn poll_borrow(&mut self, check_stuck: bool) -> Result<MessageInfo, RecvError> {
        let seq = self.next;
        let slot = self.ring.slot(seq);
        let committed = seqlock::stamp(seq, seqlock::COMMITTED);
        // SYNC: Acquire pairs with the Release in `end_write`, as in `seqlock::peek`.
        let stamp = slot.stamp.load(Ordering::Acquire);
        if stamp == committed {
            let len = slot.len.load(Ordering::Relaxed) as usize;
            // A longer length than the slot holds is a hostile writer's: `poll_mode` reports it.
            if len <= self.ring.geom.payload_size as usize {
                let timestamp_ns = slot.timestamp_ns.load(Ordering::Relaxed);
                let publisher_id = slot.publisher.load(Ordering::Relaxed);
                // Nobody may overwrite the slot while our cursor is at `seq` (lossless) unless
                // `seq` is from before our registration (`StartAt::Oldest`, copied by `lend`) or
                // the writer is hostile: the re-check makes the header we read consistent.
                if seqlock::validate(&slot.stamp, stamp) {
                    return Ok(MessageInfo {
                        seq,
                        len,
                        timestamp_ns,
                        publisher_id,
                    });
                }
            }
        } else if pending(stamp, seq) {
            return Err(self.empty(seq, stamp, check_stuck));
        }
        self.poll_mode(None, check_stuck)
    }

    /// Nothing at `seq` yet (its slot showed `stamp`): counts the empty poll and, now and then
    /// or when asked, checks whether the slot is stuck, as `poll_mode` does.
    #[inline(always)]
    fn empty(&mut self, seq: u64, stamp: u64, check_stuck: bool) -> RecvError {
        self.empty_polls = self.empty_polls.wrapping_add(1);
        if check_stuck || self.empty_polls.is_multiple_of(STUCK_CHECK_EVERY) {
            self.check_stuck(seq, stamp);
        }
        RecvError::Empty
    }

    /// One attempt at the next message: copied into `buf` and consumed, or (`None`, lossless
    /// topics) validated and left in place for a [`Sample`], not consumed.
    #[inline]
    fn poll_mode(
        &mut self,
        mut buf: Option<&mut [u8]>,
        check_stuck: bool,
    ) -> Result<MessageInfo, RecvError> {
        // Looks again after a copy overwritten meanwhile (at most twice for an honest writer:
        // the next look sees the overrun) or an aborted sequence (at most a ring of them).
        // Bounded, so that a process that keeps rewriting stamps cannot keep a `try_recv` here:
        // past the bound this attempt finds nothing, and the next one goes on from here.
        let mut looks = u64::from(self.ring.geom.slot_count) + 64;
        loop {
            looks -= 1;
            if looks == 0 {
                return Err(RecvError::Empty);
            }
            let seq = self.next;
            let ring = &*self.ring;
            let slot = ring.slot(seq);
            match seqlock::peek(&slot.stamp, seq) {
                Peek::Committed { stamp } => {
                    let len = slot.len.load(Ordering::Relaxed) as usize;
                    let timestamp_ns = slot.timestamp_ns.load(Ordering::Relaxed);
                    let publisher_id = slot.publisher.load(Ordering::Relaxed);
                    if len > ring.geom.payload_size as usize {
                        if !seqlock::validate(&slot.stamp, stamp) {
                            continue; // overwritten meanwhile: look again
                        }
                        // A committed slot with an impossible length: a buggy or hostile
                        // writer. Never read past the slot; report the message as lost.
                        return Err(self.lose(seq, seq + 1));
                    }
                    let info = MessageInfo {
                        seq,
                        len,
                        timestamp_ns,
                        publisher_id,
                    };
                    let Some(buf) = buf.as_deref_mut() else {
                        // Borrow: nobody may overwrite the slot while our cursor is at `seq`
                        // (lossless) unless `seq` is from before our registration (copied by
                        // `lend`) or the writer is hostile: the re-check makes the header we
                        // read consistent.
                        if !seqlock::validate(&slot.stamp, stamp) {
                            continue;
                        }
                        return Ok(info);
                    };
                    if len > buf.len() {
                        if !seqlock::validate(&slot.stamp, stamp) {
                            continue;
                        }
                        return Err(RecvError::BufferTooSmall { needed: len });
                    }
                    seqlock::load_payload(ring.payload_words(seq), &mut buf[..len]);
                    if !seqlock::validate(&slot.stamp, stamp) {
                        continue; // torn: the next peek sees the overrun and resynchronises
                    }
                    self.consume(seq);
                    return Ok(info);
                }
                Peek::NotYet { stamp } | Peek::Writing { stamp } => {
                    return Err(self.empty(seq, stamp, check_stuck));
                }
                Peek::Aborted => self.advance_to(seq + 1),
                Peek::Repaired => return Err(self.lose(seq, seq + 1)),
                Peek::Overrun => {
                    let claim = gate::next_seq(&ring.header().claim);
                    let oldest = claim.saturating_sub(u64::from(ring.geom.slot_count));
                    return Err(self.lose(seq, oldest.max(seq + 1)));
                }
            }
        }
    }

    /// The slot for `seq` has been empty or mid-write: if `seq` was claimed and nobody alive can
    /// finish it for a whole liveness window, close it so the topic moves on.
    #[cold]
    fn check_stuck(&mut self, seq: u64, stamp: u64) {
        if gate::next_seq(&self.ring.header().claim) <= seq {
            self.stuck_since = None; // not claimed yet: simply no message
            return;
        }
        let since = *self.stuck_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.liveness_window {
            repair_if_abandoned(&self.ring, seq, stamp);
            self.stuck_since = None;
        }
    }

    /// Receives the next message into `buf` if one is available, without waiting.
    ///
    /// # Errors
    /// [`RecvError::Empty`] if none is available; [`RecvError::Lost`] if messages were lost
    /// (the cursor moved past them); [`RecvError::BufferTooSmall`] if `buf` cannot hold the
    /// next message (it stays unread).
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<MessageInfo, RecvError> {
        self.poll(buf, false)
    }

    /// Receives the next message, waiting as long as it takes (with the subscriber's
    /// [`WaitStrategy`]).
    ///
    /// # Errors
    /// [`RecvError::Lost`] and [`RecvError::BufferTooSmall`] as in [`try_recv`](Self::try_recv).
    #[inline]
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<MessageInfo, RecvError> {
        match self.poll(buf, false) {
            Err(RecvError::Empty) => self.wait_for(buf, None),
            other => other,
        }
    }

    /// Receives the next message, waiting up to `timeout`.
    ///
    /// With a spinning [`WaitStrategy`], the clock is first read after a first round of polls
    /// (64, a few microseconds), and `timeout` counts from there: a message that comes within
    /// that round (the reply to a request just sent) costs no clock read, and the wait may run
    /// that much longer than `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`] if no message arrived in time; otherwise as
    /// [`try_recv`](Self::try_recv).
    #[inline]
    pub fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<MessageInfo, RecvError> {
        // Fast path, inlined: a message that is already there costs no call and no clock read.
        match self.poll(buf, false) {
            Err(RecvError::Empty) => self.wait_for(buf, Some(timeout)),
            other => other,
        }
    }

    /// Receives the next message if one is available and passes its validated bytes to `f`.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), except that `BufferTooSmall` cannot happen.
    pub fn try_recv_with<R>(
        &mut self,
        f: impl FnOnce(MessageInfo, &[u8]) -> R,
    ) -> Result<R, RecvError> {
        let mut scratch = self.take_scratch();
        let r = self
            .poll(&mut scratch, false)
            .map(|info| f(info, &scratch[..info.len]));
        self.scratch = scratch;
        r
    }

    /// Waits up to `timeout` (counted as in [`recv_timeout`](Self::recv_timeout)) for the next
    /// message and passes its validated bytes to `f`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout), except that `BufferTooSmall` cannot happen.
    pub fn recv_timeout_with<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(MessageInfo, &[u8]) -> R,
    ) -> Result<R, RecvError> {
        let mut scratch = self.take_scratch();
        let r = self
            .wait_for(&mut scratch, Some(timeout))
            .map(|info| f(info, &scratch[..info.len]));
        self.scratch = scratch;
        r
    }

    /// Receives the next message as a plain-data value (any `zerocopy::FromBytes` type), waiting
    /// up to `timeout` (counted as in [`recv_timeout`](Self::recv_timeout)). The message must be
    /// exactly `size_of::<T>()` bytes long.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout); a message of another length is consumed and
    /// reported as [`RecvError::BufferTooSmall`] with its length.
    pub fn recv_value_timeout<T: FromBytes + KnownLayout>(
        &mut self,
        timeout: Duration,
    ) -> Result<(MessageInfo, T), RecvError> {
        self.recv_timeout_with(timeout, |info, bytes| {
            T::read_from_bytes(bytes)
                .map(|v| (info, v))
                .map_err(|_| info.len)
        })?
        .map_err(|needed| RecvError::BufferTooSmall { needed })
    }

    fn take_scratch(&mut self) -> Vec<u8> {
        let mut s = std::mem::take(&mut self.scratch);
        s.resize(self.capacity(), 0);
        s
    }

    fn wait_for(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<MessageInfo, RecvError> {
        self.wait_with(timeout, |s, check| s.poll(buf, check))
    }

    /// Waits with the subscriber's strategy until `attempt` returns something other than
    /// `Empty`, or until `timeout` (`None`: no limit) has passed.
    ///
    /// The spin strategies read the clock first after their first round of polls, not before:
    /// a message that arrives within it (a reply to a request just sent) costs no clock read on
    /// its way in. The timeout and the spin phase count from that read, so they run up to one
    /// round (64 polls, a few microseconds) long.
    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        mut attempt: impl FnMut(&mut Self, bool) -> Result<MessageInfo, RecvError>,
    ) -> Result<MessageInfo, RecvError> {
        match attempt(self, false) {
            Err(RecvError::Empty) => {}
            other => return other,
        }
        // Time waited is measured from `start`, the first clock read; comparing durations needs
        // no deadline, so a `Duration::MAX` timeout or spin simply never runs out.
        let mut start: Option<Instant> = None;
        let mut waited = |now: Instant| now.duration_since(*start.get_or_insert(now));
        let expired = |waited: Duration| timeout.is_some_and(|t| waited >= t);
        let park_after = match self.wait {
            WaitStrategy::Spin => None,
            WaitStrategy::Park => Some(Duration::ZERO),
            WaitStrategy::SpinThenPark { spin } => Some(spin),
        };
        // Spin phase (not for Park): poll, and read the clock every 64 polls.
        if park_after != Some(Duration::ZERO) {
            loop {
                for _ in 0..64 {
                    std::hint::spin_loop();
                    match attempt(self, false) {
                        Err(RecvError::Empty) => {}
                        other => return other,
                    }
                }
                let w = waited(Instant::now());
                if expired(w) {
                    return Err(RecvError::Timeout);
                }
                if park_after.is_some_and(|p| w >= p) {
                    break;
                }
            }
        }
        // Park phase: sleep on the topic's futex, waking at least once per liveness window to
        // check for a dead writer.
        let ring = Arc::clone(&self.ring);
        let h = ring.header();
        loop {
            let w = waited(Instant::now());
            if expired(w) {
                return Err(RecvError::Timeout);
            }
            let window = self.liveness_window;
            let nap = timeout.map_or(window, |t| (t - w).min(window));
            let found = wait::park(&SysFutex, &h.event, &h.sleepers, nap, || {
                match attempt(self, false) {
                    Err(RecvError::Empty) => None,
                    other => Some(other),
                }
            });
            if let Some(r) = found {
                return r;
            }
            match attempt(self, true) {
                Err(RecvError::Empty) => {}
                other => return other,
            }
        }
    }

    /// Lossless topics: borrows the next message in place, if one is available, without
    /// copying. The message is consumed when the [`Sample`] is dropped; until then no publisher
    /// can overwrite it (and publishers may wait for it: keep samples short-lived).
    ///
    /// # Errors
    /// [`RecvError::NotLossless`] on a lossy topic; otherwise as [`try_recv`](Self::try_recv)
    /// (never `BufferTooSmall`).
    #[inline]
    pub fn try_recv_borrow(&mut self) -> Result<Sample<'_>, RecvError> {
        self.check_lossless()?;
        let info = self.poll_borrow(false)?;
        self.lend(info)
    }

    /// Lossless topics: waits up to `timeout` (counted as in [`recv_timeout`](Self::recv_timeout))
    /// for the next message and borrows it in place.
    /// See [`try_recv_borrow`](Self::try_recv_borrow).
    ///
    /// # Errors
    /// [`RecvError::NotLossless`], [`RecvError::Timeout`], [`RecvError::Lost`].
    #[inline]
    pub fn recv_borrow_timeout(&mut self, timeout: Duration) -> Result<Sample<'_>, RecvError> {
        self.check_lossless()?;
        let info = match self.poll_borrow(false) {
            Err(RecvError::Empty) => self.wait_with(Some(timeout), |s, c| s.poll_borrow(c))?,
            other => other?,
        };
        crate::crash_point("subscriber-holding-borrow");
        self.lend(info)
    }

    /// Hands out the validated message `info` as a [`Sample`]: in place from our registration
    /// on; before it (`StartAt::Oldest`), as a validated copy, since a publisher that had not
    /// seen us yet may overwrite that slot while the sample lives. A copy torn that way is
    /// reported lost, as on a lossy topic.
    #[inline(always)]
    fn lend(&mut self, info: MessageInfo) -> Result<Sample<'_>, RecvError> {
        if info.seq < self.guarded_from && !self.copy_unguarded(info) {
            return Err(self.lose(info.seq, info.seq + 1));
        }
        Ok(Sample { sub: self, info })
    }

    /// Copies message `info`, from before our registration, into `scratch` for a [`Sample`];
    /// false if the copy was torn.
    #[cold]
    fn copy_unguarded(&mut self, info: MessageInfo) -> bool {
        let mut copy = std::mem::take(&mut self.scratch);
        copy.resize(info.len, 0);
        let ring = &*self.ring;
        seqlock::load_payload(ring.payload_words(info.seq), &mut copy);
        let stamp = seqlock::stamp(info.seq, seqlock::COMMITTED);
        let intact = seqlock::validate(&ring.slot(info.seq).stamp, stamp);
        self.scratch = copy;
        intact
    }

    fn check_lossless(&self) -> Result<(), RecvError> {
        if self.ring.geom.lossless {
            Ok(())
        } else {
            Err(RecvError::NotLossless)
        }
    }
}

/// A message borrowed in place from a lossless topic ([`Subscriber::try_recv_borrow`]).
/// Dereferences to the payload bytes; dropping it consumes the message.
pub struct Sample<'a> {
    sub: &'a mut Subscriber,
    info: MessageInfo,
}

impl Sample<'_> {
    /// The message's metadata.
    pub fn info(&self) -> MessageInfo {
        self.info
    }

    /// The payload as a plain-data value (any `zerocopy` type of exactly the message's length).
    ///
    /// # Errors
    /// [`RecvError::BufferTooSmall`] with the message length if it is not `size_of::<T>()`.
    pub fn read_value<T: FromBytes + KnownLayout>(&self) -> Result<T, RecvError> {
        T::read_from_bytes(self).map_err(|_| RecvError::BufferTooSmall {
            needed: self.info.len,
        })
    }
}

impl std::ops::Deref for Sample<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        if self.info.seq < self.sub.guarded_from {
            return &self.sub.scratch[..self.info.len]; // a copy (`Subscriber::lend`)
        }
        let ptr = self.sub.ring.payload_ptr(self.info.seq);
        // SAFETY: `info.len <= payload_size` was checked when the message was validated, so the
        // range is inside the slot. On a lossless topic no publisher takes this slot while our
        // cursor (registered, alive) is at `info.seq`, so nothing writes these bytes while the
        // slice lives (see docs/safety.md, "Samples").
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(ptr.as_ptr(), self.info.len)
        }
    }
}

impl std::fmt::Debug for Sample<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample").field("info", &self.info).finish()
    }
}

impl Drop for Sample<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sub.consume(self.info.seq);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // SYNC: Release pairs with the Acquire CAS in `topic::take_record`.
        self.record().owner.store(0, Ordering::Release);
    }
}
