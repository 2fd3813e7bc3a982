//! Buses and the configuration structs: `shmbus_bus_*`, `shmbus_*_config_default`.

use std::ffi::{CStr, c_char};
use std::time::Duration;

use shmbus_core::{Bus, BusConfig, Delivery, Topic, TopicConfig};

use crate::error::{Failure, shmbus_result};

/// A handle on a bus (a named shared-memory segment). Thread-safe: one handle may be used by
/// any number of threads at once. Free it with `shmbus_bus_free`; publishers and subscribers
/// made from it stay valid after it is freed.
pub struct shmbus_bus {
    pub(crate) inner: Bus,
}

/// How messages are delivered on a topic (values for `shmbus_topic_config.delivery`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmbus_delivery {
    /// Publishers never wait for subscribers; a subscriber that falls a whole ring behind loses
    /// the oldest messages and is told exactly which (`SHMBUS_RESULT_LOST`). The default.
    Lossy = 0,
    /// Publishers never overwrite a message a live subscriber has not read: on a full ring
    /// they wait (up to `shmbus_publisher_config.timeout_ns`, then `PUBLISH_TIMEOUT`) or, in the
    /// `try_` forms, return `WOULD_BLOCK`. Subscribers may borrow messages in place
    /// (`shmbus_subscriber_try_recv_borrow`). A subscriber whose process died is evicted within
    /// the publisher's liveness window; a slow live one is never evicted.
    Lossless = 1,
}

/// The C value of a core delivery mode.
fn delivery_code(d: Delivery) -> u32 {
    match d {
        Delivery::Lossless => shmbus_delivery::Lossless as u32,
        // `Delivery` is non-exhaustive: a newer mode the C API cannot name yet reads as lossy.
        // Only the defaults (lossy) and the caller's own values go through here.
        _ => shmbus_delivery::Lossy as u32,
    }
}

/// The core delivery mode of a C value; unknown values are `INVALID_ARGUMENT`.
fn core_delivery(v: u32) -> Result<Delivery, Failure> {
    match v {
        0 => Ok(Delivery::Lossy),
        1 => Ok(Delivery::Lossless),
        v => Err(Failure::new(
            shmbus_result::InvalidArgument,
            format!("unknown shmbus_delivery value {v}"),
        )),
    }
}

/// The geometry and delivery mode of a topic, fixed when the topic is created. Start from
/// `shmbus_topic_config_default()` and change the fields you need.
///
/// `delivery` is a `uint32_t` so that any value C stores is safe to read; values outside
/// `shmbus_delivery` give `SHMBUS_RESULT_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_topic_config {
    /// Slots in the ring: a power of two, 2..=16777216. A subscriber may fall this many
    /// messages behind before it loses any. Default 1024.
    pub slots: u32,
    /// Largest message in bytes, 1..=16 MiB (stored rounded up to a multiple of 8). Default 256.
    pub payload_size: u32,
    /// Most publishers alive at once on the topic, 1..=256. Default 16. A topic that will only
    /// ever have one publisher at a time should say 1: on a lossy topic its publish then needs
    /// no locked instruction and no compare-and-swap on the slot, which across processes takes
    /// about 40% off a message's latency and multiplies the streaming rate.
    pub max_publishers: u32,
    /// Most subscribers alive at once on the topic, 1..=4096. Default 64.
    pub max_subscribers: u32,
    /// A `shmbus_delivery`. Default `SHMBUS_DELIVERY_LOSSY`. Part of the topic's identity: a
    /// non-NULL config whose mode differs from an existing topic's gives `DELIVERY_MISMATCH`.
    pub delivery: u32,
}

/// How a bus is created and opened. Start from `shmbus_bus_config_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmbus_bus_config {
    /// Segment size in bytes (rounded up to 4 KiB), 64 KiB..=1 TiB, reserved in /dev/shm at
    /// creation. Default 16 MiB. Used by create only.
    pub size: u64,
    /// Entries in the topic table, 1..=4096. Default 64. Used by create only.
    pub max_topics: u32,
    /// Permission bits of the shared-memory object, applied exactly (not masked by the
    /// umask). Default 0600. Used by create only.
    pub mode: u32,
    /// Geometry of topics created on first use when a NULL `shmbus_topic_config` is passed.
    pub default_topic: shmbus_topic_config,
    /// How long open waits for a creator to finish initialising, and how long topic creation
    /// waits for the table lock, in nanoseconds. Default 2 s.
    pub open_timeout_ns: u64,
    /// Map every page at attach time so no page fault lands on the hot path. Default 1 (true);
    /// any nonzero value is true. (A byte, not a `bool`: any value is safe to pass.)
    pub prefault: u8,
}

