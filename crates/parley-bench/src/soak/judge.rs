//! The soak's report rows and its end verdict: one [`Row`] per interval
//! (server RSS, descriptors, CPU, latency, rates), the fixed-width
//! [`table`] they print as, and [`judge`], which turns the rows and the
//! delivery checks into a [`Judgement`]. Pure arithmetic, unit-tested
//! here, kept apart from the load generator in `soak/mod.rs`.

use serde::Serialize;

use super::MAX_RSS_GROWTH_PCT;
use crate::fmt_rate;
use crate::stats::fmt_ms;
use crate::target::Fds;

/// One report row: what the server and the load did in one interval.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct Row {
    /// End of the interval, seconds since the load started.
    pub(crate) at_secs: f64,
    /// Server VmRSS in KiB.
    pub(crate) rss_kib: Option<u64>,
    /// Server open descriptors (all, sockets).
    pub(crate) fds: Option<Fds>,
    /// Server CPU over the interval, in cores.
    pub(crate) cpu_cores: Option<f64>,
    /// Median send→deliver of the interval's deliveries.
    pub(crate) p50_ms: f64,
    /// 99th percentile of the same.
    pub(crate) p99_ms: f64,
    /// Acks per second.
    pub(crate) msgs_per_sec: f64,
    /// Errors of any kind in the interval.
    pub(crate) errors: u64,
    /// Reconnects in the interval.
    pub(crate) reconnects: u64,
    /// Group members added or removed in the interval.
    pub(crate) churn: u64,
}

impl Row {
    /// The table header matching [`Row::line`].
    pub(crate) const HEADER: &'static str = "    min      RSS MiB    fds  socks   cpu    p50 ms    p99 ms       msg/s  errors  reconn  churn";

    /// One fixed-width table line.
    pub(crate) fn line(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "?".to_owned());
        format!(
            "{:>7.1}  {:>11}  {:>5}  {:>5}  {:>4}  {:>8}  {:>8}  {:>10}  {:>6}  {:>6}  {:>5}",
            self.at_secs / 60.0,
            opt(self.rss_kib.map(|k| format!("{:.1}", k as f64 / 1024.0))),
            opt(self.fds.map(|f| f.all.to_string())),
            opt(self.fds.map(|f| f.sockets.to_string())),
            opt(self.cpu_cores.map(|c| format!("{c:.2}"))),
            fmt_ms(self.p50_ms),
            fmt_ms(self.p99_ms),
            fmt_rate(self.msgs_per_sec),
            self.errors,
            self.reconnects,
            self.churn,
        )
    }
}

/// The table of rows, header first.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(Row::HEADER);
    for row in rows {
        out.push('\n');
        out.push_str(&row.line());
    }
    out
}

/// The end-of-run verdict.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct Judgement {
    /// RSS at the end of the warm-up (the last warm-up row), KiB.
    pub(crate) rss_baseline_kib: Option<u64>,
    /// RSS of the last row, KiB.
    pub(crate) rss_final_kib: Option<u64>,
    /// (final − baseline) / baseline, in percent.
    pub(crate) rss_growth_pct: Option<f64>,
    /// Growth under [`MAX_RSS_GROWTH_PCT`]; `None`: not measured, or no
    /// row after the warm-up.
    pub(crate) rss_ok: Option<bool>,
    /// Server descriptors after setup, before any socket opened.
    pub(crate) fds_before: Option<Fds>,
    /// Server descriptors after every socket closed.
    pub(crate) fds_after: Option<Fds>,
    /// No more sockets after than before; `None`: not measured.
    pub(crate) fds_ok: Option<bool>,
    /// The delivery checks were clean and everything was answered.
    pub(crate) verification_ok: bool,
    /// All of the above that was measured.
    pub(crate) passed: bool,
}

/// Judges a run: RSS growth from the last warm-up row to the last row,
/// socket descriptors before and after, and the delivery checks.
pub(crate) fn judge(
    rows: &[Row],
    warmup: usize,
    fds_before: Option<Fds>,
    fds_after: Option<Fds>,
    verification_ok: bool,
) -> Judgement {
    let baseline = warmup
        .checked_sub(1)
        .and_then(|i| rows.get(i))
        .or(rows.first());
    // A verdict on growth needs at least one row after the baseline.
    let measured = rows.len() > warmup.max(1);
    let rss_baseline_kib = baseline.and_then(|r| r.rss_kib);
    let rss_final_kib = rows.last().and_then(|r| r.rss_kib);
    let rss_growth_pct = match (rss_baseline_kib, rss_final_kib) {
        (Some(base), Some(last)) if measured && base > 0 => {
            Some((last as f64 - base as f64) * 100.0 / base as f64)
        }
        _ => None,
    };
    let rss_ok = rss_growth_pct.map(|g| g < MAX_RSS_GROWTH_PCT);
    let fds_ok = match (fds_before, fds_after) {
        (Some(before), Some(after)) => Some(after.sockets <= before.sockets),
        _ => None,
    };
    Judgement {
        rss_baseline_kib,
        rss_final_kib,
        rss_growth_pct,
        rss_ok,
        fds_before,
        fds_after,
        fds_ok,
        verification_ok,
        passed: verification_ok && rss_ok != Some(false) && fds_ok != Some(false),
    }
}

