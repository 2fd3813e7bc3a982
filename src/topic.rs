//! Topics: the table in the segment, creation on first use, validation on attach, endpoint
//! records, and statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::TopicError;
use crate::layout::{
    DELIVERY_LOSSLESS, DELIVERY_LOSSY, INFLIGHT_IDLE, MAX_TOPIC_NAME, PubRecord, SubRecord,
    TOPIC_FREE, TOPIC_READY, TopicEntry,
};
use crate::liveness;
use crate::publisher::{Publisher, PublisherConfig};
use crate::ring::{Ring, RingGeometry};
use crate::segment::Segment;
use crate::subscriber::{Subscriber, SubscriberConfig};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How messages are delivered on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// Publishers never wait; a subscriber that falls a whole ring behind loses the oldest
    /// messages and is told exactly which ([`RecvError::Lost`](crate::RecvError::Lost)).
    #[default]
    Lossy,
    /// Publishers never overwrite a message that a live subscriber has not read: when the ring is
    /// full they wait (up to [`PublisherConfig::timeout`]) or, in the `try_` forms, return
    /// [`PublishError::WouldBlock`]. Subscribers may borrow messages in place
    /// ([`Subscriber::recv_borrow_timeout`]). A subscriber whose process dies is evicted within
    /// its liveness window; a slow live one is never evicted.
    ///
    /// [`PublisherConfig::timeout`]: crate::PublisherConfig::timeout
    /// [`PublishError::WouldBlock`]: crate::PublishError::WouldBlock
    /// [`Subscriber::recv_borrow_timeout`]: crate::Subscriber::recv_borrow_timeout
    Lossless,
}

impl Delivery {
    fn code(self) -> u32 {
        match self {
            Delivery::Lossy => DELIVERY_LOSSY,
            Delivery::Lossless => DELIVERY_LOSSLESS,
        }
    }
}

/// The geometry of a topic, fixed when the topic is created.
///
/// # Examples
/// ```
/// let cfg = shmbus::TopicConfig { slots: 4096, payload_size: 1024, ..Default::default() };
/// assert_eq!(cfg.max_publishers, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Slots in the ring: a power of two, 2..=16 777 216. A subscriber may fall this many
    /// messages behind before it loses any.
    pub slots: u32,
    /// Largest message in bytes, 1..=16 MiB (stored rounded up to a multiple of 8).
    pub payload_size: u32,
    /// Most publishers alive at once on this topic, 1..=256. A topic that will only ever have
    /// one publisher at a time should say 1: on a lossy topic its `publish` then needs no
    /// locked instruction and no compare-and-swap on the slot (docs/design.md §4), which across
    /// processes takes about 40% off a message's latency and multiplies the streaming rate
    /// (docs/benchmarks.md, Transports).
    pub max_publishers: u32,
    /// Most subscribers alive at once on this topic, 1..=4096.
    pub max_subscribers: u32,
    /// Delivery mode.
    pub delivery: Delivery,
}

impl Default for TopicConfig {
    /// 1024 slots of 256 bytes, 16 publishers, 64 subscribers, lossy: about 330 KiB.
    fn default() -> Self {
        TopicConfig {
            slots: 1024,
            payload_size: 256,
            max_publishers: 16,
            max_subscribers: 64,
            delivery: Delivery::Lossy,
        }
    }
}

impl TopicConfig {
    fn tuple(&self) -> (u32, u32, u32, u32) {
        (
            self.slots,
            self.payload_size,
            self.max_publishers,
            self.max_subscribers,
        )
    }

    fn geometry(&self) -> Result<RingGeometry, TopicError> {
        RingGeometry::plan(
            self.slots,
            self.payload_size,
            self.max_publishers,
            self.max_subscribers,
        )
        .map_err(TopicError::InvalidConfig)
    }
}

