//! The transports under test, behind one small interface so every one is measured by the same
//! loops (`workload.rs`) with the same clock.
//!
//! A run has a *parent* end (the ping-pong initiator, or the publisher) and one or more *child*
//! ends (the echo, or the receivers) in other processes. The parent prepares named rendezvous
//! points (a FIFO, a socket path, a TCP port, a shared-memory name), starts the children with
//! their addresses, and then [`Rendezvous::connect`]s. Every name is unique to the run (it
//! contains the parent's pid and a run number) and removed when the parent's end is dropped.

#[cfg(feature = "bench-aeron")]
pub mod aeron;
mod bus;
#[cfg(feature = "bench-iceoryx2")]
pub mod iox2;
mod line;
mod ring;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use super::Result;
use super::msg;
use super::plan::{DataPath, Mode, Transport};

/// What [`Endpoint::recv`] (a length) or [`Endpoint::recv_seq`] (a sequence number) produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv<T = usize> {
    /// A message: its length in bytes (in the buffer), or its sequence number.
    Msg(T),
    /// The transport reported this many messages lost (overrun); nothing is in the buffer.
    Lost(u64),
    /// The deadline passed first.
    TimedOut,
}

/// One end of a connection, as the measuring loops see it.
///
/// Messages have a fixed size agreed by both ends (the run's payload), so byte streams need no
/// framing. `send` on a publisher with several receivers delivers to every one.
pub trait Endpoint {
    /// Sends one message.
    ///
    /// # Errors
    /// Any transport error (a closed peer included).
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Receives one message of `buf.len()` bytes, waiting at most until `deadline_ns`
    /// (`CLOCK_MONOTONIC`). Byte streams block without a deadline: a stuck peer is killed by the
    /// parent's watchdog, which ends the read with an error.
    ///
    /// # Errors
    /// Any transport error (a closed peer included).
    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv>;

    /// Ping-pong: sends message `seq`, `scratch.len()` bytes long. The default is the copy path:
    /// the sequence number goes into `scratch` (the sender's private buffer) and the buffer is
    /// sent. The shmbus borrow path overrides it to write the sequence number in place.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    fn send_seq(&mut self, scratch: &mut [u8], seq: u64) -> Result<()> {
        msg::put_seq(scratch, seq);
        self.send(scratch)
    }

    /// Ping-pong: receives the next message and returns its sequence number. The default is the
    /// copy path: the message is received into `scratch` (the receiver's private buffer) and the
    /// sequence number read from there. The shmbus borrow path overrides it to read the sequence
    /// number in place.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    fn recv_seq(&mut self, scratch: &mut [u8], deadline_ns: u64) -> Result<Recv<u64>> {
        Ok(match self.recv(scratch, deadline_ns)? {
            Recv::Msg(_) => Recv::Msg(msg::seq(scratch)),
            Recv::Lost(n) => Recv::Lost(n),
            Recv::TimedOut => Recv::TimedOut,
        })
    }
}

/// The parent's half-made connection, between starting the children and using it.
pub trait Rendezvous {
    /// Completes the connection(s) once the children are running, by `deadline_ns`.
    ///
    /// # Errors
    /// A timeout (a child never connected) or a transport error.
    fn connect(self: Box<Self>, deadline_ns: u64) -> Result<Box<dyn Endpoint>>;
}

/// The parent's end before the children start.
pub struct Prepared {
    /// Addresses to pass to child `i` (`--addr`, repeatable).
    pub child_addrs: Vec<Vec<String>>,
    /// The parent's pending end.
    pub rendezvous: Box<dyn Rendezvous>,
}

/// The shape of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// The transport.
    pub transport: Transport,
    /// How receivers wait.
    pub mode: Mode,
    /// Message size in bytes.
    pub payload: usize,
    /// Number of child processes (receivers; 1 for ping-pong).
    pub children: usize,
    /// Ping-pong (both directions) rather than publish (parent to children only).
    pub duplex: bool,
    /// Spin phase of `spin-then-park`.
    pub spin: Duration,
    /// shmbus: copy path (lossy topics) or borrow path (lossless topics, ping-pong only).
    pub path: DataPath,
    /// `--slots`: ring slots instead of the default for the payload ([`Shape::slots`]).
    pub slots: Option<usize>,
}

impl Shape {
    /// Slots per ring of the transports that have one (shmbus, the `ring` references, iceoryx2's
    /// subscriber buffer): [`transport_slots`].
    pub fn slots(&self) -> usize {
        transport_slots(self.transport, self.payload, self.slots).unwrap_or(0)
    }
}

/// Slots of the `ring2` reference's rings, whatever `--slots` says.
pub const RING2_SLOTS: usize = 2;

/// Slots per ring of `transport` for `payload`-byte messages (`None` for the transports without
/// a ring): [`RING2_SLOTS`] for `ring2`, else [`ring_slots`].
pub fn transport_slots(
    transport: Transport,
    payload: usize,
    slots: Option<usize>,
) -> Option<usize> {
    match transport {
        Transport::Ring2 => Some(RING2_SLOTS),
        t if t.has_slots() => Some(ring_slots(payload, slots)),
        _ => None,
    }
}

