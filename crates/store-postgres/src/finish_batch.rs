//! Running a finish batch ([`PgStore::finish_once`]): the finish statement
//! of `finish.rs` on its own (autocommit) when it can, in a transaction
//! with what follows it when it must; its answer read into the report
//! ([`Answer`]); and what is left after it (keys released, the claim of the
//! children it could not lease, tasks it could not settle, the NOTIFYs).

use crate::PgStore;
use crate::decode::{claimed_step, claimed_step_json, task_state};
use crate::error::{MAX_TX_RETRIES, TxError, retry_pause};
use crate::events::{Emit, Origin, notify};
use crate::finish::{Batch, LeaseOffer, finish_rows};
use crate::flow::{Released, release, released};
use crate::settle::{Delta, TaskCounters, settle, settle_applied, settle_needed};
use crate::tx;
use crate::work::claim_rounds;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::Row;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use tasker_core::TaskState;
use tasker_store::{ClaimParams, FinishReport, StepOutcome, is_final};
use uuid::Uuid;

/// What the finish statement's answer says, read into the report and what
/// is left to do after it ([`Answer::read`]).
#[derive(Clone)]
struct Answer {
    report: FinishReport,
    emit: Emit,
    /// Counter deltas per task, as the batch's rows imply them.
    deltas: BTreeMap<Uuid, Delta>,
    /// Concurrency keys the finished steps held.
    freed: Vec<Released>,
    /// Children made ready that the statement did not lease.
    ready_ids: Vec<Uuid>,
    /// Tasks whose children became ready (a child's task is its parent's).
    parents_tasks: HashSet<Uuid>,
    /// Tasks whose deltas the statement already applied, with their
    /// counters as read under the lock (before the delta).
    advanced: BTreeMap<Uuid, TaskCounters>,
    /// The batch's `now`.
    now: DateTime<Utc>,
}

impl Answer {
    fn read(
        rows: &[sqlx::postgres::PgRow],
        b: &Batch,
        mut report: FinishReport,
    ) -> Result<Answer, TxError> {
        let mut emit = Emit::default();
        let mut deltas: BTreeMap<Uuid, Delta> = BTreeMap::new();
        let mut applied = HashSet::with_capacity(rows.len());
        let mut freed: Vec<Released> = Vec::new();
        let mut ready_ids: Vec<Uuid> = Vec::new();
        let mut parents_tasks: HashSet<Uuid> = HashSet::new();
        let mut advanced: BTreeMap<Uuid, TaskCounters> = BTreeMap::new();
        // Tasks the statement moved (the finaliser's target), final or not.
        let mut finalised: Vec<(Uuid, TaskState)> = Vec::new();
        for r in rows {
            let part: &str = r.try_get("part")?;
            if part == "n" {
                // The `tasker_task` NOTIFYs of the tasks it finished.
                continue;
            }
            if part == "l" {
                // A child the statement leased to this worker.
                let step = claimed_step_json(r.try_get("claim")?)?;
                emit.changed(step.task_id);
                report.claimed.push(step);
                continue;
            }
            let task_id: Uuid = r.try_get("task_id")?;
            match part {
                "s" => {
                    freed.extend(released(r, true)?);
                    let id: Uuid = r.try_get("id")?;
                    let kind: &str = r.try_get("kind")?;
                    applied.insert(id);
                    emit.changed(task_id);
                    let d = deltas.entry(task_id).or_default();
                    match kind {
                        "ok" => {
                            d.remaining -= 1;
                            d.live -= 1;
                        }
                        "retry" => {
                            // pending with ready_at set is as live as
                            // in_progress: counters unchanged.
                            let at: Option<DateTime<Utc>> = r.try_get("retry_at")?;
                            if at.is_some_and(|at| at <= b.now()) {
                                report.newly_ready += 1;
                                emit.work = true;
                            }
                        }
                        _ => {
                            d.live -= 1;
                            d.blocked += 1;
                        }
                    }
                }
                "c" => {
                    let ready: i64 = r.try_get("ready")?;
                    deltas.entry(task_id).or_default().live += ready;
                    if ready > 0 {
                        report.newly_ready += ready as u64;
                        parents_tasks.insert(task_id);
                    }
                    ready_ids.extend(r.try_get::<Vec<Uuid>, _>("ready_ids")?);
                }
                "t" => {
                    if let Some(to) = r.try_get::<Option<&str>, _>("finalised")? {
                        finalised.push((task_id, task_state(to)?));
                    }
                    advanced.insert(
                        task_id,
                        TaskCounters {
                            status: task_state(r.try_get("status")?)?,
                            remaining: r.try_get("steps_remaining")?,
                            live: r.try_get("steps_live")?,
                            blocked: r.try_get("steps_blocked")?,
                        },
                    );
                }
                _ => {}
            }
        }
        report.applied = applied.len() as u64;
        report
            .lease_lost
            .extend(b.ids().iter().filter(|id| !applied.contains(id)).copied());
        // The statement already queued the `tasker_task` NOTIFY of the tasks
        // it finished.
        for (id, to) in &finalised {
            emit.changed(*id);
            if is_final(*to) {
                emit.finished_notified(*id);
                report.finished_tasks.push((*id, *to));
            }
        }
        deltas.retain(|_, d| *d != Delta::default());
        Ok(Answer {
            report,
            emit,
            deltas,
            freed,
            ready_ids,
            parents_tasks,
            advanced,
            now: b.now(),
        })
    }

