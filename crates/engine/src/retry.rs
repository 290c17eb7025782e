//! The retry decision shared by in-process handlers and external workers.

use crate::clock::Clock;
use crate::handler::StepError;
use chrono::{DateTime, Utc};
use tasker_core::BackoffPolicy;
use uuid::Uuid;

/// When to try a failed step again, or None when `error` is permanent or
/// `attempt` was the last one allowed. A retry-after the handler asked for
/// replaces the policy's delay (capped by the policy's maximum).
pub fn retry_at(
    policy: &BackoffPolicy,
    clock: &dyn Clock,
    step_id: Uuid,
    attempt: i32,
    max_attempts: i32,
    error: &StepError,
) -> Option<DateTime<Utc>> {
    let StepError::Retryable { retry_after, .. } = error else {
        return None;
    };
    if attempt >= max_attempts {
        return None;
    }
    let delay = match retry_after {
        Some(d) => policy.requested(*d),
        None => {
            // Seeded by the step id: the same failure always waits the same time.
            let (hi, lo) = step_id.as_u64_pair();
            policy.delay(attempt.max(1) as u32, hi ^ lo)
        }
    };
    Some(clock.now() + chrono::Duration::from_std(delay).unwrap_or_default())
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
        assert_eq!(
            retry_at(&policy, &clock, id, 1, 3, &StepError::permanent("x")),
            None
        );
        assert_eq!(
            retry_at(&policy, &clock, id, 3, 3, &StepError::retryable("x")),
            None
        );
        let at = retry_at(&policy, &clock, id, 2, 3, &StepError::retryable("x")).unwrap();
        assert_eq!((at - clock.now()).num_seconds(), 2);
        let asked = StepError::retryable("x").with_retry_after(Duration::from_secs(7));
        let at = retry_at(&policy, &clock, id, 1, 3, &asked).unwrap();
        assert_eq!((at - clock.now()).num_seconds(), 7);
    }
}
