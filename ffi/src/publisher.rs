//! Publishers and loans: `shmbus_publisher_*`, `shmbus_loan_*`.

use std::ffi::c_char;
use std::ptr::NonNull;
use std::time::Duration;

use shmbus_core::{Loan, PublishError, Publisher, PublisherConfig};

use crate::bus::{name_arg, open_topic, opt_arg, shmbus_bus, shmbus_topic_config};
use crate::error::{Failure, shmbus_result};

/// Options of a publisher. Start from `shmbus_publisher_config_default()`. `timeout_ns` bounds
/// every wait of a publisher (for room on a lossless topic, for a slot still held by a writer a
/// ring behind on a topic with several publisher entries); `liveness_window_ns` matters only on
/// lossless topics; `timestamps` applies to every topic.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_publisher_config {
    /// How long `shmbus_publisher_publish` and `shmbus_publisher_loan` wait for room in a full
    /// ring before they return `PUBLISH_TIMEOUT`, in ns. Default 1000000000 (1 s). 0 gives up at
    /// once (after one check for dead subscribers); the `try_` forms never wait for room whatever
    /// this is. It also bounds the wait of every form for a slot that a writer a ring behind
    /// still holds (topics with several publisher entries).
    pub timeout_ns: u64,
    /// How often a publisher blocked by a full ring checks whether the subscribers holding it
    /// back are still alive (evicting dead ones), in ns. 0 means the default, 100000000
    /// (100 ms). The first check is made as soon as the ring is found full.
    pub liveness_window_ns: u64,
    /// Stamp each message with CLOCK_MONOTONIC (see `shmbus_monotonic_ns`), read just before it
    /// is committed, reported as `shmbus_message_info.timestamp_ns`. Default false: no clock is
    /// read on the publish path and subscribers see `timestamp_ns == 0`. Costs one clock read
    /// per publish (about 20-25 ns on a VM). Any nonzero value is true. (A byte, not a `bool`:
    /// any value is safe to pass.)
    pub timestamps: u8,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn publisher_config_default() -> shmbus_publisher_config {
    let d = PublisherConfig::default();
    shmbus_publisher_config {
        timeout_ns: nanos(d.timeout),
        liveness_window_ns: nanos(d.liveness_window),
        timestamps: u8::from(d.timestamps),
    }
}

fn core_publisher_config(c: &shmbus_publisher_config) -> PublisherConfig {
    let d = PublisherConfig::default();
    PublisherConfig {
        timeout: Duration::from_nanos(c.timeout_ns),
        liveness_window: match c.liveness_window_ns {
            0 => d.liveness_window,
            ns => Duration::from_nanos(ns),
        },
        timestamps: c.timestamps != 0,
    }
}

/// The default publisher configuration: 1 s timeout, 100 ms liveness window, no timestamps.
///
/// # Safety
/// Always safe to call; `unsafe` only for uniformity with the rest of the API.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_config_default() -> shmbus_publisher_config {
    std::panic::catch_unwind(publisher_config_default).unwrap_or_else(|_| std::process::abort())
}

/// A publisher on one topic. Use it from one thread at a time (it may move between threads);
/// make one publisher per publishing thread. Free it with `shmbus_publisher_free`.
pub struct shmbus_publisher {
    /// The core publisher, in its own allocation so that the loan below may hold `&mut` to it
    /// while this struct is accessed. Never touched while `loan.active` is `Some`.
    inner: NonNull<Publisher>,
    /// Cached so they can be read while a loan borrows `inner`.
    capacity: usize,
    id: u32,
    /// The publisher's one loan slot: `shmbus_publisher_loan` hands out a pointer to it.
    loan: shmbus_loan,
}

/// A slot lent by `shmbus_publisher_loan`, to be written in place and then committed with
/// `shmbus_loan_commit` or dropped with `shmbus_loan_abort`. It is owned by its publisher (no
/// allocation per loan, nothing to free); `shmbus_publisher_free` aborts an outstanding loan.
pub struct shmbus_loan {
    /// `Some` between `shmbus_publisher_loan` and commit/abort. The `'static` is a lie told to
    /// the borrow checker: the loan borrows `*shmbus_publisher::inner`, which outlives it
    /// because `shmbus_publisher`'s `Drop` ends the loan first.
    active: Option<Loan<'static>>,
}

