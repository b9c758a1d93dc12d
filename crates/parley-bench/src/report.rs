//! What a run prints: a human summary table, `--json` for machines, and
//! `--plot FILE`, a latency distribution chart as a hand-written SVG.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::stats::Latency;

/// The outcome of one scenario run.
pub(crate) struct Report {
    scenario: &'static str,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
    curves: Vec<(String, Latency)>,
    /// A line under the chart's title (the load).
    pub(crate) subtitle: String,
    /// False when a correctness check failed (the process then exits 1).
    pub(crate) passed: bool,
}

impl Report {
    /// An empty report.
    pub(crate) fn new(scenario: &'static str) -> Report {
        let mut json = Map::new();
        json.insert("scenario".into(), scenario.into());
        Report {
            scenario,
            rows: Vec::new(),
            json,
            curves: Vec::new(),
            subtitle: String::new(),
            passed: true,
        }
    }

    /// A line of the human table.
    pub(crate) fn row(&mut self, label: impl Into<String>, value: impl Into<String>) {
        self.rows.push((label.into(), value.into()));
    }

    /// A field of the JSON output.
    pub(crate) fn set(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.json.insert(key.into(), value);
    }

    /// A latency distribution: a table row, a JSON field and a plot curve.
    pub(crate) fn latency(&mut self, key: &str, label: &str, latency: &Latency) {
        let summary = latency.summary();
        self.row(label, summary.line());
        self.set(key, summary);
        self.curves.push((label.to_owned(), latency.clone()));
    }

    /// The table, for people.
    pub(crate) fn table(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let mut out = format!("\nparley bench {}\n", self.scenario);
        for (label, value) in &self.rows {
            let _ = writeln!(out, "  {label:<width$}  {value}");
        }
        out
    }

    /// The JSON object, for machines.
    pub(crate) fn json(&self) -> Value {
        let mut json = self.json.clone();
        json.insert("passed".into(), self.passed.into());
        Value::Object(json)
    }

    /// Prints the table (stdout) or the JSON (stdout, one line).
    pub(crate) fn print(&self, json: bool) {
        if json {
            println!("{}", self.json());
        } else {
            print!("{}", self.table());
        }
    }

    /// Writes the latency chart; false when the scenario measured no
    /// latency distribution (connections, chaos), so there is nothing to
    /// draw.
    pub(crate) fn plot(&self, path: &Path) -> anyhow::Result<bool> {
        if self.curves.is_empty() {
            return Ok(false);
        }
        std::fs::write(path, svg(self.scenario, &self.subtitle, &self.curves))?;
        Ok(true)
    }
}

/// Highest "nines" on the x axis: 99.9999 %.
const NINES: f64 = 6.0;

/// A percentile distribution chart: x is the percentile on a "nines" scale
/// (50, 90, 99, 99.9, ...), y the latency in ms.
pub(crate) fn svg(title: &str, subtitle: &str, curves: &[(String, Latency)]) -> String {
    let (w, h) = (800.0, 480.0);
    let (left, right, top, bottom) = (70.0, 40.0, 50.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let points: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(label, l)| (label.clone(), l.percentile_curve()))
        .collect();
    let max_ms = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, ms)| ms))
        .fold(0.0f64, f64::max);
    let y_max = nice_ceiling(max_ms.max(0.001));
    let x_of = |percentile: f64| {
        let tail = (1.0 - percentile / 100.0).max(10f64.powf(-NINES));
        let nines = -tail.log10();
        left + pw * (nines / NINES)
    };
    let y_of = |ms: f64| top + ph * (1.0 - ms / y_max);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">parley bench {} — latency by percentile</text>"#,
        w / 2.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#555">{}</text>"##,
        w / 2.0,
        escape(subtitle)
    );
    for (i, label) in ["0", "90", "99", "99.9", "99.99", "99.999", "99.9999"]
        .iter()
        .enumerate()
    {
        let x = left + pw * (i as f64 / NINES);
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}%</text>"##,
            top + ph,
            top + ph + 16.0
        );
    }
    for i in 0..=5 {
        let ms = y_max * i as f64 / 5.0;
        let y = y_of(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            trim_float(ms)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (ms)</text>"#,
        left + pw / 2.0,
        h - 18.0,
        top + ph / 2.0,
        top + ph / 2.0
    );
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
    for (i, (label, curve)) in points.iter().enumerate() {
        let color = colors[i % colors.len()];
        let path: Vec<String> = curve
            .iter()
            .map(|&(p, ms)| format!("{:.1},{:.1}", x_of(p), y_of(ms)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = top + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            left + 12.0,
            ly - 4.0,
            left + 32.0,
            ly,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// 1, 2, 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn table_json_and_plot() {
        let mut report = Report::new("direct");
        let mut l = Latency::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        report.row("delivered", "1,000 msg/s");
        report.latency("send_to_deliver", "send→deliver", &l);
        report.set("delivered_per_sec", 1000.0);
        let table = report.table();
        assert!(table.contains("delivered"), "{table}");
        assert!(table.contains("p99 99.0"), "{table}");
        let json = report.json();
        assert_eq!(json["scenario"], "direct");
        assert_eq!(json["passed"], true);
        assert_eq!(json["send_to_deliver"]["count"], 100);
        let svg = svg("direct <x>", "open loop", &[("a&b".into(), l)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline") && svg.contains("a&amp;b") && svg.contains("&lt;x&gt;"));
    }

    #[test]
    fn nice_axis_ceilings() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(42.0), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(trim_float(2.500), "2.5");
    }
}
