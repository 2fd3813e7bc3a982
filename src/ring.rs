//! Addressing inside one topic's arena block: ring header, publisher and subscriber records, and
//! slots. Every address is computed from the validated, process-local [`RingGeometry`], so no value
//! read from shared memory can steer an access out of the block.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::layout::{
    LINE, PubRecord, RECORD_SIZE, RING_HEADER_SIZE, RingHeader, SLOT_ALIGN, SLOT_HEADER,
    SlotHeader, SubRecord,
};
use crate::segment::Segment;
use crate::sync::atomic::AtomicU64;

/// Largest slot count of a topic.
pub(crate) const MAX_SLOTS: u32 = 1 << 24;
/// Largest payload per slot (16 MiB).
pub(crate) const MAX_PAYLOAD: u32 = 16 << 20;
/// Largest publisher table (the publisher id keeps the index in 8 bits).
pub(crate) const MAX_PUBLISHERS: u32 = 256;
/// Largest subscriber table.
pub(crate) const MAX_SUBSCRIBERS: u32 = 4096;

/// The validated shape of a topic's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingGeometry {
    pub slot_count: u32,
    pub payload_size: u32,
    pub max_publishers: u32,
    pub max_subscribers: u32,
    pub slot_stride: u32,
    pub ring_offset: u64,
    pub ring_size: u64,
    /// Lossless delivery: publishers wait for the slowest live subscriber.
    pub lossless: bool,
}

impl RingGeometry {
    /// Computes the geometry for a configuration; `Err` names the bad value.
    pub fn plan(
        slot_count: u32,
        payload_size: u32,
        max_publishers: u32,
        max_subscribers: u32,
    ) -> Result<RingGeometry, String> {
        if !slot_count.is_power_of_two() || !(2..=MAX_SLOTS).contains(&slot_count) {
            return Err(format!(
                "slots must be a power of two in 2..={MAX_SLOTS}, got {slot_count}"
            ));
        }
        if !(1..=MAX_PAYLOAD).contains(&payload_size) {
            return Err(format!(
                "payload_size must be 1..={MAX_PAYLOAD}, got {payload_size}"
            ));
        }
        if !(1..=MAX_PUBLISHERS).contains(&max_publishers) {
            return Err(format!(
                "max_publishers must be 1..={MAX_PUBLISHERS}, got {max_publishers}"
            ));
        }
        if !(1..=MAX_SUBSCRIBERS).contains(&max_subscribers) {
            return Err(format!(
                "max_subscribers must be 1..={MAX_SUBSCRIBERS}, got {max_subscribers}"
            ));
        }
        // Payload capacity is rounded up to whole words so that word-wise copies stay inside.
        let payload_size = payload_size.div_ceil(8) * 8;
        let stride =
            (SLOT_HEADER as u32 + payload_size).div_ceil(SLOT_ALIGN as u32) * SLOT_ALIGN as u32;
        let slots_off = Self::slots_offset_for(max_publishers, max_subscribers);
        let size = slots_off + u64::from(slot_count) * u64::from(stride);
        let ring_size = size.div_ceil(LINE as u64) * LINE as u64;
        Ok(RingGeometry {
            slot_count,
            payload_size,
            max_publishers,
            max_subscribers,
            slot_stride: stride,
            ring_offset: 0,
            ring_size,
            lossless: false,
        })
    }

    fn slots_offset_for(max_publishers: u32, max_subscribers: u32) -> u64 {
        RING_HEADER_SIZE as u64 + RECORD_SIZE as u64 * u64::from(max_publishers + max_subscribers)
    }

    fn slots_offset(&self) -> u64 {
        Self::slots_offset_for(self.max_publishers, self.max_subscribers)
    }
}

/// One topic's block, mapped. Keeps the segment alive.
pub(crate) struct Ring {
    /// Keeps the mapping that `base` points into alive.
    _seg: Arc<Segment>,
    base: NonNull<u8>,
    pub geom: RingGeometry,
    mask: u64,
    /// `geom.slots_offset()` and `geom.slot_stride`, precomputed for the hot path.
    slots_off: usize,
    stride: usize,
    pub name: String,
}

// SAFETY: `base` points into the mapping owned by `seg` (kept alive by the Arc); every access
// through it is to atomics, so `Ring` may move to and be shared between threads.
unsafe impl Send for Ring {}
// SAFETY: as for Send.
unsafe impl Sync for Ring {}

impl Ring {
    /// Maps a topic block whose geometry was validated by the caller. `None` if the block is not
    /// inside the arena.
    pub fn new(seg: Arc<Segment>, geom: RingGeometry, name: String) -> Option<Ring> {
        debug_assert_eq!(
            geom.ring_size,
            RingGeometry::plan(
                geom.slot_count,
                geom.payload_size,
                geom.max_publishers,
                geom.max_subscribers
            )
            .ok()?
            .ring_size
        );
        let base = seg.arena_range(geom.ring_offset, geom.ring_size)?;
        Some(Ring {
            _seg: seg,
            base,
            geom,
            mask: u64::from(geom.slot_count) - 1,
            slots_off: geom.slots_offset() as usize,
            stride: geom.slot_stride as usize,
            name,
        })
    }