impl Judgement {
    /// Table rows.
    pub(crate) fn rows(&self) -> [(String, String); 3] {
        let verdict = |ok: Option<bool>| match ok {
            Some(true) => "OK",
            Some(false) => "FAILED",
            None => "not measured",
        };
        let mib =
            |k: Option<u64>| k.map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
        let count = |f: Option<Fds>| {
            f.map_or("?".to_owned(), |f| {
                format!("{} sockets ({} descriptors)", f.sockets, f.all)
            })
        };
        [
            (
                "RSS growth".to_owned(),
                format!(
                    "{} — {} MiB after warm-up → {} MiB at the end ({}; limit < {MAX_RSS_GROWTH_PCT} %)",
                    verdict(self.rss_ok),
                    mib(self.rss_baseline_kib),
                    mib(self.rss_final_kib),
                    self.rss_growth_pct
                        .map_or("?".to_owned(), |g| format!("{g:+.2} %")),
                ),
            ),
            (
                "descriptors".to_owned(),
                format!(
                    "{} — {} before the sockets opened, {} after they all closed",
                    verdict(self.fds_ok),
                    count(self.fds_before),
                    count(self.fds_after)
                ),
            ),
            (
                "verdict".to_owned(),
                if self.passed { "PASSED" } else { "FAILED" }.to_owned(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds(sockets: u64) -> Option<Fds> {
        Some(Fds {
            all: sockets + 20,
            sockets,
        })
    }

    fn row(min: f64, rss_mib: u64, sockets: u64) -> Row {
        Row {
            at_secs: min * 60.0,
            rss_kib: Some(rss_mib * 1024),
            fds: fds(sockets),
            cpu_cores: Some(0.5),
            p50_ms: 1.5,
            p99_ms: 12.5,
            msgs_per_sec: 46_400.0,
            errors: 0,
            reconnects: 80,
            churn: 300,
        }
    }

    #[test]
    fn rows_print_as_a_fixed_width_table() {
        let text = table(&[row(1.0, 100, 9_760)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], Row::HEADER);
        assert_eq!(lines[1].len(), Row::HEADER.len(), "{text}");
        assert!(lines[1].contains("100.0"), "{text}");
        assert!(lines[1].contains("46,400"), "{text}");
        assert!(lines[1].contains("12.5"), "{text}");
        let unknown = Row::default().line();
        assert!(unknown.contains('?'), "{unknown}");
    }

    #[test]
    fn rss_growth_counts_from_the_end_of_warm_up() {
        // Warm-up rows (2) grow a lot; after them, 100 → 104 MiB is +4 %.
        let rows = [
            row(1.0, 50, 10),
            row(2.0, 100, 10),
            row(3.0, 103, 10),
            row(4.0, 104, 10),
        ];
        let j = judge(&rows, 2, fds(10), fds(10), true);
        assert_eq!(j.rss_baseline_kib, Some(100 * 1024));
        assert_eq!(j.rss_final_kib, Some(104 * 1024));
        assert!((j.rss_growth_pct.unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(j.rss_ok, Some(true));
        assert!(j.passed);
        // 5 % exactly is not under 5 %.
        let rows = [row(1.0, 100, 10), row(2.0, 105, 10)];
        let j = judge(&rows, 1, None, None, true);
        assert_eq!(j.rss_ok, Some(false));
        assert!(!j.passed);
        // Shrinking is fine.
        let j = judge(&[row(1.0, 100, 10), row(2.0, 90, 10)], 1, None, None, true);
        assert_eq!(j.rss_ok, Some(true));
    }

    #[test]
    fn too_short_or_unmeasured_runs_do_not_judge_memory() {
        let j = judge(&[row(1.0, 100, 10)], 1, None, None, true);
        assert_eq!((j.rss_growth_pct, j.rss_ok), (None, None));
        assert!(j.passed, "nothing measured failed");
        let j = judge(&[], 0, None, None, true);
        assert_eq!(j.rss_ok, None);
        let mut unmeasured = row(1.0, 0, 0);
        unmeasured.rss_kib = None;
        let j = judge(&[unmeasured, unmeasured], 1, None, None, true);
        assert_eq!(j.rss_ok, None);
        // Warm-up 0: the first row is the baseline.
        let j = judge(&[row(1.0, 100, 10), row(2.0, 101, 10)], 0, None, None, true);
        assert_eq!(j.rss_ok, Some(true));
    }

    #[test]
    fn descriptors_and_verification_decide_too() {
        let rows = [row(1.0, 100, 10), row(2.0, 100, 10)];
        let j = judge(&rows, 1, fds(12), fds(12), true);
        assert_eq!(j.fds_ok, Some(true));
        let j = judge(&rows, 1, fds(12), fds(11), true);
        assert_eq!(j.fds_ok, Some(true));
        let j = judge(&rows, 1, fds(12), fds(13), true);
        assert_eq!(j.fds_ok, Some(false));
        assert!(!j.passed);
        // More files (SQLite's reader pool growing) but no more sockets.
        let more_files = Some(Fds {
            all: 40,
            sockets: 12,
        });
        let j = judge(&rows, 1, fds(12), more_files, true);
        assert_eq!(j.fds_ok, Some(true));
        let j = judge(&rows, 1, fds(12), fds(12), false);
        assert!(!j.passed);
        let printed = j.rows();
        assert!(printed[2].1.contains("FAILED"));
        assert!(
            printed[1].1.contains("12 sockets (32 descriptors) before"),
            "{:?}",
            printed[1]
        );
    }
}
