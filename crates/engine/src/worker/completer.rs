//! Writes outcomes in batches: whatever queued up while the previous batch
//! was being committed goes into the next transaction (group commit). Up to
//! `finish_concurrency` writes are in flight; while one is, a new batch
//! waits until it holds a quarter of the slots or that write ends (module
//! `writes`), so a burst is written in a few large transactions rather
//! than one per outcome. A lone outcome with nothing in flight (a chain's
//! stage) is written at once.
//!
//! One bad value never fails the rest of its batch: the executor replaces a
//! result the store cannot hold with an `invalid_result` failure before it
//! is queued, and should a batch still be refused for its data
//! ([`StoreError::InvalidData`]), it is split in halves until the outcome at
//! fault is alone; that one is recorded as an `invalid_result` failure.
//!
//! Claim on completion (`engine.claim_on_completion`): the transaction that
//! writes a batch also leases, to this worker, children the batch made
//! ready, up to the slots that batch frees (one per outcome, at most
//! `claim_batch_size`): the slots of the steps just finished go straight to
//! their children. Those start at once, without a wake-up and a claim round
//! trip; the rest stay ready for every worker, this one's claim loop
//! included. Free slots beyond the batch's own are left to the claim loop:
//! reserving them for every write (most batches make nothing ready) cost
//! throughput, measured (docs/PERFORMANCE.md).

use super::writes::{self, Writes};
use super::{Finished, LeaseBook, claimer, executor};
use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tasker_core::backoff::Doubling;
use tasker_store::{ClaimParams, ClaimedStep, OutcomeResult, StepOutcome, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// What the completer needs to start the steps it leases on completion.
pub(super) struct Ctx {
    pub inner: Arc<Inner>,
    pub worker_id: String,
    pub leases: LeaseBook,
    /// Weak, so that the outcome queue still closes once every executor
    /// and the claimer are gone.
    pub out: mpsc::WeakUnboundedSender<Finished>,
    /// No claim on completion once the worker is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Writes in flight, shared with the claimer.
    pub writes: Arc<Writes>,
}

pub(super) async fn run(
    ctx: Ctx,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    give_up: watch::Receiver<bool>,
) {
    let ctx = Arc::new(ctx);
    let inner = ctx.inner.clone();
    let max = inner.config.finish_batch_size as usize;
    // Several batches may be in flight at once: on PostgreSQL a commit is a
    // few round trips of latency, and overlapping them keeps the database
    // busy instead of idle between batches (steps of different batches are
    // independent; each outcome is checked against its own lease). SQLite
    // has one writer, so there it is one batch at a time.
    let concurrency = match inner.store.backend() {
        tasker_store::Backend::Sqlite => 1,
        _ => inner.config.finish_concurrency.max(1),
    };
    let in_flight = Arc::new(Semaphore::new(concurrency as usize));
    let gather = writes::gather(max as u32, inner.config.max_concurrent_steps);
    loop {
        // The permit first, then the batch: while writes are in flight,
        // outcomes wait in the queue and the next batch takes them all.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            break;
        };
        let mut batch: Vec<Finished> = Vec::with_capacity(max.min(64));
        batch.push(first);
        loop {
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            // A small batch waits while another write is in flight: for
            // more outcomes or for that write to end (module `writes`).
            if writes::write_now(batch.len(), gather, max, ctx.writes.in_flight()) {
                break;
            }
            tokio::select! {
                more = rx.recv() => match more {
                    Some(o) => batch.push(o),
                    None => break,
                },
                _ = ctx.writes.any_ended() => break,
            }
        }
        let (ctx, give_up) = (ctx.clone(), give_up.clone());
        let give_up_after = give_up.clone();
        let write_guard = ctx.writes.start();
        tokio::spawn(async move {
            let mut lease = Lease::prepare(&ctx, &batch, &give_up);
            write(&ctx, &batch, give_up, lease.as_mut()).await;
            // Written or given up on: forget exactly these leases and free
            // the steps' slots (dropping `batch` drops their permits), or
            // hand them to the children leased on completion.
            let mut slots = Vec::with_capacity(batch.len());
            for f in batch {
                ctx.leases.release(&f.outcome.lease);
                slots.push(f.slot);
            }
            if let Some(lease) = lease {
                lease.start(&ctx, slots, &give_up_after);
            } else {
                drop(slots);
            }
            // Only now, with the slots back: a claimer waiting for this
            // write sees them free.
            drop(write_guard);
            drop(permit);
        });
    }
    // Wait for the last batches before reporting the queue written.
    let _ = in_flight.acquire_many(concurrency).await;
}

