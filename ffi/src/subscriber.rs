//! Subscribers and receiving: `shmbus_subscriber_*`.

use std::ffi::c_char;
use std::ptr::NonNull;
use std::time::Duration;

use shmbus_core::{
    MessageInfo, RecvError, Sample, StartAt, Subscriber, SubscriberConfig, WaitStrategy,
};

use crate::bus::{name_arg, open_topic, opt_arg, shmbus_bus, shmbus_topic_config};
use crate::error::{Failure, shmbus_result};

/// A subscriber on one topic: a private cursor that receives every message in order. Use it
/// from one thread at a time (it may move between threads). Free it with
/// `shmbus_subscriber_free`.
pub struct shmbus_subscriber {
    /// The core subscriber, in its own allocation so that `sample` may hold `&mut` to it while
    /// this struct is accessed. Never touched while `sample` is `Some`.
    inner: NonNull<Subscriber>,
    /// Cached so it can be read while a sample borrows `inner`.
    capacity: usize,
    /// The subscriber's one borrowed message: `Some` between a successful
    /// `shmbus_subscriber_try_recv_borrow` / `_recv_borrow_timeout` and
    /// `shmbus_subscriber_release`.
    ///
    /// SAFETY: the `'static` is a lie told to the borrow checker, as for `shmbus_loan`: the
    /// sample borrows `*inner` mutably, and that borrow really lasts until the sample is dropped.
    /// This is sound because (1) `*inner` is a separate heap allocation that is neither moved
    /// nor freed while the sample exists: `shmbus_subscriber`'s `Drop` drops the sample first;
    /// (2) nothing else makes a reference to `*inner` while `sample` is `Some`: every function
    /// that needs the core subscriber goes through `idle`, which refuses with
    /// `SAMPLE_OUTSTANDING`, and `capacity` is cached above; (3) accessing the fields of this
    /// struct (`sample`, `capacity`) never touches `*inner`. The bytes handed to C live in the
    /// shared mapping, which the core subscriber keeps mapped (it holds the ring), and on a
    /// lossless topic no publisher reclaims the slot while the subscriber's cursor is at the
    /// sample (the core's guarantee for `Sample`); so the pointer stays valid and unchanged
    /// until the sample is dropped by `shmbus_subscriber_release` or `shmbus_subscriber_free`.
    sample: Option<Sample<'static>>,
}

impl Drop for shmbus_subscriber {
    fn drop(&mut self) {
        // End the borrow of `inner` (consuming the borrowed message) before freeing it.
        self.sample = None;
        // SAFETY: `inner` came from `Box::into_raw` in `shmbus_subscriber_new`, is freed only
        // here, and no sample borrows it any more (cleared above).
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

/// Borrows a subscriber handle's core subscriber for one call: `Err(SAMPLE_OUTSTANDING)` if a
/// borrowed sample holds it.
///
/// # Safety
/// `s` is non-NULL and a live handle not used by another thread during `'a`.
unsafe fn idle<'a>(s: *mut shmbus_subscriber) -> Result<&'a mut Subscriber, Failure> {
    // SAFETY: caller's contract. We only read the `sample` field here.
    if unsafe { (*s).sample.is_some() } {
        return Err(Failure::new(
            shmbus_result::SampleOutstanding,
            "the subscriber has a borrowed sample: release it first (shmbus_subscriber_release)",
        ));
    }
    // SAFETY: caller's contract; reads the `inner` pointer only.
    let inner = unsafe { (*s).inner };
    // SAFETY: `inner` is live (freed only with the handle) and no sample borrows it (checked
    // above); the caller guarantees no other thread uses this subscriber.
    Ok(unsafe { &mut *inner.as_ptr() })
}

/// How a blocking receive waits (values for `shmbus_subscriber_config.wait`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmbus_wait_strategy {
    /// Poll for `spin_ns`, then sleep on the topic's futex (the default, with 50 µs).
    SpinThenPark = 0,
    /// Poll without sleeping (a spin-wait hint between polls): lowest latency, one CPU busy
    /// while waiting.
    Spin = 1,
    /// Sleep on the topic's futex at once: no CPU while waiting.
    Park = 2,
}

/// Where a new subscriber starts reading (values for `shmbus_subscriber_config.start`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmbus_start {
    /// At the next message published after the subscriber is created (the default).
    Next = 0,
    /// At the oldest message still in the ring (up to `slots` messages back).
    Oldest = 1,
}

