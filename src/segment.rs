//! The mapped segment: create, open, validate, and bounds-checked access to the structs in it.
//!
//! Everything read from the segment is untrusted: the geometry is validated once on open and
//! copied into process-local fields, and every later address is computed from those copies.

use std::fs::File;
use std::io;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::BusError;
use crate::layout::{
    self, LINE, MAGIC, SEGMENT_HEADER_SIZE, STATE_READY, SegmentHeader, TOPIC_ENTRY_SIZE,
    TopicEntry,
};
use crate::liveness;
use crate::sync::atomic::Ordering;
use crate::sys;

/// Largest topic table a segment may declare.
pub(crate) const MAX_TOPICS_LIMIT: u32 = 4096;
/// Smallest segment we create (header, table and a little arena).
pub(crate) const MIN_SEGMENT: u64 = 64 * 1024;
/// Largest segment we create or accept (1 TiB).
pub(crate) const MAX_SEGMENT: u64 = 1 << 40;
const PAGE: u64 = 4096;

/// Validated, process-local copy of the segment geometry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub total_size: u64,
    pub max_topics: u32,
    pub arena_offset: u64,
    pub arena_size: u64,
}

/// How the creator lays out a segment of `size` bytes with `max_topics` entries.
pub(crate) fn plan(size: u64, max_topics: u32) -> Result<Geometry, String> {
    if max_topics == 0 || max_topics > MAX_TOPICS_LIMIT {
        return Err(format!(
            "max_topics must be 1..={MAX_TOPICS_LIMIT}, got {max_topics}"
        ));
    }
    if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&size) {
        return Err(format!(
            "size must be {MIN_SEGMENT}..={MAX_SEGMENT} bytes, got {size}"
        ));
    }
    let table_end = SEGMENT_HEADER_SIZE as u64 + u64::from(max_topics) * TOPIC_ENTRY_SIZE as u64;
    let arena_offset = layout::round_up(table_end, PAGE).ok_or("overflow")?;
    let total_size = layout::round_up(size, PAGE).ok_or("overflow")?;
    if arena_offset + PAGE > total_size {
        return Err(format!(
            "size {size} leaves no arena after a table of {max_topics} topics"
        ));
    }
    Ok(Geometry {
        total_size,
        max_topics,
        arena_offset,
        arena_size: total_size - arena_offset,
    })
}

/// A mapped shmbus segment.
pub(crate) struct Segment {
    map: MmapRaw,
    pub geom: Geometry,
    pub name: String,
}

// SAFETY: `Segment` owns a mapping that lives as long as it does; all access to the mapped bytes
// goes through atomics (`layout` structs are made only of atomics), so sharing the pointer between
// threads adds no data race beyond what processes sharing the mapping already coordinate.
unsafe impl Send for Segment {}
// SAFETY: as for `Send`: `&Segment` only hands out shared references to atomics.
unsafe impl Sync for Segment {}

fn map_err(name: &str, e: io::Error, requested: u64) -> BusError {
    match e.raw_os_error() {
        Some(libc_enoent) if libc_enoent == rustix::io::Errno::NOENT.raw_os_error() => {
            BusError::NotFound(name.to_owned())
        }
        Some(c) if c == rustix::io::Errno::EXIST.raw_os_error() => {
            BusError::AlreadyExists(name.to_owned())
        }
        Some(c)
            if c == rustix::io::Errno::ACCESS.raw_os_error()
                || c == rustix::io::Errno::PERM.raw_os_error() =>
        {
            BusError::PermissionDenied(name.to_owned())
        }
        Some(c)
            if c == rustix::io::Errno::NOSPC.raw_os_error()
                || c == rustix::io::Errno::NOMEM.raw_os_error()
                || c == rustix::io::Errno::FBIG.raw_os_error() =>
        {
            BusError::OutOfSpace { requested }
        }
        Some(c) if c == rustix::io::Errno::NAMETOOLONG.raw_os_error() => {
            BusError::InvalidName(format!("{name:?} is too long"))
        }
        _ => BusError::Io(e),
    }
}

fn map_file(file: &File, len: u64, populate: bool) -> io::Result<MmapRaw> {
    let mut opts = MmapOptions::new();
    opts.len(usize::try_from(len).map_err(|_| io::Error::other("segment too large"))?);
    if populate {
        // Prefault: map every page now, so no page fault lands on the hot path.
        opts.populate();
    }
    opts.map_raw(file)
}

fn corrupt(field: &'static str, detail: impl Into<String>) -> BusError {
    BusError::Corrupt {
        field,
        detail: detail.into(),
    }
}

impl Segment {
    /// Creates, fills and publishes a new segment (state READY stored last, with Release).
    pub fn create(
        name: &str,
        size: u64,
        max_topics: u32,
        mode: u32,
        populate: bool,
    ) -> Result<Segment, BusError> {
        let geom = plan(size, max_topics).map_err(BusError::InvalidConfig)?;
        let file = sys::shm_create(name, mode, geom.total_size)
            .map_err(|e| map_err(name, e, geom.total_size))?;
        let map = match map_file(&file, geom.total_size, populate) {
            Ok(m) => m,
            Err(e) => {
                let _ = sys::shm_unlink(name);
                return Err(map_err(name, e, geom.total_size));
            }
        };
        Ok(Self::initialise(map, geom, name, mode))
    }