/// The claim on completion of one batch: how many more steps it may lease
/// and what it leased.
struct Lease {
    /// Steps still allowed (the budget left; the batch's slots not yet
    /// promised to a leased step).
    budget: u32,
    /// Where the started steps send their outcomes (held for the write, so
    /// that the outcome queue cannot close under leased steps).
    out: mpsc::UnboundedSender<Finished>,
    /// Leased so far, in lease order.
    claimed: Vec<ClaimedStep>,
}

impl Lease {
    /// None when the claim on completion is off or the worker is stopping.
    fn prepare(ctx: &Ctx, batch: &[Finished], give_up: &watch::Receiver<bool>) -> Option<Lease> {
        let cfg = &ctx.inner.config;
        if !cfg.claim_on_completion || *ctx.shutdown.borrow() || *give_up.borrow() {
            return None;
        }
        let out = ctx.out.upgrade()?;
        Some(Lease {
            budget: batch.len().min(cfg.claim_batch_size as usize) as u32,
            out,
            claimed: Vec::new(),
        })
    }

    /// The claim for the next write, if any budget is left.
    fn params(&self, ctx: &Ctx, now: chrono::DateTime<chrono::Utc>) -> Option<ClaimParams> {
        (self.budget > 0)
            .then(|| claimer::claim_params(&ctx.inner, &ctx.worker_id, self.budget, now))
    }

    /// A write leased `steps`.
    fn took(&mut self, steps: Vec<ClaimedStep>) {
        crate::metrics::claimed("completion", steps.len());
        self.budget = self.budget.saturating_sub(steps.len() as u32);
        self.claimed.extend(steps);
    }

    /// Starts the leased steps, each on one of `own` (the written batch's
    /// slots); slots left over are freed.
    /// Past the shutdown deadline nothing starts: the leases expire and the
    /// steps re-run elsewhere, as for any step abandoned at that deadline.
    fn start(self, ctx: &Ctx, own: Vec<OwnedSemaphorePermit>, give_up: &watch::Receiver<bool>) {
        let mut slots = own.into_iter();
        for step in self.claimed {
            if *give_up.borrow() {
                tracing::warn!(step_id = %step.step_id, "shutdown deadline: a step leased on completion was not started; it re-runs after lease expiry");
                continue;
            }
            // The budget never exceeds the slots.
            let Some(slot) = slots.next() else {
                tracing::error!(
                    "no free slot for a step leased on completion; it will be re-run after its lease expires"
                );
                continue;
            };
            executor::launch(&ctx.inner, step, slot, &self.out, &ctx.leases);
        }
    }
}

