//! Per-address rate limits for the sign-in paths: fixed windows, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Forget the whole table past this many addresses (expired windows go first).
const MAX_TRACKED: usize = 10_000;

pub struct RateLimiter {
    limit: u32,
    window_secs: i64,
    hits: Mutex<HashMap<String, (UnixTime, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window_secs: i64) -> RateLimiter {
        RateLimiter {
            limit,
            window_secs,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from `key`; false when it is over the limit.
    pub fn allow(&self, key: &str, now: UnixTime) -> bool {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() >= MAX_TRACKED {
            let window = self.window_secs;
            hits.retain(|_, (start, _)| now - *start < window);
            if hits.len() >= MAX_TRACKED {
                hits.clear();
            }
        }
        let entry = hits.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= self.window_secs {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_window() {
        let limiter = RateLimiter::new(2, 60);
        assert!(limiter.allow("a", 0));
        assert!(limiter.allow("a", 1));
        assert!(!limiter.allow("a", 2));
        assert!(limiter.allow("b", 2));
        assert!(limiter.allow("a", 61));
    }
}