/// Options of a subscriber. Start from `shmbus_subscriber_config_default()`.
///
/// The enum-valued fields are `uint32_t` so that any value C stores is safe to read; values
/// outside the enum give `SHMBUS_RESULT_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_subscriber_config {
    /// A `shmbus_wait_strategy`. Default `SHMBUS_WAIT_STRATEGY_SPIN_THEN_PARK`.
    pub wait: u32,
    /// A `shmbus_start`. Default `SHMBUS_START_NEXT`.
    pub start: u32,
    /// With `SHMBUS_WAIT_STRATEGY_SPIN_THEN_PARK`: how long to poll before sleeping, in ns.
    /// Default 50000 (50 µs). Ignored by the other strategies.
    pub spin_ns: u64,
    /// How long the next message may stay claimed but unwritten before this subscriber checks
    /// whether its publisher died (and skips the message, reported as lost, if so); a parked
    /// subscriber also wakes this often to make that check. In ns; at least 1 ms. 0 means the
    /// default, 100000000 (100 ms).
    pub liveness_window_ns: u64,
}

/// What a receive returns besides the payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_message_info {
    /// Sequence number in the topic's total order (0, 1, 2, ... across all publishers).
    pub seq: u64,
    /// Payload length in bytes (the bytes written to the buffer).
    pub len: usize,
    /// When it was published: CLOCK_MONOTONIC in ns (see `shmbus_monotonic_ns`), read just
    /// before the message was committed. 0 unless the publisher's `shmbus_publisher_config` set
    /// `timestamps`.
    pub timestamp_ns: u64,
    /// The publisher's id (`shmbus_publisher_id`).
    pub publisher_id: u32,
}

/// Which messages were lost, with `SHMBUS_RESULT_LOST`: `first_seq .. first_seq + count`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_loss {
    /// Sequence number of the first lost message.
    pub first_seq: u64,
    /// Number of consecutive messages lost (at least 1).
    pub count: u64,
}

impl From<MessageInfo> for shmbus_message_info {
    fn from(m: MessageInfo) -> Self {
        shmbus_message_info {
            seq: m.seq,
            len: m.len,
            timestamp_ns: m.timestamp_ns,
            publisher_id: m.publisher_id,
        }
    }
}

fn subscriber_config_default() -> shmbus_subscriber_config {
    let d = SubscriberConfig::default();
    let spin = match d.wait {
        WaitStrategy::SpinThenPark { spin } => spin,
        _ => Duration::from_micros(50),
    };
    shmbus_subscriber_config {
        wait: shmbus_wait_strategy::SpinThenPark as u32,
        start: shmbus_start::Next as u32,
        spin_ns: u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX),
        liveness_window_ns: u64::try_from(d.liveness_window.as_nanos()).unwrap_or(u64::MAX),
    }
}

fn core_config(c: &shmbus_subscriber_config) -> Result<SubscriberConfig, Failure> {
    let bad = |what: &str, v: u32| {
        Failure::new(
            shmbus_result::InvalidArgument,
            format!("unknown {what} value {v}"),
        )
    };
    let wait = match c.wait {
        0 => WaitStrategy::SpinThenPark {
            spin: Duration::from_nanos(c.spin_ns),
        },
        1 => WaitStrategy::Spin,
        2 => WaitStrategy::Park,
        v => return Err(bad("shmbus_wait_strategy", v)),
    };
    let start = match c.start {
        0 => StartAt::Next,
        1 => StartAt::Oldest,
        v => return Err(bad("shmbus_start", v)),
    };
    let d = SubscriberConfig::default();
    Ok(SubscriberConfig {
        wait,
        start,
        liveness_window: match c.liveness_window_ns {
            0 => d.liveness_window,
            ns => Duration::from_nanos(ns),
        },
    })
}

/// The default subscriber configuration: spin for 50 µs then park; start at the next message;
/// 100 ms liveness window.
///
/// # Safety
/// Always safe to call; `unsafe` only for uniformity with the rest of the API.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_config_default() -> shmbus_subscriber_config {
    std::panic::catch_unwind(subscriber_config_default).unwrap_or_else(|_| std::process::abort())
}

