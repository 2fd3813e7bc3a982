//! Every structure that lives in the shared segment, and the constants that describe it.
//!
//! This file is the ABI between processes. Rules:
//! * every struct is `#[repr(C)]`, made only of fixed-width atomics (another process may write any
//!   byte at any time, so no field is ever read through a plain reference to a non-atomic);
//! * sizes and offsets are frozen by the `const` assertions below;
//! * any change bumps [`LAYOUT_VERSION`] and updates `docs/design.md` ("Memory map").
//!
//! The segment is: [`SegmentHeader`] (256 B) · topic table (`max_topics` × [`TopicEntry`], 128 B
//! each) · arena. Each topic owns one arena block: [`RingHeader`] (384 B) · `max_publishers` ×
//! [`PubRecord`] · `max_subscribers` × [`SubRecord`] · `slot_count` slots of `slot_stride` bytes,
//! each a [`SlotHeader`] (32 B) followed by the payload.

use crate::sync::atomic::{AtomicU32, AtomicU64};

/// `b"SHMBUS\0\x01"` read as a little-endian `u64`: the first 8 bytes of every segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMBUS\0\x01");

/// Version of this file's layout. Bumped on any change to a shared struct or to the protocol.
pub const LAYOUT_VERSION: u32 = 3;

/// `SegmentHeader::state` once the creator has finished initialising (ASCII "RDY!").
pub const STATE_READY: u32 = 0x2159_4452;

/// Alignment of everything contended. 128, not 64: on x86_64 the adjacent-line prefetcher pulls
/// cache lines in pairs, and on aarch64 (e.g. Apple M-series, Neoverse) lines are 128 bytes; the same
/// reasoning as crossbeam-utils' `CachePadded`. A fixed number, so the layout is the same on every
/// architecture.
pub const LINE: usize = 128;

/// Size of the slot header that precedes every payload.
pub const SLOT_HEADER: usize = 32;

/// Slots are a multiple of this size (one cache line on x86_64).
pub const SLOT_ALIGN: usize = 64;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_NAME: usize = 64;

/// `TopicEntry::state`: the entry is unused.
pub const TOPIC_FREE: u32 = 0;
/// `TopicEntry::state`: the entry is fully written and may be used (stored last, with Release).
pub const TOPIC_READY: u32 = 1;

/// `TopicEntry::delivery`: publishers never wait; slow subscribers lose the oldest messages.
pub const DELIVERY_LOSSY: u32 = 0;
/// `TopicEntry::delivery`: publishers never overwrite a slot a live subscriber has not read.
pub const DELIVERY_LOSSLESS: u32 = 1;

/// `PubRecord::inflight` when the publisher holds no claim.
pub const INFLIGHT_IDLE: u64 = u64::MAX;
/// `PubRecord::inflight` between "about to claim" and "claimed sequence recorded".
pub const INFLIGHT_CLAIMING: u64 = u64::MAX - 1;

/// The first 256 bytes of a segment. Written once by the creator; `state` is stored last with
/// Release, and an opener reads it with Acquire before trusting any other field.
#[repr(C, align(128))]
pub struct SegmentHeader {
    /// Always [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`] of the creator.
    pub layout_version: AtomicU32,
    /// 0 while initialising, [`STATE_READY`] once usable.
    pub state: AtomicU32,
    /// [`fingerprint()`] of the creator's build: catches a layout change without a version bump.
    pub fingerprint: AtomicU64,
    /// Total mapped size in bytes; must equal the object's size.
    pub total_size: AtomicU64,
    /// Creator's process id.
    pub creator_pid: AtomicU32,
    /// Permission bits the segment was created with (e.g. `0o600`).
    pub mode: AtomicU32,
    /// Creator's start time (clock ticks after boot, `/proc/PID/stat` field 22): with the pid it
    /// names the process even after the pid is reused.
    pub creator_start_time: AtomicU64,
    /// Wall-clock creation time, ns since the Unix epoch (for `shmbus ls`).
    pub created_at_unix_ns: AtomicU64,
    /// Number of entries in the topic table (1..=4096).
    pub max_topics: AtomicU32,
    /// Unused since layout version 3 (the pid-only topic lock, which a reused pid could hold
    /// for ever); zero.
    _reserved_lock: AtomicU32,
    /// Offset of the topic table from the segment start (always 256).
    pub topic_table_offset: AtomicU64,
    /// Offset of the arena from the segment start (multiple of [`LINE`]).
    pub arena_offset: AtomicU64,
    /// Size of the arena in bytes.
    pub arena_size: AtomicU64,
    /// Bytes of the arena handed out so far (bump allocation under `topic_lock`; never freed).
    pub arena_used: AtomicU64,
    /// Number of READY topics (informational).
    pub topic_count: AtomicU32,
    _reserved0: AtomicU32,
    /// The topic-creation lock: the owner word (as in [`PubRecord::owner`]: pid and start time)
    /// of the process creating a topic, 0 when free. Only held to create a topic.
    pub topic_lock: AtomicU64,
    _reserved: [AtomicU64; 18],
}