    /// A segment in this process's memory only (an anonymous private mapping), laid out and
    /// initialised as [`create`](Self::create) does. For the tests that run the ring code where
    /// shared memory cannot be mapped: under Miri, which then checks the unsafe pointer code of
    /// `segment`, `ring` and `seqlock`, and the data races of the atomics between threads.
    #[cfg(test)]
    pub fn private(size: u64, max_topics: u32) -> Result<Segment, BusError> {
        let geom = plan(size, max_topics).map_err(BusError::InvalidConfig)?;
        let len = usize::try_from(geom.total_size)
            .map_err(|_| BusError::InvalidConfig(size.to_string()))?;
        let map = MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|e| map_err("(private)", e, geom.total_size))?;
        Ok(Self::initialise(map.into(), geom, "(private)", 0o600))
    }

    /// Fills the header of a new mapping and marks it READY.
    fn initialise(map: MmapRaw, geom: Geometry, name: &str, mode: u32) -> Segment {
        let seg = Segment {
            map,
            geom,
            name: name.to_owned(),
        };
        let h = seg.header();
        let pid = sys::current_pid();
        // The pid goes first, so an opener that times out can tell whether we died.
        h.creator_pid.store(pid, Ordering::Relaxed);
        h.creator_start_time
            .store(sys::process_start_time(pid), Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.layout_version
            .store(layout::LAYOUT_VERSION, Ordering::Relaxed);
        h.fingerprint
            .store(layout::fingerprint(), Ordering::Relaxed);
        h.total_size.store(geom.total_size, Ordering::Relaxed);
        h.mode.store(mode, Ordering::Relaxed);
        h.created_at_unix_ns
            .store(sys::realtime_ns(), Ordering::Relaxed);
        h.max_topics.store(geom.max_topics, Ordering::Relaxed);
        h.topic_table_offset
            .store(SEGMENT_HEADER_SIZE as u64, Ordering::Relaxed);
        h.arena_offset.store(geom.arena_offset, Ordering::Relaxed);
        h.arena_size.store(geom.arena_size, Ordering::Relaxed);
        crate::crash_point("create-before-ready");
        // SYNC: Release pairs with the Acquire load of `state` in `Segment::open`: an opener that
        // sees READY sees every header field stored above.
        h.state.store(STATE_READY, Ordering::Release);
        seg
    }

    /// Opens an existing segment, waiting up to `timeout` for its creator to mark it ready, and
    /// validates every header field before anything else is touched.
    pub fn open(name: &str, timeout: Duration, populate: bool) -> Result<Segment, BusError> {
        let file = sys::shm_open(name).map_err(|e| map_err(name, e, 0))?;
        // `None`: a timeout too long to represent, i.e. none.
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = Duration::from_micros(50);
        let mut wait = |creator: u32| -> Result<(), BusError> {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // The creator by pid alone (an owner word with start time 0).
                if creator != 0 && !liveness::owner_alive(liveness::owner_word(creator, 0)) {
                    return Err(BusError::CreatorDied { pid: creator });
                }
                return Err(BusError::NotInitialized);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
            Ok(())
        };
        // The creator sizes the object right after creating it; wait for that.
        let len = loop {
            let len = sys::file_len(&file).map_err(BusError::Io)?;
            if len >= SEGMENT_HEADER_SIZE as u64 {
                break len;
            }
            wait(0)?;
        };
        if len > MAX_SEGMENT {
            return Err(corrupt(
                "total_size",
                format!("object is {len} bytes, above the limit"),
            ));
        }
        let map = map_file(&file, len, populate).map_err(|e| map_err(name, e, len))?;
        let mut seg = Segment {
            map,
            geom: Geometry {
                total_size: len,
                max_topics: 0,
                arena_offset: 0,
                arena_size: 0,
            },
            name: name.to_owned(),
        };
        loop {
            let h = seg.header();
            // SYNC: Acquire pairs with the Release store of READY in `Segment::create`.
            if h.state.load(Ordering::Acquire) == STATE_READY {
                break;
            }
            // Not ready: a creator at work (magic still 0), or something that will never be
            // ready for us. Say so now rather than after the timeout.
            let magic = h.magic.load(Ordering::Relaxed);
            if magic != 0 && magic != MAGIC {
                return Err(corrupt(
                    "magic",
                    format!("{magic:#018x}: not a shmbus segment"),
                ));
            }
            let version = h.layout_version.load(Ordering::Relaxed);
            if magic == MAGIC && version != 0 && version != layout::LAYOUT_VERSION {
                return Err(BusError::VersionMismatch {
                    found: version,
                    expected: layout::LAYOUT_VERSION,
                });
            }
            wait(h.creator_pid.load(Ordering::Relaxed))?;
        }
        seg.geom = seg.validate(len)?;
        Ok(seg)
    }

    fn validate(&self, len: u64) -> Result<Geometry, BusError> {
        let h = self.header();
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(corrupt(
                "magic",
                format!("{magic:#018x}: not a shmbus segment"),
            ));
        }
        let version = h.layout_version.load(Ordering::Relaxed);
        if version != layout::LAYOUT_VERSION {
            return Err(BusError::VersionMismatch {
                found: version,
                expected: layout::LAYOUT_VERSION,
            });
        }
        let fp = h.fingerprint.load(Ordering::Relaxed);
        if fp != layout::fingerprint() {
            return Err(BusError::LayoutMismatch {
                found: fp,
                expected: layout::fingerprint(),
            });
        }
        let total = h.total_size.load(Ordering::Relaxed);
        if total != len {
            return Err(corrupt(
                "total_size",
                format!("header says {total} bytes, the object has {len}"),
            ));
        }
        let max_topics = h.max_topics.load(Ordering::Relaxed);
        let table = h.topic_table_offset.load(Ordering::Relaxed);
        if table != SEGMENT_HEADER_SIZE as u64 {
            return Err(corrupt(
                "topic_table_offset",
                format!("{table}, expected 256"),
            ));
        }
        let expected = plan(total, max_topics).map_err(|e| corrupt("max_topics", e))?;
        if expected.total_size != total {
            // `plan` rounds up to whole pages, and so does every creator: a size that is not a
            // whole number of pages would put the arena's end past the end of the object.
            return Err(corrupt(
                "total_size",
                format!("{total} bytes is not a whole number of pages"),
            ));
        }
        let arena_offset = h.arena_offset.load(Ordering::Relaxed);
        if arena_offset != expected.arena_offset {
            return Err(corrupt(
                "arena_offset",
                format!("{arena_offset}, expected {}", expected.arena_offset),
            ));
        }
        let arena_size = h.arena_size.load(Ordering::Relaxed);
        if arena_size != expected.arena_size {
            return Err(corrupt(
                "arena_size",
                format!("{arena_size}, expected {}", expected.arena_size),
            ));
        }
        Ok(expected)
    }

    /// The segment header.
    pub fn header(&self) -> &SegmentHeader {
        let base = self.map.as_mut_ptr();
        debug_assert!(self.map.len() >= SEGMENT_HEADER_SIZE);
        // SAFETY: the mapping is at least SEGMENT_HEADER_SIZE bytes (checked in `create` by
        // `plan` and in `open` before mapping), page aligned (≥ align_of SegmentHeader), and lives
        // as long as `self`. SegmentHeader is made only of atomics, so a shared reference to bytes
        // other processes write is sound.
        unsafe { &*base.cast::<SegmentHeader>() }
    }

    /// Topic-table entry `i`.
    ///
    /// # Panics
    /// If `i >= max_topics` (a bug in the caller: indices come from `0..max_topics`).
    pub fn topic_entry(&self, i: u32) -> &TopicEntry {
        assert!(i < self.geom.max_topics, "topic index out of range");
        let off = SEGMENT_HEADER_SIZE + i as usize * TOPIC_ENTRY_SIZE;
        // SAFETY: `i < max_topics` and the validated geometry puts the table
        // (256 + max_topics × 128 bytes) before the arena, inside the mapping.
        let p = unsafe { self.map.as_mut_ptr().add(off) };
        // SAFETY: in bounds (above); 256 + i × 128 is a multiple of 128 = align_of TopicEntry;
        // the entry is made only of atomics; the mapping lives as long as `self`.
        unsafe { &*p.cast::<TopicEntry>() }
    }

    /// A pointer to `len` bytes of the arena at segment offset `offset`, or `None` if that range
    /// is not inside the arena or not [`LINE`]-aligned.
    pub fn arena_range(&self, offset: u64, len: u64) -> Option<NonNull<u8>> {
        let end = offset.checked_add(len)?;
        let arena_end = self.geom.arena_offset + self.geom.arena_size;
        if offset < self.geom.arena_offset || end > arena_end || !offset.is_multiple_of(LINE as u64)
        {
            return None;
        }
        // SAFETY: offset <= end <= arena_end <= total_size = mapping length, checked just above
        // (offset == arena_end only for len 0: a pointer one past the end, which `add` allows).
        let ptr = unsafe { self.map.as_mut_ptr().add(offset as usize) };
        NonNull::new(ptr)
    }
}

/// Validates a bus name: 1..=200 bytes of `[A-Za-z0-9_.-]`, not starting with '.'.
pub(crate) fn validate_bus_name(name: &str) -> Result<(), BusError> {
    let bad = |why: &str| Err(BusError::InvalidName(format!("{name:?}: {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 200 {
        return bad("longer than 200 bytes");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(&format!("character {c:?} is not one of [A-Za-z0-9_.-]"));
    }
    Ok(())
}
