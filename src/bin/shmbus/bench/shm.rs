//! The benchmark's only unsafe code: the shared mappings of the `floor`, `futex` and `ring`
//! reference transports.
//!
//! `floor` and `futex` need a word that two processes access atomically ([`SharedLine`]); `ring`
//! needs a few hundred KiB of slots that they access word by word ([`SharedMem`]). Each is a POSIX
//! shared-memory object (`/dev/shm/<name>`) mapped with [`memmap2::MmapRaw`], which hands out a
//! raw pointer and never a reference to the bytes (another process writes them). The only unsafe
//! operations view those bytes as atomics: the whole mapping as a slice of `AtomicU64`
//! ([`SharedMem::words`]) and the futex word as an `AtomicU32`.
//!
//! An object is created with `O_CREAT | O_EXCL` and mode 0600 under a name unique to this run
//! (it contains the pid), and the creator unlinks it when its handle is dropped, on error paths
//! too. The mapping itself lives until the last process unmaps it.
#![allow(
    clippy::disallowed_types,
    reason = "the crate's loom shim (crate::sync) is private to the library; this binary-only \
              module is never model-checked and uses std atomics on purpose"
)]

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::Mode;
use rustix::shm;
use rustix::thread::futex;

/// Size of [`SharedLine`]'s mapping: one page, of which the two words below use two cache lines.
const LEN: usize = 4096;
/// Offset of the floor's `u64` (a page start, so 8-byte aligned).
const FLOOR_OFFSET: usize = 0;
/// Offset of the futex's `u32`: on its own 128-byte line, so it never overlaps the floor word.
const FUTEX_OFFSET: usize = 128;

/// A mapped shared-memory object of a fixed length, viewed as 64-bit atomic words.
pub struct SharedMem {
    /// The mapping; `len` bytes, page aligned, alive as long as `self`.
    map: MmapRaw,
    /// Bytes mapped: a multiple of 8, checked by [`map`].
    len: usize,
    /// Set on the creator's handle: the object name to unlink on drop.
    owned_name: Option<String>,
}

impl SharedMem {
    /// Creates the object `name` (which must not exist), sizes it to `len` bytes (zero-filled),
    /// reserves them and maps it. Reserved with `fallocate`, as the library reserves a bus: a
    /// sparse object on a `/dev/shm` too small for it would kill the process that first touches
    /// a page past the room (SIGBUS) instead of failing here.
    ///
    /// # Errors
    /// Any error of `shm_open`, `ftruncate`, `fallocate` (`ENOSPC`: `/dev/shm` has no room) or
    /// `mmap`, or `InvalidInput` if `len` is 0 or not a multiple of 8.
    pub fn create(name: &str, len: usize) -> io::Result<Self> {
        check_len(len)?;
        let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
        let fd = shm::open(name, flags, Mode::RUSR | Mode::WUSR)?;
        // From here on the object exists: the error arm unlinks it, the handle's Drop otherwise.
        let file = File::from(fd);
        let sized = file
            .set_len(len as u64)
            .and_then(|()| {
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len as u64)
                    .map_err(|e| io::Error::other(format!("reserve {len} bytes in /dev/shm: {e}")))
            })
            .and_then(|()| map(&file, len));
        match sized {
            Ok(map) => Ok(Self {
                map,
                len,
                owned_name: Some(name.to_owned()),
            }),
            Err(e) => {
                let _ = shm::unlink(name);
                Err(e)
            }
        }
    }

    /// Opens the object `name` that another process created and maps its first `len` bytes.
    ///
    /// # Errors
    /// Any error of `shm_open` or `mmap`, `InvalidInput` for a `len` [`create`](Self::create)
    /// refuses, or `InvalidData` if the object is smaller than `len`.
    pub fn open(name: &str, len: usize) -> io::Result<Self> {
        check_len(len)?;
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())?;
        let file = File::from(fd);
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared memory object too small",
            ));
        }
        Ok(Self {
            map: map(&file, len)?,
            len,
            owned_name: None,
        })
    }

    /// The whole mapping as `len / 8` atomic words: word `i` is bytes `8i..8i + 8`.
    #[inline]
    pub fn words(&self) -> &[AtomicU64] {
        let ptr = self.map.as_mut_ptr().cast::<AtomicU64>();
        // SAFETY: the mapping is `len` bytes long (`map()` checked it), `len` is a multiple of 8
        // and the start is page aligned (checked too), so `ptr` is non-null, aligned for
        // `AtomicU64` (same size and alignment as `u64`) and valid for `len / 8` of them; `len`
        // is far below `isize::MAX`. The mapping lives as long as `&self`, which bounds the
        // returned lifetime. Every process touches these bytes only through atomics (this module
        // is the only code that maps these objects, and it hands out atomics only), and
        // `AtomicU64` holds an `UnsafeCell`, so mutation through the shared slice, here or in
        // another process, is allowed.
        unsafe { std::slice::from_raw_parts(ptr, self.len / 8) }
    }

    /// The `u32` at byte `offset` as an atomic (the futex word).
    ///
    /// # Panics
    /// If `offset` is not 4-byte aligned or `offset + 4` is past the end of the mapping.
    fn word32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len);
        let ptr = self.map.as_mut_ptr().wrapping_add(offset).cast::<u32>();
        // SAFETY: `offset + 4 <= len` and `offset` is 4-byte aligned in a page-aligned mapping
        // (asserted above), so `ptr` is in bounds and aligned; the mapping lives as long as
        // `&self`. This word is only ever accessed as an `AtomicU32` (here and by the kernel's
        // futex code), never non-atomically.
        unsafe { AtomicU32::from_ptr(ptr) }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        if let Some(name) = &self.owned_name {
            let _ = shm::unlink(name.as_str());
        }
    }
}

