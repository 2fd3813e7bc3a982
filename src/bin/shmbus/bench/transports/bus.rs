//! `shmbus`: this crate, in each of its wait modes, on the copy or the borrow path.
//!
//! The parent creates a bus named after the run (`bench-<pid>-<run>`) and removes it when its end
//! is dropped, on error paths too. Ping-pong uses topic `ping` (parent to child) and `pong` (back);
//! the one-way scenarios topic `data`, one publisher and a subscriber per child. Subscribers see
//! only messages published after they were created, so each child creates its subscriber before
//! it reports ready, and the parent sends nothing before every child is ready.
//!
//! What each ping-pong hop touches (sender, then receiver):
//! * **copy** (lossy topics): the sender writes the 8-byte sequence number into its private
//!   payload-sized buffer and `publish` copies all N bytes into the slot; the receiver's
//!   `recv_timeout` copies all N bytes out of the slot into its private buffer (and validates
//!   the seqlock), and the loop reads the sequence number from that buffer.
//! * **borrow** (lossless topics): the sender takes the slot with `loan(N)`, writes the 8-byte
//!   sequence number into it in place and publishes; the receiver's `recv_borrow_timeout`
//!   validates the slot and the loop reads the sequence number (and the length) in place, then
//!   drops the `Sample`, which consumes the message. The other N - 8 bytes are never written or
//!   read by anyone: they hold whatever the slot held.
//!
//! The application work is the same on both paths (write 8 bytes, read 8 bytes); the difference
//! is the two N-byte copies the copy path makes per hop. The C echo (`c` transport) attaches to
//! the same bus and topics (copy path) through the C API.
//!
//! Stream: on the copy path (lossy topic) `publish` copies each message in and the receiver's
//! `recv_timeout` copies it out; a publisher faster than its subscriber overwrites, and the
//! subscriber counts what it lost. On the borrow path (lossless topic) the publisher writes each
//! whole message into a `loan` and waits for room when the ring is full (at most
//! [`LOAN_TIMEOUT`]), and the receiver borrows each message and reads its 16-byte header in place.

use std::time::Duration;

use shmbus::{
    Bus, BusConfig, Delivery, Publisher, PublisherConfig, RecvError, Subscriber, SubscriberConfig,
    TopicConfig, WaitStrategy,
};

use super::super::Result;
use super::super::clock::now_ns;
use super::super::msg;
use super::super::plan::{DataPath, Mode};
use super::{Endpoint, Names, Prepared, Recv, Rendezvous, Shape, addr};

/// Longest a borrow-path publisher waits for room: in ping-pong one message is in flight and it
/// never waits; in the lossless stream it waits for the subscriber, which a dead subscriber would
/// make an error after this long.
const LOAN_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeout of one blocking receive: the loops around them check the run's deadline after a
/// receive that timed out, and never read the clock before one (a clock read before each
/// receive would delay the receiver's first poll, which no other transport pays). Each receive
/// starts its spin-then-park spin phase afresh, so this is long against the longest `--spin`
/// (10 ms): an idle receiver spins again at most 1% of the time. A deadline is noticed up to this
/// late: the deadlines are seconds apart.
const RECV_CHUNK: Duration = Duration::from_secs(1);

/// The geometry both ends use for every topic of the run: lossy for the copy path, lossless for
/// the borrow path; one publisher entry.
fn topic_config(shape: &Shape) -> Result<TopicConfig> {
    Ok(TopicConfig {
        slots: u32::try_from(shape.slots()).map_err(|_| "too many slots")?,
        payload_size: u32::try_from(shape.payload).map_err(|_| "payload too large")?,
        delivery: match shape.path {
            DataPath::Copy => Delivery::Lossy,
            DataPath::Borrow => Delivery::Lossless,
        },
        // Every topic of the benchmark has exactly one publisher, and says so: publishing then
        // takes its slot with a plain store instead of a CAS (docs/design.md, §4).
        max_publishers: 1,
        ..Default::default()
    })
}

/// A publisher on `topic` of `bus` with the run's geometry.
fn publish_on(bus: &Bus, topic: &str, cfg: &TopicConfig) -> Result<Publisher> {
    let pub_cfg = PublisherConfig {
        timeout: LOAN_TIMEOUT,
        ..Default::default()
    };
    bus.topic_with(topic, cfg)
        .and_then(|t| t.publisher_with(&pub_cfg))
        .map_err(|e| format!("topic {topic}: {e}").into())
}

/// Largest bus a benchmark run creates: `--slots` times a large `--payload` could otherwise ask
/// /dev/shm (that is, memory) for up to a terabyte before failing.
const MAX_BUS_BYTES: u64 = 4 << 30;

