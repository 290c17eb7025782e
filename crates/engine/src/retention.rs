//! Retention: deleting finished tasks older than their window, in small
//! batches, optionally archiving each to a gzip JSON-lines file first
//! (docs/STORAGE.md, "History, retention and maintenance").
//!
//! The background pruner (`worker::pruner`) and `tasker prune` both call
//! [`Tasker::prune`]. Selection and deletion are separate store calls: a
//! batch is archived (and the file synced) between them, and the delete
//! re-checks that each task is still finished, so a task reopened in the
//! meantime is never deleted.

use crate::EngineError;
use crate::service::Tasker;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tasker_store::{PruneQuery, StoreError, TransitionRow};
use uuid::Uuid;

/// Retention settings in runtime types (`[retention]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Whether worker processes run the background pruner.
    pub enabled: bool,
    /// How long finished tasks are kept.
    #[serde(with = "days")]
    pub finished_task_window: Duration,
    /// Per-namespace windows overriding `finished_task_window`.
    #[serde(with = "days_map")]
    pub namespaces: BTreeMap<String, Duration>,
    /// Where pruned tasks are archived first (None = not archived).
    pub archive_dir: Option<PathBuf>,
    /// How often the pruner runs.
    pub interval: Duration,
    /// Tasks deleted per transaction.
    pub batch_size: u32,
    /// Months of history partitions kept created ahead (PostgreSQL).
    pub partition_months_ahead: u32,
    /// Rest after a batch that another follows, as a multiple of the
    /// batch's duration.
    pub pause_ratio: f64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig::from_config(&tasker_config::RetentionSection::default())
    }
}

const DAY: f64 = 86_400.0;

impl RetentionConfig {
    /// The runtime settings of `[retention]` (values already checked).
    pub fn from_config(r: &tasker_config::RetentionSection) -> Self {
        let days = |d: f64| Duration::try_from_secs_f64(d * DAY).unwrap_or_default();
        RetentionConfig {
            enabled: r.enabled,
            finished_task_window: days(r.finished_task_days),
            namespaces: r
                .namespaces
                .iter()
                .map(|(ns, d)| (ns.clone(), days(*d)))
                .collect(),
            archive_dir: r.archive_dir().map(PathBuf::from),
            interval: Duration::try_from_secs_f64(r.interval_seconds).unwrap_or_default(),
            batch_size: r.batch_size,
            partition_months_ahead: r.partition_months_ahead,
            pause_ratio: r.pause_ratio,
        }
    }

    /// Paces a prune (`pause_ratio`): rests `pause_ratio` times as long as
    /// the batch that began at `started` took. A backlog then takes at most
    /// `1 / (1 + pause_ratio)` of one connection's time, so the hot path
    /// keeps most of a small machine (docs/PERFORMANCE.md, "Pruning with
    /// partitions"). Pacing, not coordination: nothing waits for it.
    async fn rest_after(&self, started: std::time::Instant) {
        if self.pause_ratio > 0.0 {
            tokio::time::sleep(started.elapsed().mul_f64(self.pause_ratio)).await;
        }
    }

