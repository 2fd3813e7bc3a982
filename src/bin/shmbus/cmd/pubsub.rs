//! `shmbus pub` and `shmbus sub`: publish from the command line, print what arrives.

use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::json;
use shmbus::{
    Bus, PublisherConfig, RecvError, StartAt, SubscriberConfig, TopicConfig, WaitStrategy,
};

use super::{
    CliError, CliResult, describe_open_error, fail, human_duration, human_rate, human_size,
    interrupted, parse_duration, parse_positive_duration, parse_size, tool_config, unix_now_ns,
    utc_time_of_day,
};

/// How to open the bus and topic, shared by `pub` and `sub`.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// The bus name.
    pub bus: String,
    /// The topic name (created with the default or given geometry if it does not exist).
    pub topic: String,
    /// Create the bus (with default settings, or --size) if it does not exist.
    #[arg(long)]
    pub create_bus: bool,
    /// With --create-bus: the size of a new bus (K/M/G suffixes).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, requires = "create_bus")]
    pub size: Option<u64>,
    /// Slots of the topic if this command creates it (a power of two).
    #[arg(long, value_name = "N")]
    pub slots: Option<u32>,
    /// Largest message of the topic if this command creates it (K/M suffixes).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub payload_size: Option<u64>,
    /// Fail instead of creating the topic if it does not exist.
    #[arg(long, conflicts_with_all = ["slots", "payload_size"])]
    pub no_create_topic: bool,
}

impl Endpoint {
    /// Opens (or creates) the bus and the topic; prints to stderr what it created unless
    /// `quiet`.
    fn open(&self, quiet: bool) -> Result<(Bus, shmbus::Topic), CliError> {
        let mut cfg = tool_config();
        let bus = if self.create_bus {
            if let Some(size) = self.size {
                cfg.size = size;
            }
            let existed = Bus::open_with(&self.bus, &cfg).ok();
            match existed {
                Some(b) => b,
                None => {
                    let b = Bus::open_or_create(&self.bus, &cfg)
                        .map_err(|e| describe_open_error(&self.bus, &e))?;
                    if !quiet && b.info().creator_pid == std::process::id() {
                        eprintln!("created bus {} ({})", self.bus, human_size(b.info().size));
                    }
                    b
                }
            }
        } else {
            Bus::open_with(&self.bus, &cfg).map_err(|e| match e {
                shmbus::BusError::NotFound(_) => CliError::new(format!(
                    "bus {:?} does not exist (use --create-bus, or `shmbus create {}`)",
                    self.bus, self.bus
                )),
                e => describe_open_error(&self.bus, &e),
            })?
        };
        let existed = bus.topics().iter().any(|(n, _)| *n == self.topic);
        let topic = if self.no_create_topic {
            super::open_existing_topic(&bus, &self.topic)?
        } else if self.slots.is_some() || self.payload_size.is_some() {
            // Explicit geometry: check what was given against an existing topic (only that: the
            // other field's default was not asked for), or create the topic with it.
            let payload = self
                .payload_size
                .map(|p| {
                    u32::try_from(p)
                        .map_err(|_| CliError::new(format!("--payload-size {p} is too large")))
                })
                .transpose()?;
            match bus.open_topic(&self.topic) {
                Ok(t) => {
                    let c = t.config();
                    let slots_differ = self.slots.is_some_and(|s| s != c.slots);
                    if slots_differ || payload.is_some_and(|p| p != c.payload_size) {
                        return fail(format!(
                            "topic {:?} exists with {} slots of {} bytes, not the {} asked for",
                            self.topic,
                            c.slots,
                            c.payload_size,
                            match (self.slots, payload) {
                                (Some(s), Some(p)) => format!("{s} slots of {p} bytes"),
                                (Some(s), None) => format!("{s} slots"),
                                (None, Some(p)) => format!("{p}-byte payload"),
                                (None, None) => unreachable!("one of them was given"),
                            }
                        ));
                    }
                    t
                }
                Err(shmbus::TopicError::NotFound(_)) => {
                    let mut tc = TopicConfig::default();
                    if let Some(s) = self.slots {
                        tc.slots = s;
                    }
                    if let Some(p) = payload {
                        tc.payload_size = p;
                    }
                    bus.topic_with(&self.topic, &tc)
                        .map_err(|e| self.error(e))?
                }
                Err(e) => return Err(self.error(e)),
            }
        } else {
            bus.topic(&self.topic).map_err(|e| self.error(e))?
        };
        if !quiet && !existed {
            let c = topic.config();
            eprintln!(
                "created topic {}: {} slots of {}",
                self.topic,
                c.slots,
                human_size(u64::from(c.payload_size))
            );
        }
        Ok((bus, topic))
    }

