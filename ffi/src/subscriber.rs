//! Subscribers and receiving: `shmbus_subscriber_*`.

use std::ffi::c_char;
use std::time::Duration;

use shmbus_core::{MessageInfo, RecvError, StartAt, Subscriber, SubscriberConfig, WaitStrategy};

use crate::bus::{name_arg, opt_arg, shmbus_bus, shmbus_topic_config};
use crate::error::{Failure, shmbus_result};

/// A subscriber on one topic: a private cursor that receives every message in order. Use it
/// from one thread at a time (it may move between threads). Free it with
/// `shmbus_subscriber_free`.
pub struct shmbus_subscriber {
    inner: Subscriber,
}

/// How a blocking receive waits (values for `shmbus_subscriber_config.wait`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmbus_wait_strategy {
    /// Poll for `spin_ns`, then sleep on the topic's futex (the default, with 50 µs).
    SpinThenPark = 0,
    /// Poll without pause: lowest latency, one CPU busy while waiting.
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
}

/// What a receive returns besides the payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_message_info {
    /// Sequence number in the topic's total order (0, 1, 2, ... across all publishers).
    pub seq: u64,
    /// Payload length in bytes (the bytes written to the buffer).
    pub len: usize,
    /// When it was published: CLOCK_MONOTONIC in ns (see `shmbus_monotonic_ns`).
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
    Ok(SubscriberConfig {
        wait,
        start,
        ..SubscriberConfig::default()
    })
}

/// The default subscriber configuration: spin for 50 µs then park; start at the next message.
///
/// # Safety
/// Always safe to call; `unsafe` only for uniformity with the rest of the API.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_subscriber_config_default() -> shmbus_subscriber_config {
    std::panic::catch_unwind(subscriber_config_default).unwrap_or_else(|_| std::process::abort())
}

/// Creates a subscriber on `topic`, creating the topic as `shmbus_publisher_new` does (with
/// `*topic_cfg`, or the bus default if `topic_cfg` is NULL). `sub_cfg` NULL means
/// `shmbus_subscriber_config_default()`. On success `*out` is owned by the caller: free it with
/// `shmbus_subscriber_free` (it stays valid after the bus handle is freed).
///
/// Errors: `NULL_PARAMETER`, `INVALID_ARGUMENT`, `INVALID_NAME`, `INVALID_CONFIG`,
/// `GEOMETRY_MISMATCH`, `TABLE_FULL`, `ARENA_FULL`, `LOCK_TIMEOUT`, `CORRUPT`,
/// `SUBSCRIBER_TABLE_FULL`.
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
        let topic = match unsafe { opt_arg(topic_cfg) } {
            Some(cfg) => bus.topic_with(topic, &cfg.into())?,
            None => bus.topic(topic)?,
        };
        let handle = Box::new(shmbus_subscriber {
            inner: topic.subscriber_with(&sub_cfg)?,
        });
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Frees a subscriber (NULL is a no-op).
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
        // SAFETY: non-NULL (checked) and live (caller's contract).
        let capacity = unsafe { (*subscriber).inner.capacity() };
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(capacity) };
        Ok(())
    })
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
        check_null!(subscriber, buf, out_info);
        // SAFETY: `subscriber` is non-NULL (checked), live and used by this thread only
        // (caller's contract).
        let sub = unsafe { &mut (*subscriber).inner };
        // SAFETY: `buf` is non-NULL (checked) and valid for writes of `buf_len` bytes
        // (caller's contract); the core only writes to it.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, buf_len) };
        match how(sub, buf) {
            Ok(info) => {
                // SAFETY: `out_info` is non-NULL (checked) and valid for one write.
                unsafe { out_info.write(info.into()) };
                Ok(())
            }
            Err(e @ RecvError::Lost { first_seq, count }) => {
                if !out_loss.is_null() {
                    // SAFETY: `out_loss` is non-NULL and valid for one write (caller's contract).
                    unsafe { out_loss.write(shmbus_loss { first_seq, count }) };
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Receives the next message into `buf` if one is available, without waiting. On `OK`,
/// `*out_info` describes it and its `len` bytes are at the start of `buf`. On `LOST`, `*out_loss`
/// (if `out_loss` is not NULL) says which messages were lost; receive again for the next one.
///
/// Errors: `NULL_PARAMETER`, `EMPTY`, `LOST`, `BUFFER_TOO_SMALL` (the message stays unread).
///
/// # Safety
/// * `subscriber` is NULL or a live handle, used by no other thread during the call.
/// * `buf` is NULL or valid for writes of `buf_len` bytes.
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
/// Errors: `NULL_PARAMETER`, `LOST`, `BUFFER_TOO_SMALL`.
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

/// Receives the next message, waiting at most `timeout_ns` nanoseconds. Otherwise as
/// `shmbus_subscriber_try_recv`.
///
/// Errors: `NULL_PARAMETER`, `TIMEOUT`, `LOST`, `BUFFER_TOO_SMALL`.
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