impl From<TopicConfig> for shmbus_topic_config {
    fn from(c: TopicConfig) -> Self {
        shmbus_topic_config {
            slots: c.slots,
            payload_size: c.payload_size,
            max_publishers: c.max_publishers,
            max_subscribers: c.max_subscribers,
            delivery: delivery_code(c.delivery),
        }
    }
}

/// The core topic configuration of a C one (an unknown `delivery` is `INVALID_ARGUMENT`).
fn core_topic_config(c: &shmbus_topic_config) -> Result<TopicConfig, Failure> {
    Ok(TopicConfig {
        slots: c.slots,
        payload_size: c.payload_size,
        max_publishers: c.max_publishers,
        max_subscribers: c.max_subscribers,
        delivery: core_delivery(c.delivery)?,
    })
}

/// The core bus configuration of a C one.
fn core_bus_config(c: &shmbus_bus_config) -> Result<BusConfig, Failure> {
    Ok(BusConfig {
        size: c.size,
        max_topics: c.max_topics,
        mode: c.mode,
        default_topic: core_topic_config(&c.default_topic)?,
        open_timeout: Duration::from_nanos(c.open_timeout_ns),
        prefault: c.prefault != 0,
    })
}

fn bus_config_default() -> shmbus_bus_config {
    let d = BusConfig::default();
    shmbus_bus_config {
        size: d.size,
        max_topics: d.max_topics,
        mode: d.mode,
        default_topic: d.default_topic.into(),
        open_timeout_ns: u64::try_from(d.open_timeout.as_nanos()).unwrap_or(u64::MAX),
        prefault: u8::from(d.prefault),
    }
}

/// The default bus configuration: 16 MiB, 64 topics, mode 0600, default topics of
/// 1024 slots × 256 bytes (lossy), 2 s open timeout, prefault on.
///
/// # Safety
/// Always safe to call; `unsafe` only for uniformity with the rest of the API.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_bus_config_default() -> shmbus_bus_config {
    // The body cannot panic; should it ever, abort rather than unwind into C.
    std::panic::catch_unwind(bus_config_default).unwrap_or_else(|_| std::process::abort())
}

/// The default topic configuration: 1024 slots of 256 bytes, 16 publishers, 64 subscribers,
/// lossy delivery.
///
/// # Safety
/// Always safe to call; `unsafe` only for uniformity with the rest of the API.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_topic_config_default() -> shmbus_topic_config {
    std::panic::catch_unwind(|| TopicConfig::default().into())
        .unwrap_or_else(|_| std::process::abort())
}

/// Reads a NUL-terminated name; non-UTF-8 is an invalid name.
///
/// # Safety
/// `p` is non-NULL and points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn name_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: guaranteed by the caller (non-NULL, NUL-terminated, alive for 'a).
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes
        .to_str()
        .map_err(|_| Failure::new(shmbus_result::InvalidName, format!("{what} is not UTF-8")))
}

/// Reads an optional config struct: NULL gives `None`.
///
/// # Safety
/// `p` is NULL or valid for one read of `T`.
pub(crate) unsafe fn opt_arg<T: Copy>(p: *const T) -> Option<T> {
    // SAFETY: guaranteed by the caller (NULL or valid for reads).
    unsafe { p.as_ref() }.copied()
}

/// Opens (or creates) `topic` for a new publisher or subscriber: with `cfg`, the topic must
/// have exactly that geometry and delivery mode (or is created with them); with `None`, any
/// existing topic is accepted and a new one gets the bus's default topic configuration.
pub(crate) fn open_topic(
    bus: &Bus,
    topic: &str,
    cfg: Option<shmbus_topic_config>,
) -> Result<Topic, Failure> {
    Ok(match cfg {
        Some(cfg) => bus.topic_with(topic, &core_topic_config(&cfg)?)?,
        None => bus.topic(topic)?,
    })
}

