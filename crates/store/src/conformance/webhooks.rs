//! Webhook subscribers and deliveries (docs/EVENTS.md, "Webhooks"):
//! fan-out by filter from the cursor, leased claims, per-task order,
//! retries, dead letters, redelivery, expired leases, config sync, and
//! concurrent claimers never sharing a pair.

use super::factory::TaskBuilder;
use super::*;
use crate::{
    ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliveryResult, DeliveryStatus,
    NewWebhook, WebhookSource,
};
use std::collections::{BTreeMap, BTreeSet};

/// A subscriber for `types` (all namespaces) created at [`base`].
pub fn hook(name: &str, types: &[&str], source: WebhookSource) -> NewWebhook {
    NewWebhook {
        id: Uuid::new_v4(),
        name: name.into(),
        url: format!("https://hooks.example.com/{name}"),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        namespaces: Vec::new(),
        secret: Some("s3cret".into()),
        max_attempts: 3,
        timeout_ms: 5_000,
        source,
        now: base(),
    }
}

/// Claims up to `limit` pairs at `now` as `owner`, leased for 10 s.
pub async fn claim_pairs(
    store: &Arc<dyn Store>,
    owner: &str,
    limit: u32,
    now: DateTime<Utc>,
) -> Vec<ClaimedDelivery> {
    store
        .webhook_claim(&DeliveryClaim {
            owner: owner.into(),
            limit,
            now,
            lease_until: now + Duration::seconds(10),
        })
        .await
        .unwrap()
}

fn outcome(c: &ClaimedDelivery, result: DeliveryResult, now: DateTime<Utc>) -> DeliveryOutcome {
    DeliveryOutcome {
        webhook_id: c.webhook.id,
        event_id: c.event_id,
        lease_token: c.lease_token,
        result,
        now,
    }
}

fn delivered() -> DeliveryResult {
    DeliveryResult::Delivered { status_code: 200 }
}

fn failed(retry_at: Option<DateTime<Utc>>) -> DeliveryResult {
    DeliveryResult::Failed {
        error: "HTTP 503".into(),
        status_code: Some(503),
        retry_at,
    }
}

async fn deliveries(
    store: &Arc<dyn Store>,
    webhook_id: Uuid,
    status: Option<DeliveryStatus>,
) -> Vec<crate::DeliveryRow> {
    store
        .webhook_deliveries(&DeliveryQuery {
            webhook_id,
            status,
            after: 0,
            limit: 1000,
        })
        .await
        .unwrap()
}