/// Slots per ring for `payload`-byte messages: `--slots` if given, else [`default_slots`].
pub fn ring_slots(payload: usize, slots: Option<usize>) -> usize {
    slots.unwrap_or_else(|| default_slots(payload))
}

/// Ring bytes per topic the benchmark aims for by default: the slot count is this divided by
/// the payload.
pub const RING_BYTES: usize = 4 << 20;
/// Fewest and most slots of a default ring. At most 8 slots of a large message: the default
/// run's largest bus (two 8-slot rings of 1 MiB) then takes 17 MiB of `/dev/shm`, which fits a
/// container's default 64 MiB (with 64 slots it took 129 MiB, and every 1 MiB run failed there).
pub const DEFAULT_SLOTS: (usize, usize) = (8, 16384);

/// Default slots per ring for `payload`-byte messages: [`RING_BYTES`] / payload, clamped to
/// 8..16384, a power of two (16384 at 64 B, a 2 MiB ring; 64 at 64 KiB; 8 at 1 MiB). The size matters for streaming: at
/// 4096 slots (512 KiB, inside one core's L2) the publisher laps a busy-spinning subscriber
/// closely and both fight over the same lines (64 B stream about 22 M msgs/s on our test machine);
/// from 16384 slots on, about 50 M (docs/benchmarks.md). Busy-spin ping-pong prefers few slots
/// (a line handed over again soon is cheaper: 2 slots reach the floor's p50, 16384 are about 1.3x
/// on our test machine, benches/c/line_age.c), but a ring sized for one round trip would lose
/// messages in any burst; the default serves streaming and says so.
pub fn default_slots(payload: usize) -> usize {
    (RING_BYTES / payload.max(1))
        .clamp(DEFAULT_SLOTS.0, DEFAULT_SLOTS.1)
        .next_power_of_two()
}

/// Unique names for one run: `tag` is `<pid>-<run number>`; `dir` is the run directory.
#[derive(Clone, Debug)]
pub struct Names {
    /// Private (0700) directory for FIFOs and socket paths, removed at the end.
    pub dir: PathBuf,
    /// `<pid>-<run number>`.
    pub tag: String,
}

impl Names {
    /// A path in the run directory.
    pub fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}-{suffix}", self.tag))
    }

    /// The name of a POSIX shared-memory object for this run.
    pub fn shm(&self) -> String {
        format!("shmbus-bench-{}", self.tag)
    }
}

/// Prepares the parent's end of a run.
///
/// # Errors
/// Creating the rendezvous point failed.
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    match shape.transport {
        // The C echo attaches to the same bus and topics as a Rust one.
        Transport::Shmbus | Transport::C => bus::prepare(shape, names),
        Transport::Floor | Transport::Futex => line::prepare(shape, names),
        Transport::Ring | Transport::Ring2 => ring::prepare(shape, names),
        Transport::Pipe | Transport::Unix | Transport::Tcp => stream::prepare(shape, names),
        #[cfg(feature = "bench-iceoryx2")]
        Transport::Iceoryx2 => iox2::prepare(shape, names),
        #[cfg(not(feature = "bench-iceoryx2"))]
        Transport::Iceoryx2 => Err(Transport::ICEORYX2_MISSING.into()),
        #[cfg(feature = "bench-aeron")]
        Transport::Aeron => aeron::prepare(shape, names),
        #[cfg(not(feature = "bench-aeron"))]
        Transport::Aeron => Err(Transport::AERON_MISSING.into()),
    }
}

/// Opens a child's end from the addresses its parent passed.
///
/// # Errors
/// Connecting failed.
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    match shape.transport {
        Transport::Shmbus => bus::open_child(shape, addrs),
        Transport::C => Err("the c transport's echo is the C program, not bench-child".into()),
        Transport::Floor | Transport::Futex => line::open_child(shape, addrs),
        Transport::Ring | Transport::Ring2 => ring::open_child(shape, addrs),
        Transport::Pipe | Transport::Unix | Transport::Tcp => stream::open_child(shape, addrs),
        #[cfg(feature = "bench-iceoryx2")]
        Transport::Iceoryx2 => iox2::open_child(shape, addrs),
        #[cfg(not(feature = "bench-iceoryx2"))]
        Transport::Iceoryx2 => Err(Transport::ICEORYX2_MISSING.into()),
        #[cfg(feature = "bench-aeron")]
        Transport::Aeron => aeron::open_child(shape, addrs),
        #[cfg(not(feature = "bench-aeron"))]
        Transport::Aeron => Err(Transport::AERON_MISSING.into()),
    }
}

/// The `i`th address, or an error naming what is missing.
fn addr(addrs: &[String], i: usize) -> Result<&str> {
    addrs
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing --addr #{}", i + 1).into())
}
