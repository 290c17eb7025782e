//! Concurrency keys and rate limits: what a step carries, and the rule a
//! claim applies to the candidates it found (docs/FLOW_CONTROL.md).
//!
//! The rule, for candidates in claim order (oldest ready first):
//!
//! 1. **Concurrency.** A candidate with a key is taken while
//!    `running(key) + its rank among the key's candidates <= limit`. The
//!    ones beyond are *parked*: they leave the ready index until a step of
//!    their key stops running, so a full key never fills a claim batch again
//!    and is never rescanned.
//! 2. **Rate limit.** Among the candidates still in, one with a bucket takes
//!    a token: the bucket holds `min(burst, tokens + elapsed × per_second)`;
//!    the `n`-th candidate of a bucket is taken while `n <= floor(tokens)`.
//!    The ones beyond are *deferred*: `ready_at` moves to when their token
//!    will be there, `now + (n − tokens) / per_second`. No attempt is
//!    used, nothing fails.
//!
//! SQLite applies [`gate`] inside its write transaction; PostgreSQL states the
//! same rule in its claim statement (`crates/store-postgres/src/work.rs`),
//! where the key and bucket rows are locked. The conformance suite
//! (`conformance::flow`) pins both to it.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// What a step's concurrency key and rate limit resolved to when its task
/// was created. `StepFlow::default()` is a step without either.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFlow {
    /// At most `limit` steps with this key run at once.
    pub concurrency: Option<ConcurrencyKey>,
    /// Each run takes a token of this bucket.
    pub rate: Option<RateBucket>,
    /// Its task runs under its template's `max_running_tasks`: every step
    /// of such a task carries it.
    pub task_slot: Option<TaskSlot>,
}

impl StepFlow {
    /// Whether the step has none of the three.
    pub fn is_none(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none() && self.task_slot.is_none()
    }
}

/// A template's `max_running_tasks` as a task carries it: no more than
/// `limit` tasks with this key are `in_progress` at once. A task takes its
/// slot when its first step is claimed (the task starts) and gives it back
/// when it leaves `in_progress` (complete, error, cancelled).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSlot {
    /// The template, `namespace/name` (all versions share it).
    pub key: String,
    /// Tasks of the template allowed to run at once (at least 1), from the
    /// task's own template version.
    pub limit: i32,
}

impl TaskSlot {
    /// The slot key of a template.
    pub fn key_of(namespace: &str, name: &str) -> String {
        format!("{namespace}/{name}")
    }
}

/// A rendered concurrency key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyKey {
    /// The key, e.g. `customer:42`.
    pub key: String,
    /// Steps of the key allowed to run at once (at least 1).
    pub limit: i32,
}

/// A token bucket a step draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBucket {
    /// The bucket: the limit's name, or `name:key` for a per-key bucket.
    pub key: String,
    /// Tokens added per second (> 0).
    pub per_second: f64,
    /// Most tokens the bucket holds (>= 1); a new bucket starts full.
    pub burst: f64,
}

/// What a pending step is waiting for, beyond its parents and retry time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FlowWait {
    /// Its concurrency key is at its limit; it runs when a step of the key
    /// finishes.
    ConcurrencyKey {
        /// The key.
        key: String,
    },
    /// Its rate-limit bucket was empty; it runs at its `ready_at`.
    RateLimit {
        /// The bucket.
        bucket: String,
    },
    /// Its task has not started and its template's `max_running_tasks`
    /// are running; it runs when one of them ends.
    TaskSlot,
}

impl FlowWait {
    /// Decodes a step's stored `flow_wait` with its key columns.
    pub fn from_columns(
        wait: Option<&str>,
        concurrency_key: Option<&str>,
        rate_key: Option<&str>,
    ) -> Option<FlowWait> {
        match wait? {
            WAIT_CONCURRENCY => Some(FlowWait::ConcurrencyKey {
                key: concurrency_key.unwrap_or_default().to_string(),
            }),
            WAIT_RATE => Some(FlowWait::RateLimit {
                bucket: rate_key.unwrap_or_default().to_string(),
            }),
            WAIT_TASK_SLOT => Some(FlowWait::TaskSlot),
            _ => None,
        }
    }
}

impl std::fmt::Display for FlowWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowWait::ConcurrencyKey { key } => write!(f, "waiting for concurrency key {key}"),
            FlowWait::RateLimit { bucket } => write!(f, "waiting for rate limit {bucket}"),
            FlowWait::TaskSlot => write!(f, "waiting for max_running_tasks of its template"),
        }
    }
}

/// `steps.flow_wait` of a parked step.
pub const WAIT_CONCURRENCY: &str = "concurrency";
/// `steps.flow_wait` of a step deferred by its bucket.
pub const WAIT_RATE: &str = "rate_limit";
/// `steps.flow_wait` of a step parked until its template has a free task
/// slot.
pub const WAIT_TASK_SLOT: &str = "task_slot";

