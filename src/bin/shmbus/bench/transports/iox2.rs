//! `iceoryx2`: Eclipse iceoryx2 (the crate, version 0.10), measured by the same loops as shmbus.
//! Built only with the feature `bench-iceoryx2`.
//!
//! The benchmark has its own iceoryx2 domain: files under the run directory
//! (`$TMPDIR/shmbus-bench-<pid>-<n>/iceoryx2` instead of `/tmp/iceoryx2`) and shared memory named
//! `/dev/shm/shmbus-bench-iox2-<pid>.*` (instead of `iox2_*`), so nothing is shared with other
//! iceoryx2 programs and everything it leaves is found by name. Each process creates an IPC node
//! (`ipc::Service`, signal handling off: the benchmark handles SIGINT/SIGTERM itself) named
//! `shmbus-bench-<pid>-<run>` after the parent. Each direction is a
//! publish-subscribe service of `[u8]` slices (the run's payload): ping-pong uses
//! `shmbus-bench/<pid>-<run>/ping` (parent to echo) and `.../pong` (back), the one-way scenarios
//! `.../data`. One publisher per service (slices of exactly the payload, static allocation); each
//! subscriber has a buffer of [`Shape::slots`] samples (shmbus's ring size, 16384 at 64 B), and the
//! service overflows safely: a publisher faster than its subscriber overwrites the oldest unread
//! sample instead of blocking. iceoryx2 does not tell the subscriber about overwritten samples,
//! so losses are counted from sequence gaps by the receiving loop.
//!
//! The copy path, as for every transport: `send` copies the caller's buffer into a loaned slice
//! and sends it; `recv` busy-polls `receive()` and copies the sample into the caller's buffer.
//! The slice for the next message is loaned right after each send, while the message is in
//! flight, as iceoryx2's own publish-subscribe benchmark does: an iceoryx2 loan allocates from the
//! publisher's data segment and reclaims samples the subscribers returned, and doing it on the
//! round trip measured 480 to 520 ns instead of 385 ns one-way at 64 B on our test machine.
//!
//! Cleanup: dropping an end drops its ports, then its services, then its node, which removes the
//! run's shared memory and files. What iceoryx2 keeps for the whole domain (its global management
//! segment) is unlinked when the benchmark ends ([`stale::remove_own_iceoryx2`]), the files go with
//! the run directory, and a killed benchmark's names are swept at the next start like the
//! others' ([`stale::sweep`]).

use ::iceoryx2::port::publisher::Publisher;
use ::iceoryx2::port::subscriber::Subscriber;
use ::iceoryx2::prelude::*;
use ::iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;

use super::super::Result;
use super::super::clock::now_ns;
use super::super::plan::Mode;
#[cfg(doc)]
use super::super::stale;
use super::super::stale::iceoryx2_prefix;
use super::{Endpoint, Names, Prepared, Recv, Rendezvous, Shape, addr};

/// Polls of `receive()` between two deadline checks, as the floor's.
const SPINS_PER_CHECK: u32 = 1024;

/// Prefix of node names (and of service names): `shmbus-bench-<pid>-<run>`.
const PREFIX: &str = "shmbus-bench";

/// A publish-subscribe service of byte slices.
type Service = PubSubFactory<ipc::Service, [u8], ()>;

/// The report's legend entry (aligned with `output.rs`'s legend).
pub const LEGEND: &str = "\
iceoryx2:           Eclipse iceoryx2 0.10 (Rust, ipc): publish-subscribe of [u8] slices, one service
                    per direction, safe overflow, subscriber buffer = shmbus's ring; copy into a slice loaned
                    after the previous send, send; receive + copy out";

