//! The webhook dispatcher every `tasker serve` / `tasker worker` process
//! runs (docs/EVENTS.md, "Webhooks").
//!
//! ```text
//!   loop: fan-out (new events → pending pairs)
//!         claim up to the free slots (leased; SKIP LOCKED on PostgreSQL)
//!         one task per pair: POST, signed ──outcome──► finisher
//!         wait: store signal | finisher wrote | free slot | poll | shutdown
//!   finisher: writes outcomes in batches (one transaction each); a written
//!             outcome makes the task's next event claimable
//! ```
//!
//! A request never outlives its lease: its timeout is cut to the lease
//! minus a margin, so a slow receiver cannot make two processes deliver
//! the same pair at once. A process that dies mid-request leaves the lease
//! to expire; another process then delivers the pair again (at least once;
//! the `Tasker-Event-Id` header makes it exactly once for a receiver that
//! remembers the ids it has seen).

use super::signature::sign;
use crate::handlers::HttpPolicy;
use crate::handlers::http::{build_client, error_chain, parse_retry_after};
use crate::service::Tasker;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tasker_core::BackoffPolicy;
use tasker_store::{ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryResult};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// Time kept between a request's timeout and its lease's expiry.
const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// Most outcomes written per transaction.
const FINISH_BATCH: usize = 500;
/// Longest error text kept for a delivery.
const MAX_ERROR: usize = 500;

/// The retry delays: `base × 2^(n-1)` up to `max`, ±25 % jitter.
fn backoff(base: Duration, max: Duration) -> BackoffPolicy {
    let base = base.as_secs_f64();
    let max = max.as_secs_f64();
    BackoffPolicy {
        default_backoff_seconds: (0..24).map(|i| (base * 2f64.powi(i)).min(max)).collect(),
        backoff_multiplier: 2.0,
        max_backoff_seconds: max,
        jitter_enabled: true,
        jitter_max_percentage: 0.25,
    }
}

/// Whether any subscriber exists (a read; on an error, assume one does and
/// let the fan-out report it).
async fn subscribed(store: &Arc<dyn tasker_store::Store>) -> bool {
    store
        .webhook_list()
        .await
        .map_or(true, |hooks| !hooks.is_empty())
}