impl Drop for shmbus_publisher {
    fn drop(&mut self) {
        // End the borrow of `inner` (aborting the loan) before freeing it.
        self.loan.active = None;
        // SAFETY: `inner` came from `Box::into_raw` in `shmbus_publisher_new`, is freed only
        // here, and no loan borrows it any more (cleared above).
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

/// Creates a publisher on `topic` (1..=64 bytes of `[A-Za-z0-9_./-]`) with the default
/// `shmbus_publisher_config`: `shmbus_publisher_new_with(bus, topic, cfg, NULL, out)`.
///
/// If the topic does not exist it is created, with `*cfg` or, if `cfg` is NULL, the bus's
/// default topic configuration. If it exists, a non-NULL `cfg` must match its geometry
/// (`GEOMETRY_MISMATCH` otherwise) and delivery mode (`DELIVERY_MISMATCH`); a NULL `cfg`
/// accepts any. On success `*out` is owned by the caller: free it with `shmbus_publisher_free`
/// (it stays valid after the bus handle is freed).
///
/// Errors: `NULL_PARAMETER`, `INVALID_ARGUMENT` (an unknown `cfg->delivery`), `INVALID_NAME`,
/// `INVALID_CONFIG`, `GEOMETRY_MISMATCH`, `DELIVERY_MISMATCH`, `TABLE_FULL`, `ARENA_FULL`,
/// `LOCK_TIMEOUT`, `CORRUPT`, `PUBLISHER_TABLE_FULL`.
///
/// # Safety
/// * `bus` is NULL or a live handle from `shmbus_bus_create`/`_open`/`_open_or_create`.
/// * `topic` is NULL or a NUL-terminated string.
/// * `cfg` is NULL or points to a valid `shmbus_topic_config`.
/// * `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_new(
    bus: *const shmbus_bus,
    topic: *const c_char,
    cfg: *const shmbus_topic_config,
    out: *mut *mut shmbus_publisher,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same (a NULL `pub_cfg`).
    unsafe { shmbus_publisher_new_with(bus, topic, cfg, std::ptr::null(), out) }
}

/// Creates a publisher on `topic` as `shmbus_publisher_new` does (`topic_cfg` is its `cfg`),
/// with the options `*pub_cfg` (NULL means `shmbus_publisher_config_default()`): whether
/// messages are timestamped and, on lossless topics, how long a publish waits for room in a
/// full ring.
///
/// Errors: those of `shmbus_publisher_new`.
///
/// # Safety
/// * `bus` is NULL or a live handle from `shmbus_bus_create`/`_open`/`_open_or_create`.
/// * `topic` is NULL or a NUL-terminated string.
/// * `topic_cfg` and `pub_cfg` are NULL or point to valid structs.
/// * `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_new_with(
    bus: *const shmbus_bus,
    topic: *const c_char,
    topic_cfg: *const shmbus_topic_config,
    pub_cfg: *const shmbus_publisher_config,
    out: *mut *mut shmbus_publisher,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(bus, topic, out);
        // SAFETY: `bus` is non-NULL (checked) and a live handle (caller's contract); the bus is
        // `Sync`, so a shared reference is fine even if other threads use it.
        let bus = unsafe { &(*bus).inner };
        // SAFETY: `topic` is non-NULL (checked) and NUL-terminated (caller's contract).
        let topic = unsafe { name_arg(topic, "topic name") }?;
        // SAFETY: `pub_cfg` is NULL or valid for reads (caller's contract).
        let pub_cfg = unsafe { opt_arg(pub_cfg) }.unwrap_or_else(publisher_config_default);
        // SAFETY: `topic_cfg` is NULL or valid for reads (caller's contract).
        let topic = open_topic(bus, topic, unsafe { opt_arg(topic_cfg) })?;
        let publisher = topic.publisher_with(&core_publisher_config(&pub_cfg))?;
        let handle = Box::new(shmbus_publisher {
            capacity: publisher.capacity(),
            id: publisher.id(),
            inner: NonNull::from(Box::leak(Box::new(publisher))),
            loan: shmbus_loan { active: None },
        });
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Frees a publisher (NULL is a no-op). An outstanding loan is aborted (subscribers skip it),
/// and its `shmbus_loan` pointer becomes invalid.
///
/// # Safety
/// * `publisher` is NULL or a handle from `shmbus_publisher_new` that was not freed yet, and
///   no other thread uses it (or its loan) during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_free(publisher: *mut shmbus_publisher) {
    if publisher.is_null() {
        return;
    }
    // SAFETY: `publisher` came from `Box::into_raw` in `shmbus_publisher_new` and is freed once
    // (caller's contract).
    let publisher = unsafe { Box::from_raw(publisher) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(publisher)));
}

