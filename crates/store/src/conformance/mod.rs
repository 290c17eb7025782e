//! The conformance suite every backend runs (feature `conformance`).
//!
//! Each case is a public async function taking a fresh, migrated, empty
//! store; the files group them by area. A backend runs them all with one line
//! in its `tests/conformance.rs`:
//!
//! ```ignore
//! tasker_store::conformance_tests!(helper::fresh_store().await);
//! ```
//!
//! The calling crate needs `tokio` (features `macros`, `rt-multi-thread`):
//! the expansion uses `#[tokio::test]`, multi-threaded for the concurrency
//! cases.
//!
//! The factory expression is evaluated once per test and may return anything
//! implementing [`TestStore`]: an `Arc<dyn Store>`, an `Arc<S>` of a concrete
//! store, or a pair `(store, guard)` whose guard (a temporary directory, a
//! database to drop) lives until the test ends.
//!
//! Rules the cases follow: times are injected (a fixed [`base`] plus
//! offsets, never the wall clock, never sleeps), data comes from
//! [`factory`], and every assertion would fail if the behaviour it names
//! broke.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod analytics;
pub mod annotations;
pub mod claim;
pub mod completion;
pub mod concurrency;
pub mod create;
pub mod events;
pub mod factory;
pub mod finaliser;
pub mod finish;
pub mod flow;
pub mod flow_pause;
pub mod flow_prune;
pub mod keys;
pub mod leases;
pub mod manual;
pub mod pause;
pub mod queries;
pub mod restart;
pub mod retention;
pub mod schedules;
pub mod task_slots;
pub mod webhooks;
pub mod workload;

