//! Who uses a bus: the processes its header and endpoint records name (creator, publishers,
//! subscribers), the processes that map it (from `/proc/*/maps`), and the resulting state
//! (ok / stale / unreadable) shared by `ls` and `gc`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde_json::{Value, json};
use shmbus::{Bus, BusError, BusInfo, TopicStats};

/// A process named by a bus's header or records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownProc {
    /// Process id.
    pub pid: u32,
    /// Whether it still runs (as the library judges it: pid and start time).
    pub alive: bool,
    /// Its roles, e.g. `creator`, `pub:imu`, `sub:imu`.
    pub roles: Vec<String>,
}

/// Facts from `stat` on the shared-memory object, readable even when the bus is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    /// Size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Last status change (about the creation time), seconds since the Unix epoch.
    pub ctime: i64,
}

/// Why a bus could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Another user's segment, or a mode that excludes us.
    PermissionDenied,
    /// Made by another layout version or build of shmbus.
    Incompatible(String),
    /// The header's state word says "initialising" and the pid next to it is dead: either the
    /// creator died mid-creation, or the object is not a shmbus bus at all (the library checks
    /// the state word before the magic number, so it cannot tell these apart).
    CreatorDied(u32),
    /// A `shmbus.*` object whose name shmbus would not give a bus (a forbidden character, too
    /// long, a leading dot): not made by shmbus, and `shmbus rm` does not take such names.
    BadName,
    /// Anything else (corrupt header, still initialising, I/O error).
    Other(String),
}

/// The state of a bus, as `ls` shows it and `gc` acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Some known or mapping process is alive.
    Ok,
    /// Every known process is dead and no live process maps it.
    Stale,
    /// The header could not be read; the text says why.
    Unreadable(String),
}

impl State {
    /// `ok`, `stale` or `unreadable`.
    pub fn label(&self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Stale => "stale",
            State::Unreadable(_) => "unreadable",
        }
    }
}

/// Everything the tools know about one bus.
#[derive(Debug)]
pub struct BusReport {
    /// The bus name.
    pub name: String,
    /// `stat` of the object, if it could be read.
    pub file: Option<FileFacts>,
    /// The header facts, when the bus could be opened.
    pub info: Option<BusInfo>,
    /// Topic counters, when the bus could be opened.
    pub topics: Vec<TopicStats>,
    /// Why the bus could not be opened.
    pub unreadable: Option<(Unreadable, String)>,
    /// Processes named by the header and the endpoint records, by pid.
    pub procs: Vec<KnownProc>,
    /// Live processes (other than this one) that map the object.
    pub mapped_by: Vec<u32>,
    /// The object was removed while we looked (listed, then not found): nothing to report.
    gone: bool,
}

/// Inspects each bus of a listing (`Bus::list`), leaving out those removed since it was taken:
/// a bus gone before we looked at it is not unreadable, just no longer there.
pub fn inspect_listed<'a>(
    names: &'a [String],
    maps: &'a HashMap<String, Vec<u32>>,
) -> impl Iterator<Item = BusReport> + 'a {
    names
        .iter()
        .map(|n| BusReport::inspect(n, maps))
        .filter(|r| !r.gone)
}

impl BusReport {
    /// Inspects bus `name`; `maps` is the result of [`scan_mappings`].
    pub fn inspect(name: &str, maps: &HashMap<String, Vec<u32>>) -> BusReport {
        let file = std::fs::metadata(format!("/dev/shm/shmbus.{name}"))
            .ok()
            .map(|m| FileFacts {
                size: m.size(),
                uid: m.uid(),
                mode: m.mode() & 0o7777,
                ctime: m.ctime(),
            });
        let mapped_by = maps.get(name).cloned().unwrap_or_default();
        let mut report = BusReport {
            name: name.to_owned(),
            file,
            info: None,
            topics: Vec::new(),
            unreadable: None,
            procs: Vec::new(),
            mapped_by,
            gone: false,
        };
        let cfg = super::tool_config();
        match Bus::open_with(name, &cfg) {
            Ok(bus) => {
                let info = bus.info();
                let mut procs: BTreeMap<u32, KnownProc> = BTreeMap::new();
                let mut add = |pid: u32, alive: bool, role: String| {
                    let p = procs.entry(pid).or_insert(KnownProc {
                        pid,
                        alive,
                        roles: vec![],
                    });
                    p.alive |= alive;
                    if !p.roles.contains(&role) {
                        p.roles.push(role);
                    }
                };
                add(info.creator_pid, info.creator_alive, "creator".into());
                let topics = bus.stats();
                for t in &topics {
                    for p in &t.publishers {
                        add(p.pid, p.alive, format!("pub:{}", t.name));
                    }
                    for s in &t.subscribers {
                        add(s.pid, s.alive, format!("sub:{}", t.name));
                    }
                }
                report.procs = procs.into_values().collect();
                report.topics = topics;
                report.info = Some(info);
            }
            Err(BusError::NotFound(_)) => report.gone = true,
            Err(e) => {
                let kind = match &e {
                    BusError::PermissionDenied(_) => Unreadable::PermissionDenied,
                    BusError::VersionMismatch { .. } | BusError::LayoutMismatch { .. } => {
                        Unreadable::Incompatible(e.to_string())
                    }
                    BusError::CreatorDied { pid } => Unreadable::CreatorDied(*pid),
                    BusError::InvalidName(_) => Unreadable::BadName,
                    _ => Unreadable::Other(e.to_string()),
                };
                let mut text = e.to_string();
                if matches!(kind, Unreadable::PermissionDenied)
                    && let Some(f) = &report.file
                {
                    text = format!(
                        "permission denied (owner uid {}, mode {:04o})",
                        f.uid, f.mode
                    );
                }
                if let Unreadable::CreatorDied(pid) = kind {
                    text = format!(
                        "never marked ready, and the pid it names ({pid}) is dead: its creator \
                         died while creating it, or it is not a shmbus bus"
                    );
                }
                report.unreadable = Some((kind, text));
            }
        }
        report
    }

