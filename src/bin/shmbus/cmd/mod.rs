//! The operator subcommands of the `shmbus` command line: `ls`, `info`, `pub`, `sub`, `hz`,
//! `create`, `rm`, `gc` and `doctor` (everything except `bench`).
//!
//! Each subcommand lives in its own module with an `Args` struct (clap derive) and a `run`
//! function returning [`CliResult`]. [`Command::run`] turns an error into one line on stderr and
//! exit code 1; clap itself exits with code 2 on a usage error.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;

pub mod admin;
pub mod doctor;
pub mod hz;
pub mod info;
pub mod ls;
pub mod procs;
pub mod pubsub;

/// The operator subcommands (flattened into the top-level `shmbus` command).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the buses on this machine, with their state (ok / stale / unreadable).
    Ls(ls::LsArgs),
    /// Show a bus's topics, geometry and counters (`--watch` refreshes like `top`).
    Info(info::InfoArgs),
    /// Publish a message, each line of stdin, or a message repeated at a rate.
    Pub(pubsub::PubArgs),
    /// Print the messages of a topic as they arrive.
    Sub(pubsub::SubArgs),
    /// Measure a topic's message rate and inter-arrival times.
    Hz(hz::HzArgs),
    /// Create a bus (and optionally topics with their geometry).
    Create(admin::CreateArgs),
    /// Remove buses by name (processes that have them mapped keep working).
    Rm(admin::RmArgs),
    /// Remove stale buses: those whose every known process is dead.
    Gc(admin::GcArgs),
    /// Check this machine's settings that matter for running shmbus and for its latency.
    Doctor(doctor::DoctorArgs),
}

impl Command {
    /// Runs the subcommand; prints an error as one line on stderr and returns exit code 1.
    pub fn run(&self) -> ExitCode {
        let result = match self {
            Command::Ls(a) => ls::run(a),
            Command::Info(a) => info::run(a),
            Command::Pub(a) => pubsub::run_pub(a),
            Command::Sub(a) => pubsub::run_sub(a),
            Command::Hz(a) => hz::run(a),
            Command::Create(a) => admin::run_create(a),
            Command::Rm(a) => admin::run_rm(a),
            Command::Gc(a) => admin::run_gc(a),
            Command::Doctor(a) => doctor::run(a),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.quiet => ExitCode::from(e.code),
            Err(e) => {
                // Ignore a failure to write the error itself (stderr closed).
                let _ = writeln!(io::stderr(), "shmbus: {}", e.message);
                ExitCode::from(e.code)
            }
        }
    }
}

/// An error that ends a subcommand: a one-line message and an exit code.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong, on one line.
    pub message: String,
    /// The process exit code (1 for failures).
    pub code: u8,
    /// Exit with `code` without printing anything (e.g. stdout closed by `| head`).
    pub quiet: bool,
}

impl CliError {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
            quiet: false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // The reader went away (`shmbus sub ... | head`): a normal end, not an error.
            CliError {
                message: String::new(),
                code: 0,
                quiet: true,
            }
        } else {
            CliError::new(e.to_string())
        }
    }
}

impl From<shmbus::BusError> for CliError {
    fn from(e: shmbus::BusError) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<shmbus::TopicError> for CliError {
    fn from(e: shmbus::TopicError) -> Self {
        CliError::new(e.to_string())
    }
}

/// A library error with the bus and topic it is about (`demo/t: the topic has no free
/// subscriber entry`).
pub fn topic_error(bus: &str, topic: &str, e: impl fmt::Display) -> CliError {
    CliError::new(format!("{bus}/{topic}: {e}"))
}

/// Opens topic `topic` of `bus`, which must exist: one that does not is said so, any other
/// error names the bus and topic.
pub fn open_existing_topic(bus: &shmbus::Bus, topic: &str) -> Result<shmbus::Topic, CliError> {
    bus.open_topic(topic).map_err(|e| match e {
        shmbus::TopicError::NotFound(_) => CliError::new(format!(
            "topic {topic:?} does not exist on bus {:?}",
            bus.name()
        )),
        e => topic_error(bus.name(), topic, e),
    })
}

/// What every subcommand returns.
pub type CliResult = Result<(), CliError>;

/// Shorthand for `Err(CliError::new(..))`.
pub fn fail<T>(message: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::new(message))
}

