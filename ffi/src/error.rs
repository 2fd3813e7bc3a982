//! `shmbus_result`, the mapping from the core's errors, and the per-thread last error message.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int};

use shmbus_core::{BusError, PublishError, RecvError, TopicError};

/// The outcome of a call. `SHMBUS_RESULT_OK` is 0; every other value is a reason for failure
/// (or, for `EMPTY`, `TIMEOUT` and `LOST`, a receive that returned no message, and for
/// `WOULD_BLOCK`, a `try_` publish that found a lossless ring full).
///
/// The numbers are fixed and never reused: new codes get new numbers, retired codes stay
/// reserved. Codes are grouped: 1-9 the C API itself, 10-29 bus, 30-39 topic, 40-49 publish,
/// 50-59 receive. `shmbus_result_str` names each code; `shmbus_last_error_message` says more.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmbus_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A Rust panic was caught at the API boundary (a bug in shmbus; please report it).
    Panic = 2,
    /// An argument is out of range (e.g. an unknown `shmbus_wait_strategy` value).
    InvalidArgument = 3,
    /// The publisher has an outstanding loan: commit or abort it first.
    LoanOutstanding = 4,
    /// The loan was already committed or aborted.
    LoanInactive = 5,
    /// The subscriber has a borrowed sample: release it (`shmbus_subscriber_release`) before
    /// receiving again.
    SampleOutstanding = 6,
    /// `shmbus_subscriber_release` was called with no borrowed sample outstanding.
    NoSample = 7,
    /// An error without a code of its own (a newer core error); see the message.
    Other = 9,

    /// A bus or topic name is empty, too long, not UTF-8, or has a forbidden character.
    InvalidName = 10,
    /// A bus or topic configuration value is out of range; the message says which.
    InvalidConfig = 11,
    /// No bus (or topic) of that name exists.
    NotFound = 12,
    /// A bus of that name already exists (use `shmbus_bus_open` or `_open_or_create`).
    AlreadyExists = 13,
    /// The bus was made by an incompatible version of shmbus (layout version differs).
    VersionMismatch = 14,
    /// Same layout version, but the shared structures differ (another build's layout).
    LayoutMismatch = 15,
    /// The bus header or a topic entry is invalid: not a shmbus bus, or damaged.
    Corrupt = 16,
    /// The bus's creator died before it was ready: remove the bus and create it again.
    CreatorDied = 17,
    /// The creator is alive but did not finish initialising within the open timeout.
    NotInitialized = 18,
    /// The shared-memory object exists but this process may not open or remove it.
    PermissionDenied = 19,
    /// The system could not provide the requested size (is /dev/shm full?).
    OutOfSpace = 20,
    /// Any other operating-system error.
    Io = 21,

    /// The topic exists with another geometry than the `shmbus_topic_config` given.
    GeometryMismatch = 30,
    /// Every entry of the bus's topic table is in use.
    TableFull = 31,
    /// The bus has no room left for this topic's ring (create the bus larger).
    ArenaFull = 32,
    /// The topic already has `max_publishers` live publishers.
    PublisherTableFull = 33,
    /// The topic already has `max_subscribers` live subscribers.
    SubscriberTableFull = 34,
    /// Another live process held the topic-table lock past the open timeout.
    LockTimeout = 35,
    /// The topic exists with the other delivery mode (lossy or lossless) than the
    /// `shmbus_topic_config` given.
    DeliveryMismatch = 36,

    /// The message (or loan) is larger than the topic's `payload_size`; nothing was published.
    TooLarge = 40,
    /// Reserved for typed loans (a type that does not fit a slot); not returned by the C API.
    BadType = 41,
    /// Lossless topic, `try_` form: the ring is full (the slowest subscriber has not read the
    /// message a whole ring back). Nothing was published; try again later.
    WouldBlock = 42,
    /// The publisher's whole timeout (`shmbus_publisher_config.timeout_ns`) passed: on a
    /// lossless topic the ring stayed full; on a topic with several publisher entries a live
    /// writer a ring behind kept holding the slot. Nothing was published.
    PublishTimeout = 43,

    /// No message is available now (`shmbus_subscriber_try_recv`).
    Empty = 50,
    /// No message arrived before the timeout (`shmbus_subscriber_recv_timeout`).
    Timeout = 51,
    /// Messages were lost (overwritten before this subscriber read them, or abandoned by a
    /// publisher that died); `out_loss` says which. The subscriber moved past them: the next
    /// receive returns the next available message. Not an error to give up on.
    Lost = 52,
    /// The buffer is smaller than the next message, which stays unread. A buffer of
    /// `shmbus_subscriber_capacity` bytes always suffices.
    BufferTooSmall = 53,
    /// Borrowing in place needs a lossless topic; this one is lossy (use the copying receives).
    NotLossless = 54,
}