/// Borrows a publisher handle for one call: `Err(LOAN_OUTSTANDING)` if a loan holds it.
///
/// # Safety
/// `p` is non-NULL and a live handle not used by another thread during `'a`.
unsafe fn idle<'a>(p: *mut shmbus_publisher) -> Result<&'a mut Publisher, Failure> {
    // SAFETY: caller's contract. We only read the `loan` field here.
    if unsafe { (*p).loan.active.is_some() } {
        return Err(Failure::new(
            shmbus_result::LoanOutstanding,
            "the publisher has an outstanding loan: commit or abort it first",
        ));
    }
    // SAFETY: caller's contract; reads the `inner` pointer only.
    let inner = unsafe { (*p).inner };
    // SAFETY: `inner` is live (freed only with the handle) and no loan borrows it (checked
    // above); the caller guarantees no other thread uses this publisher.
    Ok(unsafe { &mut *inner.as_ptr() })
}

/// Shared body of publish / try_publish.
///
/// # Safety
/// As for `shmbus_publisher_publish`.
unsafe fn publish_with(
    publisher: *mut shmbus_publisher,
    data: *const u8,
    len: usize,
    out_seq: *mut u64,
    how: fn(&mut Publisher, &[u8]) -> Result<u64, PublishError>,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(publisher);
        // SAFETY: `data` is NULL or valid for `len` bytes (caller's contract).
        let msg = unsafe { crate::boundary::bytes_arg(data, len, "data") }?;
        // SAFETY: `publisher` is non-NULL (checked) and a live handle (caller's contract).
        let p = unsafe { idle(publisher) }?;
        let seq = how(p, msg)?;
        if !out_seq.is_null() {
            // SAFETY: `out_seq` is non-NULL and valid for one write (caller's contract).
            unsafe { out_seq.write(seq) };
        }
        Ok(())
    })
}

/// Copies `len` bytes at `data` into the next slot and publishes them. On success `*out_seq`
/// (if `out_seq` is not NULL) is the message's sequence number. On a lossy topic it never
/// waits for subscribers. On a lossless topic whose ring is full (the slowest live subscriber
/// is a whole ring behind) it waits for room, at most the publisher's `timeout_ns`.
/// (On a topic with several publisher entries every form, `try_` included, also waits
/// for a slot that a writer a whole ring behind still holds: for nanoseconds if that writer is
/// healthy, and `PUBLISH_TIMEOUT` after `timeout_ns` if it is stopped or stuck.)
///
/// Errors: `NULL_PARAMETER`, `TOO_LARGE`, `PUBLISH_TIMEOUT` (a full lossless ring, or a held
/// slot), `LOAN_OUTSTANDING`.
/// Nothing is published on error.
///
/// # Safety
/// * `publisher` is NULL or a live handle, used by no other thread during the call.
/// * `data` is valid for reads of `len` bytes; it may be NULL only if `len` is 0.
/// * `out_seq` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_publish(
    publisher: *mut shmbus_publisher,
    data: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { publish_with(publisher, data, len, out_seq, Publisher::publish) }
}

