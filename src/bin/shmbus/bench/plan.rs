//! What to measure: scenarios, transports, modes, and the list of runs built from the options.

use std::fmt;

use clap::ValueEnum;

/// The traffic pattern of a run (the `scenario` field of the JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// One message in flight, echoed back; one-way = round trip / 2, measured by the initiator.
    Pingpong,
    /// A publisher at a fixed rate; the receiver records now − intended send time.
    OpenLoop,
    /// A publisher as fast as the transport accepts; throughput plus now − send time.
    Stream,
    /// Open loop to several subscriber processes at once.
    Fanout,
}

impl Scenario {
    /// The name used in the table and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pingpong => "pingpong",
            Self::OpenLoop => "open-loop",
            Self::Stream => "stream",
            Self::Fanout => "fanout",
        }
    }
}

/// What `--only` selects. `sweep` is the ping-pong at the `--payload` sizes other than 64 B (and
/// the shmbus borrow path at every size); its runs are reported as scenario `pingpong` with their
/// payload size and, for shmbus, their path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Selection {
    /// Ping-pong at 64 B, every transport and mode (and the C echo).
    Pingpong,
    /// Ping-pong at each other `--payload` size (shmbus copy path), and at every size on the
    /// shmbus borrow path.
    Sweep,
    /// Fixed rate (each `--rate`), coordinated omission counted.
    OpenLoop,
    /// Maximum rate, 64 B: msgs/s and bytes/s (shmbus lossy, and lossless on the borrow path).
    Stream,
    /// One publisher, `--subscribers` receivers, at `--fanout-rate`.
    Fanout,
}

/// A transport under test (the `transport` field of the JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Transport {
    /// This crate.
    Shmbus,
    /// Eclipse iceoryx2 0.10, publish-subscribe over shared memory (spin only; needs the
    /// feature `bench-iceoryx2`). Sorts right after shmbus, so the two run side by side.
    Iceoryx2,
    /// Aeron IPC through its C client and an embedded C media driver (spin only; needs the
    /// feature `bench-aeron`). Sorts right after shmbus and iceoryx2, so they run side by side.
    Aeron,
    /// This crate with a C echo: the ping-pong's other end is a C program linked against
    /// `libshmbus.a` (the FFI), built at bench time (see `c_echo.rs`).
    C,
    /// One cache line ping-ponged through a shared mapping with busy-spin: the hardware floor.
    Floor,
    /// Minimal seqlock ring: the part of shmbus's cost any ring-buffer bus pays (reference).
    Ring,
    /// The same minimal ring with 2 slots per direction (64 B ping-pong only): the ring's
    /// protocol without cycling through lines, so `ring` against `ring2` in one run shows what
    /// cycling through the slots costs on this machine.
    Ring2,
    /// A raw cross-process futex ping-pong: the floor of sleeping and waking.
    Futex,
    /// A pair of named pipes (FIFOs; the same kernel pipe as `pipe(2)`).
    Pipe,
    /// A Unix domain stream socket.
    Unix,
    /// TCP over 127.0.0.1 with `TCP_NODELAY`.
    Tcp,
}

