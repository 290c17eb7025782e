//! The worker: claims ready steps, runs their handlers, records outcomes.
//!
//! ```text
//!            ┌──────────── store events (WorkAvailable) / poll / next ready_at
//!            ▼
//!   claimer ──claim batch──► executor tasks (≤ max_concurrent_steps, a semaphore)
//!      ▲                           │ outcome
//!      │                           ▼
//!      └── WorkAvailable ◄── completer: one transaction per batch of outcomes
//!                              (claim on completion: the children it made ready,
//!                               up to the slots it frees, are leased in that
//!                               transaction and run at once)
//!
//!   writes:    the outcome writes in flight; claimer and completer size their batches by them
//!   heartbeat: renews every held lease in one statement; aborts handlers whose lease was lost
//!   rescuer:   returns expired leases (dead or hung processes) to the ready pool
//!   statistics: analyses the tables as they grow, so cached plans follow their size
//!   task_pruner:  deletes finished tasks older than their retention window (`[retention]`)
//!   scheduler:    fires due schedule ticks (`[scheduler]`; one task per tick across processes)
//!   (in small batches of short transactions)
//!
//! The event pruner and the webhook dispatcher are not part of the worker:
//! every process runs them, with or without workers (`crate::background`).
//! ```
//!
//! A step's slot (semaphore permit) is held from its claim until its outcome
//! is written, so outcomes waiting in memory are bounded by the slots and
//! claiming pauses while the database cannot take them. In-flight leases
//! are kept in a [`LeaseBook`] keyed by (step, lease token).
//!
//! One shutdown signal stops the claimer; running handlers and unwritten
//! outcomes get `shutdown_timeout` in all, then are aborted / dropped (their
//! leases expire and another process re-runs them: at-least-once), and
//! [`WorkerHandle::shutdown`] reports how many steps were abandoned.

mod claimer;
mod completer;
pub(crate) mod event_pruner;
mod executor;
mod heartbeat;
mod leases;
mod rescuer;
mod scheduler;
mod statistics;
mod task_pruner;
mod writes;

use crate::service::Inner;
pub(crate) use leases::LeaseBook;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// An outcome on its way to the completer, with the step's log span so that
/// what the completer logs about it carries the same task, step and
/// correlation fields as the handler's own lines.
///
/// It carries the step's slot: the slot is free again only once the outcome
/// is durably written (or given up on at the shutdown deadline). So the
/// outcomes waiting in memory never exceed `max_concurrent_steps`, and while
/// the database cannot take them the claimer, finding no free slot, stops
/// claiming.
pub(crate) struct Finished {
    pub outcome: tasker_store::StepOutcome,
    pub task_id: Uuid,
    /// The task's template namespace and name (metric labels).
    pub namespace: String,
    pub task_name: String,
    pub span: tracing::Span,
    pub slot: OwnedSemaphorePermit,
}

/// A running worker. Dropping it does not stop it; call [`WorkerHandle::shutdown`].
pub struct WorkerHandle {
    shutdown: watch::Sender<bool>,
    join: JoinHandle<Shutdown>,
    worker_id: String,
}

impl WorkerHandle {
    /// This worker's id (the lease owner it writes).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// False once the worker has stopped (after shutdown, or if it died).
    pub fn is_running(&self) -> bool {
        !self.join.is_finished()
    }

    /// Stops claiming, lets running handlers finish and writes their
    /// outcomes, for at most the shutdown timeout in all; then aborts what is
    /// left (those steps re-run elsewhere after their leases expire) and
    /// returns. The report says whether everything was written.
    pub async fn shutdown(self) -> Shutdown {
        let _ = self.shutdown.send(true);
        self.join.await.unwrap_or(Shutdown { abandoned: 1 })
    }
}

/// How a worker's shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Steps whose handler was aborted or whose outcome could not be written
    /// before the deadline (0 when the worker drained cleanly; 1 also when
    /// the worker task itself died).
    pub abandoned: usize,
}