/// A bus big enough for `topics` rings of `cfg` (slot header and alignment included) plus the
/// header, topic table and records; never smaller than the default.
///
/// # Errors
/// The bus would be larger than [`MAX_BUS_BYTES`].
fn bus_config(cfg: &TopicConfig, topics: u64) -> Result<BusConfig> {
    let stride = (u64::from(cfg.payload_size) + 32).next_multiple_of(64);
    let rings = topics * u64::from(cfg.slots) * stride;
    if rings > MAX_BUS_BYTES {
        return Err(format!(
            "{topics} rings of {} slots of {} B need {} MiB, more than the benchmark's limit of \
             {} MiB: use fewer --slots",
            cfg.slots,
            cfg.payload_size,
            rings >> 20,
            MAX_BUS_BYTES >> 20
        )
        .into());
    }
    let default = BusConfig::default();
    Ok(BusConfig {
        size: (rings + (1 << 20)).max(default.size),
        ..default
    })
}

/// The wait strategy of a benchmark mode.
fn wait_strategy(mode: Mode, spin: Duration) -> WaitStrategy {
    match mode {
        Mode::Spin | Mode::Blocking => WaitStrategy::Spin,
        Mode::Park => WaitStrategy::Park,
        Mode::SpinThenPark => WaitStrategy::SpinThenPark { spin },
    }
}

/// Removes the run's bus when dropped (after the handles that use it, see field order).
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Bus::remove(&self.0);
    }
}

/// Creates the bus, its topics and the parent's publisher (and, for ping-pong, its subscriber).
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    let name = format!("bench-{}", names.tag);
    if shape.path == DataPath::Borrow && shape.children != 1 {
        return Err("the borrow path has one subscriber (ping-pong and stream)".into());
    }
    let cfg = topic_config(shape)?;
    let bus_cfg = bus_config(&cfg, if shape.duplex { 2 } else { 1 })?;
    let bus = Bus::create(&name, &bus_cfg).map_err(|e| format!("create bus {name}: {e}"))?;
    let remove = Remove(name.clone());
    let (out, back) = if shape.duplex {
        ("ping", Some("pong"))
    } else {
        ("data", None)
    };
    let publisher = publish_on(&bus, out, &cfg)?;
    let subscriber = match back {
        Some(back) => Some(subscribe(&bus, back, &cfg, shape)?),
        None => None,
    };
    let end = BusEndpoint {
        publisher: Some(publisher),
        subscriber,
        borrow: shape.path == DataPath::Borrow,
        _bus: bus,
        _remove: Some(remove),
    };
    Ok(Prepared {
        child_addrs: vec![vec![name]; shape.children],
        rendezvous: Box::new(Connected(end)),
    })
}

/// Opens the parent's bus and the child's topics.
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    let name = addr(addrs, 0)?;
    let bus = Bus::open(name).map_err(|e| format!("open bus {name}: {e}"))?;
    let cfg = topic_config(shape)?;
    let (input, reply) = if shape.duplex {
        ("ping", Some("pong"))
    } else {
        ("data", None)
    };
    let subscriber = subscribe(&bus, input, &cfg, shape)?;
    let publisher = match reply {
        Some(t) => Some(publish_on(&bus, t, &cfg)?),
        None => None,
    };
    Ok(Box::new(BusEndpoint {
        publisher,
        subscriber: Some(subscriber),
        borrow: shape.path == DataPath::Borrow,
        _bus: bus,
        _remove: None,
    }))
}

/// A subscriber to `topic` with the run's wait mode.
fn subscribe(bus: &Bus, topic: &str, cfg: &TopicConfig, shape: &Shape) -> Result<Subscriber> {
    let sub_cfg = SubscriberConfig {
        wait: wait_strategy(shape.mode, shape.spin),
        ..Default::default()
    };
    let sub = bus
        .topic_with(topic, cfg)
        .and_then(|t| t.subscriber_with(&sub_cfg))
        .map_err(|e| format!("subscribe {topic}: {e}"))?;
    Ok(sub)
}

/// A parent end that needs no connecting: children attach by name.
struct Connected(BusEndpoint);

impl Rendezvous for Connected {
    fn connect(self: Box<Self>, _deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.0))
    }
}

/// One process's handles on the run's bus. Fields drop in order: handles, bus, then the removal.
struct BusEndpoint {
    /// Sends on `ping` or `data` (parent) or `pong` (echo).
    publisher: Option<Publisher>,
    /// Receives on `pong` (parent), `ping` (echo) or `data` (receiver).
    subscriber: Option<Subscriber>,
    /// Borrow path: ping-pong messages are written and read in place (lossless topics).
    borrow: bool,
    /// The attachment the handles use.
    _bus: Bus,
    /// Set on the creator's end.
    _remove: Option<Remove>,
}