impl Transport {
    /// The name used in the table and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shmbus => "shmbus",
            Self::Iceoryx2 => "iceoryx2",
            Self::Aeron => "aeron",
            Self::C => "c",
            Self::Floor => "floor",
            Self::Ring => "ring",
            Self::Ring2 => "ring2",
            Self::Futex => "futex",
            Self::Pipe => "pipe",
            Self::Unix => "unix",
            Self::Tcp => "tcp",
        }
    }

    /// Whether messages go through a ring of slots (shmbus and its C echo, the `ring` references,
    /// iceoryx2's subscriber buffer); `--slots` sets their count, but for `ring2`'s.
    pub fn has_slots(self) -> bool {
        matches!(
            self,
            Self::Shmbus | Self::C | Self::Ring | Self::Ring2 | Self::Iceoryx2
        )
    }

    /// Whether this binary can measure iceoryx2 (built with the feature `bench-iceoryx2`).
    pub const ICEORYX2: bool = cfg!(feature = "bench-iceoryx2");

    /// The error for `--transport iceoryx2` in a build without it.
    pub const ICEORYX2_MISSING: &str = "the iceoryx2 transport is not in this build: rebuild \
         with `--features bench-iceoryx2` (e.g. cargo run --release --features bench-iceoryx2 \
         -- bench)";

    /// Whether this binary can measure Aeron (built with the feature `bench-aeron`).
    pub const AERON: bool = cfg!(feature = "bench-aeron");

    /// The error for `--transport aeron` in a build without it.
    pub const AERON_MISSING: &str = "the aeron transport is not in this build: rebuild with \
         `--features bench-aeron` (e.g. cargo run --release --features bench-aeron -- bench)";

    /// The other buses measured side by side with shmbus (spin, 64 B ping-pong and stream), each
    /// only in a build with its feature.
    const SIDE_BY_SIDE: [Self; 2] = [Self::Iceoryx2, Self::Aeron];

    /// Why this transport cannot run in this build (a side-by-side transport whose feature is
    /// off), or `None`.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            Self::Iceoryx2 if !Self::ICEORYX2 => Some(Self::ICEORYX2_MISSING),
            Self::Aeron if !Self::AERON => Some(Self::AERON_MISSING),
            _ => None,
        }
    }

    /// The side-by-side transports this build has.
    fn side_by_side() -> impl Iterator<Item = Self> {
        Self::SIDE_BY_SIDE
            .into_iter()
            .filter(|t| t.missing().is_none())
    }

    /// The byte-stream transports a user would pick instead of shared memory.
    const ALTERNATIVES: [Self; 3] = [Self::Pipe, Self::Unix, Self::Tcp];
}

/// How a receiver waits (the `mode` field of the JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Mode {
    /// Busy-spin on the shared memory.
    Spin,
    /// Sleep on a futex until woken.
    Park,
    /// Spin for `--spin`, then park.
    SpinThenPark,
    /// A blocking `read(2)` (pipe, unix, tcp).
    #[value(skip)]
    Blocking,
}

impl Mode {
    /// Whether a process in this mode keeps its CPU busy while it waits (all of `spin`, the
    /// first `--spin` of `spin-then-park`).
    pub fn busy_waits(self) -> bool {
        matches!(self, Self::Spin | Self::SpinThenPark)
    }

    /// The name used in the table and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spin => "spin",
            Self::Park => "park",
            Self::SpinThenPark => "spin-then-park",
            Self::Blocking => "blocking",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a shmbus run moves the payload (the `path` field of the JSON; shmbus runs only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum DataPath {
    /// Lossy topic; `publish` copies the sender's buffer into the slot and `recv_timeout` copies
    /// the slot into the receiver's buffer.
    Copy,
    /// Lossless topic; the sender writes in place through `loan` (ping-pong: the header only;
    /// stream: the whole message) and the receiver reads the header in place through
    /// `recv_borrow_timeout` (no copy out). Ping-pong (the sweep) and stream.
    Borrow,
}

impl DataPath {
    /// The name used in the table and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::Borrow => "borrow",
        }
    }
}

/// One configuration: every repeat of it is one row of the JSON, and all repeats one table row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunSpec {
    /// Traffic pattern.
    pub scenario: Scenario,
    /// Payload bytes per message.
    pub payload: usize,
    /// Receiving processes (1 except for fanout).
    pub subscribers: usize,
    /// Messages per second for open-loop and fanout; `None` otherwise.
    pub rate: Option<u64>,
    /// Transport under test.
    pub transport: Transport,
    /// How the receiver waits.
    pub mode: Mode,
    /// shmbus only: copy or borrow path (`None` for every other transport).
    pub path: Option<DataPath>,
}