// ---------------------------------------------------------------------------------------------
// Opening buses for inspection
// ---------------------------------------------------------------------------------------------

/// The configuration used to open a bus for inspection or as a client: no prefaulting (a tool
/// should not touch every page of a large segment) and a short open timeout.
pub fn tool_config() -> shmbus::BusConfig {
    shmbus::BusConfig {
        prefault: false,
        open_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

/// Opens an existing bus for inspection; the error names the bus and suggests a way out.
pub fn open_bus(name: &str) -> Result<shmbus::Bus, CliError> {
    shmbus::Bus::open_with(name, &tool_config()).map_err(|e| describe_open_error(name, &e))
}

/// Turns an open error into a message with a hint.
pub fn describe_open_error(name: &str, e: &shmbus::BusError) -> CliError {
    use shmbus::BusError as E;
    let hint = match e {
        E::NotFound(_) => " (see `shmbus ls`, or create it with `shmbus create`)",
        E::VersionMismatch { .. } | E::LayoutMismatch { .. } | E::Corrupt { .. } => {
            " (if no process uses it any more, remove it with `shmbus rm`)"
        }
        E::PermissionDenied(_) => " (it belongs to another user or has a restrictive mode)",
        _ => "",
    };
    let text = e.to_string();
    if text.contains(name) {
        CliError::new(format!("{text}{hint}"))
    } else {
        CliError::new(format!("bus {name:?}: {text}{hint}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C
// ---------------------------------------------------------------------------------------------

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs SIGINT/SIGTERM handlers that set a flag (see [`interrupted`]) so that long-running
/// subcommands can stop cleanly and print their summary; a second signal ends the process at
/// once (exit code 130 for SIGINT-like behaviour).
pub fn install_interrupt_handler() {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Failing to install a handler only loses the graceful summary: ignore it.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(flag));
    }
}

/// Whether SIGINT or SIGTERM arrived since [`install_interrupt_handler`].
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Sleeps `d`, in steps short enough to notice Ctrl-C; returns false if interrupted.
pub fn sleep_interruptible(d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    loop {
        if interrupted() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses a size in bytes: `4096`, `64K`, `16M`, `1G`, `16MiB`, `1.5G` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} (use K, M, G or T)")),
    };
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (e.g. 4096, 64K, 16M, 1G)"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("size {s:?} is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f * (mult as f64) < 1.8e19 => {
            Ok((f * mult as f64).round() as u64)
        }
        _ => Err(format!("{s:?} is not a size (e.g. 4096, 64K, 16M, 1G)")),
    }
}

/// Parses a duration: `250ms`, `5s`, `1.5s`, `2m`, `1h`, `100us`, `500ns`; a bare number is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let secs_per: f64 = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ns, us, ms, s, m, h)"
            ));
        }
    };
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f * secs_per < 1e12 => {
            Ok(Duration::from_secs_f64(f * secs_per))
        }
        _ => Err(format!("{s:?} is not a duration (e.g. 500ms, 5s, 2m)")),
    }
}

/// [`parse_duration`], refusing zero: for intervals and timeouts, where zero would end a command
/// before it did anything.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    positive(parse_duration(s)?)
}

