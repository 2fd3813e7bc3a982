//! `shmbus create`, `shmbus rm` and `shmbus gc`: making and removing buses.

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use shmbus::{Bus, BusConfig, BusError, Delivery, TopicConfig};

use super::ls::join_pids;
use super::procs::{BusReport, State, Unreadable, inspect_listed, scan_mappings};
use super::{
    Align, CliError, CliResult, Table, human_age, human_size, out, out_json, parse_duration,
    parse_mode, parse_size,
};

/// `EPERM`: unlinking another user's object in the sticky /dev/shm.
const EPERM: i32 = 1;

/// A `--topic NAME:SLOTS:BYTES` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Ring slots (a power of two).
    pub slots: u32,
    /// Largest message in bytes.
    pub payload_size: u32,
    /// Delivery mode.
    pub delivery: Delivery,
}

/// Parses `NAME:SLOTS:BYTES[:lossless|:lossy]` (BYTES may have a K/M suffix; topic names never
/// contain ':').
pub fn parse_topic_spec(s: &str) -> Result<TopicSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (name, slots, bytes, mode) = match parts[..] {
        [name, slots, bytes] => (name, slots, bytes, "lossy"),
        [name, slots, bytes, mode] => (name, slots, bytes, mode),
        _ => {
            return Err(format!(
                "{s:?}: expected NAME:SLOTS:BYTES[:lossless] (e.g. sensors/imu:4096:512)"
            ));
        }
    };
    let delivery = match mode {
        "lossy" => Delivery::Lossy,
        "lossless" => Delivery::Lossless,
        other => {
            return Err(format!(
                "{s:?}: delivery {other:?} is not lossy or lossless"
            ));
        }
    };
    let slots = slots
        .parse::<u32>()
        .map_err(|_| format!("{s:?}: SLOTS {slots:?} is not a number"))?;
    let payload = parse_size(bytes).map_err(|e| format!("{s:?}: BYTES: {e}"))?;
    let payload_size =
        u32::try_from(payload).map_err(|_| format!("{s:?}: BYTES {payload} is too large"))?;
    Ok(TopicSpec {
        name: name.to_owned(),
        slots,
        payload_size,
        delivery,
    })
}

/// Arguments of `shmbus create`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  shmbus create demo --size 64M --mode 660 --topic sensors/imu:4096:512 --topic log:1024:4K

The whole size is reserved in /dev/shm at creation. Topics not created here are created on \
first use with 1024 slots of 256 bytes.")]
pub struct CreateArgs {
    /// The bus name ([A-Za-z0-9_.-]).
    pub bus: String,
    /// Segment size (K/M/G suffixes; rounded up to 4 KiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16M")]
    pub size: u64,
    /// Permission bits, octal (e.g. 600 for this user only, 660 for the group too).
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode, default_value = "600")]
    pub mode: u32,
    /// Capacity of the topic table.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_topics: u32,
    /// Create a topic: NAME:SLOTS:BYTES[:lossless] (slots a power of two; repeat for several).
    #[arg(long = "topic", value_name = "NAME:SLOTS:BYTES[:lossless]", value_parser = parse_topic_spec)]
    pub topics: Vec<TopicSpec>,
}

/// Runs `shmbus create`.
pub fn run_create(args: &CreateArgs) -> CliResult {
    let cfg = BusConfig {
        size: args.size,
        max_topics: args.max_topics,
        mode: args.mode,
        prefault: false,
        ..Default::default()
    };
    let bus = Bus::create(&args.bus, &cfg).map_err(|e| match e {
        BusError::AlreadyExists(_) => CliError::new(format!(
            "bus {:?} already exists (see `shmbus info {}`; remove it with `shmbus rm {}`)",
            args.bus, args.bus, args.bus
        )),
        e => CliError::from(e),
    })?;
    let mut lines = Vec::new();
    for t in &args.topics {
        let tc = TopicConfig {
            slots: t.slots,
            payload_size: t.payload_size,
            delivery: t.delivery,
            ..Default::default()
        };
        match bus.topic_with(&t.name, &tc) {
            Ok(topic) => {
                let c = topic.config();
                lines.push(format!(
                    "  topic {}: {} slots of {}, up to {} publishers and {} subscribers",
                    t.name,
                    c.slots,
                    human_size(u64::from(c.payload_size)),
                    c.max_publishers,
                    c.max_subscribers
                ));
            }
            Err(e) => {
                // All or nothing: do not leave a half-made bus behind.
                drop(bus);
                let _ = Bus::remove(&args.bus);
                return Err(CliError::new(format!(
                    "topic {:?}: {e}; bus {:?} not created",
                    t.name, args.bus
                )));
            }
        }
    }
    let info = bus.info();
    let mut text = format!(
        "created bus {}: {}, mode {:04o}, up to {} topics\n",
        info.name,
        human_size(info.size),
        info.mode,
        info.max_topics
    );
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    out(&text)?;
    Ok(())
}