impl RunSpec {
    /// A short label, e.g. `open-loop@100k shmbus/park 64B`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}B x{}",
            self.scenario_label(),
            self.series_label(),
            self.payload,
            self.subscribers
        )
    }

    /// `transport/mode`, plus `/borrow` on the borrow path: `shmbus/spin`, `shmbus/spin/borrow`.
    pub fn series_label(&self) -> String {
        match self.path {
            Some(DataPath::Borrow) => format!("{}/{}/borrow", self.transport.as_str(), self.mode),
            _ => format!("{}/{}", self.transport.as_str(), self.mode),
        }
    }

    /// The path column: `copy`, `borrow`, or `-` for transports other than shmbus.
    pub fn path_str(&self) -> &'static str {
        self.path.map_or("-", DataPath::as_str)
    }

    /// The scenario with its rate, e.g. `open-loop@1k`.
    pub fn scenario_label(&self) -> String {
        match self.rate {
            Some(rate) => format!("{}@{}", self.scenario.as_str(), human_rate(rate)),
            None => self.scenario.as_str().to_owned(),
        }
    }
}

/// `100000` -> `100k`, `1500000` -> `1.5M`.
pub fn human_rate(rate: u64) -> String {
    match rate {
        r if r >= 1_000_000 && r.is_multiple_of(100_000) => format!("{}M", r as f64 / 1e6),
        r if r >= 1_000 && r.is_multiple_of(100) => format!("{}k", r as f64 / 1e3),
        r => r.to_string(),
    }
}

/// The parts of the options that decide which runs exist.
pub struct PlanOptions<'a> {
    /// Selected scenarios (empty = all).
    pub only: &'a [Selection],
    /// Selected transports (empty = all).
    pub transports: &'a [Transport],
    /// shmbus wait modes.
    pub modes: &'a [Mode],
    /// shmbus wait modes of the payload sweep and of the C echo.
    pub sweep_modes: &'a [Mode],
    /// Ping-pong sweep sizes.
    pub payloads: &'a [usize],
    /// Open-loop rates.
    pub rates: &'a [u64],
    /// Fanout subscriber counts.
    pub subscribers: &'a [usize],
    /// Fanout rate.
    pub fanout_rate: u64,
    /// CPUs the benchmark may use (decides which busy-waiting runs are sensible).
    pub cpus: usize,
}

/// Payload of every scenario but the sweep (and the floor's cache line).
pub const BASE_PAYLOAD: usize = 64;

