//! One error type per operation: [`BusError`] (create, open, remove), [`TopicError`] (topics and
//! endpoints), [`PublishError`] (publish, loan), [`RecvError`] (receive).

use std::fmt;
use std::io;

/// Why a bus could not be created, opened or removed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BusError {
    /// The bus name is empty, too long, or has a character outside `[A-Za-z0-9_.-]`.
    InvalidName(String),
    /// A [`BusConfig`](crate::BusConfig) value is out of range; the text says which.
    InvalidConfig(String),
    /// No bus of that name exists.
    NotFound(String),
    /// A bus of that name already exists (use `open` or `open_or_create`).
    AlreadyExists(String),
    /// The segment was made by an incompatible version of shmbus.
    VersionMismatch {
        /// Layout version found in the segment.
        found: u32,
        /// Layout version this build understands.
        expected: u32,
    },
    /// Same version, but the shared structs differ (a build with another layout).
    LayoutMismatch {
        /// Fingerprint found in the segment.
        found: u64,
        /// Fingerprint of this build.
        expected: u64,
    },
    /// A header field is invalid: the segment is not a shmbus bus, or it is damaged.
    Corrupt {
        /// The header field at fault.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The creator died before marking the segment ready. Remove it (`shmbus rm NAME` or
    /// [`Bus::remove`](crate::Bus::remove)) and create it again.
    CreatorDied {
        /// The dead creator's pid.
        pid: u32,
    },
    /// The bus did not become ready within the open timeout, and its creator is not known to be
    /// dead: it is alive, or it died before recording its pid (the first steps of creating).
    NotInitialized,
    /// The shared-memory object exists but this process may not open it.
    PermissionDenied(String),
    /// The system could not provide the requested size (e.g. `/dev/shm` is full).
    OutOfSpace {
        /// Bytes requested.
        requested: u64,
    },
    /// Any other operating-system error.
    Io(io::Error),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName(why) => write!(f, "invalid bus name: {why}"),
            Self::InvalidConfig(why) => write!(f, "invalid bus configuration: {why}"),
            Self::NotFound(name) => write!(f, "bus {name:?} does not exist"),
            Self::AlreadyExists(name) => write!(f, "bus {name:?} already exists"),
            Self::VersionMismatch { found, expected } => write!(
                f,
                "bus layout version {found} is not supported (this build uses version {expected})"
            ),
            Self::LayoutMismatch { found, expected } => write!(
                f,
                "bus layout fingerprint {found:#018x} differs from this build's {expected:#018x}"
            ),
            Self::Corrupt { field, detail } => {
                write!(f, "bus header is corrupt: field `{field}`: {detail}")
            }
            Self::CreatorDied { pid } => write!(
                f,
                "the creator (pid {pid}) died before the bus was ready; remove the bus and create it again"
            ),
            Self::NotInitialized => {
                write!(f, "the bus was not initialised within the open timeout")
            }
            Self::PermissionDenied(name) => write!(f, "permission denied opening bus {name:?}"),
            Self::OutOfSpace { requested } => write!(
                f,
                "out of shared memory: could not reserve {requested} bytes (is /dev/shm full?)"
            ),
            Self::Io(e) => write!(f, "bus I/O error: {e}"),
        }
    }
}