/// One entry of the topic table (128 bytes). Written under `SegmentHeader::topic_lock`; `state`
/// is stored last with Release. Readers treat every field as untrusted.
#[repr(C, align(128))]
pub struct TopicEntry {
    /// [`TOPIC_FREE`] or [`TOPIC_READY`].
    pub state: AtomicU32,
    /// Length of the name in bytes (1..=[`MAX_TOPIC_NAME`]).
    pub name_len: AtomicU32,
    /// The name, little-endian packed into 8 words, zero padded.
    pub name: [AtomicU64; 8],
    /// Slots in the ring: a power of two, 2..=2^24.
    pub slot_count: AtomicU32,
    /// Payload capacity of one slot in bytes (multiple of 8).
    pub payload_size: AtomicU32,
    /// Distance between slots in bytes (`SLOT_HEADER + payload_size` rounded up to [`SLOT_ALIGN`]).
    pub slot_stride: AtomicU32,
    /// Delivery mode: [`DELIVERY_LOSSY`] or [`DELIVERY_LOSSLESS`].
    pub delivery: AtomicU32,
    /// Entries in the publisher table (1..=256).
    pub max_publishers: AtomicU32,
    /// Entries in the subscriber table (1..=4096).
    pub max_subscribers: AtomicU32,
    /// Offset of the topic's [`RingHeader`] from the segment start.
    pub ring_offset: AtomicU64,
    /// Size of the topic's arena block in bytes.
    pub ring_size: AtomicU64,
    _reserved: [AtomicU64; 2],
}

/// The hot words of a topic: three cache lines, so claimers, sleepers and readers of the
/// geometry never share a line.
#[repr(C, align(128))]
pub struct RingHeader {
    /// Low 56 bits: next sequence number to claim; top 8 bits: subscriber registration epoch
    /// (see `gate.rs`). Publishers `fetch_add(1)` (lossy) or CAS (lossless); the only word all
    /// publishers of a topic contend on.
    pub claim: AtomicU64,
    _pad0: [AtomicU64; 15],
    /// The futex word: bumped by a publisher that finds sleepers, waited on by sleepers.
    pub event: AtomicU32,
    /// Subscribers currently parked (or about to park) on `event`.
    pub sleepers: AtomicU32,
    /// `FUTEX_WAKE` calls issued on this topic (statistics).
    pub wakes: AtomicU64,
    /// Messages published by publishers that have since been dropped or found dead.
    pub retired_published: AtomicU64,
    /// Loans aborted by publishers that have since been dropped or found dead.
    pub retired_aborted: AtomicU64,
    /// Slots repaired (skipped) after their writer died.
    pub repaired: AtomicU64,
    /// Lossless topics: times a publisher found the ring full and had to wait (or gave up).
    pub backpressure: AtomicU64,
    /// Lossless topics: subscribers evicted because their process died.
    pub evicted: AtomicU64,
    _pad1: [AtomicU64; 9],
    /// Copy of `TopicEntry::slot_count`, checked against it on attach.
    pub slot_count: AtomicU32,
    /// Copy of `TopicEntry::payload_size`.
    pub payload_size: AtomicU32,
    /// Copy of `TopicEntry::slot_stride`.
    pub slot_stride: AtomicU32,
    /// Copy of `TopicEntry::max_publishers`.
    pub max_publishers: AtomicU32,
    /// Copy of `TopicEntry::max_subscribers`.
    pub max_subscribers: AtomicU32,
    _pad2: [AtomicU32; 27],
}

