//! `aeron`: Aeron IPC (the C client and C media driver of Aeron 1.54, through the `rusteron-client`
//! and `rusteron-media-driver` crates 0.2.16), measured by the same loops as shmbus. Built only
//! with the feature `bench-aeron`.
//!
//! Each run has its own media driver, embedded in the parent process on a thread of its own, with
//! its Aeron directory in the run directory (`$TMPDIR/shmbus-bench-<pid>-<n>/aeron-<pid>-<run>`
//! instead of `/dev/shm/aeron-<user>`): nothing is shared with other Aeron programs, nothing is
//! put in `/dev/shm`, and the driver deletes the directory when it stops (what a killed
//! benchmark leaves goes with its run directory at the next start, [`stale::sweep`]). Each
//! process has one Aeron client on that directory. Each direction is one exclusive publication
//! (one writer, no compare-and-swap on the tail) on channel `aeron:ipc`, one stream id per
//! direction: ping-pong uses stream [`OUT_STREAM`] (parent to echo) and [`BACK_STREAM`] (back),
//! the one-way scenarios [`OUT_STREAM`] alone; one subscription per direction.
//!
//! The copy path, as for every transport: `send` is `offer` (Aeron copies the caller's buffer
//! into the publication's term buffer; `try_claim` would save nothing at 64 B and is not what
//! the other transports measure), retried while Aeron answers back pressure or admin action;
//! `recv` busy-polls the subscription, one fragment per poll, with a fragment handler that copies
//! the message into the caller's buffer. Aeron IPC is lossless: a publisher faster than its
//! subscriber is held back (back pressure) when it is a term window (half a term, 32 MiB) ahead,
//! instead of overwriting like shmbus or iceoryx2, so the stream's latency is queueing behind up
//! to that window. Aeron reports no losses; any sequence gap would be counted by the receiving
//! loop.
//!
//! Configuration: Aeron's own low-latency profile (`low-latency.properties`) where it concerns
//! IPC, non-sparse term buffers and mapped memory pre-touched by both clients (no page fault on
//! the measured path; the C driver has no pre-touch option), with Aeron's default IPC term length (64 MiB). Not its
//! busy-spinning driver threads: the measured processes need both CPUs of a two-CPU machine, and
//! IPC data does not pass through the driver (the publisher writes the shared log, the
//! subscriber reads it). So the driver runs in shared threading mode (one thread for conductor,
//! sender and receiver) with a sleeping idle strategy of 1 ms: it wakes at most a thousand times
//! a second while idle, to advance the publisher's limit (every eighth of a window, 4 MiB) and
//! for its housekeeping. The driver thread inherits the parent's CPU. Each client has Aeron's
//! default conductor thread (keep-alives to the driver, sleeping 16 ms between duty cycles).
//!
//! Cleanup: dropping an end closes its publication and subscription, then its client, then (in
//! the parent) stops and joins the driver thread, whose context deletes the Aeron directory.

use std::ffi::CString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusteron_client::{
    Aeron, AeronContext, AeronExclusivePublication, AeronOfferError, AeronSubscription, Handlers,
};
use rusteron_media_driver::bindings::aeron_threading_mode_enum;
use rusteron_media_driver::{AeronDriver, AeronDriverContext, AeronIdleStrategyKind};

use super::super::clock::now_ns;
use super::super::plan::Mode;
#[cfg(doc)]
use super::super::stale;
use super::super::{Error, Result};
use super::{Endpoint, Names, Prepared, Recv, Rendezvous, Shape, addr};

/// Polls of the subscription between two deadline checks, as the floor's.
const SPINS_PER_CHECK: u32 = 1024;

/// The channel of both directions.
const CHANNEL: &std::ffi::CStr = c"aeron:ipc";

/// Stream id of the parent's publication (ping, or the one-way data).
const OUT_STREAM: i32 = 1001;

/// Stream id of the echo's publication (pong).
const BACK_STREAM: i32 = 1002;

/// How long the driver, a client, a publication or a subscription may take to come up.
const SETUP: Duration = Duration::from_secs(10);

/// The driver's idle sleep (its conductor's duty cycle when there is no work).
const DRIVER_IDLE: &std::ffi::CStr = c"1ms";

