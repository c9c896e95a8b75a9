//! Per-object exponential backoff (kube-runtime has none by default,
//! kube#1916): 1 s, 2 s, 4 s ... capped at 5 min, reset when the object
//! reaches its goal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records one more failure of `key` and returns how long to wait.
    pub fn next(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        let delay = delay_for(*n);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` (it succeeded or was deleted).
    pub fn reset(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }

    pub fn failures(&self, key: &str) -> u32 {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).copied().unwrap_or(0)
    }
}

/// Delay after `n` earlier consecutive failures.
pub fn delay_for(n: u32) -> Duration {
    let factor = 1u64.checked_shl(n.min(20)).unwrap_or(u64::MAX);
    INITIAL
        .saturating_mul(factor.min(u32::MAX as u64) as u32)
        .min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_five_minutes_and_resets() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..11).map(|_| b.next("ns/a").as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.next("ns/b").as_secs(), 1, "per object");
        b.reset("ns/a");
        assert_eq!(b.next("ns/a").as_secs(), 1);
        assert_eq!(delay_for(u32::MAX), MAX);
    }
}