impl shmbus_result {
    const ALL: [shmbus_result; 37] = [
        Self::Ok,
        Self::NullParameter,
        Self::Panic,
        Self::InvalidArgument,
        Self::LoanOutstanding,
        Self::LoanInactive,
        Self::SampleOutstanding,
        Self::NoSample,
        Self::Other,
        Self::InvalidName,
        Self::InvalidConfig,
        Self::NotFound,
        Self::AlreadyExists,
        Self::VersionMismatch,
        Self::LayoutMismatch,
        Self::Corrupt,
        Self::CreatorDied,
        Self::NotInitialized,
        Self::PermissionDenied,
        Self::OutOfSpace,
        Self::Io,
        Self::GeometryMismatch,
        Self::TableFull,
        Self::ArenaFull,
        Self::PublisherTableFull,
        Self::SubscriberTableFull,
        Self::LockTimeout,
        Self::DeliveryMismatch,
        Self::TooLarge,
        Self::BadType,
        Self::WouldBlock,
        Self::PublishTimeout,
        Self::Empty,
        Self::Timeout,
        Self::Lost,
        Self::BufferTooSmall,
        Self::NotLossless,
    ];

    fn from_raw(raw: c_int) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as c_int == raw)
    }

    /// The code's name as a NUL-terminated string.
    fn name(self) -> &'static std::ffi::CStr {
        match self {
            Self::Ok => c"SHMBUS_RESULT_OK",
            Self::NullParameter => c"SHMBUS_RESULT_NULL_PARAMETER",
            Self::Panic => c"SHMBUS_RESULT_PANIC",
            Self::InvalidArgument => c"SHMBUS_RESULT_INVALID_ARGUMENT",
            Self::LoanOutstanding => c"SHMBUS_RESULT_LOAN_OUTSTANDING",
            Self::LoanInactive => c"SHMBUS_RESULT_LOAN_INACTIVE",
            Self::SampleOutstanding => c"SHMBUS_RESULT_SAMPLE_OUTSTANDING",
            Self::NoSample => c"SHMBUS_RESULT_NO_SAMPLE",
            Self::Other => c"SHMBUS_RESULT_OTHER",
            Self::InvalidName => c"SHMBUS_RESULT_INVALID_NAME",
            Self::InvalidConfig => c"SHMBUS_RESULT_INVALID_CONFIG",
            Self::NotFound => c"SHMBUS_RESULT_NOT_FOUND",
            Self::AlreadyExists => c"SHMBUS_RESULT_ALREADY_EXISTS",
            Self::VersionMismatch => c"SHMBUS_RESULT_VERSION_MISMATCH",
            Self::LayoutMismatch => c"SHMBUS_RESULT_LAYOUT_MISMATCH",
            Self::Corrupt => c"SHMBUS_RESULT_CORRUPT",
            Self::CreatorDied => c"SHMBUS_RESULT_CREATOR_DIED",
            Self::NotInitialized => c"SHMBUS_RESULT_NOT_INITIALIZED",
            Self::PermissionDenied => c"SHMBUS_RESULT_PERMISSION_DENIED",
            Self::OutOfSpace => c"SHMBUS_RESULT_OUT_OF_SPACE",
            Self::Io => c"SHMBUS_RESULT_IO",
            Self::GeometryMismatch => c"SHMBUS_RESULT_GEOMETRY_MISMATCH",
            Self::TableFull => c"SHMBUS_RESULT_TABLE_FULL",
            Self::ArenaFull => c"SHMBUS_RESULT_ARENA_FULL",
            Self::PublisherTableFull => c"SHMBUS_RESULT_PUBLISHER_TABLE_FULL",
            Self::SubscriberTableFull => c"SHMBUS_RESULT_SUBSCRIBER_TABLE_FULL",
            Self::LockTimeout => c"SHMBUS_RESULT_LOCK_TIMEOUT",
            Self::DeliveryMismatch => c"SHMBUS_RESULT_DELIVERY_MISMATCH",
            Self::TooLarge => c"SHMBUS_RESULT_TOO_LARGE",
            Self::BadType => c"SHMBUS_RESULT_BAD_TYPE",
            Self::WouldBlock => c"SHMBUS_RESULT_WOULD_BLOCK",
            Self::PublishTimeout => c"SHMBUS_RESULT_PUBLISH_TIMEOUT",
            Self::Empty => c"SHMBUS_RESULT_EMPTY",
            Self::Timeout => c"SHMBUS_RESULT_TIMEOUT",
            Self::Lost => c"SHMBUS_RESULT_LOST",
            Self::BufferTooSmall => c"SHMBUS_RESULT_BUFFER_TOO_SMALL",
            Self::NotLossless => c"SHMBUS_RESULT_NOT_LOSSLESS",
        }
    }
}