/// What [`crate::Store::flow_prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowPruned {
    /// Schedule ticks.
    pub schedule_ticks: u64,
    /// Concurrency-key counters (PostgreSQL).
    pub flow_keys: u64,
    /// Rate-limit buckets.
    pub rate_buckets: u64,
}

impl FlowPruned {
    /// Whether any kind reached `limit` (another pass may find more).
    pub fn full(&self, limit: u32) -> bool {
        let l = u64::from(limit);
        self.schedule_ticks >= l || self.flow_keys >= l || self.rate_buckets >= l
    }
}

/// A claim candidate with flow control.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The step.
    pub id: Uuid,
    /// Its concurrency key, if any.
    pub concurrency: Option<ConcurrencyKey>,
    /// Its bucket, if any.
    pub rate: Option<RateBucket>,
    /// The slot its task still needs: set only while the task is `pending`
    /// (a started task holds its slot, its steps pass freely).
    pub needs_slot: Option<NeedsSlot>,
}

/// A candidate of a task that has not started yet, under a template limit.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedsSlot {
    /// The task.
    pub task_id: Uuid,
    /// Its template's slot.
    pub slot: TaskSlot,
}

/// A bucket as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    /// Tokens at `refreshed_at`.
    pub tokens: f64,
    /// When `tokens` was computed.
    pub refreshed_at: DateTime<Utc>,
}

/// What [`gate`] decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    /// Taken, in candidate order.
    pub take: Vec<Uuid>,
    /// Parked: their key is full.
    pub park: Vec<Uuid>,
    /// Parked: their task has not started and its template is at its
    /// `max_running_tasks`.
    pub park_slot: Vec<Uuid>,
    /// Deferred: their bucket is empty; new `ready_at`.
    pub defer: Vec<(Uuid, DateTime<Utc>)>,
    /// Buckets after the claim: tokens left at `now`.
    pub buckets: Vec<(String, f64)>,
}

/// Tokens in a bucket at `now`.
pub fn refill(state: Option<BucketState>, bucket: &RateBucket, now: DateTime<Utc>) -> f64 {
    match state {
        // A bucket nobody drew from yet is full.
        None => bucket.burst,
        Some(s) => {
            let elapsed = (now - s.refreshed_at)
                .num_microseconds()
                .unwrap_or(i64::MAX) as f64
                / 1e6;
            (s.tokens + elapsed.max(0.0) * bucket.per_second).min(bucket.burst)
        }
    }
}