/// `d`, unless it is zero.
pub fn positive(d: Duration) -> Result<Duration, String> {
    match d {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

/// Parses an octal permission mode such as `600`, `0640` or `0o660`. The owner must keep read
/// and write: every use of a bus (publishing, subscribing, even reading its header) writes to
/// it, so a mode without them (`444`, `000`) would make a bus its own creator cannot use.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && m & 0o600 != 0o600 => Err(format!(
            "mode {s}: the owner needs read and write (6 in the first digit), or nobody but root \
             can use the bus"
        )),
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "{s:?} is not an octal permission mode (e.g. 600, 0660)"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/// A byte count in binary units: `512 B`, `16.0 MiB`, `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A duration for people: `850ns`, `12.3µs`, `4.5ms`, `2.35s`, `3m12s`, `2h05m`, `4d03h`.
pub fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    // One decimal, without a useless ".0": 4.5ms, 200ms.
    let short = |v: f64, unit: &str| {
        let t = format!("{v:.1}");
        format!("{}{unit}", t.strip_suffix(".0").unwrap_or(&t))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 999_950 {
        return short(ns as f64 / 1e3, "µs");
    }
    if ns < 999_950_000 {
        return short(ns as f64 / 1e6, "ms");
    }
    let s = d.as_secs();
    if s < 60 {
        // Two decimals without trailing zeros: 1s, 2.5s, 12.34s.
        let t = format!("{:.2}", d.as_secs_f64());
        return format!("{}s", t.trim_end_matches('0').trim_end_matches('.'));
    }
    if s < 3600 {
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    if s < 86_400 {
        return format!("{}h{:02}m", s / 3600, (s % 3600) / 60);
    }
    format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
}

/// A duration in whole units, for ages: `45s`, `3m12s`, `2h05m`, `4d03h`.
pub fn human_age(d: Duration) -> String {
    if d.as_secs() < 60 {
        return format!("{}s", d.as_secs());
    }
    human_duration(d)
}

/// A rate: `0`, `12.5`, `1.2k`, `3.40M` (per second, unit left to the caller).
pub fn human_rate(r: f64) -> String {
    if r < 0.05 {
        "0".into()
    } else if r < 1000.0 {
        format!("{r:.1}")
    } else if r < 1e6 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{:.2}M", r / 1e6)
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// How long ago `unix_ns` was (zero if in the future).
pub fn age_of(unix_ns: u64) -> Duration {
    Duration::from_nanos(unix_now_ns().saturating_sub(unix_ns))
}

/// `HH:MM:SS.micros` (UTC) of a time given in ns since the Unix epoch.
pub fn utc_time_of_day(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        day / 3600,
        (day % 3600) / 60,
        day % 60
    )
}

/// Column alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Left-aligned (text).
    Left,
    /// Right-aligned (numbers).
    Right,
}

/// A text table whose column widths are computed from its contents.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            headers: columns.iter().map(|(h, _)| (*h).to_owned()).collect(),
            aligns: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the table, each line prefixed with `indent`; two spaces between columns and no
    /// trailing spaces.
    pub fn render(&self, indent: &str) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let empty = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, (width, align)) in widths.iter().zip(&self.aligns).enumerate() {
                let cell = r.get(i).unwrap_or(&empty);
                let pad = width.saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout (an `Err` of kind `BrokenPipe` ends the command quietly).
pub fn out(text: &str) -> io::Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()
}

/// Prints a JSON value (pretty) on stdout.
pub fn out_json(v: &serde_json::Value) -> io::Result<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
    s.push('\n');
    out(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(16 << 20), "16.0 MiB");
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(human_duration(Duration::from_secs(192)), "3m12s");
        assert_eq!(human_duration(Duration::from_micros(4500)), "4.5ms");
        assert_eq!(human_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(human_duration(Duration::from_secs(1)), "1s");
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human_duration(Duration::from_nanos(999_990)), "1ms");
        assert_eq!(human_age(Duration::from_secs(7)), "7s");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o660"), Ok(0o660));
        assert!(parse_mode("800").is_err());
        assert!(parse_mode("444").is_err()); // the owner could not use its own bus
        assert!(parse_mode("000").is_err());
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert!(parse_mode("7777").is_err());
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec!["a".into(), "100".into()]);
        t.row(vec!["long".into(), "2".into()]);
        assert_eq!(t.render(""), "NAME    N\na     100\nlong    2\n");
    }
}