/// A subscriber gets the events recorded after it was created that match
/// its types and namespaces, once each however often fan-out runs; a
/// claimed pair carries its event; a held lease is not claimed again;
/// delivered pairs are listed as such.
pub async fn webhooks_fan_out_by_filter_and_deliver_once(store: Arc<dyn Store>) {
    let early = TaskBuilder::new("alpha", "early")
        .step("a", &[])
        .build(at(0));
    store.task_create(early).await.unwrap();
    let tasks = store
        .webhook_create(hook("tasks", &["task.*"], WebhookSource::Api))
        .await
        .unwrap();
    let mut beta_only = hook("beta", &["*"], WebhookSource::Api);
    beta_only.namespaces = vec!["beta".into()];
    let beta_only = store.webhook_create(beta_only).await.unwrap();
    assert!(matches!(
        store
            .webhook_create(hook("tasks", &["*"], WebhookSource::Api))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let a = TaskBuilder::new("alpha", "x").step("a", &[]).build(at(1));
    let b = TaskBuilder::new("beta", "y").step("a", &[]).build(at(1));
    store
        .task_create_many(vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let fanned = store.webhook_fanout(1000, at(2)).await.unwrap();
    // tasks: 2 × task.created; beta: b's task.created.
    assert_eq!(fanned, 3);
    assert_eq!(store.webhook_fanout(1000, at(2)).await.unwrap(), 0);
    let listed = deliveries(&store, tasks.id, None).await;
    assert_eq!(
        listed.iter().map(|d| d.task_id).collect::<BTreeSet<_>>(),
        BTreeSet::from([a.id, b.id]),
        "the early task's event predates the subscriber"
    );
    assert!(listed.iter().all(|d| d.status == DeliveryStatus::Pending
        && d.event_type == "task.created"
        && d.attempts == 0));
    let beta = deliveries(&store, beta_only.id, None).await;
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0].task_id, b.id);

    let got = claim_pairs(&store, "d1", 10, at(3)).await;
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[0].event_id <= w[1].event_id));
    for c in &got {
        let e = c.event.as_ref().expect("the event travels with the claim");
        assert_eq!(e.id, c.event_id);
        assert_eq!(e.event_type, "task.created");
        assert_eq!(c.attempt, 1);
        assert_eq!(c.webhook.secret.as_deref(), Some("s3cret"));
    }
    assert!(
        claim_pairs(&store, "d2", 10, at(4)).await.is_empty(),
        "held leases are not claimed again"
    );
    let in_flight = deliveries(&store, tasks.id, None).await;
    assert!(
        in_flight
            .iter()
            .all(|d| d.lease_owner.as_deref() == Some("d1"))
    );
    let outcomes: Vec<_> = got.iter().map(|c| outcome(c, delivered(), at(5))).collect();
    assert_eq!(store.webhook_finish(outcomes.clone()).await.unwrap(), 3);
    assert_eq!(
        store.webhook_finish(outcomes).await.unwrap(),
        0,
        "an outcome applies once"
    );
    let done = deliveries(&store, tasks.id, Some(DeliveryStatus::Delivered)).await;
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|d| d.delivered_at.is_some()
        && d.last_status_code == Some(200)
        && d.lease_owner.is_none()));
    assert!(
        deliveries(&store, tasks.id, Some(DeliveryStatus::Pending))
            .await
            .is_empty()
    );
    assert!(claim_pairs(&store, "d1", 10, at(100)).await.is_empty());

    assert_eq!(store.webhook_list().await.unwrap().len(), 2);
    store.webhook_delete(tasks.id).await.unwrap();
    assert!(matches!(
        store.webhook_get(tasks.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.webhook_delete(tasks.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .webhook_deliveries(&DeliveryQuery {
                webhook_id: tasks.id,
                status: None,
                after: 0,
                limit: 10
            })
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A task's events reach a subscriber one at a time in id order (a
/// pending retry holds back the later ones; other tasks go on), a pair
/// that runs out of attempts is dead and no longer holds its task back,
/// and a dead letter can be redelivered.
pub async fn webhook_order_per_task_retries_and_dead_letters(store: Arc<dyn Store>) {
    let h = store
        .webhook_create(hook("all", &["*"], WebhookSource::Api))
        .await
        .unwrap();
    let a = TaskBuilder::new("ns", "a").step("s", &[]).build(at(0));
    let b = TaskBuilder::new("ns", "b").step("s", &[]).build(at(0));
    store
        .task_create_many(vec![a.clone(), b.clone()])
        .await
        .unwrap();
    run_all(&store, at(1)).await;
    store.webhook_fanout(1000, at(2)).await.unwrap();
    // 5 events per task: created, started, step.started, step.completed, completed.
    assert_eq!(deliveries(&store, h.id, None).await.len(), 10);

    let first = claim_pairs(&store, "d", 100, at(3)).await;
    assert_eq!(
        first
            .iter()
            .map(|c| c.event.as_ref().unwrap().task_id)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([a.id, b.id])
    );
    assert_eq!(first.len(), 2, "one pair per task in flight");
    let (ca, cb) = if first[0].event.as_ref().unwrap().task_id == a.id {
        (&first[0], &first[1])
    } else {
        (&first[1], &first[0])
    };
    // a's first fails (retry at 60 s), b's first is delivered.
    store
        .webhook_finish(vec![
            outcome(ca, failed(Some(at(60))), at(4)),
            outcome(cb, delivered(), at(4)),
        ])
        .await
        .unwrap();
    let next = claim_pairs(&store, "d", 100, at(5)).await;
    assert_eq!(next.len(), 1, "a waits for its retry; b goes on");
    assert_eq!(next[0].event.as_ref().unwrap().task_id, b.id);
    assert!(next[0].event_id > cb.event_id);
    store
        .webhook_finish(vec![outcome(&next[0], delivered(), at(6))])
        .await
        .unwrap();

    // At the retry time a's first comes back (attempt 2), then dies at 3.
    let mut retry = claim_pairs(&store, "d", 100, at(61)).await;
    retry.retain(|c| c.event.as_ref().unwrap().task_id == a.id);
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].event_id, ca.event_id);
    assert_eq!(retry[0].attempt, 2);
    store
        .webhook_finish(vec![outcome(&retry[0], failed(Some(at(62))), at(61))])
        .await
        .unwrap();
    let mut last = claim_pairs(&store, "d", 100, at(62)).await;
    last.retain(|c| c.event.as_ref().unwrap().task_id == a.id);
    assert_eq!(last[0].attempt, 3);
    store
        .webhook_finish(vec![outcome(&last[0], failed(None), at(62))])
        .await
        .unwrap();
    let dead = deliveries(&store, h.id, Some(DeliveryStatus::Dead)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, ca.event_id);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_status_code, Some(503));
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 503"));

    // The dead letter does not hold back a's later events.
    let after = claim_pairs(&store, "d", 100, at(63)).await;
    let a_next: Vec<_> = after
        .iter()
        .filter(|c| c.event.as_ref().unwrap().task_id == a.id)
        .collect();
    assert_eq!(a_next.len(), 1);
    assert!(a_next[0].event_id > ca.event_id);
    let outcomes = after
        .iter()
        .map(|c| outcome(c, delivered(), at(63)))
        .collect();
    store.webhook_finish(outcomes).await.unwrap();

    assert_eq!(
        store.webhook_redeliver(h.id, None, at(70)).await.unwrap(),
        1
    );
    let again = deliveries(&store, h.id, None).await;
    let row = again.iter().find(|d| d.event_id == ca.event_id).unwrap();
    assert_eq!(row.status, DeliveryStatus::Pending);
    assert_eq!(row.attempts, 0);
    let got = claim_pairs(&store, "d", 100, at(70)).await;
    assert!(
        got.iter()
            .any(|c| c.event_id == ca.event_id && c.attempt == 1)
    );
    // A delivered pair is redelivered only by id.
    assert_eq!(
        store
            .webhook_redeliver(h.id, Some(vec![cb.event_id]), at(71))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.webhook_redeliver(Uuid::new_v4(), None, at(71)).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// An expired lease is claimed again (a new attempt under a new token); the
/// old holder's late outcome is ignored.
pub async fn expired_delivery_lease_is_claimed_again(store: Arc<dyn Store>) {
    store
        .webhook_create(hook("all", &["task.created"], WebhookSource::Api))
        .await
        .unwrap();
    let t = TaskBuilder::new("ns", "t").step("s", &[]).build(at(0));
    store.task_create(t).await.unwrap();
    store.webhook_fanout(100, at(0)).await.unwrap();
    let first = claim_pairs(&store, "crashed", 10, at(0)).await;
    assert_eq!(first.len(), 1);
    assert!(claim_pairs(&store, "other", 10, at(9)).await.is_empty());
    let second = claim_pairs(&store, "other", 10, at(11)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event_id, first[0].event_id);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].lease_token, first[0].lease_token);
    assert_eq!(
        store
            .webhook_finish(vec![outcome(&first[0], delivered(), at(12))])
            .await
            .unwrap(),
        0,
        "the lost lease's outcome is ignored"
    );
    assert_eq!(
        store
            .webhook_finish(vec![outcome(&second[0], delivered(), at(12))])
            .await
            .unwrap(),
        1
    );
}

/// Config-defined subscribers follow the configuration by name (ids and
/// cursors kept), removed ones go with their deliveries, and a name used by
/// an API subscriber is refused.
pub async fn webhook_config_sync_follows_the_configuration(store: Arc<dyn Store>) {
    let a = hook("a", &["*"], WebhookSource::Config);
    let b = hook("b", &["*"], WebhookSource::Config);
    store
        .webhook_sync_config(vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let listed = store.webhook_list().await.unwrap();
    assert_eq!(
        listed.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(listed.iter().all(|h| h.source == WebhookSource::Config));
    let a_id = listed[0].id;

    let t = TaskBuilder::new("ns", "t").step("s", &[]).build(at(0));
    store.task_create(t).await.unwrap();
    store.webhook_fanout(100, at(1)).await.unwrap();
    let mut changed = hook("a", &["step.*"], WebhookSource::Config);
    changed.url = "https://hooks.example.com/new".into();
    changed.max_attempts = 7;
    store.webhook_sync_config(vec![changed]).await.unwrap();
    let listed = store.webhook_list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, a_id, "the id is kept");
    assert_eq!(listed[0].url, "https://hooks.example.com/new");
    assert_eq!(listed[0].event_types, ["step.*"]);
    assert_eq!(listed[0].max_attempts, 7);
    assert_eq!(deliveries(&store, a_id, None).await.len(), 1, "kept");

    store
        .webhook_create(hook("api", &["*"], WebhookSource::Api))
        .await
        .unwrap();
    assert!(matches!(
        store
            .webhook_sync_config(vec![hook("api", &["*"], WebhookSource::Config)])
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.webhook_sync_config(vec![]).await.unwrap();
    let left = store.webhook_list().await.unwrap();
    assert_eq!(left.len(), 1, "API subscribers are not the config's");
    assert_eq!(left[0].source, WebhookSource::Api);
}

/// Four dispatchers claiming and finishing at once: every pair is delivered
/// exactly once, and no pair is ever held by two of them at once.
pub async fn concurrent_delivery_claimers_never_share_a_pair(store: Arc<dyn Store>) {
    let hooks = [
        store
            .webhook_create(hook("one", &["*"], WebhookSource::Api))
            .await
            .unwrap(),
        store
            .webhook_create(hook("two", &["task.*"], WebhookSource::Api))
            .await
            .unwrap(),
    ];
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            TaskBuilder::new("ns", &format!("t{i}"))
                .step("s", &[])
                .build(at(0))
        })
        .collect();
    store.task_create_many(tasks).await.unwrap();
    run_all(&store, at(1)).await;
    // 30 tasks × 5 events to `one`, × 3 task events to `two`.
    let expected = 30 * 5 + 30 * 3;
    let mut fanned = 0;
    while fanned < expected {
        let n = store.webhook_fanout(50, at(2)).await.unwrap();
        assert!(n > 0 || fanned == expected, "fan-out stalled at {fanned}");
        fanned += n;
    }
    let in_flight = Arc::new(std::sync::Mutex::new(BTreeSet::<(Uuid, i64)>::new()));
    let mut joins = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        let in_flight = in_flight.clone();
        joins.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut idle = 0;
            while idle < 3 {
                let batch = claim_pairs(&store, &format!("w{w}"), 7, at(3)).await;
                if batch.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                for c in &batch {
                    let fresh = in_flight.lock().unwrap().insert((c.webhook.id, c.event_id));
                    assert!(
                        fresh,
                        "pair {:?} claimed twice at once",
                        (c.webhook.id, c.event_id)
                    );
                }
                let outcomes: Vec<_> = batch
                    .iter()
                    .map(|c| outcome(c, delivered(), at(3)))
                    .collect();
                // Leave the in-flight set before the outcome commits: once
                // written, the next event of the task may be claimed.
                for c in &batch {
                    in_flight
                        .lock()
                        .unwrap()
                        .remove(&(c.webhook.id, c.event_id));
                    got.push((c.webhook.id, c.event_id));
                }
                assert_eq!(
                    store.webhook_finish(outcomes).await.unwrap() as usize,
                    batch.len()
                );
            }
            got
        }));
    }
    let mut all: BTreeMap<(Uuid, i64), usize> = BTreeMap::new();
    for j in joins {
        for pair in j.await.unwrap() {
            *all.entry(pair).or_default() += 1;
        }
    }
    // Claimers may all go idle while another still finishes; drain what is left.
    loop {
        let rest = claim_pairs(&store, "last", 100, at(3)).await;
        if rest.is_empty() {
            break;
        }
        for c in &rest {
            *all.entry((c.webhook.id, c.event_id)).or_default() += 1;
        }
        let outcomes = rest
            .iter()
            .map(|c| outcome(c, delivered(), at(3)))
            .collect();
        store.webhook_finish(outcomes).await.unwrap();
    }
    assert_eq!(all.len(), expected as usize);
    assert!(all.values().all(|n| *n == 1), "every pair claimed once");
    for h in &hooks {
        assert!(
            deliveries(&store, h.id, None)
                .await
                .iter()
                .all(|d| d.status == DeliveryStatus::Delivered && d.attempts == 1)
        );
    }
}