/// A publisher's record (one cache line each, written only by its owner on the hot path).
#[repr(C, align(128))]
pub struct PubRecord {
    /// Owner: `pid << 32 | (start_time & 0xffff_ffff)`, 0 = free. Taken with one CAS (from 0, or
    /// from a dead owner's value), so pid and start time change together.
    pub owner: AtomicU64,
    /// Bumped each time the record is taken: `publisher id = index | (generation << 8)`.
    pub generation: AtomicU32,
    _reserved0: AtomicU32,
    /// [`INFLIGHT_IDLE`], [`INFLIGHT_CLAIMING`], or the sequence number currently claimed. The
    /// sole publisher of a lossy topic leaves its last sequence here after the commit
    /// (docs/design.md §4).
    pub inflight: AtomicU64,
    /// Messages this owner committed.
    pub published: AtomicU64,
    /// Loans this owner dropped unpublished.
    pub aborted: AtomicU64,
    _reserved: [AtomicU64; 11],
}

/// A subscriber's record (one cache line each, written only by its owner).
#[repr(C, align(128))]
pub struct SubRecord {
    /// Owner, encoded as in [`PubRecord::owner`]; 0 = free.
    pub owner: AtomicU64,
    /// Bumped each time the record is taken.
    pub generation: AtomicU32,
    _reserved0: AtomicU32,
    /// Next sequence the subscriber will read. On a lossless topic, publishers never overwrite
    /// the slot of this sequence or any later one while the owner lives.
    pub cursor: AtomicU64,
    /// Messages delivered to the owner.
    pub delivered: AtomicU64,
    /// Messages the owner lost to overruns or to repaired slots.
    pub lost: AtomicU64,
    _reserved: [AtomicU64; 11],
}

/// The header of one slot; the payload follows at offset [`SLOT_HEADER`].
///
/// `stamp` is the per-slot seqlock: `((seq + 1) << 2) | state`, where `state` is one of the
/// `STAMP_*` constants in `seqlock.rs`; 0 means "never written".
#[repr(C)]
pub struct SlotHeader {
    /// The seqlock word (see above).
    pub stamp: AtomicU64,
    /// Payload length in bytes (≤ payload_size; checked by every reader).
    pub len: AtomicU32,
    /// Publisher id of the writer: `record index | generation << 8`.
    pub publisher: AtomicU32,
    /// CLOCK_MONOTONIC nanoseconds read just before the message was committed (by copy or by
    /// loan), if its publisher stamps messages; 0 otherwise.
    pub timestamp_ns: AtomicU64,
    _reserved: AtomicU64,
}

/// Size of [`SegmentHeader`].
pub const SEGMENT_HEADER_SIZE: usize = 256;
/// Size of [`TopicEntry`].
pub const TOPIC_ENTRY_SIZE: usize = 128;
/// Size of [`RingHeader`].
pub const RING_HEADER_SIZE: usize = 384;
/// Size of [`PubRecord`] and [`SubRecord`].
pub const RECORD_SIZE: usize = 128;

#[cfg(not(loom))]
mod asserts {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    /// Every field's offset, in order (docs/design.md §2 has the same tables): moving a field
    /// fails the build here, and then needs a `LAYOUT_VERSION` bump (the fingerprint covers sizes,
    /// not offsets).
    macro_rules! offsets {
        ($t:ty { $($field:ident: $offset:expr),* $(,)? }) => {
            $(const _: () = assert!(offset_of!($t, $field) == $offset);)*
        };
    }

