//! `shmbus ls`: the buses on this machine and their state.

use clap::Args;
use serde_json::Value;

use super::procs::{BusReport, State, inspect_listed, scan_mappings};
use super::{Align, CliResult, Table, human_age, human_size, out, out_json};

/// Arguments of `shmbus ls`.
#[derive(Debug, Args)]
#[command(after_help = "\
STATE is `ok` (some process named by the bus is alive, or a live process maps it), `stale` \
(every known process is dead: `shmbus gc` removes it) or `unreadable` (with the reason).
PROCS counts the distinct processes named by the bus: its creator and the publisher and \
subscriber records of every topic, as alive/dead.")]
pub struct LsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `shmbus ls`.
pub fn run(args: &LsArgs) -> CliResult {
    let names = shmbus::Bus::list()
        .map_err(|e| super::CliError::new(format!("cannot list /dev/shm: {e}")))?;
    let maps = scan_mappings();
    let reports: Vec<BusReport> = inspect_listed(&names, &maps).collect();
    if args.json {
        out_json(&Value::Array(
            reports.iter().map(BusReport::to_json).collect(),
        ))?;
        return Ok(());
    }
    if reports.is_empty() {
        out("no buses (nothing under /dev/shm/shmbus.*)\n")?;
        return Ok(());
    }
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("SIZE", Align::Right),
        ("CREATOR", Align::Left),
        ("AGE", Align::Right),
        ("TOPICS", Align::Right),
        ("PROCS", Align::Right),
        ("STATE", Align::Left),
    ]);
    for r in &reports {
        let (alive, dead) = r.counts();
        let creator = match &r.info {
            Some(i) => format!(
                "{} ({})",
                i.creator_pid,
                if i.creator_alive { "alive" } else { "dead" }
            ),
            None => "-".into(),
        };
        let state = match r.state() {
            State::Unreadable(why) => format!("unreadable: {why}"),
            State::Ok if alive == 0 => format!("ok (mapped by pid {})", join_pids(&r.mapped_by)),
            s => s.label().to_owned(),
        };
        t.row(vec![
            r.name.clone(),
            r.size().map_or("-".into(), human_size),
            creator,
            r.age().map_or("-".into(), human_age),
            r.info
                .as_ref()
                .map_or("-".into(), |i| format!("{}/{}", i.topics, i.max_topics)),
            if r.info.is_some() {
                format!("{alive}/{dead}")
            } else {
                "-".into()
            },
            state,
        ]);
    }
    out(&t.render(""))?;
    Ok(())
}

/// `12, 34, 56`.
pub fn join_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