/// Builds the list of runs, plus notes about what was left out and why.
pub fn build(o: &PlanOptions<'_>) -> (Vec<RunSpec>, Vec<String>) {
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    let selected = |s: Selection| o.only.is_empty() || o.only.contains(&s);
    let single = |scenario, payload, rate, transport: Transport, mode| RunSpec {
        scenario,
        payload,
        subscribers: 1,
        rate,
        transport,
        mode,
        path: (transport == Transport::Shmbus).then_some(DataPath::Copy),
    };
    // The floor is the reference of the p50/floor column: always measured unless filtered out.
    runs.push(single(
        Scenario::Pingpong,
        BASE_PAYLOAD,
        None,
        Transport::Floor,
        Mode::Spin,
    ));
    if selected(Selection::Pingpong) {
        runs.push(single(
            Scenario::Pingpong,
            BASE_PAYLOAD,
            None,
            Transport::Futex,
            Mode::Park,
        ));
        // The ring sorts right after the floor (the order of `Transport`), so in every pass the
        // two run seconds apart and the ring/floor ratio compares like with like.
        runs.push(single(
            Scenario::Pingpong,
            BASE_PAYLOAD,
            None,
            Transport::Ring,
            Mode::Spin,
        ));
        runs.push(single(
            Scenario::Pingpong,
            BASE_PAYLOAD,
            None,
            Transport::Ring2,
            Mode::Spin,
        ));
        push_all(&mut runs, o.modes, |t, m| {
            single(Scenario::Pingpong, BASE_PAYLOAD, None, t, m)
        });
        // iceoryx2 and Aeron sort right after shmbus (the order of `Transport`): side by side.
        for t in Transport::side_by_side() {
            runs.push(single(
                Scenario::Pingpong,
                BASE_PAYLOAD,
                None,
                t,
                Mode::Spin,
            ));
        }
        // Rust initiator, C echo: next to shmbus/spin at 64 B, the cost of the FFI.
        for &m in o.sweep_modes {
            runs.push(single(
                Scenario::Pingpong,
                BASE_PAYLOAD,
                None,
                Transport::C,
                m,
            ));
        }
    }
    if selected(Selection::Sweep) {
        for &p in o.payloads.iter().filter(|&&p| p != BASE_PAYLOAD) {
            push_all(&mut runs, o.sweep_modes, |t, m| {
                single(Scenario::Pingpong, p, None, t, m)
            });
        }
        // The borrow path at every size, 64 B included (ping-pong at 64 B is copy only).
        for &p in o.payloads {
            for &m in o.sweep_modes {
                runs.push(RunSpec {
                    path: Some(DataPath::Borrow),
                    ..single(Scenario::Pingpong, p, None, Transport::Shmbus, m)
                });
            }
        }
    }
    if selected(Selection::OpenLoop) {
        for &rate in o.rates {
            push_all(&mut runs, o.modes, |t, m| {
                single(Scenario::OpenLoop, BASE_PAYLOAD, Some(rate), t, m)
            });
        }
    }
    if selected(Selection::Stream) {
        runs.push(single(
            Scenario::Stream,
            BASE_PAYLOAD,
            None,
            Transport::Ring,
            Mode::Spin,
        ));
        push_all(&mut runs, o.modes, |t, m| {
            single(Scenario::Stream, BASE_PAYLOAD, None, t, m)
        });
        // Lossless streaming (the borrow path's lossless topic): the publisher waits for room
        // instead of overwriting, as Aeron's IPC does, so nothing is lost and msgs/s is what
        // both ends sustain together. Spin only.
        if o.modes.contains(&Mode::Spin) {
            runs.push(RunSpec {
                path: Some(DataPath::Borrow),
                ..single(
                    Scenario::Stream,
                    BASE_PAYLOAD,
                    None,
                    Transport::Shmbus,
                    Mode::Spin,
                )
            });
        }
        for t in Transport::side_by_side() {
            runs.push(single(Scenario::Stream, BASE_PAYLOAD, None, t, Mode::Spin));
        }
    }
    if selected(Selection::Fanout) {
        for &n in o.subscribers {
            let modes = fanout_modes(o.modes, n, o.cpus, &mut notes);
            push_all(&mut runs, &modes, |transport, mode| RunSpec {
                subscribers: n,
                ..single(
                    Scenario::Fanout,
                    BASE_PAYLOAD,
                    Some(o.fanout_rate),
                    transport,
                    mode,
                )
            });
        }
    }
    runs.retain(|r| o.transports.is_empty() || o.transports.contains(&r.transport));
    runs.sort();
    runs.dedup();
    if o.cpus < 2 {
        // Two busy-waiting processes on one CPU take turns a scheduler time slice apart: such a
        // run measures the scheduler (4 ms a hop here), not the transport.
        let before = runs.len();
        runs.retain(|r| !r.mode.busy_waits());
        if runs.len() < before {
            notes.push(format!(
                "{} CPU cannot host two busy-waiting processes: {} spin and spin-then-park \
                 configurations skipped; park and blocking ones run",
                o.cpus,
                before - runs.len()
            ));
        }
    }
    (runs, notes)
}

/// Pushes shmbus in each of `modes`, then each alternative (blocking).
fn push_all(runs: &mut Vec<RunSpec>, modes: &[Mode], make: impl Fn(Transport, Mode) -> RunSpec) {
    for &m in modes {
        runs.push(make(Transport::Shmbus, m));
    }
    for t in Transport::ALTERNATIVES {
        runs.push(make(t, Mode::Blocking));
    }
}