    const _: () = assert!(align_of::<SegmentHeader>() == LINE);
    const _: () = assert!(size_of::<SegmentHeader>() == SEGMENT_HEADER_SIZE);
    offsets!(SegmentHeader {
        magic: 0,
        layout_version: 8,
        state: 12,
        fingerprint: 16,
        total_size: 24,
        creator_pid: 32,
        mode: 36,
        creator_start_time: 40,
        created_at_unix_ns: 48,
        max_topics: 56,
        _reserved_lock: 60,
        topic_table_offset: 64,
        arena_offset: 72,
        arena_size: 80,
        arena_used: 88,
        topic_count: 96,
        _reserved0: 100,
        topic_lock: 104,
        _reserved: 112
    });
    const _: () = assert!(size_of::<TopicEntry>() == TOPIC_ENTRY_SIZE);
    offsets!(TopicEntry {
        state: 0,
        name_len: 4,
        name: 8,
        slot_count: 72,
        payload_size: 76,
        slot_stride: 80,
        delivery: 84,
        max_publishers: 88,
        max_subscribers: 92,
        ring_offset: 96,
        ring_size: 104,
        _reserved: 112
    });
    const _: () = assert!(size_of::<RingHeader>() == RING_HEADER_SIZE);
    offsets!(RingHeader {
        claim: 0,
        _pad0: 8,
        event: 128,
        sleepers: 132,
        wakes: 136,
        retired_published: 144,
        retired_aborted: 152,
        repaired: 160,
        backpressure: 168,
        evicted: 176,
        _pad1: 184,
        slot_count: 256,
        payload_size: 260,
        slot_stride: 264,
        max_publishers: 268,
        max_subscribers: 272,
        _pad2: 276
    });
    const _: () = assert!(size_of::<PubRecord>() == RECORD_SIZE);
    offsets!(PubRecord {
        owner: 0,
        generation: 8,
        _reserved0: 12,
        inflight: 16,
        published: 24,
        aborted: 32,
        _reserved: 40
    });
    const _: () = assert!(size_of::<SubRecord>() == RECORD_SIZE);
    offsets!(SubRecord {
        owner: 0,
        generation: 8,
        _reserved0: 12,
        cursor: 16,
        delivered: 24,
        lost: 32,
        _reserved: 40
    });
    const _: () = assert!(size_of::<SlotHeader>() == SLOT_HEADER);
    offsets!(SlotHeader {
        stamp: 0,
        len: 8,
        publisher: 12,
        timestamp_ns: 16,
        _reserved: 24
    });
}

/// A hash of every shared struct's size, of [`SegmentHeader`]'s alignment and of the key
/// constants, stored in the header: an opener built with different struct sizes is refused even
/// if someone forgot to bump [`LAYOUT_VERSION`]. Field offsets are not in it: a change that only
/// moves fields needs the version bump. FNV-1a, computed at compile time.
pub const fn fingerprint() -> u64 {
    #[cfg(not(loom))]
    let parts: [u64; 12] = [
        core::mem::size_of::<SegmentHeader>() as u64,
        core::mem::size_of::<TopicEntry>() as u64,
        core::mem::size_of::<RingHeader>() as u64,
        core::mem::size_of::<PubRecord>() as u64,
        core::mem::size_of::<SubRecord>() as u64,
        core::mem::size_of::<SlotHeader>() as u64,
        core::mem::align_of::<SegmentHeader>() as u64,
        LINE as u64,
        SLOT_ALIGN as u64,
        MAX_TOPIC_NAME as u64,
        LAYOUT_VERSION as u64,
        MAGIC,
    ];
    #[cfg(loom)]
    let parts: [u64; 1] = [LAYOUT_VERSION as u64];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let mut b = 0;
        while b < 8 {
            h ^= (parts[i] >> (b * 8)) & 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            b += 1;
        }
        i += 1;
    }
    h
}

/// Rounds `n` up to a multiple of `to` (a power of two). `None` on overflow.
pub const fn round_up(n: u64, to: u64) -> Option<u64> {
    match n.checked_add(to - 1) {
        Some(v) => Some(v & !(to - 1)),
        None => None,
    }
}
