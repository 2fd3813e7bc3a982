//! Linux system calls used by shmbus, through `rustix` (one OS crate, safe wrappers, and a
//! futex API that does not force `FUTEX_PRIVATE_FLAG`; see docs/design.md, "Crates").

use std::fs::File;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::fs::{FallocateFlags, Mode};
use rustix::shm;
use rustix::thread::{MembarrierCommand, futex, membarrier, membarrier_query};
use rustix::time::{ClockId, Timespec};

use crate::sync::atomic::AtomicU32;

/// Prefix of every shmbus object name under /dev/shm.
pub(crate) const SHM_PREFIX: &str = "shmbus.";

fn object_name(bus: &str) -> String {
    format!("/{SHM_PREFIX}{bus}")
}

/// Creates the shared-memory object exclusively (`O_CREAT|O_EXCL`), sets its exact mode (not
/// reduced by the umask) and reserves `len` bytes so that running out of `/dev/shm` is an error
/// here rather than a SIGBUS on first touch.
pub(crate) fn shm_create(bus: &str, mode: u32, len: u64) -> io::Result<File> {
    let fd = shm::open(
        object_name(bus).as_str(),
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        Mode::from_raw_mode(mode),
    )?;
    let setup = (|| -> io::Result<()> {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        rustix::fs::ftruncate(&fd, len)?;
        rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, len)?;
        Ok(())
    })();
    if let Err(e) = setup {
        let _ = shm::unlink(object_name(bus).as_str());
        return Err(e);
    }
    Ok(File::from(fd))
}

/// Opens an existing object read-write.
pub(crate) fn shm_open(bus: &str) -> io::Result<File> {
    let fd = shm::open(object_name(bus).as_str(), shm::OFlags::RDWR, Mode::empty())?;
    Ok(File::from(fd))
}

/// Removes the object's name; mappings stay valid until unmapped.
pub(crate) fn shm_unlink(bus: &str) -> io::Result<()> {
    Ok(shm::unlink(object_name(bus).as_str())?)
}

/// Names of the shmbus objects under /dev/shm (without the prefix).
pub(crate) fn shm_list() -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str()
            && let Some(bus) = name.strip_prefix(SHM_PREFIX)
        {
            out.push(bus.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Size of an open object in bytes.
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    Ok(rustix::fs::fstat(file)?.st_size as u64)
}

/// Sleeps while `*word == expected`, at most `timeout`. Uses the *shared* futex (no
/// `FUTEX_PRIVATE_FLAG`), so a waker in another process that maps the same page wakes us.
/// Spurious returns are allowed: callers always re-check their condition.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EAGAIN (value changed), EINTR and ETIMEDOUT all mean "go and look again".
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every waiter on `word`, in any process. Returns how many were woken.
pub(crate) fn futex_wake_all(word: &AtomicU32) -> usize {
    futex::wake(word, futex::Flags::empty(), i32::MAX as u32).unwrap_or(0)
}

/// Registers this process, once, for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` barriers issued by other
/// processes ([`membarrier_global`]). Returns true if it is registered (Linux 4.16 or later, and
/// the system call not filtered out). Later calls return the first call's answer.
pub(crate) fn membarrier_register() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    // Miri does not implement membarrier: the RMW wake check there.
    if cfg!(miri) {
        return false;
    }
    *REGISTERED.get_or_init(|| {
        let q = membarrier_query();
        q.contains_command(MembarrierCommand::RegisterGlobalExpedited)
            && q.contains_command(MembarrierCommand::GlobalExpedited)
            && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    })
}

/// A full memory barrier on every CPU that runs a thread of a process registered with
/// [`membarrier_register`], and in the caller, before this returns (the kernel sends an IPI to
/// those CPUs only; a thread that is not running passes through a barrier when it is scheduled).
/// Returns false if the call failed (an old kernel, or filtered): then nothing is guaranteed.
pub(crate) fn membarrier_global() -> bool {
    !cfg!(miri) && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the host (read through the vDSO).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub(crate) fn realtime_ns() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Realtime);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// A process's start time (clock ticks after boot, `/proc/PID/stat` field 22), and whether it is
/// a zombie. `None` if there is no such process.
pub(crate) fn stat_of(pid: u32) -> Option<(u64, bool)> {
    // Miri models no `/proc` (its files would bypass the abstract machine): unknown, which the
    // callers take as "start time 0" for this process (compared by pid alone).
    if cfg!(miri) {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?; // field 3
    let start = fields.nth(18)?.parse().ok()?; // field 22
    Some((start, state == "Z" || state == "X"))
}

/// Whether a process `pid` exists, seen without `/proc`: `kill(pid, 0)`, which also finds the
/// processes of other users that a `/proc` mounted with `hidepid` hides (EPERM: it exists, and
/// is not ours to signal). For a pid whose `/proc/PID/stat` cannot be read.
pub(crate) fn pid_exists(pid: u32) -> bool {
    // A pid above i32::MAX (a hostile owner word) would be a process group to kill(2).
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// The start time of process `pid`, or 0 if it cannot be read.
pub(crate) fn process_start_time(pid: u32) -> u64 {
    stat_of(pid).map_or(0, |(start, _)| start)
}