    /// The selections of one pass at `now`: each overridden namespace with
    /// its own cutoff, then every other namespace with the default one.
    /// `older_than` replaces every window (an operator's `--older-than`).
    pub fn selections(&self, now: DateTime<Utc>, older_than: Option<Duration>) -> Vec<PruneQuery> {
        let cutoff =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        if let Some(d) = older_than {
            return vec![PruneQuery {
                finished_before: cutoff(d),
                ..Default::default()
            }];
        }
        let mut out: Vec<PruneQuery> = self
            .namespaces
            .iter()
            .map(|(ns, d)| PruneQuery {
                finished_before: cutoff(*d),
                namespace: Some(ns.clone()),
                ..Default::default()
            })
            .collect();
        out.push(PruneQuery {
            finished_before: cutoff(self.finished_task_window),
            except_namespaces: self.namespaces.keys().cloned().collect(),
            ..Default::default()
        });
        out
    }
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneSummary {
    /// Tasks deleted (dry run: that would be deleted).
    pub tasks: u64,
    /// Tasks written to the archive.
    pub archived: u64,
    /// Archive files written.
    pub files: Vec<PathBuf>,
    /// The pass stopped early: another process was pruning.
    pub yielded: bool,
    /// History partitions created ahead, dropped, or compacted to the rows
    /// of remaining tasks (PostgreSQL; docs/STORAGE.md, "Partitions").
    pub partitions: Vec<tasker_store::MaintenanceRun>,
    /// Flow-control bookkeeping deleted: schedule ticks older than the
    /// default window, idle rate-limit buckets, idle concurrency-key
    /// counters (docs/FLOW_CONTROL.md, "Housekeeping").
    pub flow: tasker_store::flow::FlowPruned,
}

/// Most flow-housekeeping batches per pass (each deletes at most
/// `batch_size` rows of each kind); the next pass continues.
const FLOW_PRUNE_BATCHES: u32 = 100;

/// Options of one prune pass.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Count only.
    pub dry_run: bool,
    /// Replaces every retention window.
    pub older_than: Option<Duration>,
    /// Stop after this many batches per selection (None = until done).
    pub max_batches: Option<u32>,
}

/// One archived task: everything the store held for it.
#[derive(Serialize)]
struct ArchivedTask {
    task: tasker_store::TaskRow,
    steps: Vec<tasker_store::StepRow>,
    transitions: Vec<TransitionRow>,
    step_transitions: BTreeMap<Uuid, Vec<TransitionRow>>,
}

impl Tasker {
    /// Deletes finished tasks older than their retention window (see
    /// [`RetentionConfig::selections`]) in batches of `batch_size`,
    /// archiving each batch first when an archive is configured.
    pub async fn prune(&self, opts: &PruneOptions) -> Result<PruneSummary, EngineError> {
        let cfg = &self.config().retention;
        let store = self.store();
        let mut summary = PruneSummary::default();
        let now = self.now();
        let selections = cfg.selections(now, opts.older_than);
        if !opts.dry_run {
            // Every pass keeps next months' partitions ready, so rows never
            // land in a DEFAULT partition.
            // A failure here (locks busy for long) must not stop the
            // pruning: the next pass creates them.
            match store
                .history_partitions_ensure(now, cfg.partition_months_ahead)
                .await
            {
                Ok(runs) => summary.partitions = runs,
                Err(e) => tracing::warn!(error = %e, "cannot create history partitions ahead"),
            }
        }
        // Transition months that ended before the default window's cutoff (the
        // selection without a namespace) are candidates for dropping.
        let drop_before = selections
            .iter()
            .find(|q| q.namespace.is_none())
            .map(|q| q.finished_before);
        for mut q in selections {
            if opts.dry_run {
                summary.tasks += store.prune_count(&q).await?;
                continue;
            }
            q.limit = cfg.batch_size;
            let mut batches = 0;
            if cfg.archive_dir.is_none() {
                // No archive: the store selects, locks and deletes each
                // batch itself (PostgreSQL: one statement, the ids never
                // travel).
                loop {
                    let started = std::time::Instant::now();
                    let Some(n) = store.prune_expired(&q).await? else {
                        summary.yielded = true;
                        break;
                    };
                    summary.tasks += n;
                    batches += 1;
                    if n < u64::from(cfg.batch_size)
                        || opts.max_batches.is_some_and(|m| batches >= m)
                    {
                        break;
                    }
                    cfg.rest_after(started).await;
                }
                continue;
            }
            loop {
                let started = std::time::Instant::now();
                let ids = store.prune_candidates(&q).await?;
                if ids.is_empty() {
                    break;
                }
                if let Some(dir) = &cfg.archive_dir {
                    let (file, n) = self.archive(dir, &ids).await?;
                    summary.archived += n;
                    summary.files.push(file);
                }
                let deleted = store.tasks_prune(&ids, q.finished_before).await?;
                if deleted.is_empty() {
                    // Another process holds the prune lock (or reopened
                    // every task of the batch): leave the rest to it.
                    summary.yielded = true;
                    break;
                }
                summary.tasks += deleted.len() as u64;
                batches += 1;
                if ids.len() < cfg.batch_size as usize
                    || opts.max_batches.is_some_and(|m| batches >= m)
                {
                    break;
                }
                cfg.rest_after(started).await;
            }
        }
        if !opts.dry_run
            && let Some(before) = drop_before
        {
            // Ticks go with their tasks' window; a bucket idle that long is
            // full again anyway.
            for _ in 0..FLOW_PRUNE_BATCHES {
                let n = store.flow_prune(before, cfg.batch_size.max(1)).await?;
                summary.flow.schedule_ticks += n.schedule_ticks;
                summary.flow.flow_keys += n.flow_keys;
                summary.flow.rate_buckets += n.rate_buckets;
                if !n.full(cfg.batch_size.max(1)) {
                    break;
                }
            }
        }
        if !opts.dry_run
            && !summary.yielded
            && let Some(before) = drop_before
        {
            summary
                .partitions
                .extend(store.history_partitions_drop(before).await?);
        }
        Ok(summary)
    }

