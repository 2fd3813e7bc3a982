//! Options of `shmbus bench`: parsing, `--quick` defaults and checks.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Result;
use super::msg;
use super::plan::{Mode, Selection, Transport};
use super::workload::Limits;

/// Longest `--duration`: a run's deadlines are nanoseconds of `CLOCK_MONOTONIC` in a `u64`, and
/// nobody measures one configuration for longer.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Longest `--spin`: the shmbus endpoints receive in chunks of 1 s, each of which starts the
/// spin phase afresh (`transports/bus.rs`).
const MAX_SPIN: Duration = Duration::from_millis(10);

/// Options of `shmbus bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Scenarios: pingpong (64 B, every transport and mode, and shmbus with a C echo: \
    transport c), sweep (ping-pong at each other --payload, and shmbus on the borrow path at every \
    --payload), open-loop (each --rate), stream (as fast as possible; shmbus lossy on the copy path \
    and lossless on the borrow path), fanout (one publisher to \
    each --subscribers count). The floor is always measured (unless --transport leaves it out): it \
    is the reference of the p50/floor column. The ring transport (a minimal seqlock ring, spin only) \
    runs in pingpong and stream. The iceoryx2 transport (Eclipse iceoryx2, spin only; build with \
    --features bench-iceoryx2) runs in pingpong and stream. The aeron transport (Aeron IPC with an \
    embedded media driver, spin only; build with --features bench-aeron) runs in pingpong and \
    stream. The c transport compiles a C echo with $CC (or cc) \
    against libshmbus.a next to this executable (or $SHMBUS_BENCH_LIB), and is skipped with a note \
    if it cannot."
)]
pub struct BenchArgs {
    /// Short run for CI: 100 ms per run and one repeat unless given (whole run well under 30 s).
    #[arg(long)]
    pub quick: bool,
    /// Measuring time of each run, after a warm-up of a tenth of it (e.g. `1s`, `250ms`; at
    /// most 24 h) [default: 1s, 100ms with --quick].
    #[arg(long, value_parser = parse_run_duration)]
    pub duration: Option<Duration>,
    /// Runs of each configuration [default: 3, 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: Option<u32>,
    /// Open-loop rates in messages per second (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u64, 1_000],
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Vec<u64>,
    /// Ping-pong payload sweep sizes in bytes (comma list; `1KiB`, `64k` accepted); the shmbus
    /// borrow path runs at each of them, the copy path and the other transports at each but 64 B.
    #[arg(long, value_delimiter = ',', value_parser = parse_payload, default_values = ["8", "64", "1KiB", "64KiB", "1MiB"])]
    pub payload: Vec<usize>,
    /// Fanout subscriber counts (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 4],
          value_parser = parse_subscribers)]
    pub subscribers: Vec<usize>,
    /// Fanout publishing rate in messages per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub fanout_rate: u64,
    /// shmbus wait modes (comma list) [default: all; the sweep and the c transport use spin
    /// unless given].
    #[arg(long, value_delimiter = ',', value_enum)]
    pub mode: Vec<Mode>,
    /// Distinct CPUs to pin to: the initiator/publisher's first, then the other processes'
    /// [default: the first two this process may use].
    #[arg(long, value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// Run only these scenarios (repeatable or comma list).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<Selection>,
    /// Measure only these transports (repeatable or comma list).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub transport: Vec<Transport>,
    /// Write the results as JSON (schema 1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one HdrHistogram percentile-distribution file (values in µs) per configuration to DIR.
    #[arg(long, value_name = "DIR")]
    pub hdr: Option<PathBuf>,
    /// Write an SVG plot of the percentile curves to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Spin phase of the spin-then-park mode (e.g. `50us`; at most 10 ms).
    #[arg(long, value_parser = parse_spin, default_value = "50us")]
    pub spin: Duration,
    /// Slots per ring of the shmbus topics, of the `ring` reference and of iceoryx2's subscriber
    /// buffer: a power of two, 2 to 1048576 [default: 4 MiB / payload, clamped to 8..16384, so
    /// 16384 at 64 B]. Ping-pong never has more than one message in flight, so any count works
    /// there; a small ring makes the open-loop, stream and fanout receivers lose messages. A run
    /// whose shmbus rings would exceed 4 GiB fails with a message (the others go on).
    #[arg(long, value_parser = parse_slots)]
    pub slots: Option<usize>,
    /// Most messages (or round trips) measured per run.
    #[arg(long, default_value_t = 20_000_000, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub max_count: u64,
}