/// Drops the store signals already queued: one fan-out covers all of them
/// (a burst of step changes costs one round, not one each).
fn drain(signals: &mut tokio::sync::broadcast::Receiver<tasker_store::StoreEvent>) {
    use tokio::sync::broadcast::error::TryRecvError;
    while matches!(signals.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {}
}

/// Runs until `shutdown`; requests in flight then get until their lease
/// runs out to finish and have their outcomes written.
pub(crate) async fn run(
    tasker: Tasker,
    owner: String,
    policy: Arc<HttpPolicy>,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = tasker.config().webhooks.clone();
    let client = match build_client(&policy) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "webhook dispatcher: cannot build the HTTP client; no webhook is delivered by this process");
            return;
        }
    };
    let store = tasker.store().clone();
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1) as usize));
    let wake = Arc::new(Notify::new());
    let (out_tx, out_rx) = mpsc::unbounded_channel::<DeliveryOutcome>();
    let finisher = tokio::spawn(finish_loop(tasker.clone(), out_rx, wake.clone()));
    let retry = Arc::new(backoff(settings.backoff_base, settings.backoff_max));
    let mut signals = store.subscribe();
    tracing::info!(owner = %owner, concurrency = settings.concurrency, "webhook dispatcher started");
    // Fan-out runs when something may have been recorded (a store signal,
    // the poll) or the last one found events; not after every outcome.
    let mut fan_out = true;
    // The last claim was full: more is waiting, so claim in batches (a
    // quarter of the slots at least) rather than one freed slot at a time.
    let mut backlog = false;
    let quarter = (settings.concurrency.max(4) / 4) as usize;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = tasker.now();
        if fan_out && !subscribed(&store).await {
            // Nobody to deliver to, so no pair can exist either (deliveries
            // go with their subscriber): neither fan-out nor claim. Both
            // write (event numbering on PostgreSQL, the single writer on
            // SQLite), and on every store signal that would tax the hot
            // path for nothing.
            backlog = false;
            tokio::select! {
                _ = signals.recv() => drain(&mut signals),
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if fan_out {
            fan_out = match store.webhook_fanout(settings.batch_size, now).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook fan-out failed");
                    false
                }
            };
            if fan_out {
                backlog = true;
            }
        }
        let free = slots.available_permits().min(settings.batch_size as usize);
        let in_flight = settings.concurrency as usize - slots.available_permits();
        let worth = !backlog || free >= quarter || in_flight == 0;
        let mut claimed = 0;
        if free > 0 && worth {
            let lease = chrono::Duration::from_std(settings.lease).unwrap_or_default();
            match store
                .webhook_claim(&DeliveryClaim {
                    owner: owner.clone(),
                    limit: u32::try_from(free).unwrap_or(u32::MAX),
                    now,
                    lease_until: now + lease,
                })
                .await
            {
                Ok(batch) => {
                    claimed = batch.len();
                    backlog = claimed == free;
                    for c in batch {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let job = Job {
                            tasker: tasker.clone(),
                            client: client.clone(),
                            policy: policy.clone(),
                            retry: retry.clone(),
                            lease: settings.lease,
                            backoff_max: settings.backoff_max,
                        };
                        let out = out_tx.clone();
                        tokio::spawn(async move {
                            let outcome = job.deliver(c).await;
                            // The slot is free once the outcome is queued:
                            // the finisher writes it before the next claim
                            // of this task's events can see it.
                            let _ = out.send(outcome);
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook claim failed"),
            }
        }
        if fan_out || (claimed > 0 && claimed == free && slots.available_permits() > 0) {
            // More may be there at once.
            continue;
        }
        tokio::select! {
            _ = signals.recv() => {
                drain(&mut signals);
                fan_out = true;
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(settings.poll_interval) => fan_out = true,
            _ = shutdown.changed() => {}
        }
    }
    // Let requests in flight end (each is cut off before its lease ends).
    let all = settings.concurrency.max(1);
    let _ = tokio::time::timeout(settings.lease, slots.acquire_many(all)).await;
    drop(out_tx);
    let _ = finisher.await;
    tracing::info!(owner = %owner, "webhook dispatcher stopped");
}

/// Writes outcomes in batches until every sender is gone.
async fn finish_loop(
    tasker: Tasker,
    mut rx: mpsc::UnboundedReceiver<DeliveryOutcome>,
    wake: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < FINISH_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        // An outcome that cannot be written is retried until it is, or
        // until its lease runs out and another process delivers the pair
        // again (at least once).
        let mut pause = Duration::from_millis(50);
        loop {
            match tasker.store().webhook_finish(batch.clone()).await {
                Ok(_) => break,
                Err(e) if pause < Duration::from_secs(30) => {
                    tracing::warn!(error = %e, outcomes = batch.len(), "cannot write webhook outcomes; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, outcomes = batch.len(), "giving up writing webhook outcomes; their pairs are delivered again after their leases expire");
                    break;
                }
            }
        }
        wake.notify_one();
    }
}

/// What one delivery needs.
struct Job {
    tasker: Tasker,
    client: reqwest::Client,
    policy: Arc<HttpPolicy>,
    retry: Arc<BackoffPolicy>,
    lease: Duration,
    backoff_max: Duration,
}

impl Job {
    async fn deliver(self, c: ClaimedDelivery) -> DeliveryOutcome {
        let event_type = c
            .event
            .as_ref()
            .map_or("unknown", |e| e.event_type.as_str())
            .to_string();
        let result = self.attempt(&c).await;
        let now = self.tasker.now();
        let result = match result {
            Ok(status_code) => {
                let lag = c.event.as_ref().map(|e| lag_seconds(e.created_at, now));
                crate::metrics::webhook_delivery(&event_type, "delivered", lag);
                DeliveryResult::Delivered { status_code }
            }
            Err(f) => {
                let mut error = f.error;
                if error.len() > MAX_ERROR {
                    let mut cut = MAX_ERROR;
                    while !error.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    error.truncate(cut);
                }
                let retry_at = (f.retryable && c.attempt < c.webhook.max_attempts).then(|| {
                    let delay = match f.retry_after {
                        Some(d) => d.min(self.backoff_max),
                        None => self.retry.delay(c.attempt, rand_seed()),
                    };
                    now + chrono::Duration::from_std(delay).unwrap_or_default()
                });
                let outcome = if retry_at.is_some() {
                    "failed"
                } else {
                    "gave_up"
                };
                crate::metrics::webhook_delivery(&event_type, outcome, None);
                tracing::debug!(webhook = %c.webhook.name, event_id = c.event_id, attempt = c.attempt, error = %error, "webhook delivery failed");
                DeliveryResult::Failed {
                    error,
                    status_code: f.status,
                    retry_at,
                }
            }
        };
        DeliveryOutcome {
            webhook_id: c.webhook.id,
            event_id: c.event_id,
            lease_token: c.lease_token,
            result,
            now,
        }
    }

    /// One POST; the receiver's status on success.
    async fn attempt(&self, c: &ClaimedDelivery) -> Result<u16, Failure> {
        let Some(event) = &c.event else {
            return Err(Failure::permanent(
                "the event was pruned before it could be delivered",
            ));
        };
        let url = reqwest::Url::parse(&c.webhook.url)
            .map_err(|e| Failure::permanent(format!("bad URL: {e}")))?;
        // The policy may have changed since the subscriber was registered.
        self.policy
            .check_url(&url)
            .map_err(|d| Failure::permanent(format!("refused by the SSRF policy: {d}")))?;
        let mut event = event.clone();
        event.payload = self.tasker.masker().mask(&event.payload);
        let body = serde_json::to_vec(&event)
            .map_err(|e| Failure::permanent(format!("cannot encode the event: {e}")))?;
        let timestamp = self.tasker.now().timestamp().to_string();
        let timeout = Duration::from_millis(u64::from(c.webhook.timeout_ms))
            .min(self.lease.saturating_sub(LEASE_MARGIN))
            .max(Duration::from_millis(100));
        let mut request = self
            .client
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("tasker-event-id", event.id.to_string())
            .header("tasker-event-type", &event.event_type)
            .header("tasker-timestamp", &timestamp)
            .header("tasker-attempt", c.attempt.to_string())
            .header("tasker-webhook", &c.webhook.name);
        if let Some(secret) = &c.webhook.secret {
            request = request.header("tasker-signature", sign(secret, &timestamp, &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::retryable(error_chain(&e), None, None))?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now(), self.backoff_max));
        Err(Failure::retryable(
            format!("HTTP {}", status.as_u16()),
            Some(status.as_u16()),
            retry_after,
        ))
    }
}

/// Why an attempt failed.
struct Failure {
    error: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    retryable: bool,
}

impl Failure {
    fn permanent(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            status: None,
            retry_after: None,
            retryable: false,
        }
    }

    fn retryable(error: String, status: Option<u16>, retry_after: Option<Duration>) -> Self {
        Failure {
            error,
            status,
            retry_after,
            retryable: true,
        }
    }
}

fn rand_seed() -> u64 {
    let b = uuid::Uuid::new_v4();
    let bytes = b.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// Seconds from an event to its delivery (the lag histogram).
fn lag_seconds(created: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - created).num_microseconds().unwrap_or(0) as f64 / 1e6
}