/// Applies the rule of this module to candidates in claim order, given the
/// running count of each key, the running tasks of each template slot and
/// the stored buckets.
///
/// Rule 0, before the others: the tasks that still need a slot are ranked
/// per template in task id order (UUID v7: creation order); a candidate is
/// in while `running tasks + its task's rank <= limit`, all candidates of
/// one task sharing its rank. The ones beyond are parked until a task of
/// the template stops running. Only the candidates still in are ranked by
/// their concurrency key and draw tokens.
pub fn gate(
    candidates: &[Candidate],
    running: &HashMap<String, i64>,
    slots_running: &HashMap<String, i64>,
    buckets: &HashMap<String, BucketState>,
    now: DateTime<Utc>,
) -> Gate {
    let mut out = Gate::default();
    let mut waiting: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for n in candidates.iter().filter_map(|c| c.needs_slot.as_ref()) {
        let tasks = waiting.entry(n.slot.key.as_str()).or_default();
        if !tasks.contains(&n.task_id) {
            tasks.push(n.task_id);
        }
    }
    for tasks in waiting.values_mut() {
        tasks.sort_unstable();
    }
    let mut rank: HashMap<&str, i64> = HashMap::new();
    let mut tokens: HashMap<&str, (f64, i64)> = HashMap::new();
    for c in candidates {
        if let Some(n) = &c.needs_slot {
            let place = waiting
                .get(n.slot.key.as_str())
                .and_then(|t| t.iter().position(|t| *t == n.task_id))
                .unwrap_or(0) as i64
                + 1;
            let busy = slots_running.get(&n.slot.key).copied().unwrap_or(0);
            if busy + place > i64::from(n.slot.limit) {
                out.park_slot.push(c.id);
                continue;
            }
        }
        if let Some(k) = &c.concurrency {
            let n = rank.entry(k.key.as_str()).or_default();
            *n += 1;
            if running.get(&k.key).copied().unwrap_or(0) + *n > i64::from(k.limit) {
                out.park.push(c.id);
                continue;
            }
        }
        if let Some(b) = &c.rate {
            let (avail, used) = tokens
                .entry(b.key.as_str())
                .or_insert_with(|| (refill(buckets.get(&b.key).copied(), b, now), 0));
            *used += 1;
            if *used as f64 > avail.floor() {
                let wait = (*used as f64 - *avail) / b.per_second;
                out.defer.push((
                    c.id,
                    now + Duration::microseconds((wait * 1e6).ceil() as i64),
                ));
                continue;
            }
        }
        out.take.push(c.id);
    }
    let mut buckets: Vec<(String, f64)> = tokens
        .into_iter()
        .map(|(k, (avail, used))| (k.to_string(), avail - (used as f64).min(avail.floor())))
        .collect();
    buckets.sort_by(|a, b| a.0.cmp(&b.0));
    out.buckets = buckets;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: Option<(&str, i32)>, rate: Option<&str>) -> Candidate {
        Candidate {
            id: Uuid::now_v7(),
            concurrency: key.map(|(k, l)| ConcurrencyKey {
                key: k.into(),
                limit: l,
            }),
            rate: rate.map(|r| RateBucket {
                key: r.into(),
                per_second: 10.0,
                burst: 2.0,
            }),
            needs_slot: None,
        }
    }

    #[test]
    fn tasks_beyond_the_template_limit_are_parked_whole_and_started_ones_pass() {
        let (p, q, r) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let need = |task: Uuid| {
            Some(NeedsSlot {
                task_id: task,
                slot: TaskSlot {
                    key: "ns/t".into(),
                    limit: 2,
                },
            })
        };
        let mut c: Vec<Candidate> = (0..5).map(|_| cand(Some(("k", 1)), None)).collect();
        // q's steps come first in claim order, but p was created first.
        c[0].needs_slot = need(q);
        c[1].needs_slot = need(p);
        c[2].needs_slot = need(q);
        c[3].needs_slot = need(r);
        // c[4]: a step of a task that already holds its slot.
        let slots = HashMap::from([("ns/t".to_string(), 1)]);
        let g = gate(&c, &HashMap::new(), &slots, &HashMap::new(), Utc::now());
        // One slot left: p (oldest) gets it; q and r wait. Only p's step is
        // ranked by key `k`, so the started task's step is parked by the key.
        assert_eq!(g.take, vec![c[1].id]);
        assert_eq!(g.park_slot, vec![c[0].id, c[2].id, c[3].id]);
        assert_eq!(g.park, vec![c[4].id]);
    }

    #[test]
    fn a_full_key_parks_the_rest_and_other_keys_go_on() {
        let c = [
            cand(Some(("a", 2)), None),
            cand(Some(("a", 2)), None),
            cand(Some(("b", 2)), None),
            cand(None, None),
        ];
        let running = HashMap::from([("a".to_string(), 1)]);
        let g = gate(&c, &running, &HashMap::new(), &HashMap::new(), Utc::now());
        assert_eq!(g.take, vec![c[0].id, c[2].id, c[3].id]);
        assert_eq!(g.park, vec![c[1].id]);
    }

    #[test]
    fn an_empty_bucket_defers_by_the_refill_time() {
        let now = Utc::now();
        let c = [
            cand(None, Some("api")),
            cand(None, Some("api")),
            cand(None, Some("api")),
        ];
        let buckets = HashMap::from([(
            "api".to_string(),
            BucketState {
                tokens: 1.5,
                refreshed_at: now,
            },
        )]);
        let g = gate(&c, &HashMap::new(), &HashMap::new(), &buckets, now);
        assert_eq!(g.take, vec![c[0].id]);
        // 2nd: (2 − 1.5) / 10 s; 3rd: (3 − 1.5) / 10 s.
        assert_eq!(
            g.defer,
            vec![
                (c[1].id, now + Duration::milliseconds(50)),
                (c[2].id, now + Duration::milliseconds(150))
            ]
        );
        assert_eq!(g.buckets, vec![("api".to_string(), 0.5)]);
    }

    #[test]
    fn buckets_refill_up_to_the_burst() {
        let now = Utc::now();
        let b = RateBucket {
            key: "x".into(),
            per_second: 10.0,
            burst: 2.0,
        };
        let old = BucketState {
            tokens: 0.0,
            refreshed_at: now - Duration::seconds(60),
        };
        assert_eq!(refill(Some(old), &b, now), 2.0);
        let recent = BucketState {
            tokens: 0.0,
            refreshed_at: now - Duration::milliseconds(100),
        };
        assert!((refill(Some(recent), &b, now) - 1.0).abs() < 1e-9);
        assert_eq!(refill(None, &b, now), 2.0);
    }

    #[test]
    fn a_parked_step_takes_no_token() {
        let c = [
            cand(Some(("a", 1)), Some("api")),
            cand(Some(("a", 1)), Some("api")),
        ];
        let g = gate(
            &c,
            &HashMap::new(),
            &HashMap::new(),
            &HashMap::new(),
            Utc::now(),
        );
        assert_eq!(g.take, vec![c[0].id]);
        assert_eq!(g.park, vec![c[1].id]);
        assert_eq!(g.buckets, vec![("api".to_string(), 1.0)]);
    }
}