    /// A library error with this endpoint's bus and topic ([`super::topic_error`]).
    fn error(&self, e: impl std::fmt::Display) -> CliError {
        super::topic_error(&self.bus, &self.topic, e)
    }
}

/// Arguments of `shmbus pub`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  shmbus pub demo greetings hello                       publish one message
  seq 10 | shmbus pub demo numbers                      one message per line of stdin
  shmbus pub demo tick --count 100 --rate 10 tick       100 messages, 10 per second
  shmbus pub demo t --create-bus --slots 4096 msg       create bus and topic if missing")]
pub struct PubArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// The message (UTF-8 text; see --hex). Without it, each line of stdin is one message.
    pub message: Option<String>,
    /// MESSAGE is hexadecimal bytes (e.g. `deadbeef`).
    #[arg(long, requires = "message")]
    pub hex: bool,
    /// Publish MESSAGE this many times.
    #[arg(long, value_name = "N", requires = "message",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// At most this many messages per second (a sleep-based pacer; 0 = no limit).
    #[arg(long, value_name = "PER_SECOND", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,
    /// No summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Spaces publications `1/rate` apart from the start (open loop: after a stall it catches up
/// rather than drifting).
struct Pacer {
    start: Instant,
    rate: f64,
    n: u64,
}

impl Pacer {
    /// Waits for the next slot; false if interrupted meanwhile.
    fn wait(&mut self) -> bool {
        if self.rate > 0.0 {
            let due = Duration::try_from_secs_f64(self.n as f64 / self.rate)
                .ok()
                .and_then(|d| self.start.checked_add(d));
            let Some(due) = due else {
                // Further away than the clock counts (a tiny --rate): only a signal ends this.
                while super::sleep_interruptible(Duration::from_secs(3600)) {}
                return false;
            };
            let now = Instant::now();
            if due > now && !super::sleep_interruptible(due - now) {
                return false;
            }
        }
        self.n += 1;
        !interrupted()
    }
}

/// Parses `--rate`: a finite number of messages per second, 0 or more.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r >= 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate (messages per second, 0 or more)"
        )),
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, CliError> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let t = t.strip_prefix("0x").unwrap_or(&t);
    if let Some(c) = t.chars().find(|c| !c.is_ascii_hexdigit()) {
        // Checked first: the pairs below are byte ranges of the string, and `from_str_radix`
        // alone would take a sign (`+f`).
        return fail(format!(
            "--hex MESSAGE: {c:?} is not a hex digit (only hex digits and spaces are allowed)"
        ));
    }
    if !t.len().is_multiple_of(2) {
        return fail("--hex MESSAGE must have an even number of hex digits");
    }
    (0..t.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&t[i..i + 2], 16)
                .map_err(|_| CliError::new(format!("--hex MESSAGE: {:?} is not hex", &t[i..i + 2])))
        })
        .collect()
}

