//! Token buckets: per-user sends, per-username logins, per-socket typing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// A classic token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token, or says how many ms until one is available.
    pub fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_secs = (1.0 - self.tokens) / rate;
            Err((wait_secs * 1000.0).ceil() as u64)
        }
    }
}

/// Buckets keyed by user, username, ... sharing one rate and burst.
pub struct KeyedLimiter<K> {
    rate: f64,
    burst: f64,
    // A std mutex: the critical section is a few arithmetic operations and
    // never awaits.
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter refilling `rate` per second up to `burst`.
    pub fn new(rate: f64, burst: f64) -> KeyedLimiter<K> {
        KeyedLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or returns ms to wait.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no state worth keeping.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                let refilled =
                    b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate;
                refilled < burst
            });
        }
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.burst, now));
        bucket.try_take(self.rate, self.burst, now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3.0, start);
        for _ in 0..3 {
            assert!(bucket.try_take(2.0, 3.0, start).is_ok());
        }
        let wait = bucket.try_take(2.0, 3.0, start).unwrap_err();
        assert_eq!(wait, 500, "one token at 2/s takes 500 ms");
        let later = start + Duration::from_millis(500);
        assert!(bucket.try_take(2.0, 3.0, later).is_ok());
        assert!(bucket.try_take(2.0, 3.0, later).is_err());
        let much_later = later + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(bucket.try_take(2.0, 3.0, much_later).is_ok());
        }
        assert!(
            bucket.try_take(2.0, 3.0, much_later).is_err(),
            "never more than burst"
        );
    }

    #[test]
    fn keyed_limiter_keeps_keys_apart() {
        let limiter = KeyedLimiter::new(1.0, 2.0);
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_err());
        assert!(limiter.check(&"b").is_ok());
    }
}