/// Validates a topic name: 1..=64 bytes of `[A-Za-z0-9_./-]`.
pub(crate) fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: String| Err(TopicError::InvalidName(format!("{name:?}: {why}")));
    if name.is_empty() {
        return bad("empty".into());
    }
    if name.len() > MAX_TOPIC_NAME {
        return bad(format!("longer than {MAX_TOPIC_NAME} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
    {
        return bad(format!("character {c:?} is not one of [A-Za-z0-9_./-]"));
    }
    Ok(())
}

fn pack_name(name: &str) -> [u64; 8] {
    let mut bytes = [0u8; MAX_TOPIC_NAME];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    let mut words = [0u64; 8];
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    }
    words
}

/// Reads a READY entry's name, or `None` if it is malformed.
fn entry_name(e: &TopicEntry) -> Option<String> {
    let len = e.name_len.load(Ordering::Relaxed) as usize;
    if len == 0 || len > MAX_TOPIC_NAME {
        return None;
    }
    let mut bytes = Vec::with_capacity(MAX_TOPIC_NAME);
    for w in &e.name {
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    bytes.truncate(len);
    let name = String::from_utf8(bytes).ok()?;
    validate_name(&name).ok()?;
    Some(name)
}

/// Reads and validates a READY entry's geometry (untrusted input).
fn entry_geometry(seg: &Segment, e: &TopicEntry, name: &str) -> Result<RingGeometry, TopicError> {
    let bad = |why: String| TopicError::Corrupt(format!("topic {name:?}: {why}"));
    let slots = e.slot_count.load(Ordering::Relaxed);
    let payload = e.payload_size.load(Ordering::Relaxed);
    let pubs = e.max_publishers.load(Ordering::Relaxed);
    let subs = e.max_subscribers.load(Ordering::Relaxed);
    let mut g = RingGeometry::plan(slots, payload, pubs, subs).map_err(bad)?;
    if g.payload_size != payload {
        return Err(bad(format!(
            "payload_size {payload} is not a multiple of 8"
        )));
    }
    let stride = e.slot_stride.load(Ordering::Relaxed);
    if stride != g.slot_stride {
        return Err(bad(format!(
            "slot_stride {stride}, expected {}",
            g.slot_stride
        )));
    }
    g.lossless = match e.delivery.load(Ordering::Relaxed) {
        DELIVERY_LOSSY => false,
        DELIVERY_LOSSLESS => true,
        other => return Err(bad(format!("unknown delivery mode {other}"))),
    };
    let size = e.ring_size.load(Ordering::Relaxed);
    if size != g.ring_size {
        return Err(bad(format!("ring_size {size}, expected {}", g.ring_size)));
    }
    g.ring_offset = e.ring_offset.load(Ordering::Relaxed);
    if seg.arena_range(g.ring_offset, g.ring_size).is_none() {
        return Err(bad(format!(
            "ring at offset {} is outside the arena",
            g.ring_offset
        )));
    }
    Ok(g)
}

/// Maps a validated block and checks the ring header's geometry copies.
fn map_ring(seg: &Arc<Segment>, g: RingGeometry, name: &str) -> Result<Ring, TopicError> {
    let ring = Ring::new(Arc::clone(seg), g, name.to_owned())
        .ok_or_else(|| TopicError::Corrupt(format!("topic {name:?}: ring outside the arena")))?;
    let h = ring.header();
    let copies = (
        h.slot_count.load(Ordering::Relaxed),
        h.payload_size.load(Ordering::Relaxed),
        h.max_publishers.load(Ordering::Relaxed),
        h.max_subscribers.load(Ordering::Relaxed),
    );
    if copies
        != (
            g.slot_count,
            g.payload_size,
            g.max_publishers,
            g.max_subscribers,
        )
        || h.slot_stride.load(Ordering::Relaxed) != g.slot_stride
    {
        return Err(TopicError::Corrupt(format!(
            "topic {name:?}: ring header geometry {copies:?} differs from the table entry"
        )));
    }
    Ok(ring)
}

/// Looks a topic up by name among READY entries.
fn find(seg: &Arc<Segment>, name: &str) -> Result<Option<Ring>, TopicError> {
    for i in 0..seg.geom.max_topics {
        let e = seg.topic_entry(i);
        // SYNC: Acquire pairs with the Release store of TOPIC_READY in `create_locked`.
        if e.state.load(Ordering::Acquire) != TOPIC_READY {
            continue;
        }
        if entry_name(e).as_deref() == Some(name) {
            let g = entry_geometry(seg, e, name)?;
            return map_ring(seg, g, name).map(Some);
        }
    }
    Ok(None)
}

/// Names and configurations of every READY topic (malformed entries are skipped).
pub(crate) fn list(seg: &Arc<Segment>) -> Vec<(String, TopicConfig)> {
    let mut out = Vec::new();
    for i in 0..seg.geom.max_topics {
        let e = seg.topic_entry(i);
        if e.state.load(Ordering::Acquire) != TOPIC_READY {
            continue;
        }
        if let Some(name) = entry_name(e)
            && let Ok(g) = entry_geometry(seg, e, &name)
        {
            out.push((name, config_of(&g)));
        }
    }
    out
}

fn config_of(g: &RingGeometry) -> TopicConfig {
    TopicConfig {
        slots: g.slot_count,
        payload_size: g.payload_size,
        max_publishers: g.max_publishers,
        max_subscribers: g.max_subscribers,
        delivery: if g.lossless {
            Delivery::Lossless
        } else {
            Delivery::Lossy
        },
    }
}

/// The segment's topic-creation lock. Held only while creating a topic; a holder that died is
/// replaced (its half-written entry was never marked READY, so nobody uses it). The lock word
/// names its holder by owner word (pid and start time, `liveness.rs`), so a dead holder whose
/// pid another process now has, even this one, is still seen as dead.
struct TableLock<'a> {
    word: &'a AtomicU64,
}

impl<'a> TableLock<'a> {
    fn acquire(seg: &'a Segment, timeout: Duration) -> Result<Self, TopicError> {
        let word = &seg.header().topic_lock;
        let me = liveness::my_owner();
        // `None`: a timeout too long to represent, i.e. none.
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = Duration::from_micros(20);
        loop {
            let holder = word.load(Ordering::Relaxed);
            // Another thread of this process may hold it: `owner_alive` says so for our own word.
            if holder == 0 || !liveness::owner_alive(holder) {
                // SYNC: Acquire pairs with the Release store in `drop`: we see the previous
                // holder's entry and arena writes.
                if word
                    .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(TableLock { word });
                }
                // Taken by someone else meanwhile: wait like any other time (a process that
                // keeps changing the word must not keep us here past the deadline).
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(TopicError::LockTimeout);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }
}

impl Drop for TableLock<'_> {
    fn drop(&mut self) {
        // SYNC: Release pairs with the Acquire CAS in `acquire`.
        self.word.store(0, Ordering::Release);
    }
}

/// Opens topic `name`, creating it with `cfg` if it does not exist. With `strict`, an existing
/// topic must have exactly `cfg`'s geometry.
pub(crate) fn open_or_create(
    seg: &Arc<Segment>,
    name: &str,
    cfg: &TopicConfig,
    strict: bool,
    timeout: Duration,
) -> Result<Ring, TopicError> {
    validate_name(name)?;
    let mut g = cfg.geometry()?;
    g.lossless = cfg.delivery == Delivery::Lossless;
    let check = |ring: Ring| {
        let existing = config_of(&ring.geom);
        let requested = TopicConfig {
            payload_size: g.payload_size,
            ..*cfg
        };
        if strict && existing.tuple() != requested.tuple() {
            return Err(TopicError::GeometryMismatch {
                topic: name.to_owned(),
                existing: existing.tuple(),
                requested: cfg.tuple(),
            });
        }
        if strict && existing.delivery != cfg.delivery {
            return Err(TopicError::DeliveryMismatch {
                topic: name.to_owned(),
                existing: existing.delivery,
                requested: cfg.delivery,
            });
        }
        Ok(ring)
    };
    if let Some(ring) = find(seg, name)? {
        return check(ring);
    }
    let _lock = TableLock::acquire(seg, timeout)?;
    // Someone may have created it while we waited for the lock.
    if let Some(ring) = find(seg, name)? {
        return check(ring);
    }
    let h = seg.header();
    let index = (0..seg.geom.max_topics)
        .find(|&i| seg.topic_entry(i).state.load(Ordering::Acquire) == TOPIC_FREE)
        .ok_or(TopicError::TableFull {
            max_topics: seg.geom.max_topics,
        })?;
    let used = h.arena_used.load(Ordering::Relaxed);
    let available = seg.geom.arena_size.saturating_sub(used);
    if g.ring_size > available {
        return Err(TopicError::ArenaFull {
            needed: g.ring_size,
            available,
        });
    }
    g.ring_offset = seg.geom.arena_offset + used;
    // The block is taken before it is written: a creator that dies from here on leaks it (never
    // reused), rather than leaving a half-written block that a later topic could land on.
    h.arena_used.store(used + g.ring_size, Ordering::Relaxed);
    let ring = Ring::new(Arc::clone(seg), g, name.to_owned())
        .ok_or_else(|| TopicError::Corrupt("arena bookkeeping is inconsistent".into()))?;
    let rh = ring.header();
    rh.slot_count.store(g.slot_count, Ordering::Relaxed);
    rh.payload_size.store(g.payload_size, Ordering::Relaxed);
    rh.slot_stride.store(g.slot_stride, Ordering::Relaxed);
    rh.max_publishers.store(g.max_publishers, Ordering::Relaxed);
    rh.max_subscribers
        .store(g.max_subscribers, Ordering::Relaxed);
    for i in 0..g.max_publishers {
        ring.pub_record(i)
            .inflight
            .store(INFLIGHT_IDLE, Ordering::Relaxed);
    }
    let e = seg.topic_entry(index);
    e.name_len.store(name.len() as u32, Ordering::Relaxed);
    for (w, v) in e.name.iter().zip(pack_name(name)) {
        w.store(v, Ordering::Relaxed);
    }
    e.slot_count.store(g.slot_count, Ordering::Relaxed);
    e.payload_size.store(g.payload_size, Ordering::Relaxed);
    e.slot_stride.store(g.slot_stride, Ordering::Relaxed);
    e.delivery.store(cfg.delivery.code(), Ordering::Relaxed);
    e.max_publishers.store(g.max_publishers, Ordering::Relaxed);
    e.max_subscribers
        .store(g.max_subscribers, Ordering::Relaxed);
    e.ring_offset.store(g.ring_offset, Ordering::Relaxed);
    e.ring_size.store(g.ring_size, Ordering::Relaxed);
    crate::crash_point("topic-before-ready");
    // SYNC: Release pairs with the Acquire load of `state` in `find`: a process that sees READY
    // sees the entry and the ring header written above.
    e.state.store(TOPIC_READY, Ordering::Release);
    h.topic_count.fetch_add(1, Ordering::Relaxed);
    Ok(ring)
}

/// Opens an existing topic.
pub(crate) fn open_existing(seg: &Arc<Segment>, name: &str) -> Result<Ring, TopicError> {
    validate_name(name)?;
    find(seg, name)?.ok_or_else(|| TopicError::NotFound(name.to_owned()))
}

/// Takes a free record, or else one whose owner died; returns its index and new generation.
/// `record(i)` yields `(owner, generation)` of record `i`. Free records go first so that dead
/// owners stay visible (`shmbus info`) until their entry is needed. On taking a dead owner's
/// record, `retire(i)` runs first so its counters can be folded into the topic totals.
pub(crate) fn take_record<'r>(
    count: u32,
    record: impl Fn(u32) -> (&'r AtomicU64, &'r AtomicU32),
    mut retire: impl FnMut(u32),
) -> Option<(u32, u32)> {
    let me = liveness::my_owner();
    for take_dead in [false, true] {
        for i in 0..count {
            let (owner, generation) = record(i);
            let cur = owner.load(Ordering::Relaxed);
            let usable = if take_dead {
                cur != 0 && !liveness::owner_alive(cur)
            } else {
                cur == 0
            };
            if !usable {
                continue;
            }
            // SYNC: Acquire pairs with the Release store of 0 when a record is given back: we
            // see the previous owner's last counter updates.
            if owner
                .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                if cur != 0 {
                    retire(i);
                }
                let generation = generation.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
                return Some((i, generation));
            }
        }
    }
    None
}