/// Arguments of `shmbus rm`.
#[derive(Debug, Args)]
#[command(after_help = "\
Removing a bus removes its name: processes that have it mapped keep working until they exit, \
and new opens fail. Use `shmbus gc` to remove only buses nobody uses.")]
pub struct RmArgs {
    /// The buses to remove.
    #[arg(required = true, value_name = "BUS")]
    pub buses: Vec<String>,
}

/// Runs `shmbus rm`.
pub fn run_rm(args: &RmArgs) -> CliResult {
    let maps = scan_mappings();
    let mut failed = false;
    for name in &args.buses {
        let report = BusReport::inspect(name, &maps);
        let mut users: Vec<u32> = report
            .procs
            .iter()
            .filter(|p| p.alive)
            .map(|p| p.pid)
            .collect();
        for p in &report.mapped_by {
            if !users.contains(p) {
                users.push(*p);
            }
        }
        users.sort_unstable();
        match Bus::remove(name) {
            Ok(()) if users.is_empty() => out(&format!("removed bus {name}\n"))?,
            Ok(()) => out(&format!(
                "removed bus {name} (still mapped by pid {}: they keep it until they exit)\n",
                join_pids(&users)
            ))?,
            Err(e) => {
                failed = true;
                let msg = match e {
                    BusError::NotFound(_) => {
                        format!("bus {name:?} does not exist (see `shmbus ls`)")
                    }
                    BusError::PermissionDenied(_) => format!(
                        "permission denied removing bus {name:?}{}",
                        report
                            .file
                            .map(|f| format!(" (owned by uid {})", f.uid))
                            .unwrap_or_default()
                    ),
                    BusError::Io(e) if e.raw_os_error() == Some(EPERM) => format!(
                        "not permitted to remove bus {name:?}{}",
                        report
                            .file
                            .map(|f| format!(" (owned by uid {}; /dev/shm is sticky)", f.uid))
                            .unwrap_or_default()
                    ),
                    e => format!("cannot remove bus {name:?}: {e}"),
                };
                eprintln!("shmbus: {msg}");
            }
        }
    }
    if failed {
        Err(CliError {
            message: String::new(),
            code: 1,
            quiet: true,
        })
    } else {
        Ok(())
    }
}

/// Arguments of `shmbus gc`.
#[derive(Debug, Args)]
#[command(after_help = "\
A bus is removed only when every process it names (its creator and the owners of the publisher \
and subscriber records of all its topics) is dead and no live process maps it. Buses that \
cannot be read (another user's, another shmbus version's, damaged) are skipped with the reason: \
remove those with `shmbus rm NAME` once you know nothing uses them.
Note: a bus made with `shmbus create` and not used yet names only its (exited) creator, so it \
counts as stale; use --min-age to spare recent buses.")]
pub struct GcArgs {
    /// Only say what would be removed.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Spare buses younger than DUR.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "0s")]
    pub min_age: Duration,
    /// One JSON object per bus, as an array.
    #[arg(long)]
    pub json: bool,
    /// Only consider these buses (default: every bus).
    #[arg(value_name = "BUS")]
    pub buses: Vec<String>,
}

/// What `gc` did with one bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Removed,
    WouldRemove,
    Skipped,
    Failed,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Action::Removed => "removed",
            Action::WouldRemove => "would remove",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        }
    }
}

/// Why a stale bus may go: `creator 123, pub:t 456 are dead`.
fn dead_list(r: &BusReport) -> String {
    let who: Vec<String> = r
        .procs
        .iter()
        .map(|p| format!("{} (pid {})", p.roles.join(", "), p.pid))
        .collect();
    if who.is_empty() {
        "no process is recorded".into()
    } else {
        format!("every known process is dead: {}", who.join("; "))
    }
}

