//! Publishers: claim a sequence, write in place, commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{PublishError, TopicError};
use crate::layout::{INFLIGHT_CLAIMING, INFLIGHT_IDLE, PubRecord, SlotHeader};
use crate::ring::Ring;
use crate::seqlock::{self, Begin};
use crate::sync::atomic::Ordering;
use crate::{gate, sys, topic, wait};

/// How long a writer or reader waits on a slot held by another writer before it checks whether
/// that writer is still alive (and repairs the slot if not).
pub(crate) const LIVENESS_WINDOW: Duration = Duration::from_millis(100);

/// Options of a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Lossless topics: how long `publish` and `loan` wait for room in a full ring before they
    /// return [`PublishError::Timeout`]. Default 1 s. (Lossy topics do not wait for room.) On a
    /// topic with several publisher entries, also how long they wait for a slot that a writer a
    /// whole ring behind still holds: normally nanoseconds; a writer that is alive but never
    /// finishes (a stopped process, a misbehaving one) makes them return `Timeout` then.
    pub timeout: Duration,
    /// Lossless topics: how often a publisher blocked by a full ring checks whether the
    /// subscribers holding it back are still alive, evicting dead ones. Default 100 ms; the first
    /// check is made as soon as the ring is found full.
    pub liveness_window: Duration,
    /// When true, each message is stamped with CLOCK_MONOTONIC (see
    /// [`monotonic_ns`](crate::monotonic_ns)) read just before it is committed, which subscribers
    /// report as [`MessageInfo::timestamp_ns`](crate::MessageInfo::timestamp_ns). When false (the
    /// default), no clock is read on the publish path and subscribers see `timestamp_ns == 0`.
    /// Costs one clock read per publish (about 20-25 ns on a VM).
    pub timestamps: bool,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            timeout: Duration::from_secs(1),
            liveness_window: LIVENESS_WINDOW,
            timestamps: false,
        }
    }
}

/// Whether a claim may wait for room (lossless topics).
#[derive(Clone, Copy)]
enum Block {
    No,
    Yes,
}

/// Publishes messages on one topic.
///
/// Any number of publishers, in any processes, may share a topic: each `publish` takes the next
/// sequence number from one shared counter (an atomic add on a lossy topic, a compare-and-swap
/// under the gate on a lossless one, a plain store for a topic's only publisher), so every
/// subscriber sees one total order. On a lossy topic publishing never waits for subscribers; it
/// waits only in the rare case that the slot it claimed is still being written by a publisher a
/// whole ring earlier. On a lossless topic it waits for room (see [`PublisherConfig::timeout`]).
///
/// `Publisher` is `Send` (it may move to another thread) but not `Sync`: its methods take
/// `&mut self`, one thread at a time. Make one publisher per thread.
///
/// Messages carry a publish timestamp only if the publisher asks for it with
/// [`PublisherConfig::timestamps`] (see [`Topic::publisher_with`](crate::Topic::publisher_with));
/// otherwise subscribers see a [`MessageInfo::timestamp_ns`](crate::MessageInfo::timestamp_ns)
/// of 0.
///
/// # Examples
/// ```
/// # let name = format!("doc-pub-{}", std::process::id());
/// let bus = shmbus::Bus::create(&name, &shmbus::BusConfig::default())?;
/// let mut publisher = bus.publisher("greetings")?;
/// let seq = publisher.publish(b"hello")?;
/// let mut loan = publisher.loan(5)?;
/// loan.as_mut_slice().copy_from_slice(b"world");
/// assert_eq!(loan.publish(), seq + 1);
///
/// // Stamp each message with the time it was published (one clock read per publish).
/// let cfg = shmbus::PublisherConfig { timestamps: true, ..Default::default() };
/// let mut stamped = bus.topic("greetings")?.publisher_with(&cfg)?;
/// stamped.publish(b"now")?;
/// # drop(stamped);
/// # drop(publisher); drop(bus); shmbus::Bus::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Publisher {
    ring: Arc<Ring>,
    index: u32,
    id: u32,
    published: u64,
    aborted: u64,
    /// Lossless topics: sequences below this may be claimed without looking at the subscribers
    /// again (the slowest cursor seen, plus the ring size).
    limit: u64,
    cfg: PublisherConfig,
    /// Stands in for a slot that was overrun before we could take it (see `Loan`).
    scratch: Vec<u8>,
    /// The topic is lossy and has one publisher entry (ours): `publish` takes the lean path.
    sole_lossy: bool,
    /// How `finish` checks for parked subscribers (`wait.rs`): fenced where this process is
    /// registered for membarriers.
    wake: wait::WakeCheck,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.ring.name)
            .field("id", &self.id)
            .finish()
    }
}