/// Creates a subscriber on `topic`, creating the topic as `shmbus_publisher_new` does (with
/// `*topic_cfg`, or the bus default if `topic_cfg` is NULL; a non-NULL `topic_cfg` must match an
/// existing topic's geometry and delivery mode). `sub_cfg` NULL means
/// `shmbus_subscriber_config_default()`. On success `*out` is owned by the caller: free it with
/// `shmbus_subscriber_free` (it stays valid after the bus handle is freed).
///
/// On a lossless topic the new subscriber holds publishers back from the moment it is created:
/// from then on no message it has not read is overwritten.
///
/// Errors: `NULL_PARAMETER`, `INVALID_ARGUMENT`, `INVALID_NAME`, `INVALID_CONFIG`,
/// `GEOMETRY_MISMATCH`, `DELIVERY_MISMATCH`, `TABLE_FULL`, `ARENA_FULL`, `LOCK_TIMEOUT`,
/// `CORRUPT`, `SUBSCRIBER_TABLE_FULL`.
///
/// # Safety
/// * `bus` is NULL or a live handle from `shmbus_bus_create`/`_open`/`_open_or_create`.
/// * `topic` is NULL or a NUL-terminated string.
/// * `topic_cfg` and `sub_cfg` are NULL or point to valid structs.
/// * `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_new(
    bus: *const shmbus_bus,
    topic: *const c_char,
    topic_cfg: *const shmbus_topic_config,
    sub_cfg: *const shmbus_subscriber_config,
    out: *mut *mut shmbus_subscriber,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(bus, topic, out);
        // SAFETY: `bus` is non-NULL (checked) and live (caller's contract); `Bus` is `Sync`.
        let bus = unsafe { &(*bus).inner };
        // SAFETY: `topic` is non-NULL (checked) and NUL-terminated (caller's contract).
        let topic = unsafe { name_arg(topic, "topic name") }?;
        // SAFETY: `sub_cfg` is NULL or valid for reads (caller's contract).
        let sub_cfg = unsafe { opt_arg(sub_cfg) }.unwrap_or_else(subscriber_config_default);
        let sub_cfg = core_config(&sub_cfg)?;
        // SAFETY: `topic_cfg` is NULL or valid for reads (caller's contract).
        let topic = open_topic(bus, topic, unsafe { opt_arg(topic_cfg) })?;
        let subscriber = topic.subscriber_with(&sub_cfg)?;
        let handle = Box::new(shmbus_subscriber {
            capacity: subscriber.capacity(),
            inner: NonNull::from(Box::leak(Box::new(subscriber))),
            sample: None,
        });
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Frees a subscriber (NULL is a no-op). A borrowed sample is released first (its message
/// counts as read), and its data pointer becomes invalid.
///
/// # Safety
/// * `subscriber` is NULL or a handle from `shmbus_subscriber_new` that was not freed yet, and
///   no other thread uses it during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_free(subscriber: *mut shmbus_subscriber) {
    if subscriber.is_null() {
        return;
    }
    // SAFETY: `subscriber` came from `Box::into_raw` in `shmbus_subscriber_new` and is freed
    // once (caller's contract).
    let subscriber = unsafe { Box::from_raw(subscriber) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(subscriber)));
}

/// The largest message on the subscriber's topic (`*out`): a buffer this large always suffices.
/// Works while a sample is borrowed.
///
/// Errors: `NULL_PARAMETER`.
///
/// # Safety
/// * `subscriber` is NULL or a live handle, used by no other thread during the call.
/// * `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_capacity(
    subscriber: *const shmbus_subscriber,
    out: *mut usize,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(subscriber, out);
        // SAFETY: non-NULL (checked) and live (caller's contract); `capacity` is a plain field
        // outside the sample's borrow.
        let capacity = unsafe { (*subscriber).capacity };
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(capacity) };
        Ok(())
    })
}

/// Converts a receive error, first reporting a loss through `out_loss` (if not NULL).
///
/// # Safety
/// * `out_loss` is NULL or valid for one write.
unsafe fn recv_failure(e: RecvError, out_loss: *mut shmbus_loss) -> Failure {
    if let RecvError::Lost { first_seq, count } = e
        && !out_loss.is_null()
    {
        // SAFETY: `out_loss` is non-NULL and valid for one write (caller's contract).
        unsafe { out_loss.write(shmbus_loss { first_seq, count }) };
    }
    e.into()
}