/// Creates the parent's node, services and ports and returns its pending end.
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    check(shape)?;
    quiet();
    let root = names.dir.join("iceoryx2").to_string_lossy().into_owned();
    let prefix = iceoryx2_prefix(std::process::id());
    let node = node(&names.tag, &config(&root, &prefix)?)?;
    let base = format!("{PREFIX}/{}", names.tag);
    let (out_name, back_name) = match shape.duplex {
        true => (format!("{base}/ping"), Some(format!("{base}/pong"))),
        false => (format!("{base}/data"), None),
    };
    let out = create_service(&node, &out_name, shape)?;
    let back = back_name
        .as_deref()
        .map(|n| create_service(&node, n, shape))
        .transpose()?;
    let publisher = Some(publisher(&out, shape.payload)?);
    let subscriber = back.as_ref().map(|s| subscriber(s, shape)).transpose()?;
    let mut addrs = vec![names.tag.clone(), root, prefix, out_name];
    addrs.extend(back_name);
    Ok(Prepared {
        child_addrs: vec![addrs; shape.children],
        rendezvous: Box::new(Pending {
            children: shape.children,
            end: IoxEndpoint {
                next: None,
                publisher,
                subscriber,
                services: [Some(out), back],
                _node: node,
            },
        }),
    })
}

/// Opens a child's node, the parent's services and the child's ports.
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    check(shape)?;
    quiet();
    let config = config(addr(addrs, 1)?, addr(addrs, 2)?)?;
    let node = node(addr(addrs, 0)?, &config)?;
    let data = open_service(&node, addr(addrs, 3)?)?;
    let subscriber = Some(subscriber(&data, shape)?);
    let back = match shape.duplex {
        true => Some(open_service(&node, addr(addrs, 4)?)?),
        false => None,
    };
    let publisher = back
        .as_ref()
        .map(|s| publisher(s, shape.payload))
        .transpose()?;
    Ok(Box::new(IoxEndpoint {
        next: None,
        publisher,
        subscriber,
        services: [Some(data), back],
        _node: node,
    }))
}

/// iceoryx2 logs at `Info` by default (e.g. that no config file was found): errors only.
fn quiet() {
    set_log_level(LogLevel::Error);
}

/// Rejects shapes this transport does not measure.
fn check(shape: &Shape) -> Result<()> {
    if shape.mode != Mode::Spin {
        return Err("iceoryx2 is measured busy-polling only (mode spin)".into());
    }
    if shape.duplex && shape.children != 1 {
        return Err("iceoryx2 ping-pong has exactly one echo".into());
    }
    Ok(())
}

/// The benchmark's iceoryx2 domain: files under `root`, shared-memory names starting with `prefix`.
fn config(root: &str, prefix: &str) -> Result<Config> {
    let mut config = Config::default();
    config.global.prefix = FileName::new(prefix.as_bytes())
        .map_err(|e| format!("iceoryx2 prefix {prefix:?}: {e:?}"))?;
    let root_path =
        Path::new(root.as_bytes()).map_err(|e| format!("iceoryx2 root {root:?}: {e:?}"))?;
    config.global.set_root_path(&root_path);
    Ok(config)
}

/// An IPC node of the benchmark's domain named after the run, without signal handlers.
fn node(tag: &str, config: &Config) -> Result<Node<ipc::Service>> {
    let name = format!("{PREFIX}-{tag}");
    let name: NodeName = name
        .as_str()
        .try_into()
        .map_err(|e| format!("iceoryx2 node name {name:?}: {e:?}"))?;
    NodeBuilder::new()
        .name(&name)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .config(config)
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}").into())
}

/// A service name.
fn service_name(name: &str) -> Result<ServiceName> {
    name.try_into()
        .map_err(|e| format!("iceoryx2 service name {name:?}: {e:?}").into())
}