impl Shutdown {
    /// True when every claimed step's outcome was written.
    pub fn is_clean(&self) -> bool {
        self.abandoned == 0
    }
}

pub(crate) struct Worker;

impl Worker {
    pub(crate) fn spawn(inner: Arc<Inner>) -> WorkerHandle {
        let worker_id = inner
            .config
            .worker_id
            .clone()
            .unwrap_or_else(default_worker_id);
        let (tx, rx) = watch::channel(false);
        let id = worker_id.clone();
        let join = tokio::spawn(async move { run(inner, id, rx).await });
        WorkerHandle {
            shutdown: tx,
            join,
            worker_id,
        }
    }
}

pub(crate) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tasker".into());
    let rand = Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[..8])
}

async fn run(inner: Arc<Inner>, worker_id: String, shutdown: watch::Receiver<bool>) -> Shutdown {
    let cfg = &inner.config;
    let slots = Arc::new(Semaphore::new(cfg.max_concurrent_steps as usize));
    let leases = LeaseBook::default();
    // Unbounded in type, bounded in fact: every queued outcome holds a slot.
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (give_up_tx, give_up) = watch::channel(false);
    let writes = Arc::new(writes::Writes::default());

    let completer = tokio::spawn(completer::run(
        completer::Ctx {
            inner: inner.clone(),
            worker_id: worker_id.clone(),
            leases: leases.clone(),
            out: out_tx.downgrade(),
            shutdown: shutdown.clone(),
            writes: writes.clone(),
        },
        out_rx,
        give_up,
    ));
    let heartbeat = tokio::spawn(heartbeat::run(
        inner.clone(),
        leases.clone(),
        shutdown.clone(),
    ));
    let rescuer = tokio::spawn(rescuer::run(inner.clone(), shutdown.clone()));
    let statistics = tokio::spawn(statistics::run(inner.clone(), shutdown.clone()));
    let task_pruner = inner
        .config
        .retention
        .enabled
        .then(|| tokio::spawn(task_pruner::run(inner.clone(), shutdown.clone())));
    let scheduler = inner.config.scheduler.enabled.then(|| {
        tokio::spawn(scheduler::run(
            crate::service::Tasker::from_inner(inner.clone()),
            shutdown.clone(),
        ))
    });
    tracing::info!(worker_id = %worker_id, max_concurrent_steps = cfg.max_concurrent_steps, "worker started");

    claimer::run(
        inner.clone(),
        &worker_id,
        slots.clone(),
        leases.clone(),
        out_tx,
        writes,
        shutdown,
    )
    .await;

    // Drain: every slot back means every handler finished and every outcome
    // was written. One deadline covers both.
    let deadline = tokio::time::Instant::now() + cfg.shutdown_timeout;
    let all = cfg.max_concurrent_steps;
    let mut abandoned = 0;
    if tokio::time::timeout_at(deadline, slots.acquire_many(all))
        .await
        .is_err()
    {
        abandoned = leases.len();
        let stragglers = leases.take_aborts();
        tracing::error!(
            steps = abandoned,
            running = stragglers.len(),
            timeout_s = cfg.shutdown_timeout.as_secs_f64(),
            "shutdown timeout: aborting running handlers and unwritten outcomes; these steps re-run after their leases expire"
        );
        for a in stragglers {
            a.abort();
        }
        let _ = give_up_tx.send(true);
    }
    // The completer ends once every executor's sender is gone and the queue
    // is written or given up on; it gives up at once when told to.
    let _ = completer.await;
    heartbeat.abort();
    rescuer.abort();
    statistics.abort();
    if let Some(p) = task_pruner {
        p.abort();
    }
    if let Some(s) = scheduler {
        s.abort();
    }
    tracing::info!(worker_id = %worker_id, clean = abandoned == 0, "worker stopped");
    Shutdown { abandoned }
}

/// Sleeps for `d` unless shutdown is signalled first; returns true on shutdown.
pub(crate) async fn sleep_or_shutdown(
    d: std::time::Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
