//! In-process cache of dependency analyses, keyed by task id.
//!
//! Three things keep it honest:
//! - **Events.** A listener on [`Store::subscribe`] drops a task's entry on
//!   `TaskChanged` / `TaskFinished` for that task, and everything on `Lagged`.
//!   Only this process's changes arrive as `TaskChanged`: no store relays
//!   `TaskChanged` between processes, and only PostgreSQL relays
//!   `TaskFinished` (see `tasker_store::events`).
//! - **Fingerprints.** Each entry records a hash of the step data it was
//!   computed from (states, attempts, readiness times, whether each pending
//!   step's time has come). Every request reads the steps anyway to answer,
//!   so a lookup whose fingerprint differs is a miss. This is what catches
//!   step changes made by other processes (workers on either store), and a
//!   backoff running out with no event at all.
//! - **A time to live**, as a backstop for time-dependent text (e.g. "2 minutes").

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tasker_core::analysis::{
    AnalysisError, DependencyAnalysis, DependencyGraphWeights, StepSnapshot, analyze,
};
use tasker_store::{StepRow, Store, StoreEvent};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

#[derive(Debug)]
struct Entry {
    fingerprint: u64,
    analysis: Arc<DependencyAnalysis>,
}

/// The cache. Cheap to clone; clones share entries.
#[derive(Clone)]
pub struct AnalysisCache {
    entries: moka::future::Cache<Uuid, Arc<Entry>>,
}

/// Whether an analysis came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Served from the cache.
    Hit,
    /// Computed now.
    Miss,
}

impl AnalysisCache {
    /// A cache that listens to `store`'s events. Without a tokio runtime no
    /// listener starts; fingerprints still keep every answer right.
    pub fn new(store: &dyn Store, capacity: u64, ttl: Duration) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .build();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            // The listener holds only the moka handle; it ends when the
            // store's channel closes (the store was dropped).
            handle.spawn(listen(store.subscribe(), entries.clone()));
        }
        AnalysisCache { entries }
    }

    /// The analysis of a task from its steps (one task's, in template
    /// order): the cached one when the steps still match its fingerprint,
    /// else computed now and cached. Also says which it was.
    pub async fn get_or_compute(
        &self,
        task_id: Uuid,
        steps: &[StepRow],
        now: DateTime<Utc>,
        weights: &DependencyGraphWeights,
    ) -> Result<(Arc<DependencyAnalysis>, Lookup), AnalysisError> {
        let fingerprint = fingerprint(steps, now);
        if let Some(e) = self.entries.get(&task_id).await
            && e.fingerprint == fingerprint
        {
            return Ok((e.analysis.clone(), Lookup::Hit));
        }
        let snapshots = snapshots(steps)?;
        let analysis = Arc::new(analyze(&snapshots, now, weights)?);
        self.entries
            .insert(
                task_id,
                Arc::new(Entry {
                    fingerprint,
                    analysis: analysis.clone(),
                }),
            )
            .await;
        Ok((analysis, Lookup::Miss))
    }

    /// Entries currently held (after pending maintenance).
    #[cfg(test)]
    pub(crate) async fn len(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }
}