impl std::error::Error for BusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a topic (or a publisher or subscriber on it) could not be created or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic name is empty, longer than 64 bytes, or has a character outside
    /// `[A-Za-z0-9_./-]`.
    InvalidName(String),
    /// A [`TopicConfig`](crate::TopicConfig) value is out of range; the text says which.
    InvalidConfig(String),
    /// [`Bus::open_topic`](crate::Bus::open_topic) found no topic of that name.
    NotFound(String),
    /// The topic exists with another geometry than the one asked for.
    GeometryMismatch {
        /// The topic name.
        topic: String,
        /// `(slots, payload_size, max_publishers, max_subscribers)` in the segment.
        existing: (u32, u32, u32, u32),
        /// The same four values as requested.
        requested: (u32, u32, u32, u32),
    },
    /// The topic exists with the other delivery mode.
    DeliveryMismatch {
        /// The topic name.
        topic: String,
        /// The mode in the segment.
        existing: crate::Delivery,
        /// The mode requested.
        requested: crate::Delivery,
    },
    /// Every entry of the topic table is in use.
    TableFull {
        /// The table's capacity (`BusConfig::max_topics`).
        max_topics: u32,
    },
    /// The segment's arena has no room for this topic's ring.
    ArenaFull {
        /// Bytes the ring needs.
        needed: u64,
        /// Bytes left in the arena.
        available: u64,
    },
    /// The topic already has `max_publishers` live publishers.
    PublisherTableFull,
    /// The topic already has `max_subscribers` live subscribers.
    SubscriberTableFull,
    /// Another process held the topic-table lock past the timeout while alive.
    LockTimeout,
    /// A topic entry or ring header in the segment is invalid; the text says which field.
    Corrupt(String),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName(why) => write!(f, "invalid topic name: {why}"),
            Self::InvalidConfig(why) => write!(f, "invalid topic configuration: {why}"),
            Self::NotFound(name) => write!(f, "topic {name:?} does not exist"),
            Self::GeometryMismatch {
                topic,
                existing,
                requested,
            } => write!(
                f,
                "topic {topic:?} exists with slots={} payload_size={} max_publishers={} \
                 max_subscribers={}, but slots={} payload_size={} max_publishers={} \
                 max_subscribers={} was requested",
                existing.0,
                existing.1,
                existing.2,
                existing.3,
                requested.0,
                requested.1,
                requested.2,
                requested.3
            ),
            Self::DeliveryMismatch {
                topic,
                existing,
                requested,
            } => write!(
                f,
                "topic {topic:?} exists with {existing:?} delivery, but {requested:?} was requested"
            ),
            Self::TableFull { max_topics } => {
                write!(f, "the topic table is full ({max_topics} topics)")
            }
            Self::ArenaFull { needed, available } => write!(
                f,
                "no room for the topic: it needs {needed} bytes, {available} are left \
                 (create the bus with a larger size)"
            ),
            Self::PublisherTableFull => write!(f, "the topic has no free publisher entry"),
            Self::SubscriberTableFull => write!(f, "the topic has no free subscriber entry"),
            Self::LockTimeout => write!(f, "timed out waiting for the topic-table lock"),
            Self::Corrupt(why) => write!(f, "topic entry is corrupt: {why}"),
        }
    }
}

impl std::error::Error for TopicError {}

/// Why a message could not be published or a slot loaned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The message is larger than the topic's slot payload; nothing was published (never
    /// truncated).
    TooLarge {
        /// Length asked for.
        len: usize,
        /// The topic's `payload_size`.
        capacity: usize,
    },
    /// Lossless topic, `try_` form: the ring is full (the slowest subscriber is a ring behind).
    WouldBlock,
    /// The publisher's whole timeout passed: on a lossless topic the ring stayed full; on a topic
    /// with several publisher entries a writer a ring behind, alive, kept holding the slot.
    Timeout,
    /// The type does not fit the slot's size or alignment (typed loans).
    BadType {
        /// `size_of::<T>()`.
        size: usize,
        /// `align_of::<T>()`.
        align: usize,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, capacity } => write!(
                f,
                "message of {len} bytes exceeds the topic's slot payload of {capacity} bytes"
            ),
            Self::WouldBlock => write!(
                f,
                "the ring is full: a subscriber has not read its oldest message"
            ),
            Self::Timeout => write!(
                f,
                "timed out waiting for a subscriber to make room (or for another publisher to \
                 finish with the slot)"
            ),
            Self::BadType { size, align } => write!(
                f,
                "type of size {size} and alignment {align} does not fit a slot payload"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

/// Why a receive returned without a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// No message is available now (`try_recv`).
    Empty,
    /// No message arrived before the timeout (`recv_timeout`).
    Timeout,
    /// Messages `first_seq .. first_seq + count` were lost: overwritten before this subscriber
    /// read them, or abandoned by a publisher that died while writing them. The subscriber has
    /// moved past them; the next receive returns the next available message.
    Lost {
        /// Sequence number of the first lost message.
        first_seq: u64,
        /// Number of consecutive messages lost.
        count: u64,
    },
    /// Borrowing in place needs a lossless topic.
    NotLossless,
    /// The caller's buffer is smaller than the next message. Nothing was consumed: call again
    /// with a buffer of at least `needed` bytes (at most the topic's `payload_size`). (The typed
    /// receives also use it for a message whose length is not the type's size:
    /// [`Subscriber::recv_value_timeout`](crate::Subscriber::recv_value_timeout) has then
    /// consumed the message, [`Sample::read_value`](crate::Sample::read_value) has not.)
    BufferTooSmall {
        /// The message length.
        needed: usize,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "no message available"),
            Self::Timeout => write!(f, "timed out waiting for a message"),
            Self::Lost { first_seq, count } => write!(
                f,
                "lost {count} message(s): sequence {first_seq}..{}",
                first_seq.saturating_add(*count)
            ),
            Self::NotLossless => write!(f, "borrowing in place needs a lossless topic"),
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "receive buffer too small: the message has {needed} bytes"
                )
            }
        }
    }
}

impl std::error::Error for RecvError {}
