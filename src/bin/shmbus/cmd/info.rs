//! `shmbus info BUS [TOPIC]`: a bus's topics, their geometry and counters; `--watch` refreshes
//! in place with rates computed from successive snapshots.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use shmbus::{Bus, BusInfo, Delivery, TopicStats};

use super::{
    Align, CliError, CliResult, Table, age_of, human_age, human_duration, human_rate, human_size,
    open_bus, out, out_json, parse_duration,
};

/// Arguments of `shmbus info`.
#[derive(Debug, Args)]
#[command(after_help = "\
Counters: NEXT SEQ is the next sequence number to be claimed; PUBLISHED/ABORTED count messages \
committed and loans dropped; REPAIRED counts slots closed after their writer died; SLEEPERS are \
subscribers parked on the topic's futex now; WAKES counts FUTEX_WAKE system calls by \
publishers. A subscriber's LAG is how many published messages it has not read yet.")]
pub struct InfoArgs {
    /// The bus name.
    pub bus: String,
    /// Show only this topic.
    pub topic: Option<String>,
    /// Print JSON (with --watch: one JSON object per line and refresh).
    #[arg(long)]
    pub json: bool,
    /// Refresh every INTERVAL (default 1s) until Ctrl-C, with rates per second.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1s",
          value_parser = parse_watch_interval)]
    pub watch: Option<Duration>,
    /// With --watch: stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// Parses `--watch`'s interval. Its value is optional, so `info BUS --watch TOPIC` reads the
/// topic as the interval: the error says where the topic goes.
fn parse_watch_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| {
        format!(
            "{e}; a topic goes before --watch (`info BUS TOPIC --watch`), or write --watch=INTERVAL"
        )
    })?;
    super::positive(d)
}

/// One reading of a bus's counters.
struct Snapshot {
    at: Instant,
    info: BusInfo,
    topics: Vec<TopicStats>,
}

/// Per-second rates between two snapshots.
#[derive(Default)]
struct Rates {
    /// Topic name → published/s.
    topic_published: HashMap<String, f64>,
    /// Topic name → wakes/s.
    topic_wakes: HashMap<String, f64>,
    /// (topic, publisher id) → published/s.
    publisher: HashMap<(String, u32), f64>,
    /// (topic, subscriber key) → (delivered/s, lost/s).
    subscriber: HashMap<(String, String), (f64, f64)>,
}

/// A key for the subscribers of a topic: the pid and the rank among that pid's records.
fn sub_keys(t: &TopicStats) -> Vec<String> {
    let mut seen: HashMap<u32, u32> = HashMap::new();
    t.subscribers
        .iter()
        .map(|s| {
            let n = seen.entry(s.pid).or_insert(0);
            *n += 1;
            format!("{}#{}", s.pid, *n)
        })
        .collect()
}

fn rates(prev: &Snapshot, cur: &Snapshot) -> Rates {
    let dt = cur.at.duration_since(prev.at).as_secs_f64().max(1e-6);
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / dt;
    let mut r = Rates::default();
    for t in &cur.topics {
        let Some(p) = prev.topics.iter().find(|p| p.name == t.name) else {
            continue;
        };
        r.topic_published
            .insert(t.name.clone(), per(p.published, t.published));
        r.topic_wakes.insert(t.name.clone(), per(p.wakes, t.wakes));
        for pb in &t.publishers {
            if let Some(old) = p
                .publishers
                .iter()
                .find(|o| o.id == pb.id && o.pid == pb.pid)
            {
                r.publisher
                    .insert((t.name.clone(), pb.id), per(old.published, pb.published));
            }
        }
        let old_keys = sub_keys(p);
        for (s, k) in t.subscribers.iter().zip(sub_keys(t)) {
            if let Some(i) = old_keys.iter().position(|o| *o == k) {
                let o = &p.subscribers[i];
                r.subscriber.insert(
                    (t.name.clone(), k),
                    (per(o.delivered, s.delivered), per(o.lost, s.lost)),
                );
            }
        }
    }
    r
}

fn snapshot(bus: &Bus, only: Option<&str>) -> Result<Snapshot, CliError> {
    let at = Instant::now();
    let info = bus.info();
    let topics = match only {
        Some(name) => {
            let t = bus.open_topic(name).map_err(|e| match e {
                shmbus::TopicError::NotFound(_) => CliError::new(format!(
                    "topic {name:?} does not exist on bus {:?} (see `shmbus info {}`)",
                    bus.name(),
                    bus.name()
                )),
                e => super::topic_error(bus.name(), name, e),
            })?;
            vec![t.stats()]
        }
        None => {
            let mut v = Vec::new();
            for (name, _) in bus.topics() {
                let t = bus
                    .open_topic(&name)
                    .map_err(|e| super::topic_error(bus.name(), &name, e))?;
                v.push(t.stats());
            }
            v
        }
    };
    Ok(Snapshot { at, info, topics })
}

fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::Lossy => "lossy",
        Delivery::Lossless => "lossless",
        _ => "other",
    }
}

/// The bus and its topics as JSON (the `info --json` document).
fn to_json(s: &Snapshot, r: Option<&Rates>) -> Value {
    let i = &s.info;
    let topics: Vec<Value> = s
        .topics
        .iter()
        .map(|t| {
            let c = &t.config;
            let keys = sub_keys(t);
            let mut v = json!({
                "name": t.name,
                "delivery": delivery_name(c.delivery),
                "slots": c.slots,
                "payload_size": c.payload_size,
                "max_publishers": c.max_publishers,
                "max_subscribers": c.max_subscribers,
                "next_seq": t.next_seq,
                "published": t.published,
                "aborted": t.aborted,
                "repaired": t.repaired,
                "sleepers": t.sleepers,
                "wakes": t.wakes,
                "backpressure": t.backpressure,
                "evicted": t.evicted,
                "publishers": t.publishers.iter().map(|p| {
                    let mut o = json!({
                        "id": p.id, "pid": p.pid, "alive": p.alive,
                        "published": p.published, "aborted": p.aborted,
                    });
                    if let Some(x) = r.and_then(|r| r.publisher.get(&(t.name.clone(), p.id))) {
                        o["published_per_s"] = json!(x);
                    }
                    o
                }).collect::<Vec<_>>(),
                "subscribers": t.subscribers.iter().zip(&keys).map(|(s, k)| {
                    let mut o = json!({
                        "pid": s.pid, "alive": s.alive, "cursor": s.cursor, "lag": s.lag,
                        "delivered": s.delivered, "lost": s.lost,
                    });
                    if let Some((d, l)) = r.and_then(|r| r.subscriber.get(&(t.name.clone(), k.clone()))) {
                        o["delivered_per_s"] = json!(d);
                        o["lost_per_s"] = json!(l);
                    }
                    o
                }).collect::<Vec<_>>(),
            });
            if let Some(r) = r {
                v["published_per_s"] = json!(r.topic_published.get(&t.name));
                v["wakes_per_s"] = json!(r.topic_wakes.get(&t.name));
            }
            v
        })
        .collect();
    json!({
        "bus": {
            "name": i.name,
            "size": i.size,
            "mode": i.mode,
            "creator_pid": i.creator_pid,
            "creator_alive": i.creator_alive,
            "created_at_unix_ns": i.created_at_unix_ns,
            "age_s": age_of(i.created_at_unix_ns).as_secs_f64(),
            "max_topics": i.max_topics,
            "topics": i.topics,
            "arena_used": i.arena_used,
            "arena_size": i.arena_size,
        },
        "topics": topics,
    })
}

fn alive_word(alive: bool) -> String {
    if alive { "yes".into() } else { "no".into() }
}

