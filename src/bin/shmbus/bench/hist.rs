//! Latency histograms: recording, percentiles, the child-to-parent wire form, and the HdrHistogram
//! percentile-distribution text format.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds, 3 significant digits, 1 ns to 1 hour.
pub type Hist = Histogram<u64>;

/// Highest trackable latency: anything slower is recorded as one hour.
const HIGHEST_NS: u64 = 3_600_000_000_000;

/// An empty histogram.
pub fn new() -> Hist {
    // Constant, valid bounds (1 <= low, high >= 2 * low, sigfig <= 5): cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("constant histogram bounds are valid")
}

/// Records one latency (values below 1 ns count as 1 ns, above the range as the maximum).
#[inline]
pub fn record(h: &mut Hist, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// A busy-spin ping-pong sample at least this slow (30x the floor's median here) was interrupted:
/// on the machine the results in docs/ were recorded on, such samples come at the rate of the
/// interrupts on the two CPUs, for every transport alike.
pub const STALL_NS: u64 = 2_000;

/// The percentiles every report shows, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Number of recorded values.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// 99.99th percentile.
    pub p99_99: u64,
    /// Largest value.
    pub max: u64,
    /// Values of at least [`STALL_NS`].
    pub stalls: u64,
}

impl Summary {
    /// Summarises `h`.
    pub fn of(h: &Hist) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            p99_99: h.value_at_quantile(0.9999),
            max: h.max(),
            stalls: match h.max() {
                m if m >= STALL_NS => h.count_between(STALL_NS, m),
                _ => 0,
            },
        }
    }
}

/// The wire form a child sends to the parent: one `h <value> <count>` line per recorded bucket.
pub fn to_lines(h: &Hist) -> impl Iterator<Item = String> + '_ {
    h.iter_recorded()
        .map(|v| format!("h {} {}", v.value_iterated_to(), v.count_at_value()))
}

/// Adds one `h <value> <count>` line (without the `h `) to `h`.
///
/// # Errors
/// A message if the line is malformed.
pub fn add_line(h: &mut Hist, rest: &str) -> Result<(), String> {
    let mut it = rest.split_ascii_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(value)), Some(Ok(count)), None) => {
            h.saturating_record_n(value.max(1), count);
            Ok(())
        }
        _ => Err(format!("bad histogram line {rest:?}")),
    }
}

/// Renders `h` the way HdrHistogram's `outputPercentileDistribution` does (the format its plotter
/// reads), values divided by `scale` (1000.0 for ns -> µs), 5 percentile ticks per half distance.
pub fn percentile_distribution(h: &Hist, scale: f64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h)
    );
    out
}

/// Sub-buckets per bucket, as HdrHistogram computes it from the significant digits.
fn sub_buckets(h: &Hist) -> u64 {
    let single_unit_resolution = 2 * 10u64.pow(u32::from(h.sigfig()));
    single_unit_resolution.next_power_of_two()
}

/// Points of the percentile curve: `(1 / (1 - q), value_ns)` for q < 1, then the maximum at the
/// `1 / (1 - q)` of the last sample (the total count). Used by the plot.
pub fn curve(h: &Hist) -> Vec<(f64, u64)> {
    let mut points = Vec::new();
    if h.is_empty() {
        return points;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            points.push((1.0 / (1.0 - q), v.value_iterated_to()));
        }
    }
    points.push((h.len() as f64, h.max()));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        let mut a = new();
        for v in [5, 100, 100, 12_345, 9_999_999] {
            record(&mut a, v);
        }
        let mut b = new();
        for line in to_lines(&a) {
            add_line(&mut b, line.strip_prefix("h ").unwrap()).unwrap();
        }
        assert_eq!(Summary::of(&a), Summary::of(&b));
    }

    #[test]
    fn distribution_has_header_and_footer() {
        let mut h = new();
        for v in 1..=10_000 {
            record(&mut h, v * 100);
        }
        let text = percentile_distribution(&h, 1000.0);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("#[Max     ="));
        assert!(text.contains("SubBuckets     =         2048]"));
        let last = text
            .lines()
            .rev()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert_eq!(
            last.split_whitespace().count(),
            3,
            "last line has no 1/(1-p) column"
        );
    }
}