/// A failed call: its code and the message `shmbus_last_error_message` will return.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: shmbus_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: shmbus_result, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(param: &str) -> Self {
        Self::new(
            shmbus_result::NullParameter,
            format!("parameter `{param}` is NULL"),
        )
    }
}

impl From<BusError> for Failure {
    fn from(e: BusError) -> Self {
        use shmbus_result as R;
        let code = match &e {
            BusError::InvalidName(_) => R::InvalidName,
            BusError::InvalidConfig(_) => R::InvalidConfig,
            BusError::NotFound(_) => R::NotFound,
            BusError::AlreadyExists(_) => R::AlreadyExists,
            BusError::VersionMismatch { .. } => R::VersionMismatch,
            BusError::LayoutMismatch { .. } => R::LayoutMismatch,
            BusError::Corrupt { .. } => R::Corrupt,
            BusError::CreatorDied { .. } => R::CreatorDied,
            BusError::NotInitialized => R::NotInitialized,
            BusError::PermissionDenied(_) => R::PermissionDenied,
            BusError::OutOfSpace { .. } => R::OutOfSpace,
            BusError::Io(_) => R::Io,
            _ => R::Other,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<TopicError> for Failure {
    fn from(e: TopicError) -> Self {
        use shmbus_result as R;
        let code = match &e {
            TopicError::InvalidName(_) => R::InvalidName,
            TopicError::InvalidConfig(_) => R::InvalidConfig,
            TopicError::NotFound(_) => R::NotFound,
            TopicError::GeometryMismatch { .. } => R::GeometryMismatch,
            TopicError::DeliveryMismatch { .. } => R::DeliveryMismatch,
            TopicError::TableFull { .. } => R::TableFull,
            TopicError::ArenaFull { .. } => R::ArenaFull,
            TopicError::PublisherTableFull => R::PublisherTableFull,
            TopicError::SubscriberTableFull => R::SubscriberTableFull,
            TopicError::LockTimeout => R::LockTimeout,
            TopicError::Corrupt(_) => R::Corrupt,
            _ => R::Other,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<PublishError> for Failure {
    fn from(e: PublishError) -> Self {
        let code = match &e {
            PublishError::TooLarge { .. } => shmbus_result::TooLarge,
            PublishError::BadType { .. } => shmbus_result::BadType,
            PublishError::WouldBlock => shmbus_result::WouldBlock,
            PublishError::Timeout => shmbus_result::PublishTimeout,
            _ => shmbus_result::Other,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<RecvError> for Failure {
    /// `Lost` is handled by the receive functions (they fill `out_loss`); this maps the rest.
    fn from(e: RecvError) -> Self {
        let code = match &e {
            RecvError::Empty => shmbus_result::Empty,
            RecvError::Timeout => shmbus_result::Timeout,
            RecvError::Lost { .. } => shmbus_result::Lost,
            RecvError::BufferTooSmall { .. } => shmbus_result::BufferTooSmall,
            RecvError::NotLossless => shmbus_result::NotLossless,
            _ => shmbus_result::Other,
        };
        Failure::new(code, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    // `try_with`: during thread teardown the slot may be gone; the message is then dropped.
    let _ = LAST_ERROR.try_with(|m| *m.borrow_mut() = message);
}

/// Converts a body's outcome (or its panic) into the code returned to C.
pub(crate) fn finish(outcome: std::thread::Result<Result<(), Failure>>) -> shmbus_result {
    match outcome {
        Ok(Ok(())) => shmbus_result::Ok,
        Ok(Err(f)) => {
            set_last_error(f.message);
            f.code
        }
        Err(payload) => {
            set_last_error(format!("panic in shmbus: {}", panic_message(&*payload)));
            shmbus_result::Panic
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The name of a result code, e.g. `"SHMBUS_RESULT_NOT_FOUND"`, as a static NUL-terminated
/// string (never freed). Unknown values give `"SHMBUS_RESULT_UNKNOWN"`.
///
/// Takes an `int` rather than a `shmbus_result` so that any integer is safe to pass.
///
/// # Safety
/// Always safe to call; `unsafe` only for uniformity with the rest of the API.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_result_str(result: c_int) -> *const c_char {
    std::panic::catch_unwind(|| shmbus_result::from_raw(result).map(shmbus_result::name))
        .ok()
        .flatten()
        .unwrap_or(c"SHMBUS_RESULT_UNKNOWN")
        .as_ptr()
}

/// Copies the message of the last failed call on this thread into `buf` (at most `len - 1`
/// bytes, then a NUL), like `snprintf`. Returns the full message length without the NUL: if
/// that is `>= len`, the copy was truncated. `buf` may be NULL when `len` is 0, to ask for the
/// length. Successful calls do not clear the message; it is `""` if no call failed yet.
///
/// # Safety
/// * `buf` is NULL or valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmbus_last_error_message(buf: *mut c_char, len: usize) -> usize {
    let copy = || {
        LAST_ERROR.with(|m| {
            let m = m.borrow();
            if !buf.is_null() && len > 0 {
                let n = m.len().min(len - 1);
                // SAFETY: the caller guarantees `buf` is valid for `len` bytes and `n < len`;
                // `m` is a Rust string, which cannot overlap C's buffer.
                unsafe { std::ptr::copy_nonoverlapping(m.as_ptr().cast::<c_char>(), buf, n) };
                // SAFETY: `n < len`, so `buf + n` is inside the caller's buffer.
                let end = unsafe { buf.add(n) };
                // SAFETY: as above.
                unsafe { end.write(0) };
            }
            m.len()
        })
    };
    std::panic::catch_unwind(copy).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name() {
        let mut seen = std::collections::HashSet::new();
        for r in shmbus_result::ALL {
            assert_eq!(shmbus_result::from_raw(r as c_int), Some(r));
            seen.insert(r.name());
        }
        assert_eq!(seen.len(), shmbus_result::ALL.len());
    }

    #[test]
    fn every_core_error_maps_to_its_code() {
        use shmbus_core::Delivery;
        use shmbus_result as R;
        let n = || String::from("x");
        let bus = [
            (BusError::InvalidName(n()), R::InvalidName),
            (BusError::InvalidConfig(n()), R::InvalidConfig),
            (BusError::NotFound(n()), R::NotFound),
            (BusError::AlreadyExists(n()), R::AlreadyExists),
            (
                BusError::VersionMismatch {
                    found: 0,
                    expected: 1,
                },
                R::VersionMismatch,
            ),
            (
                BusError::LayoutMismatch {
                    found: 0,
                    expected: 1,
                },
                R::LayoutMismatch,
            ),
            (
                BusError::Corrupt {
                    field: "magic",
                    detail: n(),
                },
                R::Corrupt,
            ),
            (BusError::CreatorDied { pid: 1 }, R::CreatorDied),
            (BusError::NotInitialized, R::NotInitialized),
            (BusError::PermissionDenied(n()), R::PermissionDenied),
            (BusError::OutOfSpace { requested: 1 }, R::OutOfSpace),
            (BusError::Io(std::io::Error::other("x")), R::Io),
        ];
        for (e, code) in bus {
            assert_eq!(Failure::from(e).code, code);
        }
        let topic = [
            (TopicError::InvalidName(n()), R::InvalidName),
            (TopicError::InvalidConfig(n()), R::InvalidConfig),
            (TopicError::NotFound(n()), R::NotFound),
            (
                TopicError::GeometryMismatch {
                    topic: n(),
                    existing: (1, 1, 1, 1),
                    requested: (2, 2, 2, 2),
                },
                R::GeometryMismatch,
            ),
            (
                TopicError::DeliveryMismatch {
                    topic: n(),
                    existing: Delivery::Lossless,
                    requested: Delivery::Lossy,
                },
                R::DeliveryMismatch,
            ),
            (TopicError::TableFull { max_topics: 1 }, R::TableFull),
            (
                TopicError::ArenaFull {
                    needed: 2,
                    available: 1,
                },
                R::ArenaFull,
            ),
            (TopicError::PublisherTableFull, R::PublisherTableFull),
            (TopicError::SubscriberTableFull, R::SubscriberTableFull),
            (TopicError::LockTimeout, R::LockTimeout),
            (TopicError::Corrupt(n()), R::Corrupt),
        ];
        for (e, code) in topic {
            assert_eq!(Failure::from(e).code, code);
        }
        assert_eq!(
            Failure::from(PublishError::TooLarge {
                len: 2,
                capacity: 1
            })
            .code,
            R::TooLarge
        );
        assert_eq!(
            Failure::from(PublishError::BadType { size: 2, align: 1 }).code,
            R::BadType
        );
        assert_eq!(Failure::from(PublishError::WouldBlock).code, R::WouldBlock);
        assert_eq!(Failure::from(PublishError::Timeout).code, R::PublishTimeout);
        let recv = [
            (RecvError::Empty, R::Empty),
            (RecvError::Timeout, R::Timeout),
            (
                RecvError::Lost {
                    first_seq: 0,
                    count: 1,
                },
                R::Lost,
            ),
            (RecvError::BufferTooSmall { needed: 1 }, R::BufferTooSmall),
            (RecvError::NotLossless, R::NotLossless),
        ];
        for (e, code) in recv {
            let f = Failure::from(e.clone());
            assert_eq!((f.code, f.message), (code, e.to_string()));
        }
    }

    #[test]
    fn a_panic_becomes_a_code_and_a_message() {
        let code = ffi_boundary!({ panic!("boom") });
        assert_eq!(code, shmbus_result::Panic);
        let mut buf = [0 as c_char; 64];
        // SAFETY: `buf` is valid for 64 bytes.
        let n = unsafe { shmbus_last_error_message(buf.as_mut_ptr(), buf.len()) };
        // SAFETY: the function wrote a NUL within `buf`.
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(text.to_str().unwrap(), "panic in shmbus: boom");
        assert_eq!(n, text.to_bytes().len());
    }
}