/// The report's legend entry (aligned with `output.rs`'s legend).
pub const LEGEND: &str = "\
aeron:              Aeron 1.54 IPC (C client and embedded C media driver, via rusteron 0.2.16):
                    one exclusive publication per direction on aeron:ipc, lossless (back pressure),
                    term 64 MiB, non-sparse and pre-touched; offer (copy in), retried on back
                    pressure; poll one fragment + copy out. Driver: shared thread, sleeping 1 ms";

/// Starts the run's driver and the parent's client, publication and subscription, and returns
/// the parent's pending end.
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    check(shape)?;
    let dir = names
        .dir
        .join(format!("aeron-{}", names.tag))
        .to_string_lossy()
        .into_owned();
    let driver = Driver::start(&dir)?;
    let client = client(&dir, &format!("shmbus-bench-{}", names.tag))?;
    let publication = Some(publication(&client, OUT_STREAM)?);
    let subscription = match shape.duplex {
        true => Some(subscription(&client, BACK_STREAM)?),
        false => None,
    };
    Ok(Prepared {
        child_addrs: vec![vec![dir]; shape.children],
        rendezvous: Box::new(Pending {
            end: AeronEndpoint {
                publication,
                subscription,
                _client: client,
                _driver: Some(driver),
            },
        }),
    })
}

/// Opens a child's client on the parent's driver, its subscription and (ping-pong) publication.
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    check(shape)?;
    let dir = addr(addrs, 0)?;
    let client = client(dir, &format!("shmbus-bench-child-{}", std::process::id()))?;
    let subscription = Some(subscription(&client, OUT_STREAM)?);
    let publication = match shape.duplex {
        true => Some(publication(&client, BACK_STREAM)?),
        false => None,
    };
    Ok(Box::new(AeronEndpoint {
        publication,
        subscription,
        _client: client,
        _driver: None,
    }))
}

/// Rejects shapes this transport does not measure.
fn check(shape: &Shape) -> Result<()> {
    if shape.mode != Mode::Spin {
        return Err("aeron is measured busy-polling only (mode spin)".into());
    }
    if shape.children != 1 {
        return Err("aeron is measured with exactly one receiver (ping-pong and stream)".into());
    }
    Ok(())
}

/// An Aeron error as text.
fn err(what: &str, e: impl std::fmt::Display) -> Error {
    format!("aeron {what}: {e}").into()
}

/// A started client on the Aeron directory `dir`, pre-touching the logs it maps.
fn client(dir: &str, name: &str) -> Result<Aeron> {
    let context = AeronContext::new().map_err(|e| err("context", e))?;
    let c_dir = CString::new(dir).map_err(|e| err("directory", e))?;
    context.set_dir(&c_dir).map_err(|e| err("directory", e))?;
    let c_name = CString::new(name).map_err(|e| err("client name", e))?;
    context
        .set_client_name(&c_name)
        .map_err(|e| err("client name", e))?;
    context
        .set_pre_touch_mapped_memory(true)
        .map_err(|e| err("pre-touch", e))?;
    let client = Aeron::new(&context).map_err(|e| err("client", e))?;
    client.start().map_err(|e| err("client start", e))?;
    Ok(client)
}

/// An exclusive publication on stream `stream`.
fn publication(client: &Aeron, stream: i32) -> Result<AeronExclusivePublication> {
    client
        .async_add_exclusive_publication(CHANNEL, stream)
        .and_then(|p| p.poll_blocking(SETUP))
        .map_err(|e| err(&format!("publication {stream}"), e))
}

/// A subscription on stream `stream`.
fn subscription(client: &Aeron, stream: i32) -> Result<AeronSubscription> {
    client
        .async_add_subscription(CHANNEL, stream, Handlers::NONE, Handlers::NONE)
        .and_then(|s| s.poll_blocking(SETUP))
        .map_err(|e| err(&format!("subscription {stream}"), e))
}