/// Settled deliveries (delivered and dead) go once their event was pruned,
/// a batch at a time; pending pairs stay whatever their event's age, and
/// so do the pairs of events still kept.
pub async fn settled_deliveries_go_with_their_events(store: Arc<dyn Store>) {
    let all = store
        .webhook_create(hook("all", &["*"], WebhookSource::Api))
        .await
        .unwrap();
    let held = store
        .webhook_create(hook("held", &["task.created"], WebhookSource::Api))
        .await
        .unwrap();
    let old = TaskBuilder::new("ns", "old").step("s", &[]).build(at(0));
    store.task_create(old.clone()).await.unwrap();
    run_all(&store, at(1)).await;
    let new = TaskBuilder::new("ns", "new").step("s", &[]).build(at(200));
    store.task_create(new.clone()).await.unwrap();
    run_all(&store, at(201)).await;
    // all: 5 pairs per task; held: each task's task.created.
    assert_eq!(store.webhook_fanout(1000, at(202)).await.unwrap(), 12);

    // `all`'s pairs settle (the old task's first one dead, the rest
    // delivered); `held`'s stay pending (claimed, never finished).
    let mut dead = None;
    for round in 0..8 {
        let now = at(203) + Duration::milliseconds(round);
        let outcomes: Vec<_> = claim_pairs(&store, "d", 100, now)
            .await
            .iter()
            .filter(|c| c.webhook.id == all.id)
            .map(|c| {
                let e = c.event.as_ref().unwrap();
                if e.task_id == old.id && e.event_type == "task.created" {
                    dead = Some(c.event_id);
                    outcome(c, failed(None), now)
                } else {
                    outcome(c, delivered(), now)
                }
            })
            .collect();
        store.webhook_finish(outcomes).await.unwrap();
    }
    let settled = deliveries(&store, all.id, None).await;
    assert_eq!(settled.len(), 10);
    assert!(settled.iter().all(|d| d.status != DeliveryStatus::Pending));
    assert_eq!(
        deliveries(&store, all.id, Some(DeliveryStatus::Dead))
            .await
            .iter()
            .map(|d| Some(d.event_id))
            .collect::<Vec<_>>(),
        vec![dead]
    );
    assert_eq!(
        store.webhook_deliveries_prune(100).await.unwrap(),
        0,
        "no event pruned yet"
    );

    assert_eq!(store.events_prune(at(100), 1000).await.unwrap(), 5);
    let mut batches = Vec::new();
    loop {
        let n = store.webhook_deliveries_prune(2).await.unwrap();
        batches.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(
        batches,
        vec![2, 2, 1, 0],
        "the old task's 4 delivered + 1 dead"
    );
    let kept = deliveries(&store, all.id, None).await;
    assert_eq!(kept.len(), 5);
    assert!(kept.iter().all(|d| d.task_id == new.id));
    let pending = deliveries(&store, held.id, None).await;
    assert_eq!(
        pending.iter().map(|d| d.task_id).collect::<BTreeSet<_>>(),
        BTreeSet::from([old.id, new.id]),
        "pending pairs stay, their event pruned or not"
    );
    assert!(pending.iter().all(|d| d.status == DeliveryStatus::Pending));
}
