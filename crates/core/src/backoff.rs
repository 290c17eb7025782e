//! Retry backoff arithmetic.
//!
//! The policy mirrors the reference's `BackoffConfig` (§3.4, config §10.7): a
//! schedule of delays for the first attempts, then `attempt ^ multiplier`
//! seconds, capped at `max`, with ± `jitter` percent. Jitter is derived from a
//! caller-supplied seed (the step id and attempt), so the same failure always
//! gets the same delay: deterministic tests, no RNG state, and retries of many
//! steps still spread out.
//!
//! A handler may ask for an explicit delay (HTTP `Retry-After`). That request
//! replaces the computed backoff, capped at `max`. (The reference required
//! both its SQL backoff *and* the explicit one to elapse; the server's word is
//! the better signal, so we use it alone.)

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long to wait before retrying a failed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffPolicy {
    /// Delays in seconds for attempts 1, 2, … (fractions allowed).
    pub default_backoff_seconds: Vec<f64>,
    /// Beyond the schedule the delay is `attempt ^ backoff_multiplier` seconds.
    pub backoff_multiplier: f64,
    /// Upper bound of any delay, computed or requested, in seconds.
    pub max_backoff_seconds: f64,
    /// Whether to spread delays by ± `jitter_max_percentage`.
    pub jitter_enabled: bool,
    /// Jitter amplitude as a fraction (0.1 = ±10 %).
    pub jitter_max_percentage: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            default_backoff_seconds: vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            backoff_multiplier: 2.0,
            max_backoff_seconds: 300.0,
            jitter_enabled: true,
            jitter_max_percentage: 0.1,
        }
    }
}

impl BackoffPolicy {
    /// A policy with no delay at all (tests, demos).
    pub fn immediate() -> Self {
        BackoffPolicy {
            default_backoff_seconds: vec![0.0],
            backoff_multiplier: 0.0,
            max_backoff_seconds: 0.0,
            jitter_enabled: false,
            jitter_max_percentage: 0.0,
        }
    }

    /// Checks the numbers make sense; returns a message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(bad) = self
            .default_backoff_seconds
            .iter()
            .find(|s| !s.is_finite() || **s < 0.0)
        {
            return Err(format!(
                "default_backoff_seconds: {bad} is not a non-negative number"
            ));
        }
        if !self.backoff_multiplier.is_finite() || self.backoff_multiplier < 0.0 {
            return Err("backoff_multiplier must be a non-negative number".into());
        }
        if !self.max_backoff_seconds.is_finite() || self.max_backoff_seconds < 0.0 {
            return Err("max_backoff_seconds must be a non-negative number".into());
        }
        if !(0.0..=1.0).contains(&self.jitter_max_percentage) {
            return Err("jitter_max_percentage must be between 0 and 1".into());
        }
        Ok(())
    }

    /// The delay before attempt `failed_attempts + 1`, after `failed_attempts`
    /// attempts have been made (1 = the first attempt just failed).
    ///
    /// `seed` makes jitter deterministic per step and attempt.
    pub fn delay(&self, failed_attempts: u32, seed: u64) -> Duration {
        if failed_attempts == 0 {
            return Duration::ZERO;
        }
        let n = failed_attempts as usize;
        let base = match self.default_backoff_seconds.get(n - 1) {
            Some(s) => *s,
            None => (failed_attempts as f64).powf(self.backoff_multiplier),
        };
        let mut secs = base.min(self.max_backoff_seconds).max(0.0);
        if self.jitter_enabled && secs > 0.0 && self.jitter_max_percentage > 0.0 {
            let range = secs * self.jitter_max_percentage;
            // Map the seed onto [-1, 1].
            let unit =
                (splitmix(seed ^ failed_attempts as u64) % 2_000_001) as f64 / 1_000_000.0 - 1.0;
            secs = (secs + unit * range).clamp(0.0, self.max_backoff_seconds.max(secs));
        }
        duration_from_secs(secs)
    }

    /// A delay the handler asked for (e.g. `Retry-After`), capped at the maximum.
    pub fn requested(&self, requested: Duration) -> Duration {
        requested.min(duration_from_secs(self.max_backoff_seconds))
    }
}

fn duration_from_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
}

/// A fast, well-mixed 64-bit hash (SplitMix64 finaliser).
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_jitter() -> BackoffPolicy {
        BackoffPolicy {
            jitter_enabled: false,
            ..BackoffPolicy::default()
        }
    }

    #[test]
    fn reference_values_without_jitter() {
        // ruby-tasker-semantics §3.4: n=1→1, 3→4, 6→32, 7→49, 100→300.
        let p = no_jitter();
        let secs = |n| p.delay(n, 0).as_secs_f64();
        assert_eq!(secs(0), 0.0);
        assert_eq!(secs(1), 1.0);
        assert_eq!(secs(3), 4.0);
        assert_eq!(secs(6), 32.0);
        assert_eq!(secs(7), 49.0);
        assert_eq!(secs(100), 300.0);
    }

    #[test]
    fn requested_delay_is_capped() {
        let p = no_jitter();
        assert_eq!(
            p.requested(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.requested(Duration::from_secs(10_000)),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn validation_names_the_key() {
        let p = BackoffPolicy {
            jitter_max_percentage: 2.0,
            ..BackoffPolicy::default()
        };
        assert!(p.validate().unwrap_err().contains("jitter_max_percentage"));
        assert!(BackoffPolicy::default().validate().is_ok());
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds_and_is_deterministic(n in 1u32..50, seed in any::<u64>()) {
            let p = BackoffPolicy::default();
            let plain = no_jitter().delay(n, seed).as_secs_f64();
            let d = p.delay(n, seed).as_secs_f64();
            prop_assert!(d >= plain * 0.9 - 1e-9 && d <= (plain * 1.1).min(300.0) + 1e-9);
            prop_assert_eq!(p.delay(n, seed), p.delay(n, seed));
        }

        #[test]
        fn never_exceeds_cap(n in 0u32..10_000, seed in any::<u64>()) {
            prop_assert!(BackoffPolicy::default().delay(n, seed) <= Duration::from_secs(300));
        }

        #[test]
        fn monotone_without_jitter(n in 1u32..200) {
            let p = no_jitter();
            prop_assert!(p.delay(n, 0) <= p.delay(n + 1, 0));
        }
    }
}

/// A capped doubling delay for loops that retry an infrastructure call (the
/// claim, the outcome write, the notification listener) while the database
/// is away: `initial`, twice that, … up to `max`; [`Doubling::reset`] after
/// a success. One definition instead of one hand-written loop per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doubling {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Doubling {
    /// Starts at `initial`, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Doubling {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The delay to wait now; the following one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }

    /// Back to `initial` (the call succeeded).
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }
}

#[cfg(test)]
mod doubling_tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let ms = Duration::from_millis;
        let mut d = Doubling::new(ms(50), ms(300));
        let got: Vec<_> = (0..5).map(|_| d.next_delay()).collect();
        assert_eq!(got, vec![ms(50), ms(100), ms(200), ms(300), ms(300)]);
        d.reset();
        assert_eq!(d.next_delay(), ms(50));
    }
}
