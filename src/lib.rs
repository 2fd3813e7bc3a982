//! shmbus: a message bus for processes on one Linux machine, over shared memory.
//!
//! # Contract
//! * A **bus** is one named POSIX shared-memory object (`/dev/shm/shmbus.NAME`); any process of
//!   the same user (mode 0600 by default) can open it. Its header is validated on open (magic,
//!   layout version, layout fingerprint, size); a bus from another version is refused with a
//!   clear error, never misread.
//! * A **topic** is a broadcast ring of fixed-size slots inside the bus, created on first use.
//!   Every subscriber sees every message, in one total order shared by all publishers of the
//!   topic, in any process.
//! * Delivery is **lossy** by default: publishers never wait for subscribers, and a subscriber
//!   that falls more than a ring behind is told exactly which messages it lost
//!   ([`RecvError::Lost`]); delivered + lost = published, for every subscriber. A **lossless**
//!   topic ([`Delivery::Lossless`]) makes publishers wait (with a timeout) for the slowest live
//!   subscriber instead, and lends messages in place.
//! * A receive never returns a torn message: payloads are copied with atomic loads and validated
//!   against the slot's seqlock stamp.
//! * Any process may die at any instruction. A publisher that dies holding a slot delays the
//!   topic by about the liveness window (100 ms; two windows for a parked subscriber, longer for
//!   one polling with `try_recv`, which checks every 4096 empty polls) before a peer closes the
//!   slot (reported as lost). See `docs/design.md`, "Failure model".
//! * Publishing takes no lock and makes no system call unless a subscriber is asleep (or, on a
//!   lossless topic, the ring is full).
//!
//! # Quick start
//! ```
//! use std::time::Duration;
//! # let name = format!("doc-quick-{}", std::process::id());
//! let bus = shmbus::Bus::open_or_create(&name, &shmbus::BusConfig::default())?;
//! let mut subscriber = bus.subscriber("sensors/imu")?; // in this or any other process
//! let mut publisher = bus.publisher("sensors/imu")?;   // topic created on first use
//!
//! publisher.publish(b"hello")?;                        // copy in
//! let mut loan = publisher.loan(5)?;                   // or write in place
//! loan.as_mut_slice().copy_from_slice(b"world");
//! loan.publish();
//!
//! let mut buf = [0u8; 256];
//! let info = subscriber.recv_timeout(&mut buf, Duration::from_millis(100))?;
//! assert_eq!((&buf[..info.len], info.seq), (&b"hello"[..], 0));
//! let info = subscriber.recv_timeout(&mut buf, Duration::from_millis(100))?;
//! assert_eq!(&buf[..info.len], b"world");
//! # drop((publisher, subscriber, bus)); shmbus::Bus::remove(&name)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Concepts
//! * [`Bus`], [`BusConfig`]: create, open, remove a bus.
//! * [`Topic`], [`TopicConfig`]: a ring's geometry; [`TopicStats`] its counters.
//! * [`Publisher`], [`Loan`]: copy-in and zero-copy publishing.
//! * [`Subscriber`], [`SubscriberConfig`], [`WaitStrategy`], [`MessageInfo`]: receiving.
//! * Errors: [`BusError`], [`TopicError`], [`PublishError`], [`RecvError`].
//!
//! Threads: [`Bus`] and [`Topic`] are `Send + Sync` and cheap to clone; [`Publisher`] and
//! [`Subscriber`] are `Send` and used by one thread at a time.

#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod sync;

#[cfg(not(loom))]
mod bus;
#[cfg(not(loom))]
mod error;
mod gate;
#[cfg(not(loom))]
mod layout;
#[cfg(not(loom))]
mod liveness;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
#[allow(unsafe_code)]
mod ring;
#[cfg(not(loom))]
#[allow(unsafe_code)]
mod segment;
mod seqlock;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
pub(crate) mod sys;
#[cfg(not(loom))]
mod topic;
mod wait;

#[cfg(loom)]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod private_tests;

#[cfg(not(loom))]
pub use bus::{Bus, BusConfig, BusInfo};
#[cfg(not(loom))]
pub use error::{BusError, PublishError, RecvError, TopicError};
#[cfg(not(loom))]
pub use layout::LAYOUT_VERSION;
#[cfg(not(loom))]
pub use publisher::{Loan, Publisher, PublisherConfig};
#[cfg(not(loom))]
pub use subscriber::{MessageInfo, Sample, StartAt, Subscriber, SubscriberConfig};
#[cfg(not(loom))]
pub use sys::monotonic_ns;
#[cfg(not(loom))]
pub use topic::{Delivery, PublisherStats, SubscriberStats, Topic, TopicConfig, TopicStats};
pub use wait::WaitStrategy;

/// Whether `SHMBUS_CRASH_AT` names `name` (test builds with the `crash-points` feature).
#[cfg(feature = "crash-points")]
pub(crate) fn crash_armed(name: &str) -> bool {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AT.get_or_init(|| std::env::var("SHMBUS_CRASH_AT").ok())
        .as_deref()
        == Some(name)
}

/// Test-only crash points: with the `crash-points` feature, a process whose `SHMBUS_CRASH_AT`
/// names this point prints `CRASH-POINT <name>` to stderr and stops (sleeps) until it is killed,
/// so a test can `kill -9` it at exactly that instruction (or until its parent thread ends, or
/// ten minutes pass: a failed test leaves no process behind). Compiled to nothing otherwise; with
/// the feature, the variable is read once per process (a load per call after that).
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {
    #[cfg(feature = "crash-points")]
    {
        static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        if AT
            .get_or_init(|| std::env::var("SHMBUS_CRASH_AT").ok())
            .as_deref()
            == Some(_name)
        {
            // The test that stopped us here kills us. Should it fail first, we go with the
            // thread that started us (`PR_SET_PDEATHSIG`), or after ten minutes at most: a
            // failed test leaves no process behind.
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            eprintln!("CRASH-POINT {_name}");
            for _ in 0..600 {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            std::process::exit(101);
        }
    }
}