/// The shared body of the three receives.
///
/// # Safety
/// As for `shmbus_subscriber_try_recv`.
unsafe fn receive(
    subscriber: *mut shmbus_subscriber,
    buf: *mut u8,
    buf_len: usize,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
    how: impl FnOnce(&mut Subscriber, &mut [u8]) -> Result<MessageInfo, RecvError>,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(subscriber);
        // An empty buffer may be NULL: it takes an empty message, and any other gives
        // `BUFFER_TOO_SMALL`, as a buffer too short does.
        // SAFETY: `buf` is NULL or valid for writes of `buf_len` bytes (caller's contract); the
        // core only writes to it.
        let buf = unsafe { crate::boundary::bytes_mut_arg(buf, buf_len, "buf") }?;
        check_null!(out_info);
        // SAFETY: `subscriber` is non-NULL (checked), live and used by this thread only
        // (caller's contract).
        let sub = unsafe { idle(subscriber) }?;
        match how(sub, buf) {
            Ok(info) => {
                // SAFETY: `out_info` is non-NULL (checked) and valid for one write.
                unsafe { out_info.write(info.into()) };
                Ok(())
            }
            // SAFETY: `out_loss` is NULL or valid for one write (caller's contract).
            Err(e) => Err(unsafe { recv_failure(e, out_loss) }),
        }
    })
}

/// Receives the next message into `buf` if one is available, without waiting. On `OK`,
/// `*out_info` describes it and its `len` bytes are at the start of `buf`. On `LOST`, `*out_loss`
/// (if `out_loss` is not NULL) says which messages were lost; receive again for the next one.
///
/// Works on lossy and lossless topics (on a lossless one, the copied message counts as read).
///
/// Errors: `NULL_PARAMETER`, `EMPTY`, `LOST`, `BUFFER_TOO_SMALL` (the message stays unread),
/// `SAMPLE_OUTSTANDING`.
///
/// # Safety
/// * `subscriber` is NULL or a live handle, used by no other thread during the call.
/// * `buf` is NULL or valid for writes of `buf_len` bytes (NULL with `buf_len` 0 is an empty
///   buffer).
/// * `out_info` is NULL or valid for one write; `out_loss` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_try_recv(
    subscriber: *mut shmbus_subscriber,
    buf: *mut u8,
    buf_len: usize,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe {
        receive(subscriber, buf, buf_len, out_info, out_loss, |s, b| {
            s.try_recv(b)
        })
    }
}

/// Receives the next message, waiting as long as it takes with the subscriber's wait
/// strategy. Otherwise as `shmbus_subscriber_try_recv` (it never returns `EMPTY`). Prefer
/// `shmbus_subscriber_recv_timeout`: a thread blocked here cannot be interrupted.
///
/// Errors: `NULL_PARAMETER`, `LOST`, `BUFFER_TOO_SMALL`, `SAMPLE_OUTSTANDING`.
///
/// # Safety
/// As `shmbus_subscriber_try_recv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_recv(
    subscriber: *mut shmbus_subscriber,
    buf: *mut u8,
    buf_len: usize,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe {
        receive(subscriber, buf, buf_len, out_info, out_loss, |s, b| {
            s.recv(b)
        })
    }
}

/// Receives the next message, waiting up to `timeout_ns` nanoseconds (with a spinning wait
/// strategy counted from the end of a first round of 64 polls, as in the Rust `recv_timeout`).
/// Otherwise as `shmbus_subscriber_try_recv`.
///
/// Errors: `NULL_PARAMETER`, `TIMEOUT`, `LOST`, `BUFFER_TOO_SMALL`, `SAMPLE_OUTSTANDING`.
///
/// # Safety
/// As `shmbus_subscriber_try_recv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_recv_timeout(
    subscriber: *mut shmbus_subscriber,
    buf: *mut u8,
    buf_len: usize,
    timeout_ns: u64,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
) -> shmbus_result {
    let timeout = Duration::from_nanos(timeout_ns);
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe {
        receive(subscriber, buf, buf_len, out_info, out_loss, |s, b| {
            s.recv_timeout(b, timeout)
        })
    }
}

/// The shared body of the two borrowing receives.
///
/// # Safety
/// As for `shmbus_subscriber_try_recv_borrow`.
unsafe fn borrow(
    subscriber: *mut shmbus_subscriber,
    out_data: *mut *const u8,
    out_len: *mut usize,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
    how: impl FnOnce(&'static mut Subscriber) -> Result<Sample<'static>, RecvError>,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(subscriber, out_data, out_len);
        // SAFETY: `subscriber` is non-NULL (checked), live and used by this thread only
        // (caller's contract). The `'static` borrow is stored in the handle's `sample` slot
        // below; see the SAFETY note on `shmbus_subscriber::sample` for why that is sound.
        let sub: &'static mut Subscriber = unsafe { idle(subscriber) }?;
        match how(sub) {
            Ok(sample) => {
                let bytes: &[u8] = &sample;
                let (data, len, info) = (bytes.as_ptr(), bytes.len(), sample.info());
                // SAFETY: `subscriber` is live and used by this thread only; the field
                // projection does not create a reference to `inner`, which the sample borrows.
                let slot = unsafe { &raw mut (*subscriber).sample };
                // SAFETY: as above; `slot` points into the live handle, and it was `None`
                // (checked by `idle`), so nothing is dropped here.
                unsafe { slot.write(Some(sample)) };
                // SAFETY: `out_data` and `out_len` are non-NULL (checked) and valid for one
                // write each (caller's contract).
                unsafe { out_data.write(data) };
                // SAFETY: as above.
                unsafe { out_len.write(len) };
                if !out_info.is_null() {
                    // SAFETY: `out_info` is non-NULL and valid for one write (caller's contract).
                    unsafe { out_info.write(info.into()) };
                }
                Ok(())
            }
            // SAFETY: `out_loss` is NULL or valid for one write (caller's contract).
            Err(e) => Err(unsafe { recv_failure(e, out_loss) }),
        }
    })
}

