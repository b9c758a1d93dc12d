//! Latency histograms and live counters.
//!
//! Latencies are recorded in microseconds in an HdrHistogram (3 significant
//! digits, 1 µs to 10 min), one per task, merged at the end, so the hot path
//! never shares a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram can hold, in microseconds (10 minutes).
const MAX_US: u64 = 600_000_000;

/// A latency distribution in microseconds.
#[derive(Clone)]
pub(crate) struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid"),
        }
    }
}

impl Latency {
    /// Records one latency (clamped into the histogram's range).
    pub(crate) fn record(&mut self, latency: Duration) {
        self.record_us(latency.as_micros() as u64);
    }

    /// Records one latency in microseconds.
    pub(crate) fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_US));
    }

    /// Adds another task's samples.
    pub(crate) fn merge(&mut self, other: &Latency) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// The usual percentiles, in milliseconds.
    pub(crate) fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            mean_ms: self.hist.mean() / 1000.0,
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p90_ms: ms(self.hist.value_at_quantile(0.90)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            p999_ms: ms(self.hist.value_at_quantile(0.999)),
            max_ms: ms(self.hist.max()),
        }
    }

    /// (percentile in 0..100, latency in ms) points for a distribution plot,
    /// from the median to the maximum, denser towards the tail.
    pub(crate) fn percentile_curve(&self) -> Vec<(f64, f64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        // 1 - q shrinks by a fifth every step: 0, 20, 36, 48.8 ... up to
        // 99.9999 %.
        let mut tail = 1.0f64;
        while tail > 1e-6 {
            let q = 1.0 - tail;
            points.push((q * 100.0, self.hist.value_at_quantile(q) as f64 / 1000.0));
            tail /= 1.25;
        }
        points.push((100.0, self.hist.max() as f64 / 1000.0));
        points
    }
}

/// Percentiles of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct LatencySummary {
    /// Samples.
    pub(crate) count: u64,
    /// Mean.
    pub(crate) mean_ms: f64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile.
    pub(crate) p999_ms: f64,
    /// Largest sample.
    pub(crate) max_ms: f64,
}

impl LatencySummary {
    /// `p50 / p90 / p99 / p99.9 / max` for the table.
    pub(crate) fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} ms",
            fmt_ms(self.p50_ms),
            fmt_ms(self.p90_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.p999_ms),
            fmt_ms(self.max_ms)
        )
    }
}

/// Milliseconds with sensible precision.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Counters every task bumps, read by the progress bar.
#[derive(Default)]
pub(crate) struct Live {
    /// Sends written to a socket.
    pub(crate) sent: AtomicU64,
    /// `sent` acks received.
    pub(crate) acked: AtomicU64,
    /// Sends refused with an `error` frame.
    pub(crate) failed: AtomicU64,
    /// `message` frames received.
    pub(crate) delivered: AtomicU64,
    /// Errors of any kind.
    pub(crate) errors: AtomicU64,
}

impl Live {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// One progress line.
    pub(crate) fn line(&self) -> String {
        format!(
            "sent {} · acked {} · delivered {} · errors {}",
            Live::get(&self.sent),
            Live::get(&self.acked),
            Live::get(&self.delivered),
            Live::get(&self.errors)
        )
    }
}

/// Error counts by kind (protocol code, "connect", "closed", ...).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Errors(pub(crate) std::collections::BTreeMap<String, u64>);

impl Errors {
    /// Counts one error of `kind`.
    pub(crate) fn add(&mut self, kind: impl Into<String>) {
        *self.0.entry(kind.into()).or_default() += 1;
    }

    /// Adds another set of counts.
    pub(crate) fn merge(&mut self, other: &Errors) {
        for (kind, n) in &other.0 {
            *self.0.entry(kind.clone()).or_default() += n;
        }
    }

    /// All errors.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `kind: n, ...` or `none`.
    pub(crate) fn line(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        // 1..=1000 ms, split over two histograms and merged.
        for ms in 1..=1000u64 {
            let target = if ms % 2 == 0 { &mut a } else { &mut b };
            target.record(Duration::from_millis(ms));
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 1000);
        // Three significant digits: within 0.1 %.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.p999_ms, 999.0), "{s:?}");
        assert!(close(s.max_ms, 1000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.5), "{s:?}");
    }

    #[test]
    fn empty_and_out_of_range_samples() {
        let mut l = Latency::default();
        assert_eq!(l.summary(), LatencySummary::default());
        assert_eq!(l.summary().line(), "no samples");
        assert!(l.percentile_curve().is_empty());
        l.record_us(0);
        l.record_us(u64::MAX);
        assert_eq!(l.summary().count, 2);
        let curve = l.percentile_curve();
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        assert_eq!(curve.last().unwrap().0, 100.0);
    }

    #[test]
    fn errors_merge_and_print() {
        let mut a = Errors::default();
        a.add("rate_limited");
        a.add("rate_limited");
        let mut b = Errors::default();
        b.add("closed");
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.line(), "closed: 1, rate_limited: 2");
        assert_eq!(Errors::default().line(), "none");
    }
}
