//! Turning runs into the table, the verdict and the per-configuration histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::hist::{Hist, STALL_NS, Summary};
use super::plan::{DataPath, Mode, RunSpec, Scenario, Transport};

/// The result of one repeat of one configuration.
pub struct RunRecord {
    /// The configuration.
    pub spec: RunSpec,
    /// Which repeat (0-based).
    pub repeat: u32,
    /// Its latency percentiles.
    pub summary: Summary,
    /// Its histogram (ns).
    pub hist: Hist,
    /// Messages lost.
    pub lost: u64,
    /// Round trips (ping-pong) or messages counted by the receivers (others); see
    /// `procs::Outcome::count`.
    pub count: u64,
    /// Round trips (ping-pong) or deliveries (others) per second.
    pub msgs_per_s: f64,
    /// Interrupts per second on the pinned CPUs during the run (`None`: unknown).
    pub interrupts_per_s: Option<f64>,
    /// Involuntary context switches of the benchmark's processes during the run (`None`:
    /// unknown).
    pub preemptions: Option<u64>,
}

/// One table row: all repeats of one configuration.
pub struct Row {
    /// The configuration.
    pub spec: RunSpec,
    /// Median across repeats of each percentile.
    pub median: Summary,
    /// Lowest and highest p50 of the repeats (the spread).
    pub p50_range: (u64, u64),
    /// Worst p99.99 of any repeat.
    pub worst_p99_99: u64,
    /// Worst max of any repeat (shown in the max column).
    pub worst_max: u64,
    /// Involuntary context switches during the repeat with the worst max (`None`: unknown).
    pub worst_max_preemptions: Option<u64>,
    /// Median msgs/s.
    pub msgs_per_s: f64,
    /// Messages lost: the median of the repeats.
    pub lost: u64,
    /// Messages lost: the most in any repeat (for the verdict).
    pub worst_lost: u64,
    /// Number of repeats.
    pub repeats: usize,
    /// Each repeat's summary, by repeat index (for ratios taken repeat by repeat).
    pub by_repeat: BTreeMap<u32, Summary>,
    /// Each repeat's msgs/s, by repeat index.
    pub rate_by_repeat: BTreeMap<u32, f64>,
    /// Ping-pong only: each repeat's histogram, by repeat index (for tails compared at the same
    /// rank per second, see [`tail`]).
    pub hist_by_repeat: BTreeMap<u32, Hist>,
    /// Median interrupts per second on the pinned CPUs (`None`: not known).
    pub interrupts_per_s: Option<f64>,
    /// All repeats merged (for the HDR files and the plot).
    pub merged: Hist,
}

/// Groups records by configuration, in plan order.
pub fn rows(records: &[RunRecord]) -> Vec<Row> {
    let mut groups: BTreeMap<RunSpec, Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.spec).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(spec, runs)| row(spec, &runs))
        .collect()
}

/// Aggregates the repeats of one configuration.
fn row(spec: RunSpec, runs: &[&RunRecord]) -> Row {
    let pick = |f: fn(&Summary) -> u64| median(runs.iter().map(|r| f(&r.summary)).collect());
    let p50s = runs.iter().map(|r| r.summary.p50);
    let mut merged = super::hist::new();
    for r in runs {
        // Same bounds and precision: adding cannot fail.
        let _ = merged.add(&r.hist);
    }
    Row {
        spec,
        median: Summary {
            count: runs.iter().map(|r| r.summary.count).sum(),
            p50: pick(|s| s.p50),
            p90: pick(|s| s.p90),
            p99: pick(|s| s.p99),
            p99_9: pick(|s| s.p99_9),
            p99_99: pick(|s| s.p99_99),
            max: pick(|s| s.max),
            stalls: pick(|s| s.stalls),
        },
        p50_range: (p50s.clone().min().unwrap_or(0), p50s.max().unwrap_or(0)),
        worst_p99_99: runs.iter().map(|r| r.summary.p99_99).max().unwrap_or(0),
        worst_max: runs.iter().map(|r| r.summary.max).max().unwrap_or(0),
        worst_max_preemptions: runs
            .iter()
            .max_by_key(|r| r.summary.max)
            .and_then(|r| r.preemptions),
        msgs_per_s: median_f64(runs.iter().map(|r| r.msgs_per_s).collect()).unwrap_or(0.0),
        lost: median(runs.iter().map(|r| r.lost).collect()),
        worst_lost: runs.iter().map(|r| r.lost).max().unwrap_or(0),
        repeats: runs.len(),
        by_repeat: runs.iter().map(|r| (r.repeat, r.summary)).collect(),
        rate_by_repeat: runs.iter().map(|r| (r.repeat, r.msgs_per_s)).collect(),
        hist_by_repeat: match spec.scenario {
            Scenario::Pingpong => runs.iter().map(|r| (r.repeat, r.hist.clone())).collect(),
            _ => BTreeMap::new(),
        },
        interrupts_per_s: median_f64(runs.iter().filter_map(|r| r.interrupts_per_s).collect()),
        merged,
    }
}

