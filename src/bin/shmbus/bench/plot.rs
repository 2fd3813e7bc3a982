//! A hand-written SVG of the latency percentile curves, as HdrHistogram's plotter draws them:
//! latency on a log y axis against `1 / (1 - percentile)` on a log x axis labelled 50%, 90%, 99%,
//! 99.9%, 99.99%, ... One panel per scenario (and payload, rate, subscribers), one line per
//! transport/mode, the same colour for a transport/mode in every panel, a legend in each panel.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::hist;
use super::plan::{DataPath, Mode, Scenario, Transport};
use super::report::{Row, fmt_bytes};

/// Panel width and height in px.
const PANEL: (f64, f64) = (640.0, 380.0);
/// Plot area margins inside a panel: left, right (legend), top, bottom.
const MARGIN: (f64, f64, f64, f64) = (64.0, 170.0, 34.0, 44.0);
/// Panels per line.
const COLUMNS: usize = 2;
/// Line colours (Okabe-Ito and Tableau, readable on white).
const PALETTE: [&str; 12] = [
    "#000000", "#e69f00", "#56b4e9", "#009e73", "#d55e00", "#0072b2", "#cc79a7", "#999999",
    "#8c564b", "#bcbd22", "#17becf", "#f0e442",
];

/// What puts two rows in the same panel: scenario, rate, subscribers, payload.
type PanelKey = (Scenario, Option<u64>, usize, usize);

/// What gives a line its colour and label: transport, mode, shmbus path.
type SeriesKey = (Transport, Mode, Option<DataPath>);

/// One line: a label and its points `(1/(1-q), ns)`.
struct Series {
    /// `transport/mode` (`/borrow` on the borrow path).
    key: SeriesKey,
    /// Its legend text.
    label: String,
    /// The percentile curve.
    points: Vec<(f64, u64)>,
}