/// A handle on one topic of a bus; makes publishers and subscribers. Cheap to clone; `Send` and
/// `Sync` (it only reads the topic's geometry).
#[derive(Clone)]
pub struct Topic {
    pub(crate) ring: Arc<Ring>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.ring.name)
            .field("config", &self.config())
            .finish()
    }
}

/// A publisher as seen in [`TopicStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherStats {
    /// Publisher id (as in [`MessageInfo::publisher_id`](crate::MessageInfo)).
    pub id: u32,
    /// Owner process.
    pub pid: u32,
    /// Whether the owner still runs.
    pub alive: bool,
    /// Messages it published.
    pub published: u64,
    /// Loans it dropped unpublished.
    pub aborted: u64,
}

/// A subscriber as seen in [`TopicStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Subscriber id: record index (low 12 bits) and the record's generation, stable for the
    /// subscriber's life.
    pub id: u32,
    /// Owner process.
    pub pid: u32,
    /// Whether the owner still runs.
    pub alive: bool,
    /// Next sequence it will read.
    pub cursor: u64,
    /// Messages published that it has not read yet.
    pub lag: u64,
    /// Messages delivered to it.
    pub delivered: u64,
    /// Messages it lost.
    pub lost: u64,
}

/// A snapshot of a topic's counters, read without locking (each value is exact, the set is not
/// one instant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// Topic name.
    pub name: String,
    /// Geometry.
    pub config: TopicConfig,
    /// Sequence numbers handed out so far (published + aborted + claimed in flight).
    pub next_seq: u64,
    /// Messages published, by live and retired publishers.
    pub published: u64,
    /// Loans aborted.
    pub aborted: u64,
    /// Slots closed after their writer died.
    pub repaired: u64,
    /// `FUTEX_WAKE` system calls issued by publishers.
    pub wakes: u64,
    /// Subscribers parked right now.
    pub sleepers: u32,
    /// Lossless topics: times a publisher found the ring full.
    pub backpressure: u64,
    /// Lossless topics: subscribers evicted because their process died.
    pub evicted: u64,
    /// Registered publishers.
    pub publishers: Vec<PublisherStats>,
    /// Registered subscribers.
    pub subscribers: Vec<SubscriberStats>,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.ring.name
    }

    /// The topic's geometry.
    pub fn config(&self) -> TopicConfig {
        config_of(&self.ring.geom)
    }

    /// Registers a new publisher on this topic.
    ///
    /// # Errors
    /// [`TopicError::PublisherTableFull`] if `max_publishers` live publishers exist.
    pub fn publisher(&self) -> Result<Publisher, TopicError> {
        Publisher::new(Arc::clone(&self.ring), &PublisherConfig::default())
    }

    /// Registers a new publisher with `cfg`.
    ///
    /// # Errors
    /// As [`Topic::publisher`].
    pub fn publisher_with(&self, cfg: &PublisherConfig) -> Result<Publisher, TopicError> {
        Publisher::new(Arc::clone(&self.ring), cfg)
    }

    /// Registers a new subscriber with the default [`SubscriberConfig`]; it receives messages
    /// published after this call.
    ///
    /// # Errors
    /// [`TopicError::SubscriberTableFull`] if `max_subscribers` live subscribers exist.
    pub fn subscriber(&self) -> Result<Subscriber, TopicError> {
        Subscriber::new(Arc::clone(&self.ring), &SubscriberConfig::default())
    }

    /// Registers a new subscriber with `cfg`.
    ///
    /// # Errors
    /// As [`Topic::subscriber`].
    pub fn subscriber_with(&self, cfg: &SubscriberConfig) -> Result<Subscriber, TopicError> {
        Subscriber::new(Arc::clone(&self.ring), cfg)
    }

    /// Reads the topic's counters.
    pub fn stats(&self) -> TopicStats {
        stats(&self.ring)
    }
}