/// The median (for an even count, the mean of the two middle values); 0 for none.
fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => v[n / 2 - 1] / 2 + v[n / 2] / 2 + (v[n / 2 - 1] % 2 + v[n / 2] % 2) / 2,
    }
}

/// The median of `v` (for an even count, the mean of the two middle values); `None` for none.
fn median_f64(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The floor's row: the reference of the p50/floor column.
pub fn floor_row(rows: &[Row]) -> Option<&Row> {
    rows.iter()
        .find(|r| r.spec.transport == Transport::Floor && r.spec.scenario == Scenario::Pingpong)
}

/// `pick(row) / pick(reference)` taken repeat by repeat (repeat `k` of both ran in the same pass
/// over the plan, seconds apart), then the median of those ratios. A machine whose speed changes
/// between passes (a VM whose vCPUs move) then shifts numerator and denominator together.
/// `None` if they share no repeat or a reference figure is 0.
pub fn pass_ratio(row: &Row, reference: &Row, pick: fn(&Summary) -> u64) -> Option<f64> {
    let ratios: Vec<f64> = row
        .by_repeat
        .iter()
        .filter_map(|(k, s)| {
            let r = pick(reference.by_repeat.get(k)?);
            (r > 0).then(|| pick(s) as f64 / r as f64)
        })
        .collect();
    median_f64(ratios)
}

/// The results table.
pub fn table(rows: &[Row]) -> String {
    let floor = floor_row(rows);
    let header = [
        "scenario",
        "transport",
        "mode",
        "path",
        "payload",
        "subs",
        "p50",
        "p50 range",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "msgs/s",
        "lost",
        "p50/floor",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for r in rows {
        cells.push(vec![
            r.spec.scenario_label(),
            r.spec.transport.as_str().to_owned(),
            r.spec.mode.as_str().to_owned(),
            r.spec.path_str().to_owned(),
            fmt_bytes(r.spec.payload),
            r.spec.subscribers.to_string(),
            fmt_ns(r.median.p50),
            match r.repeats {
                1 => "-".to_owned(),
                _ => format!("{}-{}", fmt_ns(r.p50_range.0), fmt_ns(r.p50_range.1)),
            },
            fmt_ns(r.median.p90),
            fmt_ns(r.median.p99),
            fmt_ns(r.median.p99_9),
            fmt_ns(r.median.p99_99),
            fmt_ns(r.worst_max),
            fmt_rate(r.msgs_per_s),
            r.lost.to_string(),
            floor
                .and_then(|f| pass_ratio(r, f, |s| s.p50))
                .map_or("-".to_owned(), |x| format!("{x:.1}x")),
        ]);
    }
    render(&cells, 6)
}

/// Lays out `cells` in aligned columns: the first `text_cols` left-aligned, the rest right-aligned.
fn render(cells: &[Vec<String>], text_cols: usize) -> String {
    let ncols = cells.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in cells {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            let _ = match c < text_cols {
                true => write!(line, "{cell:<w$}  "),
                false => write!(line, "{cell:>w$}  "),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The 64 B ping-pong of shmbus against its references, as medians of per-repeat ratios:
/// spin against the floor, split into floor -> ring (p50: what any ring-buffer bus pays) and
/// ring -> shmbus (p50 and p99.99: what shmbus's own code adds), park against the raw futex
/// (p50 and p99.99), spin against iceoryx2 and against Aeron in spin (p50 and p99.99, when they
/// were measured), and the floor's p50 in each repeat, which shows whether the machine changed
/// speed during the run.
pub fn ratios(rows: &[Row]) -> String {
    let find = |t: Transport, m: Mode| pingpongs_64(rows, m).find(|r| r.spec.transport == t);
    let mut out = String::new();
    let fmt = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.2}x"));
    let (spin, park) = (
        (Transport::Shmbus, Mode::Spin),
        (Transport::Shmbus, Mode::Park),
    );
    let (floor, ring) = (
        (Transport::Floor, Mode::Spin),
        (Transport::Ring, Mode::Spin),
    );
    // (row, reference, with p99.99): shmbus to the floor, then the same gap in its two parts.
    for ((t, m), (rt, rm), tail) in [
        (spin, floor, true),
        (ring, floor, false),
        ((Transport::Ring2, Mode::Spin), floor, false),
        (spin, ring, true),
        (park, (Transport::Futex, Mode::Park), true),
        (spin, (Transport::Iceoryx2, Mode::Spin), true),
        (spin, (Transport::Aeron, Mode::Spin), true),
    ] {
        let (Some(row), Some(reference)) = (find(t, m), find(rt, rm)) else {
            continue;
        };
        // Another bus is named with its mode (`iceoryx2/spin`); the references by name alone.
        let reference_label = match rt {
            Transport::Iceoryx2 | Transport::Aeron => format!("{}/{rm}", rt.as_str()),
            _ => rt.as_str().to_owned(),
        };
        let _ = write!(
            out,
            "ratio 64B {}/{m} to {reference_label} (median of per-repeat ratios): p50 {}",
            t.as_str(),
            fmt(pass_ratio(row, reference, |s| s.p50)),
        );
        if tail {
            let _ = write!(
                out,
                ", p99.99 {}",
                fmt(pass_ratio(row, reference, |s| s.p99_99))
            );
        }
        out.push('\n');
    }
    let floor = find(Transport::Floor, Mode::Spin);
    if let Some(floor) = floor {
        let p50s: Vec<String> = floor.by_repeat.values().map(|s| fmt_ns(s.p50)).collect();
        let _ = writeln!(out, "floor p50 by repeat: {}", p50s.join(", "));
    }
    // A VM whose vCPUs move changes the cross-core latency (here 60 <-> 180 ns) between repeats,
    // or between two configurations of one repeat. Say so where it shows: a p50 spread over
    // 1.5x across repeats, or a repeat in which a transport beat the floor by more than 20%
    // (nothing does: the two ran at different speeds).
    let mut changed = Vec::new();
    for r in pingpongs_64(rows, Mode::Spin) {
        let (lo, hi) = r.p50_range;
        if lo > 0 && hi * 2 > lo * 3 {
            changed.push(format!(
                "{} p50 {}-{} across repeats",
                r.spec.transport.as_str(),
                fmt_ns(lo),
                fmt_ns(hi)
            ));
        }
        if let Some(floor) = floor.filter(|_| r.spec.transport != Transport::Floor) {
            let below = r.by_repeat.iter().find_map(|(k, s)| {
                let f = floor.by_repeat.get(k)?.p50;
                (s.p50 * 5 < f * 4).then(|| s.p50 as f64 / f as f64)
            });
            if let Some(x) = below {
                changed.push(format!(
                    "{} p50 {x:.2}x the floor's in one repeat",
                    r.spec.transport.as_str()
                ));
            }
        }
    }
    if !changed.is_empty() {
        let _ = writeln!(
            out,
            "note: the machine changed speed during this run (64B spin: {}); a ratio whose two \
             rows ran at different speeds is meaningless: compare like repeats, or run again",
            changed.join("; ")
        );
    }
    out
}

/// The 64 B ping-pong rows of wait mode `mode` (copy path), in plan order.
fn pingpongs_64(rows: &[Row], mode: Mode) -> impl Iterator<Item = &Row> {
    rows.iter().filter(move |r| {
        r.spec.scenario == Scenario::Pingpong
            && r.spec.payload == 64
            && r.spec.mode == mode
            && r.spec.path != Some(DataPath::Borrow)
    })
}

/// The tail of the 64 B busy-spin ping-pong, read for what it is on a machine whose CPUs are
/// interrupted. Per transport (medians of the repeats): interrupts per second on the pinned CPUs,
/// samples of at least [`STALL_NS`] per second, and the rank of p99.99 within a second (round
/// trips per second / 10^4). Where that rank is below the stalls per second, p99.99 is an
/// interrupted sample: a transport making fewer round trips per second reaches into the
/// interruptions at a higher percentile, so p99.99 against p99.99 can compare an interrupted
/// sample with a clean one. The ratio lines therefore also compare p99.99 with the reference's
/// sample of the same rank per second ([`same_rank_ratio`]). Last, each transport's worst max and
/// the involuntary context switches of the benchmark's processes during that run: another task
/// took a CPU from a spinning process that many times.
pub fn tail(rows: &[Row]) -> String {
    let spins: Vec<&Row> = pingpongs_64(rows, Mode::Spin).collect();
    if spins.is_empty() {
        return String::new();
    }
    let per_s = |row: &Row, f: &dyn Fn(&Summary, f64) -> f64| {
        median_f64(
            row.by_repeat
                .iter()
                .filter_map(|(k, s)| Some(f(s, *row.rate_by_repeat.get(k)?)))
                .collect(),
        )
    };
    let count = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.0}"));
    let mut cells = vec![
        vec!["tail of 64B spin ping-pong (medians of repeats)".to_owned()],
        vec!["interrupts on the pinned CPUs per s".to_owned()],
        vec![format!("samples >= {} per s", fmt_ns(STALL_NS))],
        vec!["rank of p99.99 in a second (round trips/s / 10^4)".to_owned()],
        vec!["max (worst repeat)".to_owned()],
        vec!["preemptions in the run of that max".to_owned()],
    ];
    for r in &spins {
        cells[0].push(r.spec.transport.as_str().to_owned());
        cells[1].push(count(r.interrupts_per_s));
        cells[2].push(count(per_s(r, &|s, rate| match s.count {
            0 => 0.0,
            n => s.stalls as f64 / n as f64 * rate,
        })));
        cells[3].push(count(per_s(r, &|_, rate| rate * 1e-4)));
        cells[4].push(fmt_ns(r.worst_max));
        cells[5].push(
            r.worst_max_preemptions
                .map_or("-".to_owned(), |n| n.to_string()),
        );
    }
    let mut out = render(&cells, 1);
    let find = |t: Transport| spins.iter().copied().find(|r| r.spec.transport == t);
    for (t, reference) in [
        (Transport::Shmbus, Transport::Floor),
        (Transport::Ring, Transport::Floor),
    ] {
        if let (Some(row), Some(reference)) = (find(t), find(reference)) {
            let _ = writeln!(
                out,
                "ratio 64B {}/spin p99.99 to {}'s sample of the same rank per second (median of \
                 per-repeat ratios): {}",
                t.as_str(),
                reference.spec.transport.as_str(),
                same_rank_ratio(row, reference).map_or("-".to_owned(), |x| format!("{x:.2}x"))
            );
        }
    }
    out
}

/// `row`'s p99.99 over `reference`'s sample of the same rank per second, repeat by repeat, then
/// the median. `row`'s p99.99 is its `n`-th slowest sample of a second, `n = rate / 10^4`; the
/// reference's `n`-th slowest of a second is its quantile `1 - n / reference rate`. Interruptions
/// come per second, not per message, so this compares the two at the same share of wall time.
pub fn same_rank_ratio(row: &Row, reference: &Row) -> Option<f64> {
    let ratios: Vec<f64> = row
        .by_repeat
        .iter()
        .filter_map(|(k, s)| {
            let rate = *row.rate_by_repeat.get(k)?;
            let ref_rate = *reference.rate_by_repeat.get(k)?;
            let hist = reference.hist_by_repeat.get(k)?;
            let q = 1.0 - 1e-4 * rate / ref_rate;
            if !(0.0..1.0).contains(&q) || hist.is_empty() {
                return None;
            }
            let v = hist.value_at_quantile(q);
            (v > 0).then(|| s.p99_99 as f64 / v as f64)
        })
        .collect();
    median_f64(ratios)
}

/// The stream scenario's throughput in messages and bytes per second (median of the repeats).
pub fn throughput(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| r.spec.scenario == Scenario::Stream) {
        let bytes = r.msgs_per_s * r.spec.payload as f64;
        let _ = writeln!(
            out,
            "stream {} {}: {} msgs/s, {}B/s{}",
            fmt_bytes(r.spec.payload),
            r.spec.series_label(),
            fmt_rate(r.msgs_per_s),
            fmt_rate(bytes),
            match r.lost {
                0 => String::new(),
                n => format!(" ({n} lost by the subscriber, median of the repeats)"),
            }
        );
    }
    out
}

/// The payload sweep of shmbus in spin mode, one line per path: p50 at each size, from the
/// smallest to the largest, and the ratio largest / smallest (flat: close to 1x).
pub fn sweep_summary(rows: &[Row]) -> String {
    let mut out = String::new();
    for path in [DataPath::Copy, DataPath::Borrow] {
        let mut points: Vec<(usize, u64)> = rows
            .iter()
            .filter(|r| r.spec.scenario == Scenario::Pingpong && r.spec.mode == Mode::Spin)
            .filter(|r| r.spec.transport == Transport::Shmbus && r.spec.path == Some(path))
            .map(|r| (r.spec.payload, r.median.p50))
            .collect();
        points.sort_unstable();
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            continue;
        };
        if points.len() < 2 {
            continue;
        }
        let sizes: Vec<String> = points
            .iter()
            .map(|&(p, ns)| format!("{} {}", fmt_bytes(p), fmt_ns(ns)))
            .collect();
        let _ = writeln!(
            out,
            "sweep shmbus/spin {:<6} p50: {} ({:.1}x from {} to {})",
            path.as_str(),
            sizes.join(", "),
            last.1 as f64 / first.1.max(1) as f64,
            fmt_bytes(first.0),
            fmt_bytes(last.0)
        );
    }
    out
}

/// The cost of the C API: ping-pong p50 with a C echo against a Rust one, same mode and size.
pub fn ffi_summary(rows: &[Row]) -> String {
    let mut out = String::new();
    for c in rows.iter().filter(|r| r.spec.transport == Transport::C) {
        let rust = rows.iter().find(|r| {
            r.spec.transport == Transport::Shmbus
                && r.spec.path == Some(DataPath::Copy)
                && (r.spec.scenario, r.spec.payload, r.spec.mode)
                    == (c.spec.scenario, c.spec.payload, c.spec.mode)
        });
        let Some(rust) = rust else { continue };
        let (a, b) = (rust.median.p50, c.median.p50);
        let _ = writeln!(
            out,
            "ffi {} {}: one-way p50 Rust<->Rust {}, Rust<->C {} ({}{}, {:.2}x)",
            fmt_bytes(c.spec.payload),
            c.spec.mode,
            fmt_ns(a),
            fmt_ns(b),
            if b >= a { "+" } else { "-" },
            fmt_ns(b.abs_diff(a)),
            b as f64 / a.max(1) as f64
        );
    }
    out
}

/// A run that did not finish (a child died, a message was lost or timed out, ...).
pub struct Failure {
    /// The configuration.
    pub spec: RunSpec,
    /// Which repeat (0-based).
    pub repeat: u32,
    /// Why.
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (repeat {}): {}",
            self.spec.label(),
            self.repeat + 1,
            self.error
        )
    }
}