    /// A reference to the `T` at byte `off` of the block.
    ///
    /// # Safety
    /// * `off + size_of::<T>() <= ring_size` and `off` is a multiple of `align_of::<T>()`;
    /// * `T` is made only of atomics (other processes write these bytes).
    #[inline]
    unsafe fn at<T>(&self, off: usize) -> &T {
        // SAFETY: the caller keeps `off` inside the block, which lies inside the mapping.
        let p = unsafe { self.base.add(off) };
        // SAFETY: in bounds and aligned (caller); the mapping outlives `&self` (`_seg`); a shared
        // reference to atomics is sound even while other processes write them.
        unsafe { p.cast::<T>().as_ref() }
    }

    /// The ring header.
    #[inline]
    pub fn header(&self) -> &RingHeader {
        // SAFETY: offset 0 of a block of `ring_size` ≥ RING_HEADER_SIZE bytes, aligned to
        // LINE = align_of RingHeader (checked in `new`); made of atomics.
        unsafe { self.at::<RingHeader>(0) }
    }

    /// Publisher record `i`.
    ///
    /// # Panics
    /// If `i >= max_publishers`.
    #[inline]
    pub fn pub_record(&self, i: u32) -> &PubRecord {
        assert!(i < self.geom.max_publishers, "publisher index out of range");
        let off = RING_HEADER_SIZE + RECORD_SIZE * i as usize;
        // SAFETY: i < max_publishers, so the record lies before the slots, inside the block;
        // offsets are multiples of 128 = align_of PubRecord; made of atomics.
        unsafe { self.at::<PubRecord>(off) }
    }

    /// Subscriber record `i`.
    ///
    /// # Panics
    /// If `i >= max_subscribers`.
    #[inline]
    pub fn sub_record(&self, i: u32) -> &SubRecord {
        assert!(
            i < self.geom.max_subscribers,
            "subscriber index out of range"
        );
        let off = RING_HEADER_SIZE + RECORD_SIZE * (self.geom.max_publishers + i) as usize;
        // SAFETY: i < max_subscribers, so the record lies before the slots, inside the block;
        // offsets are multiples of 128 = align_of SubRecord; made of atomics.
        unsafe { self.at::<SubRecord>(off) }
    }

    /// Byte offset of the slot for `seq` inside the block.
    #[inline]
    fn slot_offset(&self, seq: u64) -> usize {
        // (seq & mask) < slot_count ≤ 2^24, and the block (≤ the mapping) fits in usize.
        self.slots_off + (seq & self.mask) as usize * self.stride
    }

    /// The header of the slot that holds `seq`.
    #[inline]
    pub fn slot(&self, seq: u64) -> &SlotHeader {
        let off = self.slot_offset(seq);
        // SAFETY: (seq & mask) < slot_count, so the slot lies inside the block (ring_size covers
        // slots_offset + slot_count × stride); stride and slots_offset are multiples of 64 ≥
        // align_of SlotHeader; made of atomics.
        unsafe { self.at::<SlotHeader>(off) }
    }

    /// The payload of the slot that holds `seq`, as `payload_size / 8` words.
    #[inline]
    pub fn payload_words(&self, seq: u64) -> &[AtomicU64] {
        let words = self.geom.payload_size as usize / 8;
        let first = self.payload_ptr(seq).cast::<AtomicU64>();
        // SAFETY: the payload follows the 32-byte slot header and has payload_size bytes, all
        // inside the slot's stride (stride ≥ SLOT_HEADER + payload_size by `plan`); 8-aligned;
        // AtomicU64 has the size and alignment of u64, and the bytes are only accessed atomically.
        unsafe { std::slice::from_raw_parts(first.as_ptr(), words) }
    }

    /// The header and the payload words of the slot that holds `seq`, for code that needs both.
    #[inline]
    pub fn slot_and_payload(&self, seq: u64) -> (&SlotHeader, &[AtomicU64]) {
        (self.slot(seq), self.payload_words(seq))
    }

    /// The payload of the slot that holds `seq` as raw bytes, for a writer that owns the slot.
    #[inline]
    pub fn payload_ptr(&self, seq: u64) -> NonNull<u8> {
        let off = self.slot_offset(seq) + SLOT_HEADER;
        // SAFETY: (seq & mask) < slot_count, and the payload starts SLOT_HEADER bytes into
        // the slot, inside the block.
        unsafe { self.base.add(off) }
    }
}