/// The bus and its topics as text.
fn render(s: &Snapshot, r: Option<&Rates>) -> String {
    let i = &s.info;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "bus {}: {}, mode {:04o}, created by pid {} ({}) {} ago, topics {}/{}, arena {} of {} used",
        i.name,
        human_size(i.size),
        i.mode,
        i.creator_pid,
        if i.creator_alive { "alive" } else { "dead" },
        human_age(age_of(i.created_at_unix_ns)),
        i.topics,
        i.max_topics,
        human_size(i.arena_used),
        human_size(i.arena_size),
    );
    if s.topics.is_empty() {
        o.push_str("\nno topics\n");
        return o;
    }
    let mut cols = vec![
        ("TOPIC", Align::Left),
        ("MODE", Align::Left),
        ("SLOTS", Align::Right),
        ("PAYLOAD", Align::Right),
        ("PUBS", Align::Right),
        ("SUBS", Align::Right),
        ("NEXT SEQ", Align::Right),
        ("PUBLISHED", Align::Right),
        ("ABORTED", Align::Right),
        ("REPAIRED", Align::Right),
        ("SLEEPERS", Align::Right),
        ("WAKES", Align::Right),
        ("BACKPRESS", Align::Right),
        ("EVICTED", Align::Right),
    ];
    if r.is_some() {
        cols.push(("MSG/S", Align::Right));
        cols.push(("WAKES/S", Align::Right));
    }
    let mut t = Table::new(&cols);
    for ts in &s.topics {
        let c = &ts.config;
        let mut row = vec![
            ts.name.clone(),
            delivery_name(c.delivery).into(),
            c.slots.to_string(),
            human_size(u64::from(c.payload_size)),
            format!("{}/{}", ts.publishers.len(), c.max_publishers),
            format!("{}/{}", ts.subscribers.len(), c.max_subscribers),
            ts.next_seq.to_string(),
            ts.published.to_string(),
            ts.aborted.to_string(),
            ts.repaired.to_string(),
            ts.sleepers.to_string(),
            ts.wakes.to_string(),
            ts.backpressure.to_string(),
            ts.evicted.to_string(),
        ];
        if let Some(r) = r {
            row.push(
                r.topic_published
                    .get(&ts.name)
                    .map_or("-".into(), |x| human_rate(*x)),
            );
            row.push(
                r.topic_wakes
                    .get(&ts.name)
                    .map_or("-".into(), |x| human_rate(*x)),
            );
        }
        t.row(row);
    }
    o.push('\n');
    o.push_str(&t.render(""));
    for ts in &s.topics {
        let _ = writeln!(o, "\ntopic {}", ts.name);
        if ts.publishers.is_empty() {
            o.push_str("  publishers: none\n");
        } else {
            let mut cols = vec![
                ("ID", Align::Right),
                ("PID", Align::Right),
                ("ALIVE", Align::Left),
                ("PUBLISHED", Align::Right),
                ("ABORTED", Align::Right),
            ];
            if r.is_some() {
                cols.push(("MSG/S", Align::Right));
            }
            let mut t = Table::new(&cols);
            for p in &ts.publishers {
                let mut row = vec![
                    p.id.to_string(),
                    p.pid.to_string(),
                    alive_word(p.alive),
                    p.published.to_string(),
                    p.aborted.to_string(),
                ];
                if let Some(r) = r {
                    let x = r.publisher.get(&(ts.name.clone(), p.id));
                    row.push(x.map_or("-".into(), |x| human_rate(*x)));
                }
                t.row(row);
            }
            o.push_str("  publishers:\n");
            o.push_str(&t.render("    "));
        }
        if ts.subscribers.is_empty() {
            o.push_str("  subscribers: none\n");
        } else {
            let mut cols = vec![
                ("PID", Align::Right),
                ("ALIVE", Align::Left),
                ("LAG", Align::Right),
                ("DELIVERED", Align::Right),
                ("LOST", Align::Right),
            ];
            if r.is_some() {
                cols.push(("MSG/S", Align::Right));
                cols.push(("LOST/S", Align::Right));
            }
            let mut t = Table::new(&cols);
            for (s, k) in ts.subscribers.iter().zip(sub_keys(ts)) {
                let mut row = vec![
                    s.pid.to_string(),
                    alive_word(s.alive),
                    s.lag.to_string(),
                    s.delivered.to_string(),
                    s.lost.to_string(),
                ];
                if let Some(r) = r {
                    let x = r.subscriber.get(&(ts.name.clone(), k));
                    row.push(x.map_or("-".into(), |x| human_rate(x.0)));
                    row.push(x.map_or("-".into(), |x| human_rate(x.1)));
                }
                t.row(row);
            }
            o.push_str("  subscribers:\n");
            o.push_str(&t.render("    "));
        }
    }
    o
}

/// Runs `shmbus info`.
pub fn run(args: &InfoArgs) -> CliResult {
    let bus = open_bus(&args.bus)?;
    let Some(interval) = args.watch else {
        let s = snapshot(&bus, args.topic.as_deref())?;
        if args.json {
            out_json(&to_json(&s, None))?;
        } else {
            out(&render(&s, None))?;
        }
        return Ok(());
    };
    super::install_interrupt_handler();
    let mut prev: Option<Snapshot> = None;
    let mut shown = 0u64;
    // On a terminal each frame replaces the last; into a file or a pipe, frames follow one
    // another, separated by a blank line, without escape codes.
    let clear = if std::io::stdout().is_terminal() {
        "\x1b[H\x1b[2J"
    } else {
        ""
    };
    loop {
        let s = snapshot(&bus, args.topic.as_deref())?;
        let r = prev.as_ref().map(|p| rates(p, &s));
        if args.json {
            let mut line = serde_json::to_string(&to_json(&s, r.as_ref()))
                .map_err(|e| CliError::new(e.to_string()))?;
            line.push('\n');
            out(&line)?;
        } else {
            // Home the cursor and clear the screen, then draw the whole frame at once.
            let header = format!(
                "shmbus info {} — every {} — Ctrl-C to quit\n\n",
                args.bus,
                human_duration(interval)
            );
            let gap = if clear.is_empty() && shown > 0 {
                "\n"
            } else {
                ""
            };
            out(&format!("{clear}{gap}{header}{}", render(&s, r.as_ref())))?;
        }
        shown += 1;
        prev = Some(s);
        if args.count.is_some_and(|n| shown >= n) || !super::sleep_interruptible(interval) {
            break;
        }
    }
    Ok(())
}
