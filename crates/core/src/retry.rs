//! Per-step retry schedules: a template's `retry:` block (docs/FLOW_CONTROL.md).
//!
//! ```yaml
//! retry:
//!   delays: [1, 5, 30, 300]          # or: strategy: exponential, base: 2, max: 300, jitter: 0.1
//!   by_code:
//!     HTTP_429: { delays: [60, 120] } # a rate-limited call waits longer
//!   retry_on: [HTTP_429, HTTP_503]    # only these codes are retried (optional)
//!   no_retry_on: [HTTP_400]           # these never are
//! ```
//!
//! [`RawRetry`] is the YAML shape; [`RawRetry::validate`] turns it into a
//! [`RetrySchedule`] or names every bad field; [`RetrySchedule::decide`] is
//! the decision after a failed attempt. A step without `retry:` uses the
//! engine's [`crate::BackoffPolicy`], as does a code the schedule has no
//! delay for ([`RetryDecision::EngineDefault`]). Jitter is seeded (the step
//! id) like the engine policy's, so the same failure always waits the same.

use crate::backoff::splitmix;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Longest delay a schedule may name: one day.
pub const MAX_RETRY_DELAY_SECONDS: f64 = 24.0 * 3600.0;

/// Delay fields, at the top of `retry:` or under one code of `by_code`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    /// Seconds before attempt 2, 3, …; the last one repeats.
    #[serde(default)]
    pub delays: Option<Vec<f64>>,
    /// `exponential`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Exponential: the first delay in seconds (then doubled each attempt).
    #[serde(default)]
    pub base: Option<f64>,
    /// Exponential: the longest delay (default 300 s).
    #[serde(default)]
    pub max: Option<f64>,
    /// Exponential: ± this fraction of each delay (0–1, default 0).
    #[serde(default)]
    pub jitter: Option<f64>,
}

/// The `retry:` block of a step, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Seconds before attempt 2, 3, …; the last one repeats.
    #[serde(default)]
    pub delays: Option<Vec<f64>>,
    /// `exponential`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Exponential: the first delay in seconds.
    #[serde(default)]
    pub base: Option<f64>,
    /// Exponential: the longest delay (default 300 s).
    #[serde(default)]
    pub max: Option<f64>,
    /// Exponential: ± this fraction of each delay.
    #[serde(default)]
    pub jitter: Option<f64>,
    /// Delays for particular error codes (the handler's `code`).
    #[serde(default)]
    pub by_code: BTreeMap<String, RawBackoff>,
    /// When given, only errors with one of these codes are retried.
    #[serde(default)]
    pub retry_on: Option<Vec<String>>,
    /// Errors with one of these codes are never retried.
    #[serde(default)]
    pub no_retry_on: Vec<String>,
}

/// How long to wait after the n-th failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Backoff {
    /// Fixed delays in seconds; the last repeats.
    Delays {
        /// Seconds after failed attempt 1, 2, …
        delays: Vec<f64>,
    },
    /// `base · 2^(n-1)` seconds, at most `max`, ± `jitter` of it.
    Exponential {
        /// First delay, seconds.
        base: f64,
        /// Longest delay, seconds.
        max: f64,
        /// Fraction (0–1).
        jitter: f64,
    },
}

impl Backoff {
    /// The delay after `failed_attempts` failures (1 = the first attempt
    /// just failed); `seed` makes jitter deterministic.
    pub fn delay(&self, failed_attempts: u32, seed: u64) -> Duration {
        let n = failed_attempts.max(1);
        let secs = match self {
            Backoff::Delays { delays } => {
                let i = (n as usize - 1).min(delays.len().saturating_sub(1));
                delays.get(i).copied().unwrap_or(0.0)
            }
            Backoff::Exponential { base, max, jitter } => {
                // 2^(n-1) overflows f64 only past n = 1024; min() caps it first.
                let raw = (base * 2f64.powi((n - 1).min(1023) as i32)).min(*max);
                if *jitter > 0.0 && raw > 0.0 {
                    let unit =
                        (splitmix(seed ^ u64::from(n)) % 2_000_001) as f64 / 1_000_000.0 - 1.0;
                    (raw + unit * raw * jitter).clamp(0.0, *max)
                } else {
                    raw
                }
            }
        };
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
    }
}

/// A validated `retry:` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrySchedule {
    /// Delays for any code without its own (None: the engine's policy).
    pub backoff: Option<Backoff>,
    /// Delays per error code.
    pub by_code: BTreeMap<String, Backoff>,
    /// Only these codes are retried (None: every retryable error).
    pub retry_on: Option<BTreeSet<String>>,
    /// These codes are never retried.
    pub no_retry_on: BTreeSet<String>,
}

/// What to do after a retryable failure with attempts left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Do not retry: the step fails now.
    Stop,
    /// Retry after this delay.
    After(Duration),
    /// Retry after the engine's default backoff.
    EngineDefault,
}

impl RetrySchedule {
    /// The decision after failed attempt `failed_attempts` with error `code`.
    pub fn decide(&self, code: Option<&str>, failed_attempts: u32, seed: u64) -> RetryDecision {
        if let Some(c) = code
            && self.no_retry_on.contains(c)
        {
            return RetryDecision::Stop;
        }
        if let Some(only) = &self.retry_on
            && !code.is_some_and(|c| only.contains(c))
        {
            return RetryDecision::Stop;
        }
        let backoff = code
            .and_then(|c| self.by_code.get(c))
            .or(self.backoff.as_ref());
        match backoff {
            Some(b) => RetryDecision::After(b.delay(failed_attempts, seed)),
            None => RetryDecision::EngineDefault,
        }
    }
}