/// As `shmbus_publisher_publish`, but never waits for room: on a full lossless ring it returns
/// `WOULD_BLOCK` at once (nothing published; try again later). On a lossy topic it is
/// `shmbus_publisher_publish`. (On a topic with several publisher entries every form, `try_` included, also waits
/// for a slot that a writer a whole ring behind still holds: for nanoseconds if that writer is
/// healthy, and `PUBLISH_TIMEOUT` after `timeout_ns` if it is stopped or stuck.)
///
/// Errors: `NULL_PARAMETER`, `TOO_LARGE`, `WOULD_BLOCK`, `PUBLISH_TIMEOUT` (a held slot only),
/// `LOAN_OUTSTANDING`.
///
/// # Safety
/// As `shmbus_publisher_publish`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_try_publish(
    publisher: *mut shmbus_publisher,
    data: *const u8,
    len: usize,
    out_seq: *mut u64,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { publish_with(publisher, data, len, out_seq, Publisher::try_publish) }
}

/// Shared body of loan / try_loan.
///
/// # Safety
/// As for `shmbus_publisher_loan`.
unsafe fn loan_with(
    publisher: *mut shmbus_publisher,
    len: usize,
    out_loan: *mut *mut shmbus_loan,
    how: for<'a> fn(&'a mut Publisher, usize) -> Result<Loan<'a>, PublishError>,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(publisher, out_loan);
        // SAFETY: `publisher` is non-NULL (checked) and a live handle (caller's contract).
        let p: &'static mut Publisher = unsafe { idle(publisher) }?;
        let loan = how(p, len)?;
        // SAFETY: `publisher` is live and used by this thread only; the field projection does
        // not create a reference to `inner`, which the loan now borrows.
        let slot = unsafe { &raw mut (*publisher).loan };
        // SAFETY: as above; `slot` points into the live handle.
        unsafe { (*slot).active = Some(loan) };
        // SAFETY: `out_loan` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out_loan.write(slot) };
        Ok(())
    })
}

/// Claims the next slot for a message of `len` bytes and lends it for writing in place. On
/// success `*out_loan` points to the publisher's loan: get its bytes with `shmbus_loan_data`,
/// then call `shmbus_loan_commit` or `shmbus_loan_abort`. One loan at a time per publisher;
/// other calls on the publisher return `LOAN_OUTSTANDING` until the loan ends. Keep loans
/// short: subscribers deliver in order, so they wait for it before later messages. On a full
/// lossless ring it waits for room as `shmbus_publisher_publish` does, and for a held slot too.
///
/// Errors: `NULL_PARAMETER`, `TOO_LARGE`, `PUBLISH_TIMEOUT` (a full lossless ring, or a held
/// slot), `LOAN_OUTSTANDING`.
///
/// # Safety
/// * `publisher` is NULL or a live handle, used by no other thread during the call.
/// * `out_loan` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_loan(
    publisher: *mut shmbus_publisher,
    len: usize,
    out_loan: *mut *mut shmbus_loan,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { loan_with(publisher, len, out_loan, Publisher::loan) }
}

/// As `shmbus_publisher_loan`, but never waits for room: on a full lossless ring it returns
/// `WOULD_BLOCK` at once (no loan). On a lossy topic it is `shmbus_publisher_loan`. It waits
/// for a held slot as `shmbus_publisher_try_publish` does.
///
/// Errors: `NULL_PARAMETER`, `TOO_LARGE`, `WOULD_BLOCK`, `PUBLISH_TIMEOUT` (a held slot only),
/// `LOAN_OUTSTANDING`.
///
/// # Safety
/// As `shmbus_publisher_loan`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_try_loan(
    publisher: *mut shmbus_publisher,
    len: usize,
    out_loan: *mut *mut shmbus_loan,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { loan_with(publisher, len, out_loan, Publisher::try_loan) }
}

/// The largest message this publisher's topic takes, in bytes (`*out`).
///
/// Errors: `NULL_PARAMETER`.
///
/// # Safety
/// * `publisher` is NULL or a live handle, used by no other thread during the call.
/// * `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_capacity(
    publisher: *const shmbus_publisher,
    out: *mut usize,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(publisher, out);
        // SAFETY: non-NULL (checked) and live (caller's contract); `capacity` is a plain field
        // outside the loan's borrow.
        let capacity = unsafe { (*publisher).capacity };
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(capacity) };
        Ok(())
    })
}