impl BusEndpoint {
    /// Borrow path: borrows the next message, which must be `len` bytes long, and returns what
    /// `read` takes from it in place; dropping the sample consumes the message.
    fn borrow_next<T>(
        &mut self,
        len: usize,
        deadline_ns: u64,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Recv<T>> {
        let sub = self.subscriber.as_mut().ok_or("this end only sends")?;
        let sample = loop {
            match sub.recv_borrow_timeout(RECV_CHUNK) {
                Ok(sample) => break sample,
                Err(RecvError::Lost { count, .. }) => return Ok(Recv::Lost(count)),
                Err(RecvError::Timeout | RecvError::Empty) if now_ns() >= deadline_ns => {
                    return Ok(Recv::TimedOut);
                }
                Err(RecvError::Timeout | RecvError::Empty) => continue,
                Err(e) => return Err(format!("recv_borrow: {e}").into()),
            }
        };
        if sample.len() != len {
            let got = sample.len();
            return Err(format!("borrowed a {got}-byte message, expected {len}").into());
        }
        Ok(Recv::Msg(read(&sample)))
    }
}

impl Endpoint for BusEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let publisher = self.publisher.as_mut().ok_or("this end only receives")?;
        if self.borrow {
            // Stream on the borrow path: the message is written into the loaned slot.
            let mut loan = publisher
                .loan(msg.len())
                .map_err(|e| format!("loan: {e}"))?;
            loan.as_mut_slice().copy_from_slice(msg);
            loan.publish();
            return Ok(());
        }
        publisher
            .publish(msg)
            .map_err(|e| format!("publish: {e}"))?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv> {
        if self.borrow {
            // Stream on the borrow path: only the header (sequence number and send time) is read,
            // in place, as a zero-copy consumer reads what it needs.
            let len = buf.len();
            let got = self.borrow_next(len, deadline_ns, |m| {
                buf[..msg::HEADER].copy_from_slice(&m[..msg::HEADER]);
            })?;
            return Ok(match got {
                Recv::Msg(()) => Recv::Msg(len),
                Recv::Lost(n) => Recv::Lost(n),
                Recv::TimedOut => Recv::TimedOut,
            });
        }
        let sub = self.subscriber.as_mut().ok_or("this end only sends")?;
        loop {
            match sub.recv_timeout(buf, RECV_CHUNK) {
                Ok(info) => return Ok(Recv::Msg(info.len)),
                Err(RecvError::Lost { count, .. }) => return Ok(Recv::Lost(count)),
                Err(RecvError::Timeout | RecvError::Empty) if now_ns() >= deadline_ns => {
                    return Ok(Recv::TimedOut);
                }
                Err(RecvError::Timeout | RecvError::Empty) => continue,
                Err(e) => return Err(format!("recv: {e}").into()),
            }
        }
    }

    fn send_seq(&mut self, scratch: &mut [u8], seq: u64) -> Result<()> {
        if !self.borrow {
            msg::put_seq(scratch, seq);
            return self.send(scratch);
        }
        let publisher = self.publisher.as_mut().ok_or("this end only receives")?;
        let mut loan = publisher
            .loan(scratch.len())
            .map_err(|e| format!("loan: {e}"))?;
        // In place: the header only, as the copy path's sender writes into its buffer.
        msg::put_seq(loan.as_mut_slice(), seq);
        loan.publish();
        Ok(())
    }

    fn recv_seq(&mut self, scratch: &mut [u8], deadline_ns: u64) -> Result<Recv<u64>> {
        if !self.borrow {
            return Ok(match self.recv(scratch, deadline_ns)? {
                Recv::Msg(_) => Recv::Msg(msg::seq(scratch)),
                Recv::Lost(n) => Recv::Lost(n),
                Recv::TimedOut => Recv::TimedOut,
            });
        }
        // In place: the length and the header, as the copy path's loop reads its buffer.
        self.borrow_next(scratch.len(), deadline_ns, msg::seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::transports::default_slots;

    /// Every bus of a default run (ping-pong's two topics at each default payload) fits in a
    /// container's default 64 MiB `/dev/shm`, with room for the other objects of the run.
    #[test]
    fn a_default_run_fits_a_small_dev_shm() {
        for payload in [8usize, 64, 1024, 64 << 10, 1 << 20] {
            let cfg = TopicConfig {
                slots: u32::try_from(default_slots(payload)).unwrap(),
                payload_size: u32::try_from(payload).unwrap(),
                ..Default::default()
            };
            let size = bus_config(&cfg, 2).unwrap().size;
            assert!(size <= 32 << 20, "{payload} B: a {size}-byte bus");
        }
    }
}