/// A bad field: its path below `retry` (e.g. `delays[2]`) and what is wrong.
pub type FieldError = (String, String);

fn backoff(
    prefix: &str,
    delays: &Option<Vec<f64>>,
    strategy: &Option<String>,
    base: Option<f64>,
    max: Option<f64>,
    jitter: Option<f64>,
    errors: &mut Vec<FieldError>,
) -> Option<Backoff> {
    let field = |f: &str| format!("{prefix}{f}");
    let seconds_ok = |s: f64| s.is_finite() && (0.0..=MAX_RETRY_DELAY_SECONDS).contains(&s);
    let exp_fields = base.is_some() || max.is_some() || jitter.is_some();
    match (delays, strategy.as_deref()) {
        (Some(_), Some(_)) => {
            errors.push((
                field("strategy"),
                "give either `delays` or `strategy`, not both".into(),
            ));
            None
        }
        (Some(_), None) if exp_fields => {
            errors.push((
                field("delays"),
                "`base`, `max` and `jitter` belong to `strategy: exponential`, not to `delays`"
                    .into(),
            ));
            None
        }
        (Some(d), None) => {
            if d.is_empty() {
                errors.push((field("delays"), "must list at least one delay".into()));
                return None;
            }
            let mut ok = true;
            for (i, s) in d.iter().enumerate() {
                if !seconds_ok(*s) {
                    ok = false;
                    errors.push((
                        field(&format!("delays[{i}]")),
                        format!("must be between 0 and {MAX_RETRY_DELAY_SECONDS} seconds"),
                    ));
                }
            }
            ok.then(|| Backoff::Delays { delays: d.clone() })
        }
        (None, Some("exponential")) => {
            let before = errors.len();
            let Some(base) = base else {
                errors.push((
                    field("base"),
                    "`strategy: exponential` needs `base` (the first delay, seconds)".into(),
                ));
                return None;
            };
            if !(seconds_ok(base) && base > 0.0) {
                errors.push((
                    field("base"),
                    format!("must be above 0 and at most {MAX_RETRY_DELAY_SECONDS} seconds"),
                ));
            }
            let max = max.unwrap_or(300.0_f64.max(base));
            if !seconds_ok(max) || max < base {
                errors.push((
                    field("max"),
                    format!(
                        "must be at least `base` and at most {MAX_RETRY_DELAY_SECONDS} seconds"
                    ),
                ));
            }
            let jitter = jitter.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&jitter) {
                errors.push((field("jitter"), "must be between 0 and 1".into()));
            }
            (errors.len() == before).then_some(Backoff::Exponential { base, max, jitter })
        }
        (None, Some(other)) => {
            errors.push((
                field("strategy"),
                format!("unknown strategy `{other}` (the one strategy is `exponential`)"),
            ));
            None
        }
        (None, None) if exp_fields => {
            errors.push((
                field("strategy"),
                "`base`, `max` and `jitter` need `strategy: exponential`".into(),
            ));
            None
        }
        (None, None) => None,
    }
}

impl RawRetry {
    /// The schedule, or every bad field (paths relative to `retry`).
    pub fn validate(&self) -> Result<RetrySchedule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let top = backoff(
            "",
            &self.delays,
            &self.strategy,
            self.base,
            self.max,
            self.jitter,
            &mut errors,
        );
        let mut by_code = BTreeMap::new();
        for (code, b) in &self.by_code {
            if code.trim().is_empty() {
                errors.push(("by_code".into(), "codes must not be empty".into()));
                continue;
            }
            let prefix = format!("by_code.{code}.");
            let got = backoff(
                &prefix,
                &b.delays,
                &b.strategy,
                b.base,
                b.max,
                b.jitter,
                &mut errors,
            );
            match got {
                Some(g) => {
                    by_code.insert(code.clone(), g);
                }
                None if b.delays.is_none() && b.strategy.is_none() => errors.push((
                    format!("by_code.{code}"),
                    "give `delays` or `strategy: exponential` for this code".into(),
                )),
                None => {}
            }
        }
        let no_retry_on: BTreeSet<String> = self.no_retry_on.iter().cloned().collect();
        let retry_on: Option<BTreeSet<String>> =
            self.retry_on.as_ref().map(|v| v.iter().cloned().collect());
        for (name, list) in [
            ("retry_on", self.retry_on.as_deref().unwrap_or_default()),
            ("no_retry_on", self.no_retry_on.as_slice()),
        ] {
            if list.iter().any(|c| c.trim().is_empty()) {
                errors.push((name.into(), "codes must not be empty".into()));
            }
        }
        if let Some(only) = &retry_on {
            if only.is_empty() {
                errors.push((
                    "retry_on".into(),
                    "an empty list would retry nothing: write `default_retryable: false` instead"
                        .into(),
                ));
            }
            if let Some(both) = only.intersection(&no_retry_on).next() {
                errors.push((
                    "no_retry_on".into(),
                    format!("`{both}` is also in `retry_on`"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(RetrySchedule {
                backoff: top,
                by_code,
                retry_on,
                no_retry_on,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests;