/// Creates one direction's service.
fn create_service(node: &Node<ipc::Service>, name: &str, shape: &Shape) -> Result<Service> {
    node.service_builder(&service_name(name)?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(shape.children)
        .max_nodes(shape.children + 1)
        .history_size(0)
        .subscriber_max_buffer_size(shape.slots())
        .subscriber_max_borrowed_samples(1)
        .enable_safe_overflow(true)
        .create()
        .map_err(|e| format!("iceoryx2 service {name}: {e:?}").into())
}

/// Opens a service the parent created.
fn open_service(node: &Node<ipc::Service>, name: &str) -> Result<Service> {
    node.service_builder(&service_name(name)?)
        .publish_subscribe::<[u8]>()
        .open()
        .map_err(|e| format!("iceoryx2 service {name}: {e:?}").into())
}

/// The service's publisher: slices of exactly `payload` bytes, one loan at a time.
fn publisher(service: &Service, payload: usize) -> Result<Publisher<ipc::Service, [u8], ()>> {
    service
        .publisher_builder()
        .initial_max_slice_len(payload)
        .allocation_strategy(AllocationStrategy::Static)
        .max_loaned_samples(1)
        .create()
        .map_err(|e| format!("iceoryx2 publisher: {e:?}").into())
}

/// A subscriber with the service's full buffer.
fn subscriber(service: &Service, shape: &Shape) -> Result<Subscriber<ipc::Service, [u8], ()>> {
    service
        .subscriber_builder()
        .buffer_size(shape.slots())
        .create()
        .map_err(|e| format!("iceoryx2 subscriber: {e:?}").into())
}

/// The parent's end, waiting for the children's ports.
struct Pending {
    /// Receivers expected on the outgoing service.
    children: usize,
    /// The parent's end.
    end: IoxEndpoint,
}

impl Rendezvous for Pending {
    fn connect(self: Box<Self>, deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        // A publisher delivers only to subscribers that exist when it sends: wait for every
        // child's subscriber (and, for ping-pong, the echo's publisher) before the first message.
        let ready = |end: &IoxEndpoint| {
            let [out, back] = &end.services;
            out.as_ref()
                .is_some_and(|s| s.dynamic_config().number_of_subscribers() >= self.children)
                && back
                    .as_ref()
                    .is_none_or(|s| s.dynamic_config().number_of_publishers() >= 1)
        };
        while !ready(&self.end) {
            if now_ns() >= deadline_ns {
                return Err("iceoryx2: a child did not open its ports in time".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(Box::new(self.end))
    }
}

/// One end: fields drop in order, ports first, then services, then the node.
struct IoxEndpoint {
    /// The next message's sample, loaned right after the previous send (off the ping-pong's
    /// critical path, as iceoryx2's own benchmark does); dropped before the publisher.
    next: Option<
        iceoryx2::sample_mut_uninit::SampleMutUninit<
            ipc::Service,
            [core::mem::MaybeUninit<u8>],
            (),
        >,
    >,
    /// Sends (parent: ping or data; echo: pong).
    publisher: Option<Publisher<ipc::Service, [u8], ()>>,
    /// Receives (parent: pong; child: ping or data).
    subscriber: Option<Subscriber<ipc::Service, [u8], ()>>,
    /// The services this end uses (outgoing or incoming first).
    services: [Option<Service>; 2],
    /// The process's node; dropped last.
    _node: Node<ipc::Service>,
}

impl Endpoint for IoxEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let publisher = self.publisher.as_ref().ok_or("this end only receives")?;
        let sample = match self.next.take() {
            Some(s) if s.payload().len() == msg.len() => s,
            _ => publisher
                .loan_slice_uninit(msg.len())
                .map_err(|e| format!("iceoryx2 loan: {e:?}"))?,
        };
        sample
            .write_from_slice(msg)
            .send()
            .map_err(|e| format!("iceoryx2 send: {e:?}"))?;
        // Loan the next message's sample now, while this one is in flight: iceoryx2's loan
        // allocates from the publisher's data segment and reclaims returned samples, work its
        // own benchmark also keeps off the round trip. A failed loan is retried at the next send.
        self.next = publisher.loan_slice_uninit(msg.len()).ok();
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv> {
        let subscriber = self.subscriber.as_ref().ok_or("this end only sends")?;
        loop {
            for _ in 0..SPINS_PER_CHECK {
                let received = subscriber
                    .receive()
                    .map_err(|e| format!("iceoryx2 receive: {e:?}"))?;
                if let Some(sample) = received {
                    let payload = sample.payload();
                    let n = payload.len().min(buf.len());
                    buf[..n].copy_from_slice(&payload[..n]);
                    return Ok(Recv::Msg(n));
                }
                std::hint::spin_loop();
            }
            if now_ns() >= deadline_ns {
                return Ok(Recv::TimedOut);
            }
        }
    }
}