use crate::{
    ClaimParams, ClaimedStep, FinishReport, LeaseRef, OutcomeResult, StepErrorRecord, StepOutcome,
    StepRow, Store, StoreError, StoreEvent, TransitionRow,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// What a backend's factory expression may return.
pub trait TestStore {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
}

impl TestStore for Arc<dyn Store> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<S: Store> TestStore for Arc<S> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<T: TestStore, G> TestStore for (T, G) {
    fn store(&self) -> Arc<dyn Store> {
        self.0.store()
    }
}

/// Expands to one `#[tokio::test]` per conformance case. The argument is an
/// expression (it may `.await`) evaluated at the start of every test, giving
/// a fresh store (see [`TestStore`]).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@current $factory;
            create::create_inserts_task_steps_and_edges,
            create::create_starts_the_tasks_history_not_the_steps,
            create::create_counts_roots_as_ready,
            create::create_duplicate_identity_inside_window_is_rejected,
            create::create_duplicate_identity_outside_window_is_allowed,
            create::create_without_identity_never_duplicates,
            create::create_many_inserts_all,
            create::create_many_is_all_or_nothing,
            create::create_emits_work_available,
            create::missing_ids_are_not_found,
            claim::claim_takes_only_ready_steps,
            claim::claim_sets_lease_attempt_and_transition,
            claim::claim_respects_limit_and_ready_order,
            claim::claim_never_returns_a_step_twice,
            claim::claim_moves_task_to_in_progress_once,
            claim::claim_includes_parent_results,
            claim::claim_respects_per_task_limit,
            claim::claim_per_task_limit_does_not_starve_later_tasks,
            claim::claim_filters_by_kind,
            claim::claim_filters_by_namespace,
            claim::claim_waits_for_future_ready_at,
            claim::claim_with_zero_limit_takes_nothing,
            finish::success_completes_step_and_unblocks_child,
            finish::child_waits_for_all_parents,
            finish::two_parents_finishing_in_one_batch,
            finish::task_completes_exactly_once,
            finish::failure_with_retry_reschedules,
            finish::failure_with_immediate_retry_is_ready_now,
            finish::exhausted_failure_errors_task,
            finish::task_errors_only_once_nothing_is_live,
            finish::a_failed_branch_waits_while_another_readies_its_next_step,
            finish::retry_elsewhere_keeps_task_running,
            finish::unstorable_result_is_refused_alike,
            finish::lease_lost_on_wrong_token,
            finish::lease_lost_after_rescue,
            finish::lease_lost_after_task_cancel,
            finish::duplicate_outcome_applies_once,
            finish::empty_batch_is_a_no_op,
            finish::counters_follow_every_change,
            finaliser::finaliser_table,
            completion::completion_leases_ready_children,
            completion::completion_respects_the_free_slots,
            completion::completion_obeys_the_claim_rule,
            completion::completion_lease_expires_and_is_rescued,
            completion::completion_starts_a_task_it_unparks,
            completion::completion_admits_keyed_children,
            completion::completion_reports_the_tasks_a_mixed_batch_ended,
            leases::renew_extends_held_leases,
            leases::renew_reports_lost_leases,
            leases::rescue_with_attempts_left_goes_pending,
            leases::rescue_without_attempts_errors_task,
            leases::rescue_ignores_unexpired_leases,
            leases::rescue_respects_limit,
            manual::cancel_task_cancels_open_steps,
            manual::cancel_task_follows_state_table,
            manual::retry_task_refills_budget_and_runs_again,
            manual::retry_task_requires_error,
            manual::resolve_step_unblocks_children_and_task_completes,
            manual::resolve_last_blocker_resolves_task,
            manual::resolve_pending_step_of_running_task,
            manual::resolve_rejects_running_and_done_steps,
            manual::cancel_step_blocks_task_once_nothing_moves,
            manual::cancel_running_step_rejects_late_result,
            manual::cancel_step_rejects_done_steps,
            manual::step_retry_makes_error_step_pending,
            manual::step_retry_requires_error,
            manual::step_update_edits_inputs_and_retry_limit,
            manual::task_update_edits_reason_and_tags,
            manual::operator_actions_record_who_asked,
            flow::concurrency_key_caps_running_steps,
            flow::rescue_and_task_cancel_release_the_key,
            flow::rate_limit_defers_without_spending_attempts,
            flow::keys_and_buckets_combine,
            task_slots::max_running_tasks_caps_running_tasks,
            task_slots::completion_claim_and_failure_obey_the_limit,
            task_slots::a_resumed_waiting_task_is_decided_again,
            flow_prune::housekeeping_prunes_ticks_buckets_and_keys,
            pause::pause_stops_new_steps_and_resume_continues,
            pause::pause_keeps_backoff_and_follows_rules,
            pause::pause_shows_in_step_reads_and_cancel_clears_it,
            flow_pause::namespace_and_template_pauses,
            restart::restart_reruns_the_step_and_downstream,
            restart::restart_follows_the_rules,
            flow_pause::own_resume_inside_a_paused_namespace,
            queries::task_list_filters_and_counts,
            queries::task_list_sorts_and_pages,
            queries::task_list_filters_by_correlation_id,
            queries::step_counts_by_situation,
            queries::stats_count_states,
            queries::stats_since_counts_the_window,
            queries::next_ready_at_is_earliest_ready_at,
            queries::step_list_and_step_get_agree,
            queries::step_list_many_matches_step_list,
            queries::events_announce_changes_and_finishes,
            queries::ping_and_migrations,
            analytics::queue_depth_counts_ready_steps,
            analytics::history_sample_covers_the_window,
            retention::prune_deletes_only_finished_tasks_before_the_cutoff,
            retention::prune_leaves_a_reopened_task,
            retention::prune_expired_deletes_only_finished_tasks_in_batches,
            retention::prune_filters_by_namespace,
            retention::task_list_keyset_pages_and_count_modes,
            keys::api_keys_round_trip_and_list_oldest_first,
            keys::revocation_is_kept_once_and_missing_keys_are_not_found,
            events::events_follow_a_successful_task,
            events::failure_events_carry_error_and_retry,
            events::operator_actions_and_rescues_have_events,
            events::operator_step_changes_name_attempt_and_worker,
            events::rolled_back_writes_leave_no_events,
            events::events_filter_and_page,
            events::events_list_many_pages_per_task,
            events::custom_events_and_pruning,
            annotations::annotations_round_trip_grouped_by_task,
            annotations::task_list_filters_by_tags_and_annotations,
            webhooks::webhooks_fan_out_by_filter_and_deliver_once,
            webhooks::webhook_order_per_task_retries_and_dead_letters,
            webhooks::expired_delivery_lease_is_claimed_again,
            webhooks::webhook_config_sync_follows_the_configuration,
            webhooks::settled_deliveries_go_with_their_events,
            schedules::schedules_round_trip,
            schedules::tick_creates_one_task_and_duplicates_are_refused,
            schedules::paused_schedules_do_not_fire,
            schedules::catch_up_after_a_restart,
        );
        $crate::conformance_tests!(@multi $factory;
            concurrency::concurrent_claimers_never_double_claim,
            concurrency::concurrent_finishers_finalise_once,
            concurrency::concurrent_creates_respect_identity,
            completion::completion_races_claimers_without_double_lease,
            events::concurrent_writers_record_every_event_once,
            webhooks::concurrent_delivery_claimers_never_share_a_pair,
            schedules::concurrent_fires_create_one_task_per_tick,
        );
    };
    (@current $factory:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fresh = $factory;
                let store = $crate::conformance::TestStore::store(&fresh);
                $crate::conformance::$module::$case(store).await;
            }
        )*
    };
    (@multi $factory:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fresh = $factory;
                let store = $crate::conformance::TestStore::store(&fresh);
                $crate::conformance::$module::$case(store).await;
            }
        )*
    };
}