/// The options once defaults are applied.
pub struct Settings {
    /// Count and time bounds of each run.
    pub limits: Limits,
    /// Runs of each configuration.
    pub repeat: u32,
    /// shmbus wait modes of every scenario but the sweep.
    pub modes: Vec<Mode>,
    /// shmbus wait modes of the payload sweep and of the c transport.
    pub sweep_modes: Vec<Mode>,
    /// `--slots`: ring slots instead of the default for the payload.
    pub slots: Option<usize>,
}

impl BenchArgs {
    /// Applies the defaults (`--quick` shortens runs and repeats) and checks the options.
    ///
    /// # Errors
    /// An option that cannot give a meaningful run.
    pub fn settings(&self) -> Result<Settings> {
        let (duration, repeat) = match self.quick {
            true => (Duration::from_millis(100), 1),
            false => (Duration::from_secs(1), 3),
        };
        let all = vec![Mode::Spin, Mode::Park, Mode::SpinThenPark];
        let settings = Settings {
            limits: Limits {
                duration: self.duration.unwrap_or(duration),
                max_count: self.max_count,
            },
            repeat: self.repeat.unwrap_or(repeat),
            modes: if self.mode.is_empty() {
                all
            } else {
                self.mode.clone()
            },
            sweep_modes: if self.mode.is_empty() {
                vec![Mode::Spin]
            } else {
                self.mode.clone()
            },
            slots: self.slots,
        };
        self.validate()?;
        Ok(settings)
    }

    /// Rejects what the parsers cannot see: a transport this build does not have. (Values out of
    /// range are usage errors, refused by their parsers with exit status 2.)
    fn validate(&self) -> Result<()> {
        if let Some(why) = self.transport.iter().find_map(|t| t.missing()) {
            return Err(why.into());
        }
        Ok(())
    }
}

/// Parses `--duration`: more than zero, at most [`MAX_DURATION`].
fn parse_run_duration(s: &str) -> std::result::Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d if d > MAX_DURATION => Err("at most 24 h".into()),
        d => Ok(d),
    }
}

/// Parses `--spin`: at most [`MAX_SPIN`].
fn parse_spin(s: &str) -> std::result::Result<Duration, String> {
    match parse_duration(s)? {
        d if d > MAX_SPIN => {
            Err("at most 10 ms (a longer spin phase is busy-waiting: --mode spin)".into())
        }
        d => Ok(d),
    }
}

/// Parses a `--payload` size: 8 B to 16 MiB.
fn parse_payload(s: &str) -> std::result::Result<usize, String> {
    match parse_size(s)? {
        p if (msg::MIN_PINGPONG..=16 << 20).contains(&p) => Ok(p),
        p => Err(format!("{p} B: must be 8 B to 16 MiB")),
    }
}

/// Parses a `--subscribers` count: 1 to 64.
fn parse_subscribers(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: must be a number from 1 to 64")),
    }
}

/// Parses `--slots`: a power of two from 2 to 2^20.
fn parse_slots(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: expected a number of slots"))?;
    if !(2..=1 << 20).contains(&n) || !n.is_power_of_two() {
        return Err(format!("{n}: must be a power of two from 2 to 1048576"));
    }
    Ok(n)
}

/// Parses `1s`, `250ms`, `50us`, `2.5s`, `100ns`, `1m`, `1h` (a bare number is seconds).
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    // The unit is the trailing run of letters, so that a number may have an exponent (`1e-3`).
    let split = s
        .trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .len();
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?}"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("unknown unit {u:?} (use ns, us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses `64`, `1KiB`, `1k`, `64KiB`, `1MiB`, `1M` (powers of two).
fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        u => return Err(format!("unknown unit {u:?} (use B, KiB, MiB)")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_duration("1e-3"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("2.5e2ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("8"), Ok(8));
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn slots_are_powers_of_two_in_range() {
        assert_eq!(parse_slots("2"), Ok(2));
        assert_eq!(parse_slots("4096"), Ok(4096));
        assert_eq!(parse_slots("1048576"), Ok(1 << 20));
        for bad in ["0", "1", "3", "100", "2097152", "x", "-2"] {
            assert!(parse_slots(bad).is_err(), "{bad} accepted");
        }
    }
}
