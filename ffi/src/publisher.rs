//! Publishers and loans: `shmbus_publisher_*`, `shmbus_loan_*`.

use std::ffi::c_char;
use std::ptr::NonNull;

use shmbus_core::{Loan, Publisher};

use crate::bus::{name_arg, opt_arg, shmbus_bus, shmbus_topic_config};
use crate::error::{Failure, shmbus_result};

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

/// Creates a publisher on `topic` (1..=64 bytes of `[A-Za-z0-9_./-]`). If the topic does not
/// exist it is created, with `*cfg` or, if `cfg` is NULL, the bus's default topic geometry. If
/// it exists, a non-NULL `cfg` must match its geometry (`GEOMETRY_MISMATCH` otherwise); a NULL
/// `cfg` accepts any. On success `*out` is owned by the caller: free it with
/// `shmbus_publisher_free` (it stays valid after the bus handle is freed).
///
/// Errors: `NULL_PARAMETER`, `INVALID_NAME`, `INVALID_CONFIG`, `GEOMETRY_MISMATCH`,
/// `TABLE_FULL`, `ARENA_FULL`, `LOCK_TIMEOUT`, `CORRUPT`, `PUBLISHER_TABLE_FULL`.
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
    ffi_boundary!({
        check_null!(bus, topic, out);
        // SAFETY: `bus` is non-NULL (checked) and a live handle (caller's contract); the bus is
        // `Sync`, so a shared reference is fine even if other threads use it.
        let bus = unsafe { &(*bus).inner };
        // SAFETY: `topic` is non-NULL (checked) and NUL-terminated (caller's contract).
        let topic = unsafe { name_arg(topic, "topic name") }?;
        // SAFETY: `cfg` is NULL or valid for reads (caller's contract).
        let publisher = match unsafe { opt_arg(cfg) } {
            Some(cfg) => bus.topic_with(topic, &cfg.into())?.publisher()?,
            None => bus.publisher(topic)?,
        };
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

/// Copies `len` bytes at `data` into the next slot and publishes them. On success `*out_seq`
/// (if `out_seq` is not NULL) is the message's sequence number. Never waits for subscribers.
///
/// Errors: `NULL_PARAMETER`, `TOO_LARGE` (nothing published), `LOAN_OUTSTANDING`.
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
    ffi_boundary!({
        check_null!(publisher);
        if len > 0 {
            check_null!(data);
        }
        // SAFETY: `publisher` is non-NULL (checked) and a live handle (caller's contract).
        let p = unsafe { idle(publisher) }?;
        let msg: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: `data` is non-NULL (checked) and valid for `len` bytes (caller's contract).
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        let seq = p.publish(msg)?;
        if !out_seq.is_null() {
            // SAFETY: `out_seq` is non-NULL and valid for one write (caller's contract).
            unsafe { out_seq.write(seq) };
        }
        Ok(())
    })
}

/// Claims the next slot for a message of `len` bytes and lends it for writing in place. On
/// success `*out_loan` points to the publisher's loan: get its bytes with `shmbus_loan_data`,
/// then call `shmbus_loan_commit` or `shmbus_loan_abort`. One loan at a time per publisher;
/// other calls on the publisher return `LOAN_OUTSTANDING` until the loan ends. Keep loans
/// short: subscribers deliver in order, so they wait for it before later messages.
///
/// Errors: `NULL_PARAMETER`, `TOO_LARGE`, `LOAN_OUTSTANDING`.
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
    ffi_boundary!({
        check_null!(publisher, out_loan);
        // SAFETY: `publisher` is non-NULL (checked) and a live handle (caller's contract).
        let p: &'static mut Publisher = unsafe { idle(publisher) }?;
        let loan = p.loan(len)?;
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