impl Publisher {
    pub(crate) fn new(ring: Arc<Ring>, cfg: &PublisherConfig) -> Result<Publisher, TopicError> {
        let (index, generation) = topic::take_record(
            ring.geom.max_publishers,
            |i| {
                let r = ring.pub_record(i);
                (&r.owner, &r.generation)
            },
            |i| retire(&ring, ring.pub_record(i)),
        )
        .ok_or(TopicError::PublisherTableFull)?;
        let rec = ring.pub_record(index);
        rec.published.store(0, Ordering::Relaxed);
        rec.aborted.store(0, Ordering::Relaxed);
        rec.inflight.store(INFLIGHT_IDLE, Ordering::Release);
        let sole_lossy = !ring.geom.lossless && ring.geom.max_publishers == 1;
        Ok(Publisher {
            id: index | (generation << 8),
            ring,
            index,
            published: 0,
            aborted: 0,
            limit: 0,
            cfg: *cfg,
            scratch: Vec::new(),
            sole_lossy,
            wake: wait::WakeCheck::for_this_process(),
        })
    }

    /// This publisher's id, as subscribers see it in [`MessageInfo::publisher_id`](crate::MessageInfo):
    /// the index of its record (low 8 bits) and the record's generation.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.ring.name
    }

    /// The largest message this topic takes, in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.geom.payload_size as usize
    }

    /// Copies `msg` into the next slot and publishes it. Returns its sequence number.
    ///
    /// On a lossless topic whose ring is full, waits up to [`PublisherConfig::timeout`] for the
    /// slowest subscriber.
    ///
    /// # Errors
    /// [`PublishError::TooLarge`] if `msg` is longer than the topic's `payload_size`;
    /// [`PublishError::Timeout`] (lossless: no room; or see [`PublisherConfig::timeout`]).
    /// Nothing is published on error. (After a `Timeout` on a slot another writer held, the
    /// sequence number this call had taken is reported to subscribers as lost.)
    #[inline]
    pub fn publish(&mut self, msg: &[u8]) -> Result<u64, PublishError> {
        self.publish_inner(msg, Block::Yes)
    }

    /// Like [`publish`](Self::publish), but never waits for room: on a full lossless ring it
    /// returns [`PublishError::WouldBlock`] at once. On a lossy topic it is `publish`. (Like
    /// `publish`, it does wait for a slot that a writer a ring behind still holds, on a topic
    /// with several publisher entries; see [`PublisherConfig::timeout`].)
    ///
    /// # Errors
    /// [`PublishError::TooLarge`], [`PublishError::WouldBlock`], [`PublishError::Timeout`] (a
    /// held slot).
    #[inline]
    pub fn try_publish(&mut self, msg: &[u8]) -> Result<u64, PublishError> {
        self.publish_inner(msg, Block::No)
    }

    #[inline(always)]
    fn publish_inner(&mut self, msg: &[u8], block: Block) -> Result<u64, PublishError> {
        self.check_len(msg.len())?;
        if self.sole_lossy {
            return Ok(self.publish_sole_lossy(msg));
        }
        self.publish_general(msg, block)
    }

    /// `publish` on any topic: claim (wait for room, or for a slot held a lap earlier), copy,
    /// commit. Kept out of line so that the lean path stays small where it is inlined.
    #[inline(never)]
    fn publish_general(&mut self, msg: &[u8], block: Block) -> Result<u64, PublishError> {
        let (seq, owned) = self.claim(block)?;
        if owned {
            let words = self.ring.payload_words(seq);
            #[cfg(feature = "crash-points")]
            if crate::crash_armed("publish-mid-payload") {
                // Half the payload written, then stop: a torn slot for the others to survive.
                seqlock::store_payload(words, &msg[..msg.len() / 2]);
                crate::crash_point("publish-mid-payload");
            }
            seqlock::store_payload(words, msg);
        }
        self.commit(seq, msg.len(), owned);
        Ok(seq)
    }

    /// `publish` by the only publisher a lossy topic can have (one publisher entry): the
    /// protocol of `claim` + `commit` with nothing it does not need (docs/design.md §4, "The
    /// sole publisher of a lossy topic"). The record says `inflight = seq` before the claim is
    /// stored, so no CLAIMING step is needed; and it is left at `seq` after the commit instead of
    /// IDLE: no other live writer can hold a stamp of this topic (only a dead former owner of the
    /// entry, whose stamps are older, or our own loans, which finish before we publish again), so
    /// a peer that finds `inflight` equal to a sequence whose slot is committed has nothing to
    /// repair anyway. `len` was checked.
    #[inline(always)]
    fn publish_sole_lossy(&mut self, msg: &[u8]) -> u64 {
        let ring = &*self.ring;
        let rec = ring.pub_record(self.index);
        let claim = &ring.header().claim;
        let word = claim.load(Ordering::Relaxed);
        let seq = gate::seq_of(word);
        // SYNC: Release pairs with the Acquire load in `any_live_holder`, as the IDLE store in
        // `finish` does on the general path: a peer that sees `inflight = seq` sees the final
        // stamp of our previous sequence, so it never takes that slot for abandoned.
        rec.inflight.store(seq, Ordering::Release);
        crate::crash_point("publish-before-claim");
        // SYNC: Release pairs with the Acquire `claim` load in `check_stuck`: a peer that sees
        // the claim past `seq` sees `inflight = seq` or later in our record (`any_live_holder`).
        // Wrapping: the word is shared memory, and another process may have written anything.
        claim.store(word.wrapping_add(1), Ordering::Release);
        crate::crash_point("publish-after-claim");
        let (slot, words) = ring.slot_and_payload(seq);
        seqlock::begin_write_exclusive(&slot.stamp, seq);
        crate::crash_point("publish-after-begin");
        #[cfg(feature = "crash-points")]
        if crate::crash_armed("publish-mid-payload") {
            seqlock::store_payload(words, &msg[..msg.len() / 2]);
            crate::crash_point("publish-mid-payload");
        }
        seqlock::store_payload(words, msg);
        self.fill_and_commit(slot, seq, msg.len());
        self.published += 1;
        rec.published.store(self.published, Ordering::Relaxed);
        let h = ring.header();
        wait::wake_if_sleeping(&wait::SysFutex, &h.event, &h.sleepers, &h.wakes, self.wake);
        seq
    }

    /// Publishes a plain-data value (any `zerocopy::IntoBytes` type) by copy.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub fn publish_value<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<u64, PublishError> {
        self.publish(value.as_bytes())
    }

    /// Claims the next slot for a message of `len` bytes and lends it for writing in place.
    /// Publish it with [`Loan::publish`]; dropping the loan aborts it (subscribers skip it).
    ///
    /// Keep loans short: subscribers deliver in sequence order, so they wait for an outstanding
    /// loan before they deliver later messages.
    ///
    /// # Errors
    /// [`PublishError::TooLarge`] if `len` exceeds the topic's `payload_size`;
    /// [`PublishError::Timeout`] (lossless: no room; or see [`PublisherConfig::timeout`]).
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, PublishError> {
        self.loan_inner(len, Block::Yes)
    }

    /// Like [`loan`](Self::loan), but returns [`PublishError::WouldBlock`] at once when a
    /// lossless ring is full (a held slot is waited for, as by [`try_publish`](Self::try_publish)).
    ///
    /// # Errors
    /// [`PublishError::TooLarge`], [`PublishError::WouldBlock`], [`PublishError::Timeout`] (a
    /// held slot).
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, PublishError> {
        self.loan_inner(len, Block::No)
    }

    // Always inlined: left to itself the compiler kept it out of line once `publish_general`
    // was, and a loan + publish of 64 B went from 12.6 to 17.5 ns (criterion, this VM).
    #[inline(always)]
    fn loan_inner(&mut self, len: usize, block: Block) -> Result<Loan<'_>, PublishError> {
        self.check_len(len)?;
        let (seq, owned) = self.claim(block)?;
        if !owned && self.scratch.len() < len {
            self.scratch.resize(len, 0);
        }
        crate::crash_point("loan-outstanding");
        Ok(Loan {
            publisher: self,
            seq,
            len,
            owned,
            done: false,
        })
    }

    #[inline]
    fn check_len(&self, len: usize) -> Result<(), PublishError> {
        let capacity = self.ring.geom.payload_size as usize;
        if len > capacity {
            return Err(PublishError::TooLarge { len, capacity });
        }
        Ok(())
    }

    #[inline]
    fn record(&self) -> &PubRecord {
        self.ring.pub_record(self.index)
    }

    /// A claim that failed: the record says we hold nothing (a sequence number already taken
    /// is left to the subscribers' repair).
    #[cold]
    fn give_up_claim(&self) {
        self.record()
            .inflight
            .store(INFLIGHT_IDLE, Ordering::Release);
    }

    /// Takes a sequence number and its slot. `owned` is false if a later lap took the slot first
    /// (we were a ring behind); the message is then overrun before it is written.
    #[inline]
    fn claim(&mut self, block: Block) -> Result<(u64, bool), PublishError> {
        let rec = self.record();
        rec.inflight.store(INFLIGHT_CLAIMING, Ordering::Relaxed);
        crate::crash_point("publish-before-claim");
        // The only publisher entry is ours: no other live writer can claim a sequence.
        let exclusive = self.ring.geom.max_publishers == 1;
        let seq = if self.ring.geom.lossless {
            match self.claim_lossless(block) {
                Ok(seq) => seq,
                Err(e) => {
                    self.give_up_claim();
                    return Err(e);
                }
            }
        } else if exclusive {
            // No locked instruction (measured: lossy 64 B streaming +20 to 50%).
            gate::claim_lossy_exclusive(&self.ring.header().claim)
        } else {
            gate::claim_lossy(&self.ring.header().claim)
        };
        let rec = self.record();
        // SYNC: Release pairs with the Acquire load in `any_live_holder`: a peer that reads this
        // sequence also sees the commit of the one before, which may have been published by the
        // lean path (no IDLE store after it) or whose IDLE store this one overwrote.
        rec.inflight.store(seq, Ordering::Release);
        crate::crash_point("publish-after-claim");
        let stamp_word = &self.ring.slot(seq).stamp;
        if exclusive {
            // Every older stamp in this slot is finished or belongs to a dead writer.
            seqlock::begin_write_exclusive(stamp_word, seq);
            crate::crash_point("publish-after-begin");
            return Ok((seq, true));
        }
        // (first Busy, last liveness check)
        let mut busy: Option<(Instant, Instant)> = None;
        loop {
            match seqlock::begin_write(stamp_word, seq) {
                Begin::Acquired => {
                    crate::crash_point("publish-after-begin");
                    return Ok((seq, true));
                }
                Begin::Superseded => return Ok((seq, false)),
                Begin::Busy { .. } => {
                    // A writer one ring earlier still holds this slot: normally for the few
                    // nanoseconds it takes to finish. Wait; every liveness window, repair the
                    // slot if that writer is dead. One that lives and never finishes (stopped,
                    // or writing records it has no business writing) is given up on after the
                    // timeout: a publish never hangs.
                    let now = Instant::now();
                    let (first, checked) = *busy.get_or_insert((now, now));
                    if now.duration_since(first) >= self.cfg.timeout {
                        self.give_up_claim();
                        return Err(PublishError::Timeout);
                    }
                    if now.duration_since(checked) >= LIVENESS_WINDOW {
                        // SYNC: Acquire pairs with the Release half of the holder's stamp CAS
                        // (`begin_write`), as the subscribers' stamp loads do: the scan in
                        // `repair_if_abandoned` then sees the holder's `inflight`, stored before
                        // that CAS. (`begin_write`'s own loads are Relaxed: the hot path.)
                        let stamp = stamp_word.load(Ordering::Acquire);
                        if let Some((old, seqlock::WRITING)) = seqlock::decode(stamp)
                            && old < seq
                        {
                            repair_if_abandoned(&self.ring, old, stamp);
                        }
                        busy = Some((first, now));
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Lossless claim: take sequence `c` only while `c < slowest cursor + slots`, so the slot's
    /// previous message has been read by every live subscriber.
    #[inline]
    fn claim_lossless(&mut self, block: Block) -> Result<u64, PublishError> {
        let ring = &*self.ring;
        let slots = u64::from(ring.geom.slot_count);
        match gate::try_claim(&ring.header().claim, &mut self.limit, slots, |claim| {
            slowest_cursor(ring, claim)
        }) {
            Ok(seq) => Ok(seq),
            Err(_) => self.wait_for_room(block),
        }
    }

    /// The ring is full: wait for the slowest subscriber (or give up), evicting dead ones.
    #[cold]
    fn wait_for_room(&mut self, block: Block) -> Result<u64, PublishError> {
        let ring = Arc::clone(&self.ring);
        let h = ring.header();
        let slots = u64::from(ring.geom.slot_count);
        // (deadline, next liveness check); `None` in either: never (a duration too long to add).
        let mut blocked: Option<(Option<Instant>, Option<Instant>)> = None;
        let mut spins = 0u32;
        let rec = ring.pub_record(self.index);
        loop {
            // CLAIMING tells a repairer "may hold any sequence", so it covers each attempt only,
            // as in `claim`: the first attempt's CLAIMING was stored there, and each later one
            // is stored here before its compare-and-swap.
            if spins > 0 {
                rec.inflight.store(INFLIGHT_CLAIMING, Ordering::Relaxed);
            }
            let c = match gate::try_claim(&h.claim, &mut self.limit, slots, |claim| {
                slowest_cursor(&ring, claim)
            }) {
                Ok(seq) => return Ok(seq),
                Err(c) => c,
            };
            // Nothing claimed. While we wait, the record says so: a CLAIMING record of a live
            // process blocks the repair of every sequence of the topic, including that of the
            // dead publisher whose unfinished message may be what keeps the ring full.
            rec.inflight.store(INFLIGHT_IDLE, Ordering::Release);
            // Full: the slowest live subscriber has not read message c - slots yet.
            let now = Instant::now();
            let (deadline, next_check) = match blocked {
                Some(b) => b,
                None => {
                    h.backpressure.fetch_add(1, Ordering::Relaxed);
                    if matches!(block, Block::No) {
                        return Err(PublishError::WouldBlock);
                    }
                    (now.checked_add(self.cfg.timeout), Some(now))
                }
            };
            if next_check.is_some_and(|t| now >= t) {
                evict_dead_subscribers(&ring, c - slots);
                blocked = Some((deadline, now.checked_add(self.cfg.liveness_window)));
            } else {
                blocked = Some((deadline, next_check));
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(PublishError::Timeout);
            }
            // Back off: spin briefly, then yield, then nap (the subscriber needs the CPU).
            spins = spins.saturating_add(1);
            if spins < 64 {
                std::hint::spin_loop();
            } else if spins < 128 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Fills the slot header, commits, and wakes sleepers.
    #[inline]
    fn commit(&mut self, seq: u64, len: usize, owned: bool) {
        let ring = &*self.ring;
        if owned {
            self.fill_and_commit(ring.slot(seq), seq, len);
        }
        self.published += 1;
        self.finish(seq);
    }

    /// Fills the header of the slot we hold for `seq` (length, publisher id, time) after its
    /// payload, and commits it.
    #[inline(always)]
    fn fill_and_commit(&self, slot: &SlotHeader, seq: u64, len: usize) {
        slot.len.store(len as u32, Ordering::Relaxed);
        slot.publisher.store(self.id, Ordering::Relaxed);
        // Read the clock here, after the payload stores: measured, reading it earlier slows
        // ping-pong. Unstamped messages still store 0 over the previous message's time.
        let timestamp = if self.cfg.timestamps {
            sys::monotonic_ns()
        } else {
            0
        };
        slot.timestamp_ns.store(timestamp, Ordering::Relaxed);
        crate::crash_point("publish-before-commit");
        seqlock::end_write(&slot.stamp, seq, seqlock::COMMITTED);
    }

    #[inline]
    fn abort(&mut self, seq: u64, owned: bool) {
        if owned {
            seqlock::end_write(&self.ring.slot(seq).stamp, seq, seqlock::ABORTED);
        }
        self.aborted += 1;
        self.finish(seq);
    }

    #[inline]
    fn finish(&mut self, _seq: u64) {
        let ring = &*self.ring;
        let rec = ring.pub_record(self.index);
        rec.published.store(self.published, Ordering::Relaxed);
        rec.aborted.store(self.aborted, Ordering::Relaxed);
        // SYNC: Release pairs with the Acquire load of `inflight` in `any_live_holder`: a peer
        // that sees IDLE also sees our slot's final stamp.
        rec.inflight.store(INFLIGHT_IDLE, Ordering::Release);
        let h = ring.header();
        wait::wake_if_sleeping(&wait::SysFutex, &h.event, &h.sleepers, &h.wakes, self.wake);
    }
}

/// Folds a departing record's counters into the topic totals.
fn retire(ring: &Ring, rec: &PubRecord) {
    let h = ring.header();
    h.retired_published
        .fetch_add(rec.published.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    h.retired_aborted
        .fetch_add(rec.aborted.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    rec.inflight.store(INFLIGHT_IDLE, Ordering::Relaxed);
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let rec = self.ring.pub_record(self.index);
        retire(&self.ring, rec);
        // SYNC: Release pairs with the Acquire CAS in `topic::take_record`.
        rec.owner.store(0, Ordering::Release);
    }
}

/// The lowest cursor of the registered subscribers, or `claim` if none is lower.
fn slowest_cursor(ring: &Ring, claim: u64) -> u64 {
    (0..ring.geom.max_subscribers)
        .filter_map(|i| {
            let r = ring.sub_record(i);
            // SYNC: Acquire pairs with the Release cursor stores of `gate::register` and
            // `Subscriber::advance_to`: a subscriber's reads of a slot happen before we
            // overwrite that slot.
            (r.owner.load(Ordering::Acquire) != 0).then(|| r.cursor.load(Ordering::Acquire))
        })
        .fold(claim, u64::min)
}

/// Evicts the subscribers whose process died while holding the ring back (cursor `<= below`).
/// A slow but live subscriber is never evicted.
fn evict_dead_subscribers(ring: &Ring, below: u64) {
    for i in 0..ring.geom.max_subscribers {
        let r = ring.sub_record(i);
        let owner = r.owner.load(Ordering::Acquire);
        if owner == 0 || r.cursor.load(Ordering::Acquire) > below {
            continue;
        }
        if !crate::liveness::owner_alive(owner)
            && r.owner
                .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            ring.header().evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether a live publisher may hold sequence `seq` (claimed, or about to record its claim).
pub(crate) fn any_live_holder(ring: &Ring, seq: u64) -> bool {
    (0..ring.geom.max_publishers).any(|i| {
        let r = ring.pub_record(i);
        // SYNC: Acquire pairs with the Release stores of `inflight` (the IDLE store in
        // `Publisher::finish`, the sequence stores in `claim` and `publish_sole_lossy`): a
        // sequence or IDLE seen here comes with the commit of the record's previous sequence.
        let inflight = r.inflight.load(Ordering::Acquire);
        (inflight == seq || inflight == INFLIGHT_CLAIMING)
            && crate::liveness::owner_alive(r.owner.load(Ordering::Relaxed))
    })
}

/// If no live publisher can still write `seq`, closes its slot (seen with stamp `seen`) as
/// REPAIRED. Returns true if this call repaired it.
pub(crate) fn repair_if_abandoned(ring: &Ring, seq: u64, seen: u64) -> bool {
    if any_live_holder(ring, seq) {
        return false;
    }
    // The slot may still be held, mid-write, by the writer of an older sequence (a loan
    // outstanding a ring back, which kept the publisher of `seq` waiting until it gave up or
    // died): those bytes are that writer's, and closing the slot under it would hand them to
    // the next writer's readers. Only once it is dead or done may the slot be closed for `seq`.
    if let Some((held, state)) = seqlock::decode(seen)
        && state == seqlock::WRITING
        && held != seq
        && any_live_holder(ring, held)
    {
        return false;
    }
    let word = &ring.slot(seq).stamp;
    // The holder may have finished between our look at the stamp and the scan: re-read.
    if word.load(Ordering::SeqCst) != seen {
        return false;
    }
    if seqlock::repair(word, seen, seq) {
        let h = ring.header();
        h.repaired.fetch_add(1, Ordering::Relaxed);
        // A cold path, in any process: the RMW, which needs no registration.
        wait::wake_if_sleeping(
            &wait::SysFutex,
            &h.event,
            &h.sleepers,
            &h.wakes,
            wait::WakeCheck::Rmw,
        );
        true
    } else {
        false
    }
}

/// A slot lent by [`Publisher::loan`]: write the message in place, then [`publish`](Loan::publish).
/// Dropping it unpublished aborts it: subscribers skip the sequence and lose nothing.
pub struct Loan<'a> {
    publisher: &'a mut Publisher,
    seq: u64,
    len: usize,
    owned: bool,
    done: bool,
}

impl std::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .finish()
    }
}

impl Loan<'_> {
    /// The sequence number this message will have.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The message's bytes, inside the shared slot. Their initial content is unspecified (an
    /// older message); write all `len` bytes you mean to send.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if !self.owned {
            return &mut self.publisher.scratch[..self.len];
        }
        let ptr = self.publisher.ring.payload_ptr(self.seq);
        // SAFETY: the slot is ours: its stamp is WRITING(seq), which no other writer replaces
        // while we live (writers take a slot only from a finished stamp; repair needs our process
        // dead). `len <= payload_size` was checked by `loan`, so the range is inside the slot.
        // Readers may still load these bytes with atomic loads; they discard them when they
        // re-check the stamp (see docs/safety.md, "Loans").
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(ptr.as_ptr(), self.len)
        }
    }

    /// The message as a plain-data value (any `zerocopy` `FromBytes + IntoBytes` type no larger
    /// than the loan).
    ///
    /// # Errors
    /// [`PublishError::BadType`] if `T` is larger than the loan or the slot is not aligned
    /// enough for it (slots are 32-byte aligned).
    pub fn as_mut_value<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<&mut T, PublishError> {
        let err = PublishError::BadType {
            size: size_of::<T>(),
            align: align_of::<T>(),
        };
        T::mut_from_prefix(self.as_mut_slice())
            .map(|(v, _)| v)
            .map_err(|_| err)
    }

    /// Commits the message. Returns its sequence number.
    #[inline]
    pub fn publish(mut self) -> u64 {
        self.done = true;
        let (seq, len, owned) = (self.seq, self.len, self.owned);
        self.publisher.commit(seq, len, owned);
        seq
    }
}

impl Drop for Loan<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.publisher.abort(self.seq, self.owned);
        }
    }
}