// ---- clock -----------------------------------------------------------------

/// The fixed "now" every case starts from (2030-01-01T00:00:00Z).
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// [`base`] plus `secs` seconds.
pub fn at(secs: i64) -> DateTime<Utc> {
    base() + Duration::seconds(secs)
}

// ---- work helpers ----------------------------------------------------------

/// Claim parameters with no filters: lease until `now + 30 s`.
pub fn params(worker: &str, limit: u32, now: DateTime<Utc>) -> ClaimParams {
    ClaimParams {
        worker_id: worker.to_string(),
        limit,
        lease_until: now + Duration::seconds(30),
        now,
        per_task_limit: None,
        kinds: None,
        exclude_kinds: Vec::new(),
        namespaces: None,
    }
}

/// Claims up to `limit` steps at `now` as worker `w1`.
pub async fn claim(store: &Arc<dyn Store>, limit: u32, now: DateTime<Utc>) -> Vec<ClaimedStep> {
    store.step_claim(&params("w1", limit, now)).await.unwrap()
}

/// Claims exactly one step at `now`.
pub async fn claim_one(store: &Arc<dyn Store>, now: DateTime<Utc>) -> ClaimedStep {
    let mut got = claim(store, 1, now).await;
    assert_eq!(got.len(), 1, "expected one claimable step at {now}");
    got.remove(0)
}

/// The lease of a claimed step.
pub fn lease(c: &ClaimedStep) -> LeaseRef {
    LeaseRef {
        step_id: c.step_id,
        token: c.lease_token,
    }
}

/// A success outcome.
pub fn success(c: &ClaimedStep, results: Value) -> StepOutcome {
    StepOutcome {
        lease: lease(c),
        result: OutcomeResult::Success(results),
    }
}

/// A failure outcome (`retry_at = None` means no more attempts).
pub fn failure(c: &ClaimedStep, retry_at: Option<DateTime<Utc>>) -> StepOutcome {
    StepOutcome {
        lease: lease(c),
        result: OutcomeResult::Failure {
            error: StepErrorRecord {
                message: format!("{} failed", c.step_name),
                kind: if retry_at.is_some() {
                    "retryable"
                } else {
                    "permanent"
                }
                .to_string(),
                code: Some("E42".to_string()),
                attempt: c.attempt,
            },
            retry_at,
        },
    }
}

/// Finishes one step successfully with `{"step": name}` as results.
pub async fn succeed(store: &Arc<dyn Store>, c: &ClaimedStep, now: DateTime<Utc>) -> FinishReport {
    let r = store
        .step_finish_many(&[success(c, serde_json::json!({"step": c.step_name}))], now)
        .await
        .unwrap();
    assert_eq!(
        r.applied, 1,
        "outcome for {} not applied: {r:?}",
        c.step_name
    );
    r
}

