//! The benchmark's only unsafe code: one shared page holding the floor's `u64` and the futex word.
//!
//! `floor` and `futex` need a word that two processes access atomically. The page is a POSIX
//! shared-memory object (`/dev/shm/<name>`) mapped with [`memmap2::MmapRaw`], which hands out a raw
//! pointer and never a reference to the bytes (another process writes them). The only unsafe
//! operations are the two `from_ptr` calls that view a word of that page as an atomic.
//!
//! The object is created with `O_CREAT | O_EXCL` and mode 0600 under a name unique to this run
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

/// Size of the mapping: one page, of which the two words below use two cache lines.
const LEN: usize = 4096;
/// Offset of the floor's `u64` (a page start, so 8-byte aligned).
const FLOOR_OFFSET: usize = 0;
/// Offset of the futex's `u32`: on its own 128-byte line, so it never overlaps the floor word.
const FUTEX_OFFSET: usize = 128;

/// One mapped shared page, used as a single cache line by `floor` or as a futex word by `futex`.
pub struct SharedLine {
    /// The mapping; `LEN` bytes, page aligned, alive as long as `self`.
    map: MmapRaw,
    /// Set on the creator's handle: the object name to unlink on drop.
    owned_name: Option<String>,
}

impl SharedLine {
    /// Creates the object `name` (which must not exist), sizes it and maps it.
    ///
    /// # Errors
    /// Any error of `shm_open`, `ftruncate` or `mmap`.
    pub fn create(name: &str) -> io::Result<Self> {
        let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
        let fd = shm::open(name, flags, Mode::RUSR | Mode::WUSR)?;
        // From here on the object exists: the error arm unlinks it, the handle's Drop otherwise.
        let file = File::from(fd);
        let sized = file.set_len(LEN as u64).and_then(|()| map(&file));
        match sized {
            Ok(map) => Ok(Self {
                map,
                owned_name: Some(name.to_owned()),
            }),
            Err(e) => {
                let _ = shm::unlink(name);
                Err(e)
            }
        }
    }

    /// Opens and maps the object `name` that another process created.
    ///
    /// # Errors
    /// Any error of `shm_open` or `mmap`, or `InvalidData` if the object is smaller than a page.
    pub fn open(name: &str) -> io::Result<Self> {
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())?;
        let file = File::from(fd);
        if file.metadata()?.len() < LEN as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared line too small",
            ));
        }
        Ok(Self {
            map: map(&file)?,
            owned_name: None,
        })
    }

    /// The floor word.
    fn word64(&self) -> &AtomicU64 {
        let ptr = self
            .map
            .as_mut_ptr()
            .wrapping_add(FLOOR_OFFSET)
            .cast::<u64>();
        // SAFETY: `map` is LEN >= 8 bytes long and page aligned, so `ptr` is in bounds and 8-byte
        // aligned (checked by `map()` below); the mapping lives as long as `&self`, which bounds
        // the returned lifetime. Every process touches this word only through `AtomicU64`
        // (this module is the only code that maps these objects), so there are no non-atomic
        // accesses to race with.
        unsafe { AtomicU64::from_ptr(ptr) }
    }

    /// The futex word.
    fn word32(&self) -> &AtomicU32 {
        let ptr = self
            .map
            .as_mut_ptr()
            .wrapping_add(FUTEX_OFFSET)
            .cast::<u32>();
        // SAFETY: FUTEX_OFFSET + 4 <= LEN and the page is aligned, so `ptr` is in bounds and
        // 4-byte aligned; the mapping lives as long as `&self`. The word is only ever accessed
        // as an `AtomicU32` (here and by the kernel's futex code), never non-atomically.
        unsafe { AtomicU32::from_ptr(ptr) }
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

impl Drop for SharedLine {
    fn drop(&mut self) {
        if let Some(name) = &self.owned_name {
            let _ = shm::unlink(name.as_str());
        }
    }
}

/// Maps the first `LEN` bytes of `file` shared and prefaulted, checking the alignment `word64`
/// and `word32` rely on.
fn map(file: &File) -> io::Result<MmapRaw> {
    let map = MmapOptions::new().len(LEN).populate().map_raw(file)?;
    if map.len() < LEN || !(map.as_mut_ptr() as usize).is_multiple_of(8) {
        return Err(io::Error::other("unexpected mapping geometry"));
    }
    Ok(map)
}