async fn listen(
    mut rx: tokio::sync::broadcast::Receiver<StoreEvent>,
    entries: moka::future::Cache<Uuid, Arc<Entry>>,
) {
    loop {
        match rx.recv().await {
            Ok(StoreEvent::TaskChanged(id)) | Ok(StoreEvent::TaskFinished(id)) => {
                entries.invalidate(&id).await;
            }
            Ok(StoreEvent::WorkAvailable) => {}
            // Missed events: anything may have changed.
            Err(RecvError::Lagged(_)) => entries.invalidate_all(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Converts store rows to the analysis's input (parents by index).
pub fn snapshots(steps: &[StepRow]) -> Result<Vec<StepSnapshot>, AnalysisError> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    steps
        .iter()
        .map(|s| {
            let parents = s
                .parents
                .iter()
                .map(|p| {
                    index
                        .get(p.as_str())
                        .copied()
                        .ok_or_else(|| AnalysisError::UnknownParent {
                            step: s.name.clone(),
                            parent: usize::MAX,
                            count: steps.len(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(StepSnapshot {
                id: s.id,
                name: s.name.clone(),
                state: s.status,
                attempts: u32::try_from(s.attempts).unwrap_or(0),
                max_attempts: u32::try_from(s.max_attempts).unwrap_or(0),
                retryable: s.retryable,
                ready_at: s.ready_at,
                parents,
            })
        })
        .collect()
}

/// A hash of everything the analysis reads, including which pending steps'
/// time has come at `now`.
fn fingerprint(steps: &[StepRow], now: DateTime<Utc>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    steps.len().hash(&mut h);
    for s in steps {
        s.id.hash(&mut h);
        s.status.hash(&mut h);
        s.attempts.hash(&mut h);
        s.max_attempts.hash(&mut h);
        s.retryable.hash(&mut h);
        s.ready_at.hash(&mut h);
        s.ready_at.is_some_and(|t| t <= now).hash(&mut h);
        s.parents.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasker_core::StepState;

    async fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let s = tasker_store_sqlite::SqliteStore::connect(&url)
            .await
            .unwrap();
        (Arc::new(s), dir)
    }

    async fn tasker(store: Arc<dyn Store>) -> (tasker_engine::Tasker, Uuid) {
        let t = tasker_core::template::parse_template(
            "<t>",
            "name: t\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n  - name: b\n    depends_on_step: a\n    handler: {kind: noop}\n",
            None,
        )
        .unwrap();
        let tasker = tasker_engine::Tasker::builder(store)
            .template(t)
            .build()
            .unwrap();
        let task = tasker
            .create_task(tasker_engine::TaskRequest::new("default", "t"))
            .await
            .unwrap();
        (tasker, task.id)
    }

    #[tokio::test]
    async fn events_invalidate_and_fingerprints_validate() {
        let (store, _dir) = store().await;
        let (tasker, id) = tasker(store.clone()).await;
        let cache = AnalysisCache::new(store.as_ref(), 100, Duration::from_secs(60));
        let w = DependencyGraphWeights::default();
        let steps = tasker.task_steps(id).await.unwrap();
        let now = tasker.now();
        let (_, first) = cache.get_or_compute(id, &steps, now, &w).await.unwrap();
        let (_, second) = cache.get_or_compute(id, &steps, now, &w).await.unwrap();
        assert_eq!((first, second), (Lookup::Miss, Lookup::Hit));
        assert_eq!(cache.len().await, 1);

        // A step change publishes TaskChanged: the entry goes away.
        tasker.cancel_step(steps[1].id, None).await.unwrap();
        let mut gone = false;
        for _ in 0..100 {
            if cache.len().await == 0 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone, "the TaskChanged event did not invalidate the entry");

        // Stale rows never hit: a different fingerprint is a miss.
        let fresh = tasker.task_steps(id).await.unwrap();
        let (a, _) = cache.get_or_compute(id, &fresh, now, &w).await.unwrap();
        assert_eq!(a.dependency_graph.nodes[1].state, StepState::Cancelled);
        let (_, stale) = cache.get_or_compute(id, &steps, now, &w).await.unwrap();
        assert_eq!(stale, Lookup::Miss);
    }

    #[tokio::test]
    async fn corrupt_rows_are_an_error_not_a_panic() {
        let (store, _dir) = store().await;
        let (tasker, id) = tasker(store.clone()).await;
        let cache = AnalysisCache::new(store.as_ref(), 100, Duration::from_secs(60));
        let mut steps = tasker.task_steps(id).await.unwrap();
        steps[1].parents = vec!["ghost".into()];
        let r = cache
            .get_or_compute(id, &steps, tasker.now(), &DependencyGraphWeights::default())
            .await;
        assert!(r.is_err());
    }
}