/// Fails one step (retrying at `retry_at`, or for good).
pub async fn fail(
    store: &Arc<dyn Store>,
    c: &ClaimedStep,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> FinishReport {
    let r = store
        .step_finish_many(&[failure(c, retry_at)], now)
        .await
        .unwrap();
    assert_eq!(
        r.applied, 1,
        "outcome for {} not applied: {r:?}",
        c.step_name
    );
    r
}

/// Claims and succeeds steps at `now` until nothing is claimable; returns
/// how many steps ran.
pub async fn run_all(store: &Arc<dyn Store>, now: DateTime<Utc>) -> usize {
    let mut ran = 0;
    loop {
        let got = claim(store, 100, now).await;
        if got.is_empty() {
            return ran;
        }
        ran += got.len();
        let outcomes: Vec<_> = got
            .iter()
            .map(|c| success(c, serde_json::json!({"step": c.step_name})))
            .collect();
        let r = store.step_finish_many(&outcomes, now).await.unwrap();
        assert_eq!(r.applied as usize, got.len());
    }
}

// ---- reading back ----------------------------------------------------------

/// The step of a task with this name.
pub async fn step(store: &Arc<dyn Store>, task: Uuid, name: &str) -> StepRow {
    store
        .step_list(task)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step `{name}` in task {task}"))
}

/// `(from, to)` pairs of transitions.
pub fn moves(ts: &[TransitionRow]) -> Vec<(Option<&str>, &str)> {
    ts.iter()
        .map(|t| (t.from_state.as_deref(), t.to_state.as_str()))
        .collect()
}

/// Step transitions as `(from, to)` pairs.
pub async fn step_moves(store: &Arc<dyn Store>, step: Uuid) -> Vec<(Option<String>, String)> {
    store
        .step_transitions(step)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.from_state, t.to_state))
        .collect()
}

/// Task transitions as `(from, to)` pairs.
pub async fn task_moves(store: &Arc<dyn Store>, task: Uuid) -> Vec<(Option<String>, String)> {
    store
        .task_transitions(task)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.from_state, t.to_state))
        .collect()
}

/// Every task in `tasks` is complete, and each reached `complete` exactly
/// once (the finaliser ran once however many writers raced).
pub async fn assert_completed_once(store: &Arc<dyn Store>, tasks: &[crate::NewTask]) {
    let page = store
        .task_list(&crate::TaskQuery {
            status: Some(tasker_core::TaskState::Complete),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total.unwrap(), tasks.len() as i64);
    for t in tasks {
        let moves = task_moves(store, t.id).await;
        assert_eq!(
            moves.iter().filter(|(_, to)| to == "complete").count(),
            1,
            "task {}",
            t.id
        );
    }
}

/// Shorthand for expected transition lists.
pub fn mv(pairs: &[(Option<&str>, &str)]) -> Vec<(Option<String>, String)> {
    pairs
        .iter()
        .map(|(f, t)| (f.map(str::to_string), t.to_string()))
        .collect()
}

/// Asserts the task's `steps_remaining` matches its steps (the one counter a
/// [`crate::TaskRow`] exposes), and returns the task.
pub async fn check_remaining(store: &Arc<dyn Store>, task: Uuid) -> crate::TaskRow {
    let t = store.task_get(task).await.unwrap();
    let steps = store.step_list(task).await.unwrap();
    let remaining = steps.iter().filter(|s| !s.status.is_done()).count() as i64;
    assert_eq!(t.steps_remaining, remaining, "steps_remaining of {task}");
    assert_eq!(t.steps_total, steps.len() as i64, "steps_total of {task}");
    t
}

// ---- events ----------------------------------------------------------------

/// Waits (at most 5 s of real time, for backends that relay events) for an
/// event matching `pred`; false if none came.
pub async fn saw(
    rx: &mut broadcast::Receiver<StoreEvent>,
    pred: impl Fn(&StoreEvent) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return true,
            Ok(Ok(_)) => continue,
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return false,
        }
    }
}

/// Drains what is queued without waiting.
pub fn drain(rx: &mut broadcast::Receiver<StoreEvent>) -> Vec<StoreEvent> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(ev) => out.push(ev),
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return out,
        }
    }
}

// ---- errors ----------------------------------------------------------------

/// Asserts an `InvalidTransition`.
pub fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::InvalidTransition(_)) => {}
        other => panic!("{what}: expected InvalidTransition, got {other:?}"),
    }
}

/// Asserts a `NotFound`.
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Asserts a `Conflict`.
pub fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}