/// Runs `shmbus pub`.
pub fn run_pub(args: &PubArgs) -> CliResult {
    // The message is checked before the bus or topic is touched: a typo must not leave a bus or
    // a topic behind.
    let message = match (&args.message, args.hex) {
        (Some(m), true) => Some(parse_hex(m)?),
        (Some(m), false) => Some(m.as_bytes().to_vec()),
        (None, _) => None,
    };
    let (_bus, topic) = args.endpoint.open(args.quiet)?;
    // Stamp every message: `sub` shows publish times and `hz --publish-time` measures them.
    let mut publisher = topic
        .publisher_with(&PublisherConfig {
            timestamps: true,
            ..Default::default()
        })
        .map_err(|e| args.endpoint.error(e))?;
    super::install_interrupt_handler();
    let start = Instant::now();
    let mut pacer = Pacer {
        start,
        rate: args.rate,
        n: 0,
    };
    let (mut sent, mut bytes) = (0u64, 0u64);
    let (mut first_seq, mut last_seq) = (None, 0u64);
    let (mut first_at, mut last_at) = (None, start);
    let mut publish = |msg: &[u8], what: &str| -> CliResult {
        let seq = publisher
            .publish(msg)
            .map_err(|e| args.endpoint.error(format!("{what}: {e}")))?;
        first_seq.get_or_insert(seq);
        last_seq = seq;
        last_at = Instant::now();
        first_at.get_or_insert(last_at);
        sent += 1;
        bytes += msg.len() as u64;
        Ok(())
    };
    let result = match &message {
        Some(msg) => {
            let count = args.count.unwrap_or(1);
            let mut r = Ok(());
            for _ in 0..count {
                if !pacer.wait() {
                    break;
                }
                r = publish(msg, "MESSAGE");
                if r.is_err() {
                    break;
                }
            }
            r
        }
        None => {
            // A reader thread, so that Ctrl-C is noticed while stdin blocks.
            let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(256);
            std::thread::spawn(move || {
                let mut stdin = io::stdin().lock();
                loop {
                    let mut line = Vec::new();
                    match stdin.read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            if line.last() == Some(&b'\n') {
                                line.pop();
                                if line.last() == Some(&b'\r') {
                                    line.pop();
                                }
                            }
                            if tx.send(Ok(line)).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
            });
            let mut r = Ok(());
            let mut line_no = 0u64;
            loop {
                if interrupted() {
                    break;
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(line)) => {
                        line_no += 1;
                        if !pacer.wait() {
                            break;
                        }
                        r = publish(&line, &format!("stdin line {line_no}"));
                        if r.is_err() {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        r = fail(format!("reading stdin: {e}"));
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            r
        }
    };
    // The summary: on stderr after a success (unless --quiet), inside the one error line after a
    // failure that came after some messages went out.
    let summary = || {
        // The rate between the first and the last message: n - 1 intervals.
        let secs = first_at.map_or(0.0, |f| last_at.duration_since(f).as_secs_f64());
        let seqs = match first_seq {
            Some(f) if f == last_seq => format!(", seq {f}"),
            Some(f) => format!(", seq {f}..{last_seq}"),
            None => String::new(),
        };
        let rate = if sent > 2 && secs > 0.0 {
            format!(", {} msg/s", human_rate((sent - 1) as f64 / secs))
        } else {
            String::new()
        };
        format!(
            "published {sent} message{} ({}) to {}/{} in {}{rate} as publisher {}{seqs}",
            if sent == 1 { "" } else { "s" },
            human_size(bytes),
            args.endpoint.bus,
            args.endpoint.topic,
            human_duration(start.elapsed()),
            publisher.id(),
        )
    };
    match result {
        Ok(()) => {
            if !args.quiet {
                eprintln!("{}", summary());
            }
            Ok(())
        }
        Err(e) if sent > 0 => Err(CliError {
            message: format!("{}; before that, {}", e.message, summary()),
            ..e
        }),
        Err(e) => Err(e),
    }
}

/// How `sub` waits for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitArg {
    /// Busy-poll: lowest latency, one CPU busy.
    Spin,
    /// Sleep on the topic's futex at once: no CPU while idle.
    Park,
    /// Poll for --spin (default 50µs), then sleep.
    SpinThenPark,
}

/// Arguments of `shmbus sub`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each message is printed as: SEQ  TIME (UTC, from the publisher's CLOCK_MONOTONIC stamp)  \
pub=ID  len=N  PAYLOAD, the payload as text when it is printable UTF-8 and as hex otherwise.
Only publishers with timestamps on stamp their messages (`shmbus pub` does; library \
publishers only with PublisherConfig::timestamps); an unstamped message shows TIME as `-` \
(and `null` times in --json).
Lost messages (overwritten before they were read, or abandoned by a dead publisher) are \
reported in the stream as `lost N messages (seq A..B)`, with B inclusive.
Exit status: 0, or 1 when --count was not reached before --timeout.")]
pub struct SubArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// One JSON object per line (messages and losses).
    #[arg(long)]
    pub json: bool,
    /// Exit after N messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Exit when no message arrives for DUR (e.g. 500ms, 5s).
    #[arg(long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub timeout: Option<Duration>,
    /// How to wait for messages.
    #[arg(long, value_enum, default_value_t = WaitArg::Park)]
    pub wait: WaitArg,
    /// With --wait spin-then-park: how long to spin.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "50us")]
    pub spin: Duration,
    /// Start with the oldest message still in the ring instead of the next one published.
    #[arg(long)]
    pub oldest: bool,
    /// Only the payload, one per line (no sequence, time or publisher).
    #[arg(long, conflicts_with = "json")]
    pub payload_only: bool,
    /// No status lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Text if the payload is printable UTF-8 (tabs allowed), otherwise `None`.
pub fn printable(payload: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(payload).ok()?;
    (!s.chars().any(|c| c.is_control() && c != '\t')).then_some(s)
}

/// Lower-case hex.
pub fn hex(payload: &[u8]) -> String {
    let mut s = String::with_capacity(payload.len() * 2);
    for b in payload {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Runs `shmbus sub`.
pub fn run_sub(args: &SubArgs) -> CliResult {
    let (_bus, topic) = args.endpoint.open(args.quiet)?;
    let wait = match args.wait {
        WaitArg::Spin => WaitStrategy::Spin,
        WaitArg::Park => WaitStrategy::Park,
        WaitArg::SpinThenPark => WaitStrategy::SpinThenPark { spin: args.spin },
    };
    let start = if args.oldest {
        StartAt::Oldest
    } else {
        StartAt::Next
    };
    let mut sub = topic
        .subscriber_with(&SubscriberConfig {
            wait,
            start,
            ..Default::default()
        })
        .map_err(|e| args.endpoint.error(e))?;
    super::install_interrupt_handler();
    if !args.quiet {
        eprintln!(
            "subscribed to {}/{} (pid {}), waiting for messages{}",
            args.endpoint.bus,
            args.endpoint.topic,
            std::process::id(),
            if args.count.is_some() || args.timeout.is_some() {
                ""
            } else {
                "; Ctrl-C to stop"
            }
        );
    }
    // Publisher stamps are CLOCK_MONOTONIC; shift them onto the wall clock for display.
    let offset = unix_now_ns().wrapping_sub(shmbus::monotonic_ns());
    let mut buf = vec![0u8; sub.capacity()];
    let stdout = io::stdout();
    let mut o = io::BufWriter::new(stdout.lock());
    let (mut got, mut lost) = (0u64, 0u64);
    let mut last_msg = Instant::now();
    let mut timed_out = false;
    while args.count.is_none_or(|n| got < n) {
        if interrupted() {
            break;
        }
        // Short waits, so that Ctrl-C and --timeout are noticed.
        let mut slice = Duration::from_millis(100);
        if let Some(t) = args.timeout {
            let idle = last_msg.elapsed();
            if idle >= t {
                timed_out = true;
                break;
            }
            slice = slice.min(t - idle);
        }
        match sub.recv_timeout(&mut buf, slice) {
            Ok(m) => {
                got += 1;
                last_msg = Instant::now();
                let payload = &buf[..m.len];
                let stamped = m.timestamp_ns != 0;
                if args.json {
                    let mut v = json!({
                        "seq": m.seq,
                        // 0: the publisher does not stamp its messages.
                        "timestamp_ns": stamped.then_some(m.timestamp_ns),
                        "time_unix_ns": stamped.then(|| m.timestamp_ns.wrapping_add(offset)),
                        "publisher_id": m.publisher_id,
                        "len": m.len,
                    });
                    match printable(payload) {
                        Some(s) => v["payload"] = json!(s),
                        None => v["payload_hex"] = json!(hex(payload)),
                    }
                    writeln!(o, "{v}")?;
                } else if args.payload_only {
                    match printable(payload) {
                        Some(s) => writeln!(o, "{s}")?,
                        None => writeln!(o, "{}", hex(payload))?,
                    }
                } else {
                    let time = match stamped {
                        true => utc_time_of_day(m.timestamp_ns.wrapping_add(offset)),
                        false => format!("{:<15}", "-"),
                    };
                    let body = match printable(payload) {
                        Some(s) => s.to_owned(),
                        None => format!("hex:{}", hex(payload)),
                    };
                    writeln!(
                        o,
                        "{:>6}  {time}  pub={}  len={}  {body}",
                        m.seq, m.publisher_id, m.len
                    )?;
                }
                // Flush when nothing else is immediately pending, so output is live.
                if sub.lag() == 0 {
                    o.flush()?;
                }
            }
            Err(RecvError::Lost { first_seq, count }) => {
                lost += count;
                let last = first_seq + count - 1;
                if args.json {
                    writeln!(
                        o,
                        "{}",
                        json!({"lost": count, "first_seq": first_seq, "last_seq": last})
                    )?;
                } else {
                    let range = if count == 1 {
                        format!("{first_seq}")
                    } else {
                        format!("{first_seq}..{last}")
                    };
                    let line = format!(
                        "lost {count} message{} (seq {range})",
                        if count == 1 { "" } else { "s" }
                    );
                    if args.payload_only {
                        eprintln!("{line}"); // keep stdout to payloads only
                    } else {
                        writeln!(o, "{line}")?;
                    }
                }
                o.flush()?;
            }
            Err(RecvError::Timeout | RecvError::Empty) => o.flush()?,
            Err(RecvError::BufferTooSmall { needed }) => {
                // Cannot happen with a buffer of the topic's capacity; a corrupt length.
                return fail(format!(
                    "a message of {needed} bytes exceeds the topic's capacity"
                ));
            }
            Err(e) => return fail(e.to_string()),
        }
    }
    o.flush()?;
    drop(o);
    if !args.quiet {
        eprintln!(
            "received {got} message{}, lost {lost}",
            if got == 1 { "" } else { "s" }
        );
    }
    if timed_out && let Some(n) = args.count.filter(|&n| got < n) {
        return fail(format!(
            "timed out: no message for {} (received {got} of {n})",
            human_duration(args.timeout.unwrap_or_default())
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_rendering() {
        assert_eq!(printable(b"hello\tworld"), Some("hello\tworld"));
        assert_eq!(printable(b"a\nb"), None);
        assert_eq!(printable(&[0xff, 0x00]), None);
        assert_eq!(hex(&[0xde, 0xad, 0x01]), "dead01");
        assert_eq!(parse_hex("de ad 01").unwrap(), vec![0xde, 0xad, 0x01]);
        assert!(parse_hex("abc").is_err());
    }
}
