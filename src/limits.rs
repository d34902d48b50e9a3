//! Per-address limits on what anonymous clients may make the server do: fixed windows, in
//! memory, bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::UnixTime;

/// How many keys a limiter tracks at most; past that, the oldest windows are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Where a request came from, as limits count it: an IPv4 address, or the /64 network of an
/// IPv6 address (one host usually holds a whole /64, so counting single IPv6 addresses would
/// give it 2^64 budgets).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(String);

impl Address {
    /// The counted address of `ip` (an audit origin's address, as text); requests whose
    /// address is unknown share one budget.
    pub fn of(ip: Option<&str>) -> Address {
        let Some(parsed) = ip.and_then(|ip| ip.parse::<IpAddr>().ok()) else {
            return Address(ip.unwrap_or("unknown").chars().take(64).collect());
        };
        Address(match parsed.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A refused attempt: how long until the window that refused it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub after_secs: i64,
}

/// At most `limit` attempts per key in each window of `window_secs`.
pub struct RateLimiter {
    limit: u32,
    window_secs: i64,
    hits: Mutex<HashMap<String, Window>>,
    /// Attempts refused since the start, for the metrics.
    refused: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: UnixTime,
    count: u32,
    /// The latest attempt, to forget the least recently seen keys first.
    last: UnixTime,
}

impl RateLimiter {
    pub fn new(limit: u32, window_secs: i64) -> RateLimiter {
        RateLimiter {
            limit,
            window_secs,
            hits: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        }
    }

    /// Counts one attempt from `address`; refused when it is over the limit.
    pub fn check(&self, address: &Address, now: UnixTime) -> Result<(), Retry> {
        self.check_key(address.as_str(), now)
    }

    /// Counts one attempt from `address` on `subject` (such as one client): each subject has
    /// a budget of its own.
    pub fn check_for(&self, address: &Address, subject: &str, now: UnixTime) -> Result<(), Retry> {
        self.check_key(&format!("{} {subject}", address.as_str()), now)
    }

    /// How many attempts were refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn check_key(&self, key: &str, now: UnixTime) -> Result<(), Retry> {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if !hits.contains_key(key) && hits.len() >= MAX_TRACKED {
            self.forget_oldest(&mut hits, now);
        }
        let fresh = Window {
            start: now,
            count: 0,
            last: now,
        };
        let window = hits.entry(key.to_string()).or_insert(fresh);
        if now - window.start >= self.window_secs || now < window.start {
            *window = fresh;
        }
        window.count = window.count.saturating_add(1);
        window.last = now;
        if window.count <= self.limit {
            Ok(())
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(Retry {
                after_secs: (window.start + self.window_secs - now).max(1),
            })
        }
    }

    /// Makes room: expired windows go first, then the least recently seen tenth of the
    /// rest, so that a flood of new addresses never wipes the counts of an address that keeps
    /// trying.
    fn forget_oldest(&self, hits: &mut HashMap<String, Window>, now: UnixTime) {
        hits.retain(|_, w| now - w.start < self.window_secs);
        if hits.len() < MAX_TRACKED {
            return;
        }
        let mut seen: Vec<UnixTime> = hits.values().map(|w| w.last).collect();
        let cut = seen.len() / 10;
        let (_, threshold, _) = seen.select_nth_unstable(cut);
        let threshold = *threshold;
        let mut to_drop = cut + 1;
        hits.retain(|_, w| {
            let drop = w.last <= threshold && to_drop > 0;
            to_drop -= usize::from(drop);
            !drop
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> Address {
        Address::of(Some(ip))
    }

    #[test]
    fn limits_per_key_and_window() {
        let limiter = RateLimiter::new(2, 60);
        assert!(limiter.check(&at("10.0.0.1"), 0).is_ok());
        assert!(limiter.check(&at("10.0.0.1"), 1).is_ok());
        assert_eq!(
            limiter.check(&at("10.0.0.1"), 2),
            Err(Retry { after_secs: 58 })
        );
        assert!(limiter.check(&at("10.0.0.2"), 2).is_ok());
        assert!(limiter.check(&at("10.0.0.1"), 60).is_ok());
        assert_eq!(limiter.refused(), 1);
    }

    #[test]
    fn subjects_have_budgets_of_their_own() {
        let limiter = RateLimiter::new(1, 60);
        let address = at("10.0.0.1");
        assert!(limiter.check_for(&address, "proxmox", 0).is_ok());
        assert!(limiter.check_for(&address, "proxmox", 1).is_err());
        assert!(limiter.check_for(&address, "backup", 1).is_ok());
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(at("2001:db8:1:2:aaaa::1"), at("2001:db8:1:2:bbbb::9"));
        assert_eq!(at("2001:db8:1:2::1").as_str(), "2001:db8:1:2::/64");
        assert_ne!(at("2001:db8:1:2::1"), at("2001:db8:1:3::1"));
        assert_eq!(at("::ffff:10.0.0.1"), at("10.0.0.1"));
        assert_eq!(Address::of(None).as_str(), "unknown");
    }

    #[test]
    fn a_flood_of_new_addresses_does_not_reset_a_limited_one() {
        let limiter = RateLimiter::new(1, 60);
        let attacker = at("10.0.0.1");
        assert!(limiter.check(&attacker, 0).is_ok());
        assert!(limiter.check(&attacker, 0).is_err());
        for n in 0..2 * MAX_TRACKED as u32 {
            let now = 1 + i64::from(n / 1000);
            let other = at(&std::net::Ipv4Addr::from(0x0b00_0000 + n).to_string());
            let _ = limiter.check(&other, now);
            if n % 1000 == 0 {
                assert!(
                    limiter.check(&attacker, now).is_err(),
                    "the least recently seen go, not the whole table ({n} others)"
                );
            }
        }
    }
}