/// How the verdict names a configuration: `pingpong spin 64B`, `fanout 1->4 park 64B`.
fn verdict_label(s: &RunSpec) -> String {
    let fan = if s.subscribers > 1 {
        format!(" 1->{}", s.subscribers)
    } else {
        String::new()
    };
    let borrow = match s.path {
        Some(DataPath::Borrow) => "/borrow",
        _ => "",
    };
    format!(
        "{}{fan} {}{borrow} {}",
        s.scenario_label(),
        s.mode,
        fmt_bytes(s.payload)
    )
}

/// The verdict line: did every shmbus configuration keep p99.99 and max under 1 ms in every
/// repeat, and lose nothing? A repeat that did not finish (`failures`) did not keep them: its
/// worst message is the one that never came; nor did a lost message, which never came either
/// (except in the lossy stream, where a publisher at full speed overrunning its subscriber is
/// what a lossy topic promises, and the table's `lost` column shows it).
pub fn verdict(rows: &[Row], failures: &[Failure]) -> String {
    const LIMIT_NS: u64 = 1_000_000;
    let ours: Vec<&Row> = rows
        .iter()
        .filter(|r| r.spec.transport == Transport::Shmbus)
        .collect();
    let failed: Vec<String> = failures
        .iter()
        .filter(|f| f.spec.transport == Transport::Shmbus)
        .map(|f| {
            format!(
                "{} (repeat {} did not finish)",
                verdict_label(&f.spec),
                f.repeat + 1
            )
        })
        .collect();
    if ours.is_empty() && failed.is_empty() {
        return "verdict: no shmbus runs (filtered out)".to_owned();
    }
    let bad: Vec<String> = ours
        .iter()
        .filter(|r| r.worst_p99_99 >= LIMIT_NS || r.worst_max >= LIMIT_NS || loses(r))
        .map(|r| {
            let preempted = r
                .worst_max_preemptions
                .map_or(String::new(), |n| format!(", {n} preemptions in that run"));
            let lost = match loses(r) {
                true => format!(", lost {} in a repeat", r.worst_lost),
                false => String::new(),
            };
            format!(
                "{} (p99.99 {}, max {}{preempted}{lost})",
                verdict_label(&r.spec),
                fmt_ns(r.worst_p99_99),
                fmt_ns(r.worst_max)
            )
        })
        .chain(failed)
        .collect();
    match bad.is_empty() {
        true => format!(
            "verdict: PASS, every shmbus scenario ({} configurations) kept p99.99 and max under 1 ms \
             and lost nothing (the lossy stream excepted) in every repeat",
            ours.len()
        ),
        false => format!(
            "verdict: FAIL, p99.99 or max >= 1 ms, or messages lost, in: {}",
            bad.join("; ")
        ),
    }
}