fn pub_stats(i: u32, r: &PubRecord) -> Option<PublisherStats> {
    let owner = r.owner.load(Ordering::Acquire);
    (owner != 0).then(|| PublisherStats {
        id: i | (r.generation.load(Ordering::Relaxed) << 8),
        pid: liveness::owner_pid(owner),
        alive: liveness::owner_alive(owner),
        published: r.published.load(Ordering::Relaxed),
        aborted: r.aborted.load(Ordering::Relaxed),
    })
}

fn sub_stats(i: u32, r: &SubRecord, next_seq: u64) -> Option<SubscriberStats> {
    let owner = r.owner.load(Ordering::Acquire);
    (owner != 0).then(|| {
        let cursor = r.cursor.load(Ordering::Relaxed);
        SubscriberStats {
            id: i | (r.generation.load(Ordering::Relaxed) << 12),
            pid: liveness::owner_pid(owner),
            alive: liveness::owner_alive(owner),
            cursor,
            lag: next_seq.saturating_sub(cursor),
            delivered: r.delivered.load(Ordering::Relaxed),
            lost: r.lost.load(Ordering::Relaxed),
        }
    })
}

pub(crate) fn stats(ring: &Ring) -> TopicStats {
    let h = ring.header();
    let next_seq = crate::gate::next_seq(&h.claim);
    let publishers: Vec<_> = (0..ring.geom.max_publishers)
        .filter_map(|i| pub_stats(i, ring.pub_record(i)))
        .collect();
    let subscribers: Vec<_> = (0..ring.geom.max_subscribers)
        .filter_map(|i| sub_stats(i, ring.sub_record(i), next_seq))
        .collect();
    TopicStats {
        name: ring.name.clone(),
        config: config_of(&ring.geom),
        next_seq,
        // Wrapping sums: the counters are shared memory, and a hostile process may have written
        // anything there (a wrong total, never a panic).
        published: publishers
            .iter()
            .fold(h.retired_published.load(Ordering::Relaxed), |a, p| {
                a.wrapping_add(p.published)
            }),
        aborted: publishers
            .iter()
            .fold(h.retired_aborted.load(Ordering::Relaxed), |a, p| {
                a.wrapping_add(p.aborted)
            }),
        repaired: h.repaired.load(Ordering::Relaxed),
        wakes: h.wakes.load(Ordering::Relaxed),
        sleepers: h.sleepers.load(Ordering::Relaxed),
        backpressure: h.backpressure.load(Ordering::Relaxed),
        evicted: h.evicted.load(Ordering::Relaxed),
        publishers,
        subscribers,
    }
}