/// Writes `batch`, retrying transient failures (the database restarting)
/// until the shutdown deadline gives up; splits it on a data error. With
/// `lease`, each write also leases ready children on completion.
async fn write(
    ctx: &Ctx,
    batch: &[Finished],
    mut give_up: watch::Receiver<bool>,
    mut lease: Option<&mut Lease>,
) {
    let inner = &ctx.inner;
    // Work list of sub-batches (a split pushes its halves).
    let mut pending: Vec<Vec<StepOutcome>> =
        vec![batch.iter().map(|f| f.outcome.clone()).collect()];
    let mut backoff = Doubling::new(Duration::from_millis(50), Duration::from_secs(5));
    while let Some(outcomes) = pending.pop() {
        loop {
            if *give_up.borrow() {
                tracing::error!(
                    outcomes = outcomes.len(),
                    "shutdown deadline: outcomes not written; the steps re-run after lease expiry"
                );
                return;
            }
            let now = inner.clock.now();
            let claim = lease.as_ref().and_then(|l| l.params(ctx, now));
            let sent = std::time::Instant::now();
            let attempt = tokio::select! {
                r = inner.store.step_finish_and_claim(&outcomes, now, claim.as_ref()) => r,
                // A dropped sender means the worker itself is gone: give up.
                changed = give_up.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            };
            match attempt {
                Ok(mut report) => {
                    crate::metrics::outcomes_written(outcomes.len(), sent.elapsed().as_secs_f64());
                    backoff.reset();
                    log_report(batch, &report);
                    if let Some(l) = lease.as_mut() {
                        l.took(std::mem::take(&mut report.claimed));
                    }
                    break;
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, outcomes = outcomes.len(), retry_in_ms = delay.as_millis() as u64, "cannot record outcomes yet");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        changed = give_up.changed() => if changed.is_err() { return },
                    }
                }
                Err(StoreError::InvalidData(why)) if outcomes.len() > 1 => {
                    tracing::warn!(error = %why, outcomes = outcomes.len(), "a batch of outcomes was refused for its data; splitting it");
                    let mut first = outcomes;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                    break;
                }
                Err(StoreError::InvalidData(why)) => match unstorable(&outcomes[0], &why) {
                    // Record the step as failed with the reason instead.
                    Some(failed) => {
                        in_span(
                            batch,
                            &outcomes[0],
                            || tracing::error!(error = %why, "step result cannot be stored; failing the step"),
                        );
                        pending.push(vec![failed]);
                        break;
                    }
                    None => {
                        in_span(
                            batch,
                            &outcomes[0],
                            || tracing::error!(error = %why, "cannot record the outcome; the step re-runs after lease expiry"),
                        );
                        break;
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, outcomes = outcomes.len(), "cannot record outcomes; the steps will re-run after lease expiry");
                    break;
                }
            }
        }
    }
}

/// The `invalid_result` failure that replaces an outcome the store refused
/// for its data; None when the refused outcome already was that failure.
fn unstorable(o: &StepOutcome, why: &str) -> Option<StepOutcome> {
    if let OutcomeResult::Failure { error, .. } = &o.result
        && error.kind == super::executor::INVALID_RESULT
    {
        return None;
    }
    let attempt = match &o.result {
        OutcomeResult::Failure { error, .. } => error.attempt,
        OutcomeResult::Success(_) => 0,
    };
    Some(super::executor::invalid_result(o.lease, attempt, why))
}

fn in_span(batch: &[Finished], o: &StepOutcome, f: impl FnOnce()) {
    batch
        .iter()
        .find(|b| b.outcome.lease == o.lease)
        .map(|b| b.span.clone())
        .unwrap_or_else(tracing::Span::none)
        .in_scope(f)
}

/// Logs what a written batch did, in each step's (or task's) span so the
/// line carries task_id, step_id, namespace, name, version, attempt and
/// correlation_id like the handler's own lines.
fn log_report(batch: &[Finished], report: &tasker_store::FinishReport) {
    for id in &report.lease_lost {
        let span = batch
            .iter()
            .find(|f| f.outcome.lease.step_id == *id)
            .map(|f| f.span.clone())
            .unwrap_or_else(tracing::Span::none);
        span.in_scope(|| {
            tracing::warn!("result ignored: lease lost (step was rescued or cancelled)")
        });
    }
    for (task, state) in &report.finished_tasks {
        let finished = batch.iter().rev().find(|f| f.task_id == *task);
        if let Some(f) = finished {
            crate::metrics::task_finished(&f.namespace, &f.task_name, state.as_str());
        }
        let span = finished
            .map(|f| f.span.clone())
            .unwrap_or_else(tracing::Span::none);
        // Completions are routine (thousands a second): debug.
        // A task that ended in error is worth an operator's eye.
        span.in_scope(|| {
            if *state == tasker_core::TaskState::Complete {
                tracing::debug!(status = %state, "task finished");
            } else {
                tracing::warn!(status = %state, "task finished");
            }
        });
    }
}
