//! When to reconnect: full-jitter exponential backoff, and the server's
//! `reconnect` frame and 1013 (try again later) honoured.
//!
//! After a node dies, every one of its clients reconnects at once unless
//! each waits a random time: the delay before attempt `n` is uniform in
//! `0..min(cap, base * 2^n)` ("full jitter"), so a crowd spreads over the
//! whole window instead of arriving in waves.

use std::time::Duration;

use parley_proto::ServerFrame;

/// First window: attempt 0 waits up to this long.
pub const BASE: Duration = Duration::from_millis(500);

/// Largest window.
pub const CAP: Duration = Duration::from_secs(30);

/// Close code 1013: the server is overloaded; back off.
pub const TRY_AGAIN_LATER: u16 = 1013;

/// The window of attempt `attempt` (0-based): `min(cap, base * 2^attempt)`.
/// The one backoff rule; [`full_jitter`] and [`Backoff`] both use it.
pub fn window(base: Duration, cap: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(cap)
}

/// The delay before reconnect attempt `attempt` (0-based), given a random
/// fraction `unit` in `[0, 1)`: uniform over `0..min(CAP, BASE * 2^attempt)`.
pub fn full_jitter(attempt: u32, unit: f64) -> Duration {
    window(BASE, CAP, attempt).mul_f64(unit.clamp(0.0, 1.0))
}

/// A reconnecting client's delay schedule with its own base and cap (the
/// CLI and `parley chat` use shorter ones than [`BASE`] / [`CAP`]).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Windows `base`, `2 × base`, `4 × base`, ... up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The window of the next attempt.
    pub fn ceiling(&self) -> Duration {
        window(self.base, self.cap, self.attempt)
    }

    /// How long to wait before the next attempt (full jitter); each call
    /// widens the window.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand_unit())
    }

    /// A connection worked: start from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay before reconnect attempt `attempt`, with fresh randomness.
pub fn reconnect_delay(attempt: u32) -> Duration {
    full_jitter(attempt, rand_unit())
}

/// How long to wait after `frame`, when it asks the client to reconnect
/// (a draining node's `reconnect{after_ms}`).
pub fn delay_for_frame(frame: &ServerFrame) -> Option<Duration> {
    match frame {
        ServerFrame::Reconnect { after_ms } => Some(Duration::from_millis(*after_ms)),
        _ => None,
    }
}

/// How long to wait after the server closed with `code` at attempt
/// `attempt`: 1013 skips ahead in the backoff (the server is overloaded).
pub fn delay_after_close(code: u16, attempt: u32) -> Duration {
    if code == TRY_AGAIN_LATER {
        reconnect_delay(attempt.saturating_add(3))
    } else {
        reconnect_delay(attempt)
    }
}

fn rand_unit() -> f64 {
    // The standard library's per-process random hash keys: enough
    // randomness for spreading reconnects, without another dependency.
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_spans_the_whole_window_and_is_capped() {
        assert_eq!(full_jitter(0, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(0, 0.999_999), BASE.mul_f64(0.999_999));
        assert_eq!(full_jitter(3, 0.5), BASE * 4);
        assert!(full_jitter(30, 0.999) <= CAP);
        let samples: std::collections::HashSet<u128> =
            (0..50).map(|_| reconnect_delay(6).as_micros()).collect();
        assert!(samples.len() > 10, "random delays");
        assert!(samples.iter().all(|&d| d < CAP.as_micros()));
    }

    #[test]
    fn backoff_delays_stay_under_a_window_that_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<u128> = (0..6)
            .map(|_| {
                let ceiling = backoff.ceiling();
                assert!(backoff.next_delay() <= ceiling);
                ceiling.as_millis()
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
    }
}