/// Whether a row lost messages it had to deliver: any but the lossy stream's.
fn loses(r: &Row) -> bool {
    let lossy_stream = r.spec.scenario == Scenario::Stream && r.spec.path != Some(DataPath::Borrow);
    r.worst_lost > 0 && !lossy_stream
}

/// `532ns`, `1.25µs`, `12.5µs`, `125µs`, `1.25ms`, `1.25s`.
pub fn fmt_ns(ns: u64) -> String {
    let f = ns as f64;
    // Each bound is where the rounded figure would need another digit (999.6µs is "1.00ms").
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..9_995 => format!("{:.2}µs", f / 1e3),
        9_995..99_950 => format!("{:.1}µs", f / 1e3),
        99_950..999_500 => format!("{:.0}µs", f / 1e3),
        999_500..9_995_000 => format!("{:.2}ms", f / 1e6),
        9_995_000..999_950_000 => format!("{:.1}ms", f / 1e6),
        _ => format!("{:.2}s", f / 1e9),
    }
}

/// `8B`, `1KiB`, `64KiB`, `1.5KiB`.
pub fn fmt_bytes(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// `950`, `12.3k`, `1.23M`.
pub fn fmt_rate(r: f64) -> String {
    match r {
        r if r >= 999_500.0 => format!("{:.2}M", r / 1e6),
        r if r >= 999.5 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_ns(532), "532ns");
        assert_eq!(fmt_ns(1_250), "1.25µs");
        assert_eq!(fmt_ns(125_000), "125µs");
        assert_eq!(fmt_ns(2_500_000), "2.50ms");
        assert_eq!(fmt_ns(999_999), "1.00ms");
        assert_eq!(fmt_ns(9_999), "10.0µs");
        assert_eq!(fmt_bytes(65536), "64KiB");
        assert_eq!(fmt_bytes(8), "8B");
        assert_eq!(fmt_rate(1_234_567.0), "1.23M");
    }

    #[test]
    fn median_picks_middle() {
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median(vec![]), 0);
        // Even counts: the mean of the two middle values, not the upper (worse) one.
        assert_eq!(median(vec![300, 100]), 200);
        assert_eq!(median(vec![u64::MAX, u64::MAX - 2]), u64::MAX - 1);
        assert_eq!(median(vec![1, 2]), 1);
        assert_eq!(median_f64(vec![3.0, 1.0]), Some(2.0));
        assert_eq!(median_f64(vec![]), None);
    }

    /// Records of one configuration with these p50s, repeat k having the k-th.
    fn records(transport: Transport, p50s: &[u64]) -> Vec<RunRecord> {
        let spec = RunSpec {
            scenario: Scenario::Pingpong,
            payload: 64,
            subscribers: 1,
            rate: None,
            transport,
            mode: Mode::Spin,
            path: None,
        };
        p50s.iter()
            .enumerate()
            .map(|(k, &p50)| RunRecord {
                spec,
                repeat: k as u32,
                summary: Summary {
                    p50,
                    p99_99: 10 * p50,
                    ..Summary::default()
                },
                hist: super::super::hist::new(),
                lost: 0,
                count: 0,
                msgs_per_s: 0.0,
                interrupts_per_s: None,
                preemptions: None,
            })
            .collect()
    }

    /// A lost message fails the verdict like a late one, except in the lossy stream, whose
    /// publisher may overrun its subscriber by design.
    #[test]
    fn a_lost_message_fails_the_verdict_except_in_the_lossy_stream() {
        let with = |scenario, path, lost| {
            let mut recs = records(Transport::Shmbus, &[100, 100, 100]);
            for r in &mut recs {
                r.spec.scenario = scenario;
                r.spec.path = path;
            }
            recs[1].lost = lost;
            verdict(&rows(&recs), &[])
        };
        let copy = Some(DataPath::Copy);
        assert!(with(Scenario::OpenLoop, copy, 0).starts_with("verdict: PASS"));
        let v = with(Scenario::OpenLoop, copy, 3);
        assert!(
            v.starts_with("verdict: FAIL") && v.contains("lost 3 in a repeat"),
            "{v}"
        );
        assert!(with(Scenario::Stream, copy, 3).starts_with("verdict: PASS"));
        let borrow = Some(DataPath::Borrow);
        assert!(with(Scenario::Stream, borrow, 3).starts_with("verdict: FAIL"));
    }

    #[test]
    fn a_repeat_that_did_not_finish_fails_the_verdict() {
        // Repeats 1 and 3 kept everything under 1 ms (p99.99 = 10 x p50); repeat 2 never finished.
        let mut recs = records(Transport::Shmbus, &[100, 100, 100]);
        let failed = recs.remove(1);
        let table = rows(&recs);
        assert!(verdict(&table, &[]).starts_with("verdict: PASS"));
        let failure = Failure {
            spec: failed.spec,
            repeat: failed.repeat,
            error: "no echo within 5s".to_owned(),
        };
        let v = verdict(&table, &[failure]);
        assert!(v.starts_with("verdict: FAIL"), "{v}");
        assert!(
            v.contains("pingpong spin 64B (repeat 2 did not finish)"),
            "{v}"
        );
        // Every repeat failed: no row at all, still a failure rather than "no shmbus runs".
        let only = Failure {
            spec: failed.spec,
            repeat: 0,
            error: "child died".to_owned(),
        };
        assert!(verdict(&[], &[only]).starts_with("verdict: FAIL"));
        // Another transport's failure is not shmbus's.
        let floor = Failure {
            spec: RunSpec {
                transport: Transport::Floor,
                ..failed.spec
            },
            repeat: 0,
            error: "child died".to_owned(),
        };
        assert!(verdict(&table, &[floor]).starts_with("verdict: PASS"));
    }

    /// One second of a spin ping-pong at `rate` round trips/s with a median of `p50` ns, of which
    /// 300 samples were interrupted (5 µs each), on a machine taking 300 interrupts/s.
    fn interrupted_second(transport: Transport, rate: u64, p50: u64) -> RunRecord {
        let mut hist = super::super::hist::new();
        hist.record_n(p50, rate - 300).unwrap();
        hist.record_n(5_000, 300).unwrap();
        let mut r = records(transport, &[p50]).remove(0);
        r.summary = Summary::of(&hist);
        r.hist = hist;
        r.msgs_per_s = rate as f64;
        r.interrupts_per_s = Some(300.0);
        r.preemptions = Some(2);
        r
    }

    #[test]
    fn tails_are_compared_at_the_same_rank_per_second() {
        // The floor's p99.99 (the 600th slowest of 6M) is clean, shmbus's (the 200th of 2M) is
        // interrupted: 83x apart, though both saw the same 300 interruptions.
        let table = rows(&[
            interrupted_second(Transport::Floor, 6_000_000, 60),
            interrupted_second(Transport::Shmbus, 2_000_000, 100),
        ]);
        let floor = floor_row(&table).unwrap();
        let shmbus = &table[0];
        assert_eq!(shmbus.spec.transport, Transport::Shmbus);
        let plain = pass_ratio(shmbus, floor, |s| s.p99_99).unwrap();
        assert!(plain > 80.0, "{plain}");
        // The floor's 200th slowest sample of its second is interrupted too.
        let same = same_rank_ratio(shmbus, floor).unwrap();
        assert!((0.99..=1.01).contains(&same), "{same}");
        let text = tail(&table);
        // Compared with runs of spaces collapsed: the columns' widths are the layout's business.
        let flat: String = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect();
        for want in [
            "(medians of repeats) shmbus floor\n",
            "interrupts on the pinned CPUs per s 300 300\n",
            "samples >= 2.00µs per s 300 300\n",
            "rank of p99.99 in a second (round trips/s / 10^4) 200 600\n",
            "max (worst repeat) 5.00µs 5.00µs\n",
            "preemptions in the run of that max 2 2\n",
            "shmbus/spin p99.99 to floor's sample of the same rank per second (median of \
             per-repeat ratios): 1.00x\n",
        ] {
            assert!(flat.contains(want), "{want:?} not in\n{text}");
        }
    }

    #[test]
    fn ratios_are_taken_repeat_by_repeat() {
        // The machine is 3x slower in repeats 1 and 2 of the floor but only in repeat 1 of the
        // ring (it sped up in between): the ratio of medians would be 90 / 180 = 0.5, the
        // per-repeat ratios are 1.5, 1.5 and 0.5, whose median is 1.5.
        let mut all = records(Transport::Floor, &[60, 180, 180]);
        all.extend(records(Transport::Ring, &[90, 270, 90]));
        let table = rows(&all);
        let floor = floor_row(&table).unwrap();
        let ring = table
            .iter()
            .find(|r| r.spec.transport == Transport::Ring)
            .unwrap();
        assert_eq!(pass_ratio(ring, floor, |s| s.p50), Some(1.5));
        assert_eq!(pass_ratio(ring, floor, |s| s.p99_99), Some(1.5));
        // Repeats missing on either side are left out; none in common gives no ratio.
        let partial = rows(&records(Transport::Ring, &[90]));
        assert_eq!(pass_ratio(&partial[0], floor, |s| s.p50), Some(1.5));
        let zero = rows(&records(Transport::Floor, &[0]));
        assert_eq!(pass_ratio(ring, &zero[0], |s| s.p50), None);
        let lines = ratios(&table);
        assert!(
            lines.contains("ring/spin to floor (median of per-repeat ratios): p50 1.50x"),
            "{lines}"
        );
        assert!(
            lines.contains("floor p50 by repeat: 60ns, 180ns, 180ns"),
            "{lines}"
        );
        assert!(
            lines.contains(
                "note: the machine changed speed during this run (64B spin: floor p50 \
                 60ns-180ns across repeats; ring p50 90ns-270ns across repeats; ring p50 0.50x \
                 the floor's in one repeat)"
            ),
            "{lines}"
        );
        // Repeats within 1.5x of each other: no note.
        let steady = rows(&records(Transport::Floor, &[60, 65, 85]));
        assert!(!ratios(&steady).contains("note:"), "{}", ratios(&steady));
    }
}
