//! The retry decision shared by in-process handlers and external workers.

use crate::clock::Clock;
use crate::handler::StepError;
use crate::service::Inner;
use chrono::{DateTime, Utc};
use tasker_core::BackoffPolicy;
use tasker_core::retry::{RetryDecision, RetrySchedule};
use uuid::Uuid;

/// When to try a failed step again, or None when `error` is permanent,
/// `attempt` was the last one allowed, or the step's retry schedule
/// (`retry:` in its template) says not to retry this error code. A
/// retry-after the handler asked for replaces any computed delay (capped by
/// the policy's maximum); otherwise the schedule's delay for the code, else
/// the engine policy's.
pub fn retry_at(
    policy: &BackoffPolicy,
    schedule: Option<&RetrySchedule>,
    clock: &dyn Clock,
    step_id: Uuid,
    attempt: i32,
    max_attempts: i32,
    error: &StepError,
) -> Option<DateTime<Utc>> {
    let StepError::Retryable {
        retry_after, code, ..
    } = error
    else {
        return None;
    };
    if attempt >= max_attempts {
        return None;
    }
    // Seeded by the step id: the same failure always waits the same time.
    let (hi, lo) = step_id.as_u64_pair();
    let failed = attempt.max(1) as u32;
    let decided = schedule.map_or(RetryDecision::EngineDefault, |s| {
        s.decide(code.as_deref(), failed, hi ^ lo)
    });
    let delay = match (decided, retry_after) {
        (RetryDecision::Stop, _) => return None,
        (_, Some(d)) => policy.requested(*d),
        (RetryDecision::After(d), None) => d,
        (RetryDecision::EngineDefault, None) => policy.delay(failed, hi ^ lo),
    };
    Some(clock.now() + chrono::Duration::from_std(delay).unwrap_or_default())
}

/// The retry schedule of a step of a registered template, if it has one.
/// Read on failures only (one map lookup); a template no longer registered
/// falls back to the engine policy.
pub(crate) fn schedule_of(
    inner: &Inner,
    namespace: &str,
    name: &str,
    version: &str,
    step: &str,
) -> Option<RetrySchedule> {
    let registry = inner.registry.read().unwrap_or_else(|p| p.into_inner());
    schedule_in(&registry, namespace, name, version, step)
}

/// [`schedule_of`] over a registry already at hand.
pub(crate) fn schedule_in(
    registry: &tasker_core::registry::TemplateRegistry,
    namespace: &str,
    name: &str,
    version: &str,
    step: &str,
) -> Option<RetrySchedule> {
    let version = semver::Version::parse(version).ok()?;
    let template = registry.get(namespace, name, Some(&version)).ok()?;
    template
        .steps
        .iter()
        .find(|s| s.name == step)
        .and_then(|s| s.retry.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn permanent_last_attempt_and_retry_after() {
        let clock = ManualClock::new(DateTime::<Utc>::from_timestamp(1_000, 0).unwrap_or_default());
        let policy = BackoffPolicy {
            jitter_enabled: false,
            ..BackoffPolicy::default()
        };
        let id = Uuid::nil();
        let at =
            |attempt, error: &StepError| retry_at(&policy, None, &clock, id, attempt, 3, error);
        assert_eq!(at(1, &StepError::permanent("x")), None);
        assert_eq!(at(3, &StepError::retryable("x")), None);
        let t = at(2, &StepError::retryable("x")).unwrap();
        assert_eq!((t - clock.now()).num_seconds(), 2);
        let asked = StepError::retryable("x").with_retry_after(Duration::from_secs(7));
        let t = at(1, &asked).unwrap();
        assert_eq!((t - clock.now()).num_seconds(), 7);
    }

    #[test]
    fn a_schedule_picks_delays_per_code_and_stops_on_listed_codes() {
        let clock = ManualClock::new(DateTime::<Utc>::from_timestamp(1_000, 0).unwrap_or_default());
        let policy = BackoffPolicy::default();
        // delays: [3, 9], by_code: {HTTP_429: {delays: [60]}}, no_retry_on: [HTTP_400]
        let raw = tasker_core::retry::RawRetry {
            delays: Some(vec![3.0, 9.0]),
            by_code: [(
                "HTTP_429".to_string(),
                tasker_core::retry::RawBackoff {
                    delays: Some(vec![60.0]),
                    ..Default::default()
                },
            )]
            .into(),
            no_retry_on: vec!["HTTP_400".to_string()],
            ..Default::default()
        };
        let s = raw.validate().unwrap();
        let id = Uuid::nil();
        let wait = |attempt, error: &StepError| {
            retry_at(&policy, Some(&s), &clock, id, attempt, 5, error)
                .map(|t| (t - clock.now()).num_seconds())
        };
        assert_eq!(wait(1, &StepError::retryable("x")), Some(3));
        assert_eq!(wait(2, &StepError::retryable("x")), Some(9));
        assert_eq!(wait(3, &StepError::retryable("x")), Some(9));
        assert_eq!(
            wait(1, &StepError::retryable("x").with_code("HTTP_429")),
            Some(60)
        );
        assert_eq!(
            wait(1, &StepError::retryable("x").with_code("HTTP_400")),
            None
        );
        assert_eq!(
            wait(5, &StepError::retryable("x")),
            None,
            "no attempts left"
        );
    }
}