/// This publisher's id (`*out`), as subscribers see it in `shmbus_message_info.publisher_id`.
///
/// Errors: `NULL_PARAMETER`.
///
/// # Safety
/// As `shmbus_publisher_capacity`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_publisher_id(
    publisher: *const shmbus_publisher,
    out: *mut u32,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(publisher, out);
        // SAFETY: non-NULL (checked) and live (caller's contract); a plain field.
        let id = unsafe { (*publisher).id };
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(id) };
        Ok(())
    })
}

/// Borrows the loan slot for one call: `Err(LOAN_INACTIVE)` if it was committed or aborted.
///
/// # Safety
/// `l` is non-NULL and points into a live publisher used by no other thread during `'a`.
unsafe fn active<'a>(l: *mut shmbus_loan) -> Result<&'a mut Option<Loan<'static>>, Failure> {
    // SAFETY: caller's contract.
    let slot = unsafe { &mut (*l).active };
    if slot.is_none() {
        return Err(Failure::new(
            shmbus_result::LoanInactive,
            "the loan was already committed or aborted",
        ));
    }
    Ok(slot)
}

/// The loan's bytes: `*out_data` points to `*out_len` bytes (the `len` asked for) inside the
/// shared slot. Their initial content is unspecified: write every byte you mean to send. The
/// pointer is valid until `shmbus_loan_commit`, `shmbus_loan_abort` or `shmbus_publisher_free`.
/// No alignment is promised: `memcpy` structs in rather than casting the pointer.
///
/// Errors: `NULL_PARAMETER`, `LOAN_INACTIVE`.
///
/// # Safety
/// * `loan` is NULL or a loan whose publisher is live, used by no other thread during the call.
/// * `out_data` and `out_len` are NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_loan_data(
    loan: *mut shmbus_loan,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(loan, out_data, out_len);
        // SAFETY: `loan` is non-NULL (checked) and valid (caller's contract).
        let slot = unsafe { active(loan) }?;
        let bytes = slot.as_mut().map(Loan::as_mut_slice).unwrap_or_default();
        // SAFETY: `out_data` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out_data.write(bytes.as_mut_ptr()) };
        // SAFETY: `out_len` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out_len.write(bytes.len()) };
        Ok(())
    })
}

/// Publishes the loan's message; `*out_seq` (if `out_seq` is not NULL) is its sequence number.
/// The loan ends: its data pointer is invalid from now on.
///
/// Errors: `NULL_PARAMETER`, `LOAN_INACTIVE`.
///
/// # Safety
/// * `loan` is NULL or a loan whose publisher is live, used by no other thread during the call.
/// * `out_seq` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_loan_commit(
    loan: *mut shmbus_loan,
    out_seq: *mut u64,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(loan);
        // SAFETY: `loan` is non-NULL (checked) and valid (caller's contract).
        let slot = unsafe { active(loan) }?;
        let seq = slot.take().map(Loan::publish).unwrap_or_default();
        if !out_seq.is_null() {
            // SAFETY: `out_seq` is non-NULL and valid for one write (caller's contract).
            unsafe { out_seq.write(seq) };
        }
        Ok(())
    })
}

/// Drops the loan without publishing: subscribers skip its sequence number and lose nothing.
/// The loan ends: its data pointer is invalid from now on.
///
/// Errors: `NULL_PARAMETER`, `LOAN_INACTIVE`.
///
/// # Safety
/// * `loan` is NULL or a loan whose publisher is live, used by no other thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_loan_abort(loan: *mut shmbus_loan) -> shmbus_result {
    ffi_boundary!({
        check_null!(loan);
        // SAFETY: `loan` is non-NULL (checked) and valid (caller's contract).
        let slot = unsafe { active(loan) }?;
        drop(slot.take());
        Ok(())
    })
}