/// The run's media driver: a thread running the C driver's duty cycle until stopped.
struct Driver {
    /// Set to stop the duty cycle.
    stop: Arc<AtomicBool>,
    /// The driver's thread; it closes the driver (deleting its directory) before it ends.
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Starts a driver on the Aeron directory `dir` and waits until it runs.
    fn start(dir: &str) -> Result<Self> {
        let dir = CString::new(dir).map_err(|e| err("directory", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("aeron-driver".into())
                .spawn(move || {
                    // The driver and its context are made, run and closed on this thread.
                    let driver = match driver(&dir) {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while !stop.load(Ordering::Acquire) {
                        match driver.main_do_work() {
                            Ok(work) => driver.main_idle_strategy(work),
                            Err(e) => {
                                eprintln!("shmbus bench: aeron driver: {e}");
                                break;
                            }
                        }
                    }
                })?
        };
        let driver = Self {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(SETUP) {
            Ok(Ok(())) => Ok(driver),
            Ok(Err(e)) => Err(format!("aeron driver: {e}").into()),
            Err(_) => Err("aeron driver: did not start in time".into()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A started driver on `dir`, configured as the module documentation says.
fn driver(
    dir: &std::ffi::CStr,
) -> std::result::Result<AeronDriver, rusteron_media_driver::AeronCError> {
    let context = AeronDriverContext::new()?;
    context.set_dir(dir)?;
    context.set_dir_delete_on_start(true)?;
    context.set_dir_delete_on_shutdown(true)?;
    context.set_threading_mode(aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED)?;
    // The init args first: setting the strategy loads it with the init args set at that time
    // (without them, Aeron's sleeping strategy sleeps 1 ns).
    context.set_shared_idle_strategy_init_args(DRIVER_IDLE)?;
    context.set_shared_idle_strategy_kind(AeronIdleStrategyKind::Sleeping)?;
    context.set_term_buffer_sparse_file(false)?;
    let driver = AeronDriver::new(&context)?;
    // Manual main loop: the duty cycle runs on the caller's thread, no thread of the driver's own.
    driver.start(true)?;
    Ok(driver)
}

/// The parent's end, waiting for the child's subscription (and, for ping-pong, publication).
struct Pending {
    /// The parent's end.
    end: AeronEndpoint,
}

impl Rendezvous for Pending {
    fn connect(self: Box<Self>, deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        // An IPC subscriber starts at the publication's position when it joins: wait for the
        // child's subscription (and, for ping-pong, the echo's publication) before the first
        // message.
        let ready = |end: &AeronEndpoint| {
            end.publication.as_ref().is_some_and(|p| p.is_connected())
                && end
                    .subscription
                    .as_ref()
                    .is_none_or(|s| s.image_count().is_ok_and(|n| n >= 1))
        };
        while !ready(&self.end) {
            if now_ns() >= deadline_ns {
                return Err("aeron: the child did not open its subscription in time".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Box::new(self.end))
    }
}

/// One end: fields drop in order, the publication and subscription first, then the client, then
/// the driver (parent only).
struct AeronEndpoint {
    /// Sends (parent: ping or data; echo: pong).
    publication: Option<AeronExclusivePublication>,
    /// Receives (parent: pong; child: ping or data).
    subscription: Option<AeronSubscription>,
    /// The process's client.
    _client: Aeron,
    /// The run's driver (parent only); stopped last.
    _driver: Option<Driver>,
}

impl Endpoint for AeronEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let publication = self.publication.as_ref().ok_or("this end only receives")?;
        loop {
            match publication.offer(msg) {
                Ok(_) => return Ok(()),
                // The subscriber is a term window behind, or the log is rotating a term.
                Err(AeronOfferError::BackPressured | AeronOfferError::AdminAction) => {
                    std::hint::spin_loop();
                }
                Err(e) => return Err(err("offer", e)),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv> {
        let subscription = self.subscription.as_ref().ok_or("this end only sends")?;
        loop {
            for _ in 0..SPINS_PER_CHECK {
                let mut len = None;
                subscription
                    .poll_fn(
                        |fragment, _header| {
                            let n = fragment.len().min(buf.len());
                            buf[..n].copy_from_slice(&fragment[..n]);
                            len = Some(n);
                        },
                        1,
                    )
                    .map_err(|e| err("poll", e))?;
                if let Some(n) = len {
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