/// Lossless topics: borrows the next message in place, without copying, if one is available
/// now. On `OK`, `*out_data` points to the message's `*out_len` bytes inside the shared ring,
/// and `*out_info` (if `out_info` is not NULL) describes it.
///
/// The bytes are read-only and stay valid and unchanged until `shmbus_subscriber_release`
/// (or `shmbus_subscriber_free`); do not use the pointer after that. Until then the message
/// is not consumed: no publisher can overwrite its slot, so on a full ring publishers wait for
/// it. Keep borrows short. One borrow at a time: every receive on this subscriber returns
/// `SAMPLE_OUTSTANDING` until the release. No alignment is promised: `memcpy` structs out.
///
/// On `LOST` (a publisher died while writing, so its message was skipped), `*out_loss` (if
/// `out_loss` is not NULL) says which; nothing is borrowed, receive again for the next message.
///
/// Errors: `NULL_PARAMETER`, `NOT_LOSSLESS` (a lossy topic: use the copying receives), `EMPTY`,
/// `LOST`, `SAMPLE_OUTSTANDING`.
///
/// # Safety
/// * `subscriber` is NULL or a live handle, used by no other thread during the call.
/// * `out_data` and `out_len` are NULL or valid for one write.
/// * `out_info` is NULL or valid for one write; `out_loss` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_try_recv_borrow(
    subscriber: *mut shmbus_subscriber,
    out_data: *mut *const u8,
    out_len: *mut usize,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe {
        borrow(subscriber, out_data, out_len, out_info, out_loss, |s| {
            s.try_recv_borrow()
        })
    }
}

/// Lossless topics: waits up to `timeout_ns` nanoseconds (counted as in
/// `shmbus_subscriber_recv_timeout`) for the next message and borrows it in place, with the
/// subscriber's wait strategy. Otherwise as
/// `shmbus_subscriber_try_recv_borrow` (it returns `TIMEOUT` rather than `EMPTY`).
///
/// Errors: `NULL_PARAMETER`, `NOT_LOSSLESS`, `TIMEOUT`, `LOST`, `SAMPLE_OUTSTANDING`.
///
/// # Safety
/// As `shmbus_subscriber_try_recv_borrow`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_recv_borrow_timeout(
    subscriber: *mut shmbus_subscriber,
    timeout_ns: u64,
    out_data: *mut *const u8,
    out_len: *mut usize,
    out_info: *mut shmbus_message_info,
    out_loss: *mut shmbus_loss,
) -> shmbus_result {
    let timeout = Duration::from_nanos(timeout_ns);
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe {
        borrow(subscriber, out_data, out_len, out_info, out_loss, |s| {
            s.recv_borrow_timeout(timeout)
        })
    }
}

/// Ends the subscriber's borrow: the borrowed message counts as read, its slot may be reused
/// by publishers, and the data pointer from the borrow is invalid from now on.
///
/// Errors: `NULL_PARAMETER`, `NO_SAMPLE` (nothing is borrowed).
///
/// # Safety
/// * `subscriber` is NULL or a live handle, used by no other thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_release(
    subscriber: *mut shmbus_subscriber,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(subscriber);
        // SAFETY: `subscriber` is non-NULL (checked), live and used by this thread only
        // (caller's contract); the field projection does not touch `inner`.
        let slot = unsafe { &mut (*subscriber).sample };
        match slot.take() {
            // Dropping the sample consumes the message and ends the borrow of `inner`.
            Some(sample) => {
                drop(sample);
                Ok(())
            }
            None => Err(Failure::new(
                shmbus_result::NoSample,
                "the subscriber has no borrowed sample to release",
            )),
        }
    })
}