    /// Whether the claim on completion has slots left and children to fill
    /// them with (the claim statement then runs, restricted to them).
    fn claim_left(&self, claim: Option<&ClaimParams>) -> bool {
        claim.is_some_and(|c| c.limit > self.report.claimed.len() as u32)
            && !self.ready_ids.is_empty()
    }

    /// Ready steps nobody has leased: claimers elsewhere are woken for them.
    fn work_left(&self) -> bool {
        self.report.newly_ready > self.report.claimed.len() as u64
    }

    /// After a finish statement that ran on its own: whether anything is
    /// left that needs a transaction of its own (the claim of children the
    /// statement left, a settle), or only a NOTIFY, or nothing.
    fn left_after_alone(&self, claim: Option<&ClaimParams>, origin: &Origin) -> Left {
        if !self.freed.is_empty()
            || self.claim_left(claim)
            || settle_needed(&self.deltas, &self.advanced)
        {
            return Left::Transaction;
        }
        let work = self.emit.work || self.work_left();
        if !self.emit.notified && (work || self.emit.needs_notify(origin)) {
            Left::Notify
        } else {
            Left::Nothing
        }
    }
}

/// What a finish statement that committed on its own leaves to do.
enum Left {
    Nothing,
    /// Only the NOTIFYs (one autocommit statement).
    Notify,
    /// Statements that read and write (a transaction).
    Transaction,
}

/// SQLSTATE of `tasker_finish_needs_transaction` (migration
/// `20261209000000_finish_alone.sql`): the finish statement, run on its own,
/// met a batch whose follow-up must share its transaction (a concurrency key
/// to release before the tasks are locked, counters that drifted); it was
/// rolled back whole.
pub(crate) const NEEDS_TRANSACTION: &str = "TKTX1";

/// After a refusal, how many finishes go straight to a transaction: a
/// workload with concurrency keys then pays for one refused statement per
/// this many finishes, not for every one.
const TRANSACTION_AFTER_REFUSAL: u32 = 64;

/// Whether the next finish may run its statement on its own (autocommit):
/// not for a few after one was refused ([`TRANSACTION_AFTER_REFUSAL`]).
#[derive(Debug, Default)]
pub(crate) struct FinishAlone {
    in_transaction_for: AtomicU32,
}

impl FinishAlone {
    fn allowed(&self) -> bool {
        self.in_transaction_for
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
    }

    fn refused(&self) {
        self.in_transaction_for
            .store(TRANSACTION_AFTER_REFUSAL, Ordering::Relaxed);
    }
}

fn needs_transaction(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(NEEDS_TRANSACTION))
}