/// Decides (and, unless `dry_run`, does) what to do with one bus.
fn collect_one(r: &BusReport, args: &GcArgs) -> (Action, String) {
    let name = &r.name;
    match r.state() {
        State::Ok => {
            let alive: Vec<String> = r
                .procs
                .iter()
                .filter(|p| p.alive)
                .map(|p| format!("pid {} ({})", p.pid, p.roles.join(", ")))
                .collect();
            let why = if alive.is_empty() {
                format!("in use: mapped by pid {}", join_pids(&r.mapped_by))
            } else {
                format!("in use: {} alive", alive.join(", "))
            };
            (Action::Skipped, why)
        }
        State::Unreadable(text) => {
            let why = match &r.unreadable {
                Some((Unreadable::PermissionDenied, _)) => format!(
                    "{text}: cannot tell whether it is in use; its owner (or root) can run \
                     `shmbus gc` or `shmbus rm {name}`"
                ),
                Some((Unreadable::CreatorDied(_), _)) => {
                    format!("{text}; if nothing uses it, remove it with `shmbus rm {name}`")
                }
                Some((Unreadable::Incompatible(_), _)) => format!(
                    "incompatible: {text}; if nothing uses it, remove it with `shmbus rm {name}`"
                ),
                // `shmbus rm` takes valid bus names only (it validates what it unlinks).
                Some((Unreadable::BadName, _)) => {
                    format!(
                        "unreadable: {text}; not a name shmbus creates: if it is not yours to \
                         keep, delete /dev/shm/shmbus.{name} by hand"
                    )
                }
                _ => format!("unreadable: {text}; if nothing uses it, `shmbus rm {name}`"),
            };
            (Action::Skipped, why)
        }
        State::Stale => {
            if let Some(age) = r.age()
                && age < args.min_age
            {
                return (
                    Action::Skipped,
                    format!("stale but only {} old (--min-age)", human_age(age)),
                );
            }
            let reason = dead_list(r);
            if args.dry_run {
                return (Action::WouldRemove, reason);
            }
            // Look again right before removing: someone may have attached meanwhile.
            let again = BusReport::inspect(name, &scan_mappings());
            if again.state() != State::Stale {
                return (Action::Skipped, "became in use while checking".into());
            }
            match Bus::remove(name) {
                Ok(()) => (Action::Removed, reason),
                Err(BusError::NotFound(_)) => {
                    (Action::Skipped, "already removed by someone else".into())
                }
                Err(BusError::PermissionDenied(_)) => (
                    Action::Skipped,
                    format!(
                        "stale, but permission denied removing it (owned by uid {}; ask its \
                         owner or root)",
                        r.file.map_or("?".into(), |f| f.uid.to_string())
                    ),
                ),
                Err(BusError::Io(e)) if e.raw_os_error() == Some(EPERM) => (
                    Action::Skipped,
                    format!(
                        "stale, but not permitted to remove it (owned by uid {}; ask its \
                         owner or root)",
                        r.file.map_or("?".into(), |f| f.uid.to_string())
                    ),
                ),
                Err(e) => (Action::Failed, format!("cannot remove: {e}")),
            }
        }
    }
}

/// Runs `shmbus gc`.
pub fn run_gc(args: &GcArgs) -> CliResult {
    let all = Bus::list().map_err(|e| CliError::new(format!("cannot list /dev/shm: {e}")))?;
    let mut missing = Vec::new();
    let names: Vec<String> = if args.buses.is_empty() {
        all
    } else {
        for n in &args.buses {
            if !all.contains(n) {
                missing.push(n.clone());
            }
        }
        args.buses
            .iter()
            .filter(|n| all.contains(n))
            .cloned()
            .collect()
    };
    let maps = scan_mappings();
    let mut results = Vec::new();
    for report in inspect_listed(&names, &maps) {
        let (action, why) = collect_one(&report, args);
        results.push((report.name.clone(), report.size(), action, why));
    }
    if args.json {
        let mut v: Vec<Value> = results
            .iter()
            .map(|(n, size, a, why)| {
                json!({"name": n, "size": size, "action": a.label().replace(' ', "_"), "reason": why})
            })
            .collect();
        for n in &missing {
            v.push(
                json!({"name": n, "size": null, "action": "not_found", "reason": "no such bus"}),
            );
        }
        out_json(&Value::Array(v))?;
    } else {
        let mut t = Table::new(&[
            ("ACTION", Align::Left),
            ("BUS", Align::Left),
            ("WHY", Align::Left),
        ]);
        for (n, _, a, why) in &results {
            t.row(vec![a.label().into(), n.clone(), why.clone()]);
        }
        let mut text = if t.is_empty() {
            String::new()
        } else {
            t.render("")
        };
        let freed: u64 = results
            .iter()
            .filter(|r| matches!(r.2, Action::Removed | Action::WouldRemove))
            .filter_map(|r| r.1)
            .sum();
        let count = |a: Action| results.iter().filter(|r| r.2 == a).count();
        let plural = |n: usize| if n == 1 { "" } else { "es" };
        let (removed, would, skipped) = (
            count(Action::Removed),
            count(Action::WouldRemove),
            count(Action::Skipped),
        );
        if args.dry_run {
            text.push_str(&format!(
                "dry run: would remove {would} bus{} ({}), skip {skipped}\n",
                plural(would),
                human_size(freed)
            ));
        } else {
            text.push_str(&format!(
                "removed {removed} bus{} ({}), skipped {skipped}\n",
                plural(removed),
                human_size(freed)
            ));
        }
        out(&text)?;
    }
    for n in &missing {
        eprintln!("shmbus: bus {n:?} does not exist");
    }
    if !missing.is_empty() || results.iter().any(|r| r.2 == Action::Failed) {
        return Err(CliError {
            message: String::new(),
            code: 1,
            quiet: true,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        assert_eq!(
            parse_topic_spec("sensors/imu:4096:1K"),
            Ok(TopicSpec {
                name: "sensors/imu".into(),
                slots: 4096,
                payload_size: 1024,
                delivery: Delivery::Lossy,
            })
        );
        assert_eq!(
            parse_topic_spec("cmd:8:64:lossless").map(|t| t.delivery),
            Ok(Delivery::Lossless)
        );
        assert!(parse_topic_spec("cmd:8:64:maybe").is_err());
        assert!(parse_topic_spec("imu:4096").is_err());
        assert!(parse_topic_spec("imu:x:12").is_err());
    }
}