/// One mapped shared page, used as a single cache line by `floor` or as a futex word by `futex`.
pub struct SharedLine(SharedMem);

impl SharedLine {
    /// Creates the object `name` (which must not exist), sizes it and maps it.
    ///
    /// # Errors
    /// Any error of `shm_open`, `ftruncate` or `mmap`.
    pub fn create(name: &str) -> io::Result<Self> {
        SharedMem::create(name, LEN).map(Self)
    }

    /// Opens and maps the object `name` that another process created.
    ///
    /// # Errors
    /// Any error of `shm_open` or `mmap`, or `InvalidData` if the object is smaller than a page.
    pub fn open(name: &str) -> io::Result<Self> {
        SharedMem::open(name, LEN).map(Self)
    }

    /// The floor word (no bounds check on the floor's hot path: the offset is a constant).
    fn word64(&self) -> &AtomicU64 {
        let ptr = self
            .0
            .map
            .as_mut_ptr()
            .wrapping_add(FLOOR_OFFSET)
            .cast::<u64>();
        // SAFETY: the mapping is LEN >= FLOOR_OFFSET + 8 bytes long and page aligned, so `ptr` is
        // in bounds and 8-byte aligned (checked by `map()` below); the mapping lives as long as
        // `&self`, which bounds the returned lifetime. Every process touches this word only
        // through `AtomicU64` (this module is the only code that maps these objects), so there
        // are no non-atomic accesses to race with.
        unsafe { AtomicU64::from_ptr(ptr) }
    }

    /// The futex word.
    fn word32(&self) -> &AtomicU32 {
        self.0.word32(FUTEX_OFFSET)
    }

    /// Loads the floor word (Acquire).
    pub fn load64(&self) -> u64 {
        // SYNC: Acquire pairs with the Release in `store64` of the other process.
        self.word64().load(Ordering::Acquire)
    }

    /// Stores the floor word (Release).
    pub fn store64(&self, value: u64) {
        // SYNC: Release pairs with the Acquire in `load64` of the other process.
        self.word64().store(value, Ordering::Release);
    }

    /// Loads the futex word (Acquire).
    pub fn load32(&self) -> u32 {
        // SYNC: Acquire pairs with the Release in `store32_wake`.
        self.word32().load(Ordering::Acquire)
    }

    /// Stores the futex word (Release) and wakes one waiter with a shared (not private) futex.
    ///
    /// # Errors
    /// An error of `FUTEX_WAKE`.
    pub fn store32_wake(&self, value: u32) -> io::Result<()> {
        // SYNC: Release pairs with the Acquire in `load32` of the other process.
        self.word32().store(value, Ordering::Release);
        // Flags::empty(): no FUTEX_PRIVATE_FLAG, the waiter is another process.
        futex::wake(self.word32(), futex::Flags::empty(), 1)?;
        Ok(())
    }

    /// Sleeps while the futex word equals `expected`, for at most `timeout`.
    ///
    /// Returns normally on a wake-up, a changed value (`EAGAIN`), a timeout or a signal: the
    /// caller re-reads the word either way.
    ///
    /// # Errors
    /// Any other error of `FUTEX_WAIT`.
    pub fn wait32(&self, expected: u32, timeout: Duration) -> io::Result<()> {
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        match futex::wait(self.word32(), futex::Flags::empty(), expected, Some(&ts)) {
            Ok(()) => Ok(()),
            Err(e)
                if [
                    rustix::io::Errno::AGAIN,
                    rustix::io::Errno::TIMEDOUT,
                    rustix::io::Errno::INTR,
                ]
                .contains(&e) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Refuses a length the word view cannot cover exactly.
fn check_len(len: usize) -> io::Result<()> {
    match len > 0 && len.is_multiple_of(8) {
        true => Ok(()),
        false => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "shared memory length must be a positive multiple of 8",
        )),
    }
}

/// Maps the first `len` bytes of `file` shared and prefaulted, checking the length and the
/// alignment [`SharedMem::words`] and [`SharedMem::word32`] rely on.
fn map(file: &File, len: usize) -> io::Result<MmapRaw> {
    let map = MmapOptions::new().len(len).populate().map_raw(file)?;
    if map.len() < len || !(map.as_mut_ptr() as usize).is_multiple_of(8) {
        return Err(io::Error::other("unexpected mapping geometry"));
    }
    Ok(map)
}
