//! Failed logins per source address: after `max_failures` failures within one window that
//! starts at the first failure, every attempt from that address is refused until the window
//! has passed, whether its password is right or not. A successful login forgets the address.
//!
//! IPv6 addresses count per /64 (one host usually owns a whole /64, so per-address counting
//! would not limit it), and IPv4-mapped IPv6 addresses as their IPv4 address. The map is
//! bounded: when full it first drops finished windows, then the oldest. The clock is the
//! caller's `now` (Unix seconds), so this file does no IO and tests need no sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};

/// Failures allowed per window by default.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// Default window length, in seconds.
pub const DEFAULT_WINDOW_SECS: i64 = 60;
/// Addresses tracked at most by default.
pub const DEFAULT_MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// When the first failure of the current window happened.
    window_start: i64,
}

/// Counts failed logins; shared by every connection (it locks internally).
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window_secs: i64,
    max_addresses: usize,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_SECS)
    }
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window_secs: i64) -> Self {
        Self::with_max_addresses(max_failures, window_secs, DEFAULT_MAX_ADDRESSES)
    }

    /// Like [`new`](Self::new), tracking at most `max_addresses` addresses (at least 1).
    pub fn with_max_addresses(max_failures: u32, window_secs: i64, max_addresses: usize) -> Self {
        Self {
            max_failures,
            window_secs,
            max_addresses: max_addresses.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `addr` may try to log in at `now`, else `Err(seconds until it may)`.
    pub fn check(&self, addr: IpAddr, now: i64) -> Result<(), i64> {
        let key = normalize(addr);
        match self.lock().get(&key) {
            Some(f) if f.count >= self.max_failures && !self.window_over(f, now) => {
                Err((f.window_start + self.window_secs - now).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `addr` at `now`.
    pub fn record_failure(&self, addr: IpAddr, now: i64) {
        let key = normalize(addr);
        let mut map = self.lock();
        if let Some(f) = map.get_mut(&key) {
            if self.window_over(f, now) {
                *f = Failures {
                    count: 1,
                    window_start: now,
                };
            } else {
                f.count = f.count.saturating_add(1);
            }
            return;
        }
        if map.len() >= self.max_addresses {
            map.retain(|_, f| !self.window_over(f, now));
        }
        if map.len() >= self.max_addresses {
            let oldest = map
                .iter()
                .min_by_key(|(_, f)| f.window_start)
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(
            key,
            Failures {
                count: 1,
                window_start: now,
            },
        );
    }

    /// Forgets the failures of `addr` after it logged in.
    pub fn record_success(&self, addr: IpAddr) {
        self.lock().remove(&normalize(addr));
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn window_over(&self, f: &Failures, now: i64) -> bool {
        now.saturating_sub(f.window_start) >= self.window_secs
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Failures>> {
        // The map stays consistent whatever panicked while holding it: every change is a
        // single insert, update or removal.
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The key an address counts under: IPv4 as is, IPv6 by its /64.
fn normalize(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_then_refused_until_the_window_passes() {
        let limiter = LoginLimiter::default();
        let a = ip("192.0.2.1");
        for t in 0..5 {
            assert_eq!(limiter.check(a, 100 + t), Ok(()));
            limiter.record_failure(a, 100 + t);
        }
        assert_eq!(limiter.check(a, 104), Err(56));
        assert_eq!(limiter.check(a, 159), Err(1));
        assert_eq!(
            limiter.check(ip("192.0.2.2"), 104),
            Ok(()),
            "others are not affected"
        );
        assert_eq!(limiter.check(a, 160), Ok(()));
        // A failure after the window starts a new one.
        limiter.record_failure(a, 160);
        assert_eq!(limiter.check(a, 161), Ok(()));
    }

    #[test]
    fn failures_spread_over_windows_never_block() {
        let limiter = LoginLimiter::new(5, 60);
        let a = ip("192.0.2.1");
        for t in (0..20).map(|i| i * 20) {
            assert_eq!(limiter.check(a, t), Ok(()), "at {t}");
            limiter.record_failure(a, t);
        }
    }

    #[test]
    fn success_resets() {
        let limiter = LoginLimiter::default();
        let a = ip("2001:db8::1");
        for _ in 0..4 {
            limiter.record_failure(a, 0);
        }
        limiter.record_success(a);
        for _ in 0..4 {
            limiter.record_failure(a, 1);
        }
        assert_eq!(limiter.check(a, 1), Ok(()));
        limiter.record_failure(a, 1);
        assert!(limiter.check(a, 1).is_err());
    }

    #[test]
    fn addresses_are_grouped() {
        let limiter = LoginLimiter::new(2, 60);
        limiter.record_failure(ip("2001:db8:1:2::1"), 0);
        limiter.record_failure(ip("2001:db8:1:2:ffff::9"), 0);
        assert!(
            limiter.check(ip("2001:db8:1:2::77"), 0).is_err(),
            "same /64"
        );
        assert_eq!(limiter.check(ip("2001:db8:1:3::1"), 0), Ok(()));
        limiter.record_failure(ip("::ffff:192.0.2.7"), 0);
        limiter.record_failure(ip("192.0.2.7"), 0);
        assert!(
            limiter.check(ip("192.0.2.7"), 0).is_err(),
            "IPv4-mapped is IPv4"
        );
    }

    #[test]
    fn the_map_is_bounded() {
        let limiter = LoginLimiter::with_max_addresses(1, 60, 3);
        for (t, last) in [1u8, 2, 3, 4].into_iter().enumerate() {
            limiter.record_failure(IpAddr::from([192, 0, 2, last]), t as i64);
        }
        assert_eq!(limiter.tracked(), 3);
        // The oldest (192.0.2.1) made room; the newest are still limited.
        assert_eq!(limiter.check(ip("192.0.2.1"), 4), Ok(()));
        assert!(limiter.check(ip("192.0.2.4"), 4).is_err());
        assert!(limiter.check(ip("192.0.2.2"), 4).is_err());
        // Once every window has passed, a new address drops them all.
        limiter.record_failure(ip("192.0.2.9"), 1000);
        assert_eq!(limiter.tracked(), 1);
    }
}