/// Shared body of create / open / open_or_create.
///
/// # Safety
/// As for `shmbus_bus_create`.
unsafe fn make_bus(
    name: *const c_char,
    cfg: *const shmbus_bus_config,
    out: *mut *mut shmbus_bus,
    make: fn(&str, &BusConfig) -> Result<Bus, shmbus_core::BusError>,
) -> shmbus_result {
    ffi_boundary!({
        check_null!(name, out);
        // SAFETY: `name` is non-NULL (checked) and NUL-terminated (caller's contract).
        let name = unsafe { name_arg(name, "bus name") }?;
        // SAFETY: `cfg` is NULL or valid for reads (caller's contract).
        let cfg = unsafe { opt_arg(cfg) }.unwrap_or_else(bus_config_default);
        let bus = make(name, &core_bus_config(&cfg)?)?;
        let handle = Box::into_raw(Box::new(shmbus_bus { inner: bus }));
        // SAFETY: `out` is non-NULL (checked) and valid for one write (caller's contract).
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Creates a new bus named `name` (1..=200 bytes of `[A-Za-z0-9_.-]`, not starting with `.`;
/// the object is `/dev/shm/shmbus.NAME`). Fails with `SHMBUS_RESULT_ALREADY_EXISTS` if it exists.
/// On success `*out` is a new handle owned by the caller: free it with `shmbus_bus_free`.
/// The bus itself stays until `shmbus_bus_remove` (or `shmbus rm`).
///
/// Errors: `NULL_PARAMETER`, `INVALID_ARGUMENT` (an unknown `default_topic.delivery`),
/// `INVALID_NAME`, `INVALID_CONFIG`, `ALREADY_EXISTS`, `PERMISSION_DENIED`, `OUT_OF_SPACE`, `IO`.
///
/// # Safety
/// * `name` is NULL or a NUL-terminated string.
/// * `cfg` is NULL (use the defaults) or points to a valid `shmbus_bus_config`.
/// * `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_bus_create(
    name: *const c_char,
    cfg: *const shmbus_bus_config,
    out: *mut *mut shmbus_bus,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { make_bus(name, cfg, out, Bus::create) }
}

/// Opens an existing bus. Of `cfg`, only `open_timeout_ns`, `prefault` and `default_topic`
/// are used (the size, topic count and mode are the creator's). On success `*out` is owned by
/// the caller: free it with `shmbus_bus_free`.
///
/// Errors: `NULL_PARAMETER`, `INVALID_ARGUMENT`, `INVALID_NAME`, `NOT_FOUND`,
/// `VERSION_MISMATCH`, `LAYOUT_MISMATCH`, `CORRUPT`, `CREATOR_DIED`, `NOT_INITIALIZED`,
/// `PERMISSION_DENIED`, `OUT_OF_SPACE` (the mapping was refused for lack of memory or address
/// space), `IO`.
///
/// # Safety
/// As `shmbus_bus_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_bus_open(
    name: *const c_char,
    cfg: *const shmbus_bus_config,
    out: *mut *mut shmbus_bus,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { make_bus(name, cfg, out, Bus::open_with) }
}

/// Opens the bus if it exists, otherwise creates it with `cfg`. When several processes start
/// at once, exactly one creates it. On success `*out` is owned by the caller.
///
/// Errors: those of `shmbus_bus_create` and `shmbus_bus_open`.
///
/// # Safety
/// As `shmbus_bus_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_bus_open_or_create(
    name: *const c_char,
    cfg: *const shmbus_bus_config,
    out: *mut *mut shmbus_bus,
) -> shmbus_result {
    // SAFETY: forwarded from our caller's contract, which is the same.
    unsafe { make_bus(name, cfg, out, Bus::open_or_create) }
}

/// Removes the bus's name. Processes that have it open keep working; new opens fail with
/// `NOT_FOUND`; the memory is freed when the last process closes it.
///
/// Errors: `NULL_PARAMETER`, `INVALID_NAME`, `NOT_FOUND`, `PERMISSION_DENIED`, `IO`.
///
/// # Safety
/// * `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_bus_remove(name: *const c_char) -> shmbus_result {
    ffi_boundary!({
        check_null!(name);
        // SAFETY: `name` is non-NULL (checked) and NUL-terminated (caller's contract).
        let name = unsafe { name_arg(name, "bus name") }?;
        Ok(Bus::remove(name)?)
    })
}

/// Frees a bus handle (NULL is a no-op). Does not remove the bus, and does not invalidate
/// publishers and subscribers made from it: they keep the mapping alive.
///
/// # Safety
/// * `bus` is NULL or a handle from `shmbus_bus_create`/`_open`/`_open_or_create` that was
///   not freed yet; no other thread uses it during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_bus_free(bus: *mut shmbus_bus) {
    if bus.is_null() {
        return;
    }
    // SAFETY: `bus` came from `Box::into_raw` in `make_bus` and is freed once (caller's
    // contract).
    let bus = unsafe { Box::from_raw(bus) };
    // Dropping only unmaps; should it panic, swallow it rather than unwind into C.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(bus)));
}