    /// Known processes alive and dead: `(alive, dead)`.
    pub fn counts(&self) -> (usize, usize) {
        let alive = self.procs.iter().filter(|p| p.alive).count();
        (alive, self.procs.len() - alive)
    }

    /// The bus's state.
    pub fn state(&self) -> State {
        match &self.unreadable {
            Some((_, text)) => State::Unreadable(text.clone()),
            None if self.counts().0 == 0 && self.mapped_by.is_empty() => State::Stale,
            None => State::Ok,
        }
    }

    /// The age of the bus (from its header, or from the object's ctime).
    pub fn age(&self) -> Option<Duration> {
        match (&self.info, &self.file) {
            (Some(i), _) => Some(super::age_of(i.created_at_unix_ns)),
            (None, Some(f)) => Some(super::age_of(
                u64::try_from(f.ctime).unwrap_or(0) * 1_000_000_000,
            )),
            _ => None,
        }
    }

    /// The size in bytes (from the header, or from `stat`).
    pub fn size(&self) -> Option<u64> {
        self.info
            .as_ref()
            .map(|i| i.size)
            .or(self.file.map(|f| f.size))
    }

    /// The report as JSON (the `ls --json` element).
    pub fn to_json(&self) -> Value {
        let (alive, dead) = self.counts();
        let state = self.state();
        json!({
            "name": self.name,
            "state": state.label(),
            "error": self.unreadable.as_ref().map(|(_, t)| t.clone()),
            "size": self.size(),
            "mode": self.info.as_ref().map(|i| i.mode).or(self.file.map(|f| f.mode)),
            "owner_uid": self.file.map(|f| f.uid),
            "creator_pid": self.info.as_ref().map(|i| i.creator_pid),
            "creator_alive": self.info.as_ref().map(|i| i.creator_alive),
            "created_at_unix_ns": self.info.as_ref().map(|i| i.created_at_unix_ns),
            "age_s": self.age().map(|a| a.as_secs_f64()),
            "topics": self.info.as_ref().map(|i| i.topics),
            "max_topics": self.info.as_ref().map(|i| i.max_topics),
            "processes": { "alive": alive, "dead": dead },
            "pids": self.procs.iter().map(|p| json!({
                "pid": p.pid, "alive": p.alive, "roles": p.roles,
            })).collect::<Vec<_>>(),
            "mapped_by": self.mapped_by,
        })
    }
}

/// Scans `/proc/*/maps` for mappings of `/dev/shm/shmbus.*` objects: bus name → pids of live
/// processes (other than this one) that map it. Mappings of removed objects (`(deleted)`) are
/// ignored: they belong to an older object of that name. Processes whose maps we may not read
/// (other users' when not root) are not seen.
pub fn scan_mappings() -> HashMap<String, Vec<u32>> {
    let me = std::process::id();
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        for line in maps.lines() {
            let Some(at) = line.find("/dev/shm/shmbus.") else {
                continue;
            };
            let name = &line[at + "/dev/shm/shmbus.".len()..];
            if name.ends_with(" (deleted)") {
                continue;
            }
            let pids = out.entry(name.to_owned()).or_default();
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    for pids in out.values_mut() {
        pids.sort_unstable();
    }
    out
}
