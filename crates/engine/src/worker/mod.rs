//! The worker: claims ready steps, runs their handlers, records outcomes.
//!
//! ```text
//!            ┌──────────── store events (WorkAvailable) / poll / next ready_at
//!            ▼
//!   claimer ──claim batch──► executor tasks (≤ max_concurrent_steps, a semaphore)
//!      ▲                           │ outcome
//!      │                           ▼
//!      └── WorkAvailable ◄── completer: one transaction per batch of outcomes
//!
//!   heartbeat: renews every held lease in one statement; aborts handlers whose lease was lost
//!   rescuer:   returns expired leases (dead or hung processes) to the ready pool
//! ```
//!
//! One shutdown signal stops the claimer; running handlers get
//! `shutdown_timeout` to finish, then are aborted (their leases expire and
//! another process re-runs them: at-least-once).

mod claimer;
mod completer;
mod executor;
mod heartbeat;
mod rescuer;

use crate::service::Inner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use uuid::Uuid;

/// A step this process is running: its lease token and a way to abort it.
pub(crate) struct InFlight {
    pub token: Uuid,
    pub abort: Option<AbortHandle>,
}

/// An outcome on its way to the completer, with the step's log span so that
/// what the completer logs about it carries the same task, step and
/// correlation fields as the handler's own lines.
pub(crate) struct Finished {
    pub outcome: tasker_store::StepOutcome,
    pub task_id: Uuid,
    pub span: tracing::Span,
}

/// Leases held by this process, by step id.
pub(crate) type Leases = Arc<Mutex<HashMap<Uuid, InFlight>>>;

pub(crate) fn lock(leases: &Leases) -> std::sync::MutexGuard<'_, HashMap<Uuid, InFlight>> {
    leases.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running worker. Dropping it does not stop it; call [`WorkerHandle::shutdown`].
pub struct WorkerHandle {
    shutdown: watch::Sender<bool>,
    join: JoinHandle<()>,
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

    /// Stops claiming, lets running handlers finish (up to the shutdown
    /// timeout), writes their outcomes, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.join.await;
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

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tasker".into());
    let rand = Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[..8])
}

async fn run(inner: Arc<Inner>, worker_id: String, shutdown: watch::Receiver<bool>) {
    let cfg = &inner.config;
    let slots = Arc::new(Semaphore::new(cfg.max_concurrent_steps as usize));
    let leases: Leases = Arc::new(Mutex::new(HashMap::new()));
    let (out_tx, out_rx) = mpsc::unbounded_channel();

    let completer = tokio::spawn(completer::run(inner.clone(), out_rx, leases.clone()));
    let heartbeat = tokio::spawn(heartbeat::run(
        inner.clone(),
        leases.clone(),
        shutdown.clone(),
    ));
    let rescuer = tokio::spawn(rescuer::run(inner.clone(), shutdown.clone()));
    tracing::info!(worker_id = %worker_id, max_concurrent_steps = cfg.max_concurrent_steps, "worker started");

    claimer::run(
        inner.clone(),
        &worker_id,
        slots.clone(),
        leases.clone(),
        out_tx,
        shutdown,
    )
    .await;

    // Drain: every slot back means every handler finished.
    let all = cfg.max_concurrent_steps;
    if tokio::time::timeout(cfg.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        let stragglers: Vec<AbortHandle> = lock(&leases)
            .values_mut()
            .filter_map(|f| f.abort.take())
            .collect();
        tracing::warn!(
            count = stragglers.len(),
            "handlers still running at shutdown timeout; aborting (their steps will be re-run after lease expiry)"
        );
        for a in stragglers {
            a.abort();
        }
    }
    // The completer ends once every executor's sender is gone and the queue is written.
    let _ = completer.await;
    heartbeat.abort();
    rescuer.abort();
    tracing::info!(worker_id = %worker_id, "worker stopped");
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