    /// Writes `ids` to a new gzip JSON-lines file in `dir`, synced before
    /// returning; tasks already gone are skipped.
    async fn archive(&self, dir: &Path, ids: &[Uuid]) -> Result<(PathBuf, u64), EngineError> {
        let mut lines = Vec::with_capacity(ids.len());
        for id in ids {
            match self.archived_task(*id).await {
                Ok(t) => {
                    lines.push(serde_json::to_vec(&t).map_err(|e| {
                        EngineError::Archive(format!("cannot encode task {id}: {e}"))
                    })?)
                }
                Err(EngineError::Store(StoreError::NotFound { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "tasker-archive-{}-{}.jsonl.gz",
            self.now().format("%Y%m%dT%H%M%S%.6fZ"),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let path = dir.join(name);
        let n = lines.len() as u64;
        let file = path.clone();
        tokio::task::spawn_blocking(move || write_gzip(&file, &lines))
            .await
            .map_err(|e| EngineError::Archive(format!("writer: {e}")))?
            .map_err(|e| EngineError::Archive(format!("cannot write {}: {e}", path.display())))?;
        Ok((path, n))
    }

    async fn archived_task(&self, id: Uuid) -> Result<ArchivedTask, EngineError> {
        let store = self.store();
        let task = store.task_get(id).await?;
        let steps = store.step_list(id).await?;
        let transitions = store.task_transitions(id).await?;
        let mut step_transitions = BTreeMap::new();
        for s in &steps {
            step_transitions.insert(s.id, store.step_transitions(s.id).await?);
        }
        Ok(ArchivedTask {
            task,
            steps,
            transitions,
            step_transitions,
        })
    }
}

fn write_gzip(path: &Path, lines: &[Vec<u8>]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path)?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    for line in lines {
        gz.write_all(line)?;
        gz.write_all(b"\n")?;
    }
    // The rows are deleted once this returns: the file must be on disk.
    gz.finish()?.sync_all()
}

/// Durations as (fractional) days in serialised settings.
mod days {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() / super::DAY)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v * super::DAY)
            .map_err(|_| serde::de::Error::custom(format!("{v} is not a valid number of days")))
    }
}

mod days_map {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, d)| (k, d.as_secs_f64() / super::DAY)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        BTreeMap::<String, f64>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                Duration::try_from_secs_f64(v * super::DAY)
                    .map(|d| (k, d))
                    .map_err(|_| {
                        serde::de::Error::custom(format!("{v} is not a valid number of days"))
                    })
            })
            .collect()
    }
}