/// Busy-waiting subscribers need a CPU each besides the publisher's; with fewer CPUs they would
/// only measure the scheduler, so fanout falls back to park mode.
fn fanout_modes(modes: &[Mode], subs: usize, cpus: usize, notes: &mut Vec<String>) -> Vec<Mode> {
    if cpus > subs {
        return modes.to_vec();
    }
    let dropped: Vec<&str> = modes
        .iter()
        .filter(|m| m.busy_waits())
        .map(|m| m.as_str())
        .collect();
    if !dropped.is_empty() {
        notes.push(format!(
            "fanout 1->{subs}: park mode only, {cpus} CPUs cannot host {} spinning processes \
             (skipped: {}; --cpus gives it more)",
            subs + 1,
            dropped.join(", ")
        ));
    }
    vec![Mode::Park]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_well() {
        assert_eq!(human_rate(100_000), "100k");
        assert_eq!(human_rate(1_000), "1k");
        assert_eq!(human_rate(1_500_000), "1.5M");
        assert_eq!(human_rate(123), "123");
    }

    #[test]
    fn two_cpus_fanout_parks() {
        let modes = [Mode::Spin, Mode::Park, Mode::SpinThenPark];
        let o = PlanOptions {
            only: &[Selection::Fanout],
            transports: &[Transport::Shmbus],
            modes: &modes,
            sweep_modes: &[Mode::Spin],
            payloads: &[64],
            rates: &[1000],
            subscribers: &[2, 4],
            fanout_rate: 10_000,
            cpus: 2,
        };
        let (runs, notes) = build(&o);
        assert_eq!(runs.len(), 2);
        assert!(
            runs.iter()
                .all(|r| r.mode == Mode::Park && r.scenario == Scenario::Fanout)
        );
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn one_cpu_runs_no_busy_waiting_process() {
        let o = PlanOptions {
            only: &[],
            transports: &[],
            modes: &[Mode::Spin, Mode::Park, Mode::SpinThenPark],
            sweep_modes: &[Mode::Spin],
            payloads: &[8, 64],
            rates: &[1000],
            subscribers: &[2],
            fanout_rate: 10_000,
            cpus: 1,
        };
        let (runs, notes) = build(&o);
        assert!(runs.iter().all(|r| !r.mode.busy_waits()), "{runs:?}");
        assert!(runs.iter().any(|r| r.transport == Transport::Futex));
        assert!(
            runs.iter()
                .any(|r| r.transport == Transport::Shmbus && r.mode == Mode::Park)
        );
        assert!(!runs.iter().any(|r| r.transport == Transport::Floor));
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("1 CPU cannot host two busy-waiting")),
            "{notes:?}"
        );
        // Two CPUs: every ping-pong mode runs.
        let (runs, _) = build(&PlanOptions { cpus: 2, ..o });
        assert!(runs.iter().any(|r| r.transport == Transport::Floor));
        assert!(runs.iter().any(|r| r.mode == Mode::SpinThenPark));
    }

    #[test]
    fn ring_runs_pingpong_after_the_floor_and_stream_only() {
        let o = PlanOptions {
            only: &[],
            transports: &[],
            modes: &[Mode::Spin, Mode::Park],
            sweep_modes: &[Mode::Spin],
            payloads: &[8, 64, 1024],
            rates: &[1000],
            subscribers: &[2],
            fanout_rate: 10_000,
            cpus: 4,
        };
        let (runs, _) = build(&o);
        let ring: Vec<(Scenario, usize, Mode)> = runs
            .iter()
            .filter(|r| r.transport == Transport::Ring)
            .map(|r| (r.scenario, r.payload, r.mode))
            .collect();
        assert_eq!(
            ring,
            [
                (Scenario::Pingpong, 64, Mode::Spin),
                (Scenario::Stream, 64, Mode::Spin)
            ]
        );
        let floor = runs.iter().position(|r| r.transport == Transport::Floor);
        let next = floor.and_then(|i| runs.get(i + 1));
        assert_eq!(
            next.map(|r| (r.transport, r.scenario)),
            Some((Transport::Ring, Scenario::Pingpong))
        );
        assert!(
            runs.iter()
                .all(|r| r.transport != Transport::Ring || r.path.is_none())
        );
    }

    #[test]
    fn sweep_has_both_paths_and_pingpong_the_c_echo() {
        let o = PlanOptions {
            only: &[Selection::Pingpong, Selection::Sweep],
            transports: &[Transport::Shmbus, Transport::C],
            modes: &[Mode::Spin, Mode::Park],
            sweep_modes: &[Mode::Spin],
            payloads: &[8, 64, 1 << 20],
            rates: &[1000],
            subscribers: &[2],
            fanout_rate: 10_000,
            cpus: 2,
        };
        let (runs, _) = build(&o);
        let with = |payload, path| {
            runs.iter()
                .filter(|r| r.transport == Transport::Shmbus)
                .filter(|r| r.payload == payload && r.path == Some(path))
                .count()
        };
        // Copy: 8 B and 1 MiB in spin, 64 B in both modes; borrow: every size in spin.
        assert_eq!((with(8, DataPath::Copy), with(64, DataPath::Copy)), (1, 2));
        assert_eq!(with(1 << 20, DataPath::Copy), 1);
        for p in [8, 64, 1 << 20] {
            assert_eq!(with(p, DataPath::Borrow), 1, "{p}");
        }
        let c: Vec<&RunSpec> = runs
            .iter()
            .filter(|r| r.transport == Transport::C)
            .collect();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].payload, c[0].mode, c[0].path), (64, Mode::Spin, None));
        assert_eq!(c[0].series_label(), "c/spin");
        let borrow = runs.iter().find(|r| r.path == Some(DataPath::Borrow));
        assert_eq!(
            borrow.map(RunSpec::series_label).as_deref(),
            Some("shmbus/spin/borrow")
        );
    }

    /// The ping-pong and stream plan of a side-by-side run, every transport.
    fn side_by_side_plan() -> Vec<RunSpec> {
        let o = PlanOptions {
            only: &[Selection::Pingpong, Selection::Stream],
            transports: &[],
            modes: &[Mode::Spin, Mode::Park],
            sweep_modes: &[Mode::Spin],
            payloads: &[64],
            rates: &[1000],
            subscribers: &[2],
            fanout_rate: 10_000,
            cpus: 4,
        };
        build(&o).0
    }

    /// `t` runs 64 B ping-pong and stream in spin mode only, each right after the last run of
    /// `before` (the first of them that has runs) in the same scenario; no run if not `built`.
    fn check_side_by_side(t: Transport, built: bool, before: &[Transport]) {
        let runs = side_by_side_plan();
        let mine: Vec<(Scenario, usize, Mode)> = runs
            .iter()
            .filter(|r| r.transport == t)
            .map(|r| (r.scenario, r.payload, r.mode))
            .collect();
        if !built {
            assert!(mine.is_empty());
            return;
        }
        assert_eq!(
            mine,
            [
                (Scenario::Pingpong, 64, Mode::Spin),
                (Scenario::Stream, 64, Mode::Spin)
            ]
        );
        for scenario in [Scenario::Pingpong, Scenario::Stream] {
            let of = |t| {
                runs.iter()
                    .rposition(|r| r.scenario == scenario && r.transport == t)
            };
            let after = before.iter().find_map(|&b| of(b));
            assert_eq!(after.map(|i| i + 1), of(t), "{t:?} {scenario:?}");
        }
    }

    #[test]
    fn iceoryx2_runs_after_shmbus_only_when_built_in() {
        check_side_by_side(
            Transport::Iceoryx2,
            Transport::ICEORYX2,
            &[Transport::Shmbus],
        );
    }

    #[test]
    fn aeron_runs_after_shmbus_and_iceoryx2_only_when_built_in() {
        check_side_by_side(
            Transport::Aeron,
            Transport::AERON,
            &[Transport::Iceoryx2, Transport::Shmbus],
        );
    }
}