/// Renders every row's merged histogram, grouped in panels.
pub fn render(rows: &[Row], title: &str) -> String {
    let mut panels: BTreeMap<PanelKey, (String, Vec<Series>)> = BTreeMap::new();
    let mut keys: Vec<SeriesKey> = rows
        .iter()
        .map(|r| (r.spec.transport, r.spec.mode, r.spec.path))
        .collect();
    keys.sort();
    keys.dedup();
    for r in rows.iter().filter(|r| !r.merged.is_empty()) {
        let s = &r.spec;
        let mut name = format!("{} {}", s.scenario_label(), fmt_bytes(s.payload));
        if s.subscribers > 1 {
            let _ = write!(name, " 1->{}", s.subscribers);
        }
        let key = (s.scenario, s.rate, s.subscribers, s.payload);
        panels
            .entry(key)
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push(Series {
                key: (s.transport, s.mode, s.path),
                label: s.series_label(),
                points: hist::curve(&r.merged),
            });
    }
    let rows_of_panels = panels.len().div_ceil(COLUMNS).max(1);
    let (w, h) = (
        PANEL.0 * COLUMNS as f64,
        PANEL.1 * rows_of_panels as f64 + 40.0,
    );
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        w / 2.0,
        escape(title)
    );
    for (i, (name, series)) in panels.values().enumerate() {
        let origin = (
            (i % COLUMNS) as f64 * PANEL.0,
            40.0 + (i / COLUMNS) as f64 * PANEL.1,
        );
        panel(&mut svg, origin, name, series, &keys);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Draws one panel with its axes, lines and legend.
fn panel(
    svg: &mut String,
    (ox, oy): (f64, f64),
    name: &str,
    series: &[Series],
    keys: &[SeriesKey],
) {
    let (x0, y0) = (ox + MARGIN.0, oy + MARGIN.2);
    let (pw, ph) = (PANEL.0 - MARGIN.0 - MARGIN.1, PANEL.1 - MARGIN.2 - MARGIN.3);
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = x_decades(all.clone().map(|p| p.0));
    let y_lo = all.clone().map(|p| p.1.max(1)).min().unwrap_or(1) as f64;
    let y_hi = all.map(|p| p.1.max(1)).max().unwrap_or(10) as f64;
    let (y_min, y_max) = (
        y_lo.log10().floor(),
        y_hi.log10().ceil().max(y_lo.log10().floor() + 1.0),
    );
    let px = |x: f64| x0 + x.max(1.0).log10().min(x_max) / x_max * pw;
    let py = |ns: f64| y0 + ph - (ns.max(1.0).log10() - y_min) / (y_max - y_min) * ph;
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n\
         <rect x=\"{x0}\" y=\"{y0}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>",
        x0 + pw / 2.0,
        oy + 20.0,
        escape(name)
    );
    for (label, x) in x_ticks(x_max) {
        let gx = px(x);
        let _ = writeln!(
            svg,
            "<line x1=\"{gx:.1}\" y1=\"{y0}\" x2=\"{gx:.1}\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{gx:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            y0 + ph,
            y0 + ph + 14.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile</text>",
        x0 + pw / 2.0,
        y0 + ph + 32.0
    );
    for d in (y_min as i32)..=(y_max as i32) {
        let gy = py(10f64.powi(d));
        let _ = writeln!(
            svg,
            "<line x1=\"{x0}\" y1=\"{gy:.1}\" x2=\"{}\" y2=\"{gy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 + pw,
            x0 - 6.0,
            gy + 4.0,
            decade_label(d)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[keys.iter().position(|k| *k == s.key).unwrap_or(0) % PALETTE.len()];
        let mut points = String::new();
        for &(x, ns) in &s.points {
            let _ = write!(points, "{:.1},{:.1} ", px(x), py(ns as f64));
        }
        let (lx, ly) = (x0 + pw + 12.0, y0 + 10.0 + i as f64 * 16.0);
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" points=\"{}\"/>\n\
             <line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            points.trim_end(),
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
}

/// Decades of the x axis (`1/(1-q)` up to `10^x_max`): enough for the last point, which is the
/// maximum at the sample count (ping-pong merges millions of samples), at least 4 (99.99%) and at
/// most 8 (99.999999%, where the tick labels still fit); points beyond are drawn at the edge.
fn x_decades(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(1.0f64, f64::max).log10().ceil().clamp(4.0, 8.0)
}

/// X tick labels and positions (`1/(1-q)`) up to `10^x_max` (the left edge is 0%).
fn x_ticks(x_max: f64) -> Vec<(String, f64)> {
    let mut ticks = vec![("50%".to_owned(), 2.0), ("90%".to_owned(), 10.0)];
    let mut nines = "99".to_owned();
    let mut x = 100.0;
    while x <= 10f64.powf(x_max) + 0.5 {
        ticks.push((format!("{nines}%"), x));
        nines = if nines.contains('.') {
            format!("{nines}9")
        } else {
            format!("{nines}.9")
        };
        x *= 10.0;
    }
    ticks
}

/// `1ns`, `10ns`, `100ns`, `1µs`, ...
fn decade_label(d: i32) -> String {
    let units = ["ns", "µs", "ms", "s"];
    let unit = (d / 3).clamp(0, 3);
    let value = 10u64.pow(u32::try_from(d - unit * 3).unwrap_or(0));
    format!("{value}{}", units[usize::try_from(unit).unwrap_or(0)])
}

/// Escapes text for SVG.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels() {
        let labels: Vec<String> = x_ticks(4.0).into_iter().map(|t| t.0).collect();
        assert_eq!(labels, ["50%", "90%", "99%", "99.9%", "99.99%"]);
        assert_eq!(decade_label(0), "1ns");
        assert_eq!(decade_label(4), "10µs");
        assert_eq!(decade_label(9), "1s");
    }

    #[test]
    fn the_axis_reaches_the_maximum_of_millions_of_samples() {
        // Three merged 1 s ping-pong repeats: about 1.5 * 10^7 samples, the max drawn at that x.
        assert_eq!(x_decades([2.0, 1e5, 1.5e7].into_iter()), 8.0);
        assert_eq!(x_decades([2.0, 10.0].into_iter()), 4.0);
        assert_eq!(x_decades([1e12].into_iter()), 8.0);
        let labels: Vec<String> = x_ticks(8.0).into_iter().map(|t| t.0).collect();
        assert_eq!(labels.last().map(String::as_str), Some("99.999999%"));
    }
}
