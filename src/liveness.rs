//! Who owns a record, and whether that owner still runs.
//!
//! An owner is named by one 64-bit word, `pid << 32 | (start_time & 0xffff_ffff)`, where the
//! start time is the process's start in clock ticks after boot (`/proc/PID/stat` field 22). The
//! start time tells a reused pid from the original process; one word lets a record be taken with
//! a single CAS. A zombie counts as dead. Limits: pids are those of this pid namespace (processes
//! sharing a bus must share one), and a process whose start time equals the dead one's modulo 2^32
//! ticks (about 500 days at 100 Hz) under the same pid would be mistaken for it.

use crate::sys;

/// The owner word for the calling process. Read afresh each time (a forked child has a new pid).
pub(crate) fn my_owner() -> u64 {
    let pid = sys::current_pid();
    owner_word(pid, sys::process_start_time(pid))
}

/// Builds an owner word.
pub(crate) fn owner_word(pid: u32, start_time: u64) -> u64 {
    (u64::from(pid) << 32) | (start_time & 0xffff_ffff)
}

/// The pid in an owner word.
pub(crate) fn owner_pid(owner: u64) -> u32 {
    (owner >> 32) as u32
}

/// Whether the owner named by `owner` still runs (0 = no owner = not alive). Our own pid counts
/// only with our start time: a record of a dead process whose pid we now have is dead.
///
/// A start time of 0 means that its owner could not read it (`my_owner` on an unreadable
/// `/proc/self/stat`, say with no file descriptor left): then only the pid is compared, so a
/// live owner is never taken for dead (a lock or record it holds is never taken from under it),
/// at the price of taking a reused pid for it.
pub(crate) fn owner_alive(owner: u64) -> bool {
    let pid = owner_pid(owner);
    if pid == 0 {
        return false;
    }
    let recorded = owner & 0xffff_ffff;
    let me = pid == sys::current_pid();
    match sys::stat_of(pid) {
        Some((_, true)) => false, // a zombie
        Some((start, false)) => recorded == 0 || start & 0xffff_ffff == recorded,
        // Unreadable: this one runs (it is asking); another is gone unless `kill(pid, 0)` finds
        // it, which it does when a `/proc` mounted with `hidepid` hides another user's process.
        // Its start time is then unknown, so a reused pid counts as the owner: safety over
        // progress (taking a live owner for dead would let two writers share a slot).
        None => me || sys::pid_exists(pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "reads /proc and calls kill(2), which Miri does not model"
    )]
    fn self_is_alive_and_nobody_is_dead() {
        assert!(owner_alive(my_owner()));
        assert!(!owner_alive(0));
        // Our pid with another start time is a different (dead) process.
        let me = my_owner();
        assert!(owner_alive(me));
        let pid = owner_pid(me);
        let other = owner_word(pid, (me & 0xffff_ffff) + 1);
        // Our pid with another start time: a process that had our pid before us, long dead.
        assert!(!owner_alive(other));
        // pid 0x7fff_fff0 does not exist on Linux (pid_max ≤ 4 194 304).
        assert!(!owner_alive(owner_word(0x7fff_fff0, 1)));
        // An unknown start time (0) compares the pid only: a live process is alive.
        assert!(owner_alive(owner_word(pid, 0)));
        assert!(!owner_alive(owner_word(0x7fff_fff0, 0)));
        // A pid above i32::MAX (only a hostile word has one) is nobody, not a process group.
        assert!(!owner_alive(owner_word(u32::MAX, 0)));
        assert!(!sys::pid_exists(u32::MAX));
    }

    /// `kill(pid, 0)` finds a process whether or not it may be signalled: pid 1 (the namespace's
    /// init) exists for every user, root or not.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "reads /proc and calls kill(2), which Miri does not model"
    )]
    fn a_process_exists_whether_or_not_it_is_ours() {
        assert!(sys::pid_exists(1));
        assert!(sys::pid_exists(sys::current_pid()));
        assert!(!sys::pid_exists(0x7fff_fff0));
        assert!(!sys::pid_exists(0));
    }
}