impl PgStore {
    /// Finishes a batch. The finish statement runs on its own when it can
    /// (autocommit: no `BEGIN` and `COMMIT` round trips, so a chain stage
    /// is one round trip) and in a transaction with what follows it when it
    /// must: a claim with a per-task limit (the claim statement leases
    /// those children), or a batch the statement refused to finish alone
    /// (see [`NEEDS_TRANSACTION`]). What a lone statement leaves (a claim
    /// of gated children, a NOTIFY for ready steps nobody leased) runs
    /// after its commit, as any claim or NOTIFY would.
    pub(crate) async fn finish_once(
        &self,
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
        claim: Option<&ClaimParams>,
    ) -> Result<(FinishReport, Emit), TxError> {
        let mut report = FinishReport::default();
        let b = Batch::of(outcomes, now, &mut report)?;
        let claim = claim.filter(|c| c.limit > 0 && c.per_task_limit != Some(0));
        let offer = LeaseOffer::of(claim);

        if claim.is_none_or(|c| c.per_task_limit.is_none()) && self.inner.finish_alone.allowed() {
            match finish_rows(&self.inner.pool, &b, claim, &offer, true).await {
                Ok(rows) => {
                    // Committed: a row that cannot be decoded (a corrupt
                    // stored value) fails the finish now, as on SQLite, and
                    // a child leased with it is rescued when its lease
                    // expires.
                    let answer = Answer::read(&rows, &b, report)?;
                    return Ok(self.after_alone(answer, claim).await);
                }
                Err(e) if needs_transaction(&e) => self.inner.finish_alone.refused(),
                Err(e) => return Err(e.into()),
            }
        }

        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let rows = finish_rows(&mut *tx, &b, claim, &offer, false).await?;
            let answer = Answer::read(&rows, &b, report)?;
            self.follow_up(&mut tx, answer, claim, true).await
        }
        .await;
        tx::end(tx, res).await
    }

    /// What follows a finish statement that committed on its own. Never an
    /// error: the outcomes are written, and reporting a failure would have
    /// the caller send them again (they would come back lease-lost, and the
    /// children leased to it would wait for their leases to expire). What
    /// follows is a claim and a NOTIFY (the statement refuses the batches
    /// whose keys or counters need more): if they cannot be written, the
    /// steps they were for stay ready, and this process's claimer is woken
    /// for them (other processes' claimers poll).
    async fn after_alone(
        &self,
        answer: Answer,
        claim: Option<&ClaimParams>,
    ) -> (FinishReport, Emit) {
        match answer.left_after_alone(claim, self.origin()) {
            Left::Nothing => (answer.report, answer.emit),
            Left::Notify => {
                let work = answer.work_left();
                let (report, mut emit) = (answer.report, answer.emit);
                emit.work |= work;
                let sent = match self.inner.pool.acquire().await {
                    Ok(mut conn) => notify(&mut conn, &mut emit, self.origin()).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = sent {
                    tracing::warn!(error = ?e, "finish: NOTIFY after the commit not sent");
                }
                (report, emit)
            }
            Left::Transaction => {
                let mut attempt = 0;
                loop {
                    let res = async {
                        let mut tx = self.inner.pool.begin().await?;
                        let res = self.follow_up(&mut tx, answer.clone(), claim, false).await;
                        tx::end(tx, res).await
                    }
                    .await;
                    match res {
                        Ok(done) => return done,
                        Err(e) if e.retryable() && attempt < MAX_TX_RETRIES => {
                            attempt += 1;
                            tokio::time::sleep(retry_pause(attempt)).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = ?e, "finish: what follows the committed statement not written");
                            let work = !answer.ready_ids.is_empty() || answer.work_left();
                            let (report, mut emit) = (answer.report, answer.emit);
                            emit.work |= work;
                            return (report, emit);
                        }
                    }
                }
            }
        }
    }

    /// The rest of a finish, in `conn`'s transaction: concurrency keys
    /// released, the claim on completion of the children the statement
    /// did not lease, tasks settled the statement could not, the NOTIFYs.
    /// `in_statement_tx`: the finish statement ran in this transaction (its
    /// locks are held); otherwise it committed before.
    async fn follow_up(
        &self,
        conn: &mut PgConnection,
        mut a: Answer,
        claim: Option<&ClaimParams>,
        in_statement_tx: bool,
    ) -> Result<(FinishReport, Emit), TxError> {
        // Steps with concurrency keys give their slots back; the statement
        // left their tasks unlocked, so keys are locked before tasks.
        let unparked = release(conn, &a.freed, a.now).await?;
        a.report.newly_ready += unparked.len() as u64;
        // The claim below needs its task-start branch unless every step it
        // may lease is a child of a task this transaction holds locked
        // (`tlk`) and read running: such a task cannot be pending, so that
        // branch would find nothing. A step a released key unparked may
        // belong to a task that never started; and once the statement has
        // committed, its locks are gone.
        let starts = !in_statement_tx
            || !unparked.is_empty()
            || a.parents_tasks
                .iter()
                .any(|t| a.advanced.get(t).map(|c| c.status) != Some(TaskState::InProgress));
        a.ready_ids.extend(unparked);
        // The rest of the claim on completion (the statement leased what
        // needs no gate). In the statement's transaction the children made
        // ready but not leased are still locked by it, and invisible as
        // ready to every other session until it commits; after its commit
        // other workers may take some first (the claim skips locked rows).
        // Either way the claim statement runs, restricted to them, for the
        // slots left. Counters need no change: a ready pending step is as
        // live as a running one. Before the NOTIFY: whether there is work
        // left for others is known only after this.
        if let Some(claim) = claim.filter(|_| a.claim_left(claim)) {
            let claim = ClaimParams {
                now: a.now,
                limit: claim.limit - a.report.claimed.len() as u32,
                ..claim.clone()
            };
            let (rows, _deferred) = claim_rounds(conn, &claim, Some(&a.ready_ids), starts).await?;
            for r in rows {
                let step = claimed_step(&r)?;
                a.emit.changed(step.task_id);
                a.report.claimed.push(step);
            }
        }
        // Wake claimers (NOTIFY, this process's claimer) only for ready
        // steps nobody has leased yet.
        if a.work_left() {
            a.emit.work = true;
        }
        let now = a.now;
        let settled = if a.advanced.is_empty() {
            settle(conn, &a.deltas, now, &mut a.emit, self.origin()).await?
        } else {
            settle_applied(
                conn,
                &a.deltas,
                &a.advanced,
                now,
                &mut a.emit,
                self.origin(),
            )
            .await?
        };
        a.report.finished_tasks.extend(settled);
        notify(conn, &mut a.emit, self.origin()).await?;
        Ok((a.report, a.emit))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tasker_store::conformance::{at, params};

    fn answer() -> Answer {
        Answer {
            report: FinishReport::default(),
            emit: Emit::default(),
            deltas: BTreeMap::new(),
            freed: Vec::new(),
            ready_ids: Vec::new(),
            parents_tasks: HashSet::new(),
            advanced: BTreeMap::new(),
            now: at(0),
        }
    }

    fn origin(announce_changes: bool) -> Origin {
        Origin {
            id: "me".into(),
            announce_changes,
        }
    }

    /// A child the statement leased, as its answer row decodes.
    fn leased_child(task: Uuid) -> tasker_store::ClaimedStep {
        claimed_step_json(Some(serde_json::json!({
            "id": Uuid::now_v7(), "task_id": task, "name": "s2", "handler_kind": "noop",
            "handler_config": {}, "inputs": null, "attempts": 1, "max_attempts": 3,
            "timeout_seconds": null, "lease_token": Uuid::new_v4(),
            "lease_expires_at": "2026-11-30T00:00:30Z", "namespace": "default",
            "task_name": "chain", "version": "1.0.0", "context": {}, "correlation_id": "c",
            "parent_results": {"s1": 1}
        })))
        .unwrap()
    }

    fn delta(remaining: i64, live: i64, blocked: i64) -> Delta {
        Delta {
            remaining,
            live,
            blocked,
        }
    }

    fn counters(remaining: i64, live: i64) -> TaskCounters {
        TaskCounters {
            status: TaskState::InProgress,
            remaining,
            live,
            blocked: 0,
        }
    }

    #[test]
    fn a_chain_stage_leaves_nothing_after_its_statement() {
        // One step done, its child leased by the statement, the task advanced.
        let task = Uuid::now_v7();
        let mut a = answer();
        a.report.newly_ready = 1;
        a.report.claimed.push(leased_child(task));
        a.emit.changed(task);
        a.deltas.insert(task, delta(-1, 0, 0));
        a.advanced.insert(task, counters(5, 1));
        let claim = params("w", 1, at(0));
        assert!(matches!(
            a.left_after_alone(Some(&claim), &origin(false)),
            Left::Nothing
        ));
        // With changes announced, the NOTIFY still has to go out.
        assert!(matches!(
            a.left_after_alone(Some(&claim), &origin(true)),
            Left::Notify
        ));
    }

    #[test]
    fn ready_steps_nobody_leased_need_a_notify_or_a_claim() {
        let task = Uuid::now_v7();
        let mut a = answer();
        a.report.newly_ready = 2;
        a.ready_ids.push(Uuid::now_v7());
        a.deltas.insert(task, delta(-1, 1, 0));
        a.advanced.insert(task, counters(5, 1));
        // No claim on completion: others are woken.
        assert!(matches!(
            a.left_after_alone(None, &origin(false)),
            Left::Notify
        ));
        // Slots left: the claim statement takes the rest, in a transaction.
        let claim = params("w", 4, at(0));
        assert!(matches!(
            a.left_after_alone(Some(&claim), &origin(false)),
            Left::Transaction
        ));
    }

    #[test]
    fn tasks_the_statement_did_not_settle_need_a_transaction() {
        let task = Uuid::now_v7();
        let mut a = answer();
        a.deltas.insert(task, delta(-1, -1, 0));
        // Not advanced by the statement (a batch that released keys).
        assert!(matches!(
            a.left_after_alone(None, &origin(false)),
            Left::Transaction
        ));
        // Advanced, but its counters had drifted.
        a.advanced.insert(task, counters(5, 0));
        assert!(matches!(
            a.left_after_alone(None, &origin(false)),
            Left::Transaction
        ));
        a.advanced.insert(task, counters(5, 1));
        assert!(matches!(
            a.left_after_alone(None, &origin(false)),
            Left::Nothing
        ));
    }

    #[test]
    fn a_refusal_sends_the_next_finishes_to_a_transaction_for_a_while() {
        let alone = FinishAlone::default();
        assert!(alone.allowed());
        alone.refused();
        for _ in 0..TRANSACTION_AFTER_REFUSAL {
            assert!(!alone.allowed());
        }
        assert!(alone.allowed());
    }
}
