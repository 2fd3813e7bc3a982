//! `shmbus hz BUS TOPIC`: a topic's message rate and inter-arrival statistics, printed each
//! second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use shmbus::{RecvError, SubscriberConfig, WaitStrategy};

use super::{
    CliResult, human_duration, human_rate, interrupted, open_bus, out, parse_positive_duration,
};

/// Arguments of `shmbus hz`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line: RATE is the messages received in the last report period divided by its length; \
MIN/MEAN/MAX/STDDEV are over the last --window intervals between consecutive messages \
(an interval that spans lost messages is not counted). By default intervals are measured \
at arrival in this process; --publish-time uses the publishers' CLOCK_MONOTONIC stamps \
instead, which removes this process's wake-up jitter. --publish-time needs publishers that \
stamp their messages (timestamps on: `shmbus pub` does, library publishers only with \
PublisherConfig::timestamps); an unstamped message stops it with an error.")]
pub struct HzArgs {
    /// The bus name.
    pub bus: String,
    /// The topic name (must exist).
    pub topic: String,
    /// Intervals kept for the statistics.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,
    /// Report period.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_positive_duration)]
    pub every: Duration,
    /// Stop after N messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stop after DUR.
    #[arg(long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,
    /// Measure intervals between publisher timestamps rather than arrival times (needs
    /// publishers that stamp their messages, as `shmbus pub` does).
    #[arg(long)]
    pub publish_time: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Min, mean, max and standard deviation of a set of intervals, in ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Smallest interval.
    pub min: f64,
    /// Mean interval.
    pub mean: f64,
    /// Largest interval.
    pub max: f64,
    /// Population standard deviation.
    pub stddev: f64,
}

/// Statistics of `xs` (`None` if empty).
pub fn stats(xs: &VecDeque<f64>) -> Option<Stats> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(0.0, f64::max);
    Some(Stats {
        min,
        mean,
        max,
        stddev: var.sqrt(),
    })
}

fn dur(ns: f64) -> String {
    human_duration(Duration::from_nanos(ns.max(0.0) as u64))
}

/// Runs `shmbus hz`.
pub fn run(args: &HzArgs) -> CliResult {
    let bus = open_bus(&args.bus)?;
    let topic = super::open_existing_topic(&bus, &args.topic)?;
    let cfg = SubscriberConfig {
        wait: WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(20),
        },
        ..Default::default()
    };
    let mut sub = topic
        .subscriber_with(&cfg)
        .map_err(|e| super::topic_error(&args.bus, &args.topic, e))?;
    super::install_interrupt_handler();
    let mut buf = vec![0u8; sub.capacity()];
    let start = Instant::now();
    let mut window: VecDeque<f64> = VecDeque::new();
    let mut prev: Option<u64> = None; // ns of the previous message (arrival or stamp)
    let (mut total, mut lost, mut in_period, mut lost_in_period) = (0u64, 0u64, 0u64, 0u64);
    let mut period_start = start;
    let epoch = Instant::now();
    loop {
        let now = Instant::now();
        let done = interrupted()
            || args.count.is_some_and(|n| total >= n)
            || args
                .duration
                .is_some_and(|d| now.duration_since(start) >= d);
        if done || now.duration_since(period_start) >= args.every {
            let secs = now.duration_since(period_start).as_secs_f64();
            if secs > 0.0 && (in_period > 0 || !done) {
                report(args, start, in_period, lost_in_period, secs, &window)?;
            }
            period_start = now;
            in_period = 0;
            lost_in_period = 0;
        }
        if done {
            break;
        }
        let mut until = period_start + args.every;
        if let Some(d) = args.duration {
            until = until.min(start + d);
        }
        let slice = until
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        match sub.recv_timeout(&mut buf, slice) {
            Ok(m) => {
                let t = if args.publish_time {
                    if m.timestamp_ns == 0 {
                        return super::fail(format!(
                            "--publish-time: message {} carries no publish time (its publisher \
                             does not stamp messages); run without --publish-time",
                            m.seq
                        ));
                    }
                    m.timestamp_ns
                } else {
                    Instant::now().duration_since(epoch).as_nanos() as u64
                };
                if let Some(p) = prev {
                    window.push_back(t.saturating_sub(p) as f64);
                    if window.len() as u64 > args.window {
                        window.pop_front();
                    }
                }
                prev = Some(t);
                total += 1;
                in_period += 1;
            }
            Err(RecvError::Lost { count, .. }) => {
                lost += count;
                lost_in_period += count;
                prev = None; // the next interval would span the gap
            }
            Err(RecvError::Timeout | RecvError::Empty) => {}
            Err(e) => return super::fail(e.to_string()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
    if args.json {
        out(&format!(
            "{}\n",
            json!({"total": total, "lost": lost, "elapsed_s": secs, "rate": rate})
        ))?;
    } else {
        out(&format!(
            "total: {total} messages in {}, {} msg/s, lost {lost}\n",
            human_duration(start.elapsed()),
            human_rate(rate)
        ))?;
    }
    Ok(())
}

fn report(
    args: &HzArgs,
    start: Instant,
    n: u64,
    lost: u64,
    secs: f64,
    window: &VecDeque<f64>,
) -> CliResult {
    let rate = n as f64 / secs;
    let st = stats(window);
    if args.json {
        let v = json!({
            "elapsed_s": start.elapsed().as_secs_f64(),
            "messages": n,
            "lost": lost,
            "rate": rate,
            "window": window.len(),
            "min_ns": st.map(|s| s.min),
            "mean_ns": st.map(|s| s.mean),
            "max_ns": st.map(|s| s.max),
            "stddev_ns": st.map(|s| s.stddev),
        });
        out(&format!("{v}\n"))?;
        return Ok(());
    }
    let line = match st {
        Some(s) => format!(
            "rate {:>8} msg/s  min {:>8}  mean {:>8}  max {:>8}  stddev {:>8}  window {:>5}  lost {lost}\n",
            human_rate(rate),
            dur(s.min),
            dur(s.mean),
            dur(s.max),
            dur(s.stddev),
            window.len(),
        ),
        None if n == 0 => "no messages\n".to_owned(),
        None => format!(
            "rate {:>8} msg/s  (need two messages for intervals)  lost {lost}\n",
            human_rate(rate)
        ),
    };
    out(&line)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_intervals() {
        let xs: VecDeque<f64> = [1.0, 2.0, 3.0].into_iter().collect();
        let s = stats(&xs).unwrap();
        assert_eq!((s.min, s.mean, s.max), (1.0, 2.0, 3.0));
        assert!((s.stddev - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(stats(&VecDeque::new()).is_none());
    }
}
