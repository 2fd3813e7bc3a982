//! The JSON report (schema 1), written by hand: another tool reads it, so its shape is stable.
//!
//! ```json
//! {"schema": 1,
//!  "machine": {"cpu": "...", "cores": 2, "smt_siblings": false, "kernel": "...",
//!              "clocksource": "...", "clock_read_ns": 20, "pinned": true},
//!  "runs": [{"scenario": "pingpong", "transport": "shmbus", "mode": "spin", "path": "copy",
//!            "payload_bytes": 64, "slots": 16384, "subscribers": 1, "rate_per_s": null, "repeat": 0,
//!            "count": 200000, "lost": 0,
//!            "p50_ns": 0, "p90_ns": 0, "p99_ns": 0, "p99_9_ns": 0, "p99_99_ns": 0,
//!            "max_ns": 0, "msgs_per_s": 0.0}]}
//! ```
//! One run object per scenario × transport × mode × payload × subscribers × repeat (and rate).
//! `transport` is one of `shmbus`, `c` (shmbus with a C echo), `floor`, `ring` (the minimal
//! seqlock ring), `ring2` (the same with 2 slots), `futex`, `pipe`, `unix`, `tcp`, `iceoryx2`
//! (with feature `bench-iceoryx2`), `aeron` (with feature `bench-aeron`);
//! `path` is `"copy"` or `"borrow"` for `shmbus` and `null` for every other transport.
//! `slots` is the ring size of the transports that have a ring (`shmbus`, `c`, `ring`,
//! `iceoryx2`: `--slots`, or 4 MiB / payload clamped to 8..16384; `ring2`: 2) and `null` for
//! the others
//! (added in schema 1 without a version bump: readers of the earlier output ignore it).
//! `smt_siblings` is `null` when unknown; `msgs_per_s` is round trips per second for ping-pong
//! and messages delivered per second (summed over subscribers) otherwise.

use std::fmt::Write as _;

use super::machine::Machine;
use super::report::RunRecord;
use super::transports::transport_slots;

/// Renders the whole report.
pub fn render(machine: &Machine, runs: &[RunRecord], slots: Option<usize>) -> String {
    let mut out = String::from("{\"schema\": 1,\n \"machine\": ");
    out.push_str(&machine_object(machine));
    out.push_str(",\n \"runs\": [");
    for (i, r) in runs.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(&run_object(r, slots));
    }
    out.push_str("\n ]}\n");
    out
}

/// The `machine` object.
fn machine_object(m: &Machine) -> String {
    format!(
        "{{\"cpu\": {}, \"cores\": {}, \"smt_siblings\": {}, \"kernel\": {}, \"clocksource\": {}, \
         \"clock_read_ns\": {}, \"pinned\": {}}}",
        string(&m.cpu),
        m.cores,
        m.smt_siblings.map_or("null".to_owned(), |b| b.to_string()),
        string(&m.kernel),
        string(&m.clocksource),
        number(m.clock_read_ns),
        m.pinned
    )
}

/// One `runs` element.
fn run_object(r: &RunRecord, slots: Option<usize>) -> String {
    let s = &r.summary;
    let ring_slots = transport_slots(r.spec.transport, r.spec.payload, slots);
    format!(
        "{{\"scenario\": {}, \"transport\": {}, \"mode\": {}, \"path\": {}, \
         \"payload_bytes\": {}, \"slots\": {}, \"subscribers\": {}, \"rate_per_s\": {}, \"repeat\": {}, \
         \"count\": {}, \"lost\": {}, \
         \"p50_ns\": {}, \"p90_ns\": {}, \"p99_ns\": {}, \"p99_9_ns\": {}, \"p99_99_ns\": {}, \
         \"max_ns\": {}, \"msgs_per_s\": {}, \"interrupts_per_s\": {}, \"preemptions\": {}}}",
        string(r.spec.scenario.as_str()),
        string(r.spec.transport.as_str()),
        string(r.spec.mode.as_str()),
        r.spec
            .path
            .map_or("null".to_owned(), |p| string(p.as_str())),
        r.spec.payload,
        ring_slots.map_or("null".to_owned(), |n| n.to_string()),
        r.spec.subscribers,
        r.spec.rate.map_or("null".to_owned(), |v| v.to_string()),
        r.repeat,
        r.count,
        r.lost,
        s.p50,
        s.p90,
        s.p99,
        s.p99_9,
        s.p99_99,
        s.max,
        number(r.msgs_per_s),
        r.interrupts_per_s.map_or("null".to_owned(), number),
        r.preemptions.map_or("null".to_owned(), |n| n.to_string())
    )
}

/// A JSON number with one decimal (JSON has no NaN or infinity: those become 0.0).
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0.0".to_owned()
    }
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn numbers_are_finite() {
        assert_eq!(number(f64::NAN), "0.0");
        assert_eq!(number(12.345), "12.3");
    }
}
