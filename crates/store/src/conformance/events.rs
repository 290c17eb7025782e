//! Lifecycle events (docs/EVENTS.md): every committed transition has its
//! event, no rolled-back one has, payloads say what happened, ids ascend,
//! filters, custom events, pruning.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::outbox::{CATALOG, type_matches};
use crate::{EventQuery, EventRow, NewCustomEvent};
use serde_json::json;
use std::collections::BTreeMap;

/// Every event with an id above `after` (all pages).
pub async fn all_events(store: &Arc<dyn Store>, query: EventQuery) -> Vec<EventRow> {
    let mut out: Vec<EventRow> = Vec::new();
    let mut q = EventQuery { limit: 7, ..query };
    loop {
        let page = store.events_list(&q).await.unwrap();
        let Some(last) = page.last() else { return out };
        q.after = last.id;
        out.extend(page);
    }
}

/// The events of one task, oldest first.
pub async fn task_events(store: &Arc<dyn Store>, task: Uuid) -> Vec<EventRow> {
    all_events(
        store,
        EventQuery {
            task_id: Some(task),
            ..Default::default()
        },
    )
    .await
}

/// The event type a task transition stands for.
fn task_event_type(t: &TransitionRow) -> Option<&'static str> {
    match t.metadata["action"].as_str() {
        Some("pause") => return Some("task.paused"),
        Some("resume") => return Some("task.resumed"),
        _ => {}
    }
    Some(match (t.from_state.as_deref(), t.to_state.as_str()) {
        (None, _) => "task.created",
        (_, "in_progress") => "task.started",
        (_, "complete") => "task.completed",
        (_, "error") => "task.failed",
        (_, "cancelled") => "task.cancelled",
        (_, "resolved_manually") => "task.resolved",
        (_, "pending") => "task.retry_requested",
        _ => return None,
    })
}

/// The event type a step transition stands for (none for the first row).
fn step_event_type(t: &TransitionRow) -> Option<&'static str> {
    Some(match (t.from_state.as_deref(), t.to_state.as_str()) {
        (None, _) => return None,
        (_, "in_progress") => "step.started",
        (_, "complete") => "step.completed",
        (_, "error") if t.metadata["kind"] == "lease_expired" => "step.lease_expired",
        (_, "error") => "step.failed",
        (Some("error"), "pending") => "step.retry_scheduled",
        (_, "cancelled") => "step.cancelled",
        (_, "resolved_manually") => "step.resolved_manually",
        _ => return None,
    })
}

/// The commit proof for one task: its events are exactly the events its
/// transitions stand for (none missing, none extra), in the same order per
/// entity, at the same times, every type in the catalog, and ids ascending.
pub async fn assert_events_match_transitions(store: &Arc<dyn Store>, task: Uuid) {
    let events = task_events(store, task).await;
    assert!(
        events.windows(2).all(|w| w[0].id < w[1].id),
        "ids ascend: {:?}",
        events.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    for e in &events {
        assert!(
            CATALOG.iter().any(|(name, _)| *name == e.event_type),
            "{} is in the catalog",
            e.event_type
        );
        assert_eq!(e.task_id, task);
        assert_eq!(e.namespace, store.task_get(task).await.unwrap().namespace);
    }
    let expected: Vec<(&str, DateTime<Utc>)> = store
        .task_transitions(task)
        .await
        .unwrap()
        .iter()
        .filter_map(|t| task_event_type(t).map(|ty| (ty, t.created_at)))
        .collect();
    let got: Vec<(&str, DateTime<Utc>)> = events
        .iter()
        .filter(|e| e.step_id.is_none())
        .map(|e| (e.event_type.as_str(), e.created_at))
        .collect();
    assert_eq!(got, expected, "task events of {task}");
    for s in store.step_list(task).await.unwrap() {
        let expected: Vec<(&str, DateTime<Utc>)> = store
            .step_transitions(s.id)
            .await
            .unwrap()
            .iter()
            .filter_map(|t| step_event_type(t).map(|ty| (ty, t.created_at)))
            .collect();
        let got: Vec<(&str, DateTime<Utc>)> = events
            .iter()
            .filter(|e| e.step_id == Some(s.id))
            .map(|e| (e.event_type.as_str(), e.created_at))
            .collect();
        assert_eq!(got, expected, "events of step {}", s.name);
        for e in events.iter().filter(|e| e.step_id == Some(s.id)) {
            assert_eq!(e.payload["step_name"], json!(s.name));
        }
    }
}

fn types(events: &[EventRow]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// A task that runs to the end records created, started, each step's
/// started and completed (with attempt, worker, duration and results), and
/// completed last; the step events of one step follow its transitions.
pub async fn events_follow_a_successful_task(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c0 = claim_one(&store, at(1)).await;
    succeed(&store, &c0, at(3)).await;
    let c1 = claim_one(&store, at(4)).await;
    succeed(&store, &c1, at(5)).await;

    let ev = task_events(&store, t.id).await;
    assert_eq!(ev.first().unwrap().event_type, "task.created");
    assert_eq!(ev.last().unwrap().event_type, "task.completed");
    let mut sorted = types(&ev);
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "step.completed",
            "step.completed",
            "step.started",
            "step.started",
            "task.completed",
            "task.created",
            "task.started"
        ]
    );
    let created = &ev[0];
    assert_eq!(created.namespace, "test");
    assert_eq!(created.payload["name"], "shape");
    assert_eq!(created.payload["version"], "1.0.0");
    assert_eq!(created.payload["steps_total"], 2);
    assert_eq!(created.payload["correlation_id"], json!(t.correlation_id));
    assert_eq!(created.created_at, at(0));

    let of = |step: Uuid, ty: &str| {
        ev.iter()
            .find(|e| e.step_id == Some(step) && e.event_type == ty)
            .cloned()
            .unwrap_or_else(|| panic!("no {ty} for {step}"))
    };
    let started = of(c0.step_id, "step.started");
    assert_eq!(started.payload["attempt"], 1);
    assert_eq!(started.payload["worker"], "w1");
    assert_eq!(started.payload["step_name"], "s0");
    assert_eq!(started.created_at, at(1));
    let done = of(c0.step_id, "step.completed");
    assert_eq!(done.payload["results"], json!({"step": "s0"}));
    assert_eq!(done.payload["attempt"], 1);
    assert_eq!(done.payload["worker"], "w1");
    assert_eq!(done.payload["duration_ms"].as_f64(), Some(2000.0));
    assert!(done.payload.get("error").is_none(), "{}", done.payload);
    // Causality: s1 starts after s0 completed; the task completes after s1.
    let pos = |id: i64| ev.iter().position(|e| e.id == id).unwrap();
    assert!(pos(done.id) < pos(of(c1.step_id, "step.started").id));
    let started_task = ev.iter().find(|e| e.event_type == "task.started").unwrap();
    assert_eq!(
        (
            started_task.payload["from"].as_str(),
            started_task.payload["to"].as_str()
        ),
        (Some("pending"), Some("in_progress"))
    );
    // Whole payloads of the state changes, whichever statement wrote them
    // (the hot statements build each family's payload themselves), and
    // every event carries its task's namespace.
    assert_eq!(
        started.payload,
        json!({ "step_name": "s0", "attempt": 1, "worker": "w1" })
    );
    assert_eq!(
        started_task.payload,
        json!({ "name": "shape", "version": "1.0.0", "from": "pending", "to": "in_progress" })
    );
    let completed_task = ev.last().unwrap();
    assert_eq!(
        completed_task.payload,
        json!({ "name": "shape", "version": "1.0.0", "from": "in_progress", "to": "complete" })
    );
    assert!(
        ev.iter().all(|e| e.namespace == "test"),
        "{:?}",
        ev.iter().map(|e| &e.namespace).collect::<Vec<_>>()
    );
    assert_events_match_transitions(&store, t.id).await;
}

/// A failed attempt that will be retried says so, with the error and when;
/// the last one says it will not, and the task fails.
pub async fn failure_events_carry_error_and_retry(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("billing", "charge")
        .step("a", &[])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    fail(&store, &c, Some(at(20)), at(2)).await;
    let c = claim_one(&store, at(20)).await;
    fail(&store, &c, None, at(21)).await;

    let ev = task_events(&store, t.id).await;
    let failed: Vec<&EventRow> = ev
        .iter()
        .filter(|e| e.event_type == "step.failed")
        .collect();
    assert_eq!(failed.len(), 2);
    let first = failed[0];
    assert_eq!(first.payload["will_retry"], true);
    assert_eq!(
        first.payload["next_attempt_at"],
        "2030-01-01T00:00:20.000000Z"
    );
    assert_eq!(first.payload["attempt"], 1);
    assert_eq!(first.payload["max_attempts"], 3);
    assert_eq!(first.payload["error"]["kind"], "retryable");
    assert_eq!(first.payload["error"]["code"], "E42");
    assert_eq!(first.payload["error"]["message"], "a failed");
    assert_eq!(first.namespace, "billing");
    let last = failed[1];
    assert_eq!(last.payload["will_retry"], false);
    assert!(last.payload.get("next_attempt_at").is_none());
    assert_eq!(last.payload["attempt"], 2);
    assert_eq!(last.payload["error"]["kind"], "permanent");

    let retry = ev
        .iter()
        .find(|e| e.event_type == "step.retry_scheduled")
        .unwrap();
    // The whole payload: a scheduled retry names no worker, error or
    // will_retry (those belong to the failure before it).
    assert_eq!(
        retry.payload,
        json!({
            "step_name": "a",
            "attempt": 1,
            "next_attempt_at": "2030-01-01T00:00:20.000000Z",
            "max_attempts": 3,
        })
    );
    assert!(first.id < retry.id, "failed, then retry scheduled");
    assert_eq!(ev.last().unwrap().event_type, "task.failed");
    assert_events_match_transitions(&store, t.id).await;
}

/// Operator actions and rescues have their events: cancel, resolve, retry,
/// lease expiry; each task's events match its transitions.
pub async fn operator_actions_and_rescues_have_events(store: Arc<dyn Store>) {
    // Rescue with attempts left, then a retried task.
    let rescued = new_task(Shape::Single, at(0));
    store.task_create(rescued.clone()).await.unwrap();
    let c = store
        .step_claim(&ClaimParams {
            lease_until: at(5),
            ..params("w9", 1, at(1))
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(store.step_rescue_expired(at(6), 10).await.unwrap(), 1);
    let ev = task_events(&store, rescued.id).await;
    let expired = ev
        .iter()
        .find(|e| e.event_type == "step.lease_expired")
        .unwrap();
    assert_eq!(expired.step_id, Some(c.step_id));
    assert_eq!(expired.payload["worker"], "w9");
    assert_eq!(expired.payload["will_retry"], true);
    assert_eq!(expired.payload["error"]["kind"], "lease_expired");
    assert!(!types(&ev).contains(&"step.failed"));
    let again = claim_one(&store, at(7)).await;
    assert_eq!(again.attempt, 2);
    succeed(&store, &again, at(8)).await;
    assert_events_match_transitions(&store, rescued.id).await;

    // Fail for good, retry the task, resolve the step by hand.
    let t = new_task(Shape::Linear(2), at(10));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(11)).await;
    fail(&store, &c, None, at(12)).await;
    store.task_retry(t.id, at(13), Some("ops")).await.unwrap();
    let c = claim_one(&store, at(14)).await;
    fail(&store, &c, None, at(15)).await;
    store
        .step_resolve(c.step_id, json!({"by": "hand"}), at(16), None)
        .await
        .unwrap();
    let s1 = step(&store, t.id, "s1").await;
    store.step_cancel(s1.id, at(17), None).await.unwrap();
    let ev = task_events(&store, t.id).await;
    let ty = types(&ev);
    for want in [
        "task.failed",
        "task.retry_requested",
        "step.retry_scheduled",
        "step.resolved_manually",
        "step.cancelled",
    ] {
        assert!(ty.contains(&want), "{want} in {ty:?}");
    }
    let resolved = ev
        .iter()
        .find(|e| e.event_type == "step.resolved_manually")
        .unwrap();
    assert_eq!(resolved.payload["results"], json!({"by": "hand"}));
    assert_events_match_transitions(&store, t.id).await;

    // A cancelled task.
    let x = new_task(Shape::Diamond, at(20));
    store.task_create(x.clone()).await.unwrap();
    store.task_cancel(x.id, at(21), None).await.unwrap();
    let ev = task_events(&store, x.id).await;
    assert_eq!(
        ev.iter()
            .filter(|e| e.event_type == "task.cancelled")
            .count(),
        1
    );
    assert_eq!(
        ev.iter()
            .filter(|e| e.event_type == "step.cancelled")
            .count(),
        4
    );
    assert_events_match_transitions(&store, x.id).await;
}

/// An operator's change to a step is recorded as every other change is: its
/// transition names the attempt and, when the step was running, the worker
/// that held its lease (no `worker` member otherwise), and the event's
/// payload says the same, on both stores.
pub async fn operator_step_changes_name_attempt_and_worker(store: Arc<dyn Store>) {
    fn last(ts: &[TransitionRow]) -> &serde_json::Value {
        &ts.last().unwrap().metadata
    }
    let payload = |ev: &[EventRow], ty: &str, step: Uuid| {
        ev.iter()
            .find(|e| e.event_type == ty && e.step_id == Some(step))
            .unwrap_or_else(|| panic!("{ty} of {step}"))
            .payload
            .clone()
    };

    // A task cancelled with one step running and one never leased.
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let running = claim_one(&store, at(1)).await;
    store.task_cancel(t.id, at(2), Some("ops")).await.unwrap();
    let waiting = step(&store, t.id, "s1").await;
    let m = last(&store.step_transitions(running.step_id).await.unwrap()).clone();
    assert_eq!(m["attempt"], 1, "{m}");
    assert_eq!(m["worker"], "w1", "{m}");
    let m = last(&store.step_transitions(waiting.id).await.unwrap()).clone();
    assert_eq!(m["attempt"], 0, "{m}");
    assert_eq!(m.get("worker"), None, "{m}");
    let ev = task_events(&store, t.id).await;
    let p = payload(&ev, "step.cancelled", running.step_id);
    assert_eq!(
        (&p["attempt"], &p["worker"]),
        (&json!(1), &json!("w1")),
        "{p}"
    );
    let p = payload(&ev, "step.cancelled", waiting.id);
    assert_eq!(p["attempt"], 0, "{p}");
    assert_eq!(p.get("worker"), None, "{p}");

    // A step that failed for good, resolved by hand; its child cancelled.
    let t = new_task(Shape::Linear(2), at(10));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(11)).await;
    fail(&store, &c, None, at(12)).await;
    store
        .step_resolve(c.step_id, json!({"by": "hand"}), at(13), None)
        .await
        .unwrap();
    let m = last(&store.step_transitions(c.step_id).await.unwrap()).clone();
    assert_eq!(m["attempt"], 1, "{m}");
    assert_eq!(m.get("worker"), None, "not running when resolved: {m}");
    let child = claim_one(&store, at(14)).await;
    store
        .step_cancel(child.step_id, at(15), None)
        .await
        .unwrap();
    let m = last(&store.step_transitions(child.step_id).await.unwrap()).clone();
    assert_eq!(
        (&m["attempt"], &m["worker"]),
        (&json!(1), &json!("w1")),
        "{m}"
    );
    let ev = task_events(&store, t.id).await;
    let p = payload(&ev, "step.resolved_manually", c.step_id);
    assert_eq!(p["attempt"], 1, "{p}");
    let p = payload(&ev, "step.cancelled", child.step_id);
    assert_eq!(
        (&p["attempt"], &p["worker"]),
        (&json!(1), &json!("w1")),
        "{p}"
    );
    assert_events_match_transitions(&store, t.id).await;

    // Retries by an operator: the task's, then the step's.
    let t = new_task(Shape::Single, at(20));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(21)).await;
    fail(&store, &c, None, at(22)).await;
    store.task_retry(t.id, at(23), None).await.unwrap();
    let c = claim_one(&store, at(24)).await;
    assert_eq!(c.attempt, 2);
    fail(&store, &c, None, at(25)).await;
    store.step_retry(c.step_id, at(26), None).await.unwrap();
    let retries: Vec<serde_json::Value> = task_events(&store, t.id)
        .await
        .into_iter()
        .filter(|e| e.event_type == "step.retry_scheduled")
        .map(|e| e.payload)
        .collect();
    let attempts: Vec<&serde_json::Value> = retries.iter().map(|p| &p["attempt"]).collect();
    assert_eq!(attempts, [&json!(1), &json!(2)], "{retries:?}");
    let ts = store.step_transitions(c.step_id).await.unwrap();
    let reopened: Vec<&serde_json::Value> = ts
        .iter()
        .filter(|t| t.from_state.as_deref() == Some("error"))
        .map(|t| &t.metadata["attempt"])
        .collect();
    assert_eq!(reopened, [&json!(1), &json!(2)], "{ts:?}");
    assert_events_match_transitions(&store, t.id).await;
}

/// Rollback proof: a write that fails after some of its rows were written
/// leaves no event of them (tasks of a failed batch, a duplicate id).
pub async fn rolled_back_writes_leave_no_events(store: Arc<dyn Store>) {
    let kept = new_task(Shape::Single, at(0));
    store.task_create(kept.clone()).await.unwrap();
    let before = all_events(&store, EventQuery::default()).await;

    // The same task id twice in a batch: the first is written, the second
    // fails on the primary key, the batch rolls back.
    let a = new_task(Shape::Linear(3), at(1));
    let r = store.task_create_many(vec![a.clone(), a.clone()]).await;
    assert!(r.is_err(), "{r:?}");
    // A duplicate identity inside a batch.
    let mut b = new_task(Shape::Single, at(2));
    b.identity = Some(crate::Identity {
        hash: "same".into(),
        since: at(-60),
    });
    let mut b2 = new_task(Shape::Single, at(2));
    b2.identity = b.identity.clone();
    assert!(store.task_create_many(vec![b.clone(), b2]).await.is_err());
    // A task whose new step reuses the id of an existing step.
    let mut c = new_task(Shape::Roots(2), at(3));
    c.steps[1].id = kept.steps[0].id;
    assert!(store.task_create(c.clone()).await.is_err());

    let after = all_events(&store, EventQuery::default()).await;
    assert_eq!(after, before, "no event of a rolled-back write");
    for id in [a.id, b.id, c.id] {
        assert!(task_events(&store, id).await.is_empty());
    }
    // The store goes on, and the next events follow the kept ones.
    let c0 = claim_one(&store, at(4)).await;
    succeed(&store, &c0, at(5)).await;
    let later = all_events(
        &store,
        EventQuery {
            after: before.last().unwrap().id,
            ..Default::default()
        },
    )
    .await;
    let mut later = types(&later);
    later.sort_unstable();
    assert_eq!(
        later,
        [
            "step.completed",
            "step.started",
            "task.completed",
            "task.started"
        ]
    );
    assert_events_match_transitions(&store, kept.id).await;
}

/// Filters (type patterns, task, namespace), paging with `after`, and ids
/// that ascend across all tasks.
pub async fn events_filter_and_page(store: Arc<dyn Store>) {
    assert_eq!(store.events_last_id().await.unwrap(), 0, "no event yet");
    let a = TaskBuilder::new("alpha", "x").step("a", &[]).build(at(0));
    let b = TaskBuilder::new("beta", "y").step("a", &[]).build(at(0));
    store
        .task_create_many(vec![a.clone(), b.clone()])
        .await
        .unwrap();
    run_all(&store, at(1)).await;
    let all = all_events(&store, EventQuery::default()).await;
    assert_eq!(all.len(), 10, "{:?}", types(&all));
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));

    let tasks_only = all_events(
        &store,
        EventQuery {
            types: vec!["task.*".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tasks_only.len(), 6);
    assert!(
        tasks_only
            .iter()
            .all(|e| type_matches("task.*", &e.event_type))
    );
    let two = all_events(
        &store,
        EventQuery {
            types: vec!["task.created".into(), "step.completed".into()],
            namespace: Some("beta".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(types(&two), ["task.created", "step.completed"]);
    assert!(two.iter().all(|e| e.task_id == b.id));
    let none = all_events(
        &store,
        EventQuery {
            types: vec!["step_.*".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(none.is_empty(), "`_` is not a wildcard");
    // Paging: limit and after.
    let page = store
        .events_list(&EventQuery {
            after: all[3].id,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page, all[4..6].to_vec());
    let end = store
        .events_list(&EventQuery {
            after: all.last().unwrap().id,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(end.is_empty());
}

/// `events_list_many` gives each task the page `events_list` gives it
/// alone (after, types, a limit per task), in one read; unknown tasks and
/// tasks without such events get an empty list.
pub async fn events_list_many_pages_per_task(store: Arc<dyn Store>) {
    let a = TaskBuilder::new("alpha", "x")
        .step("a", &[])
        .step("b", &["a"])
        .build(at(0));
    let b = TaskBuilder::new("beta", "y").step("a", &[]).build(at(0));
    let quiet = TaskBuilder::new("gamma", "z").step("a", &[]).build(at(0));
    store
        .task_create_many(vec![a.clone(), b.clone(), quiet.clone()])
        .await
        .unwrap();
    // `a` and `b` run to the end; `gamma`'s step fails and waits for a retry.
    for _ in 0..2 {
        let got = claim(&store, 100, at(1)).await;
        let mine: Vec<_> = got
            .iter()
            .filter(|c| c.task_id != quiet.id)
            .map(|c| success(c, serde_json::json!({})))
            .collect();
        let others: Vec<_> = got
            .iter()
            .filter(|c| c.task_id == quiet.id)
            .map(|c| failure(c, Some(at(100))))
            .collect();
        store.step_finish_many(&mine, at(1)).await.unwrap();
        store.step_finish_many(&others, at(1)).await.unwrap();
    }
    let missing = Uuid::now_v7();
    let ids = [a.id, b.id, quiet.id, missing];
    let alone = |task: Uuid, q: &EventQuery| {
        let store = store.clone();
        let q = EventQuery {
            task_id: Some(task),
            ..q.clone()
        };
        async move { store.events_list(&q).await.unwrap() }
    };
    for q in [
        EventQuery {
            limit: 100,
            ..Default::default()
        },
        EventQuery {
            limit: 2,
            ..Default::default()
        },
        EventQuery {
            limit: 3,
            types: vec!["step.*".into()],
            ..Default::default()
        },
        EventQuery {
            limit: 100,
            types: vec!["task.created".into(), "task.completed".into()],
            namespace: Some("alpha".into()),
            ..Default::default()
        },
    ] {
        let many = store.events_list_many(&ids, &q).await.unwrap();
        assert_eq!(many.len(), ids.len(), "an entry per asked id: {q:?}");
        for id in ids {
            assert_eq!(many[&id], alone(id, &q).await, "task {id}, {q:?}");
        }
        assert!(many[&missing].is_empty());
    }
    // Paging on from a task's last event id.
    let first = store
        .events_list_many(
            &ids,
            &EventQuery {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let after = first[&a.id][1].id;
    let rest = store
        .events_list_many(
            &[a.id],
            &EventQuery {
                after,
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let everything = task_events(&store, a.id).await;
    assert_eq!(rest[&a.id], everything[2..].to_vec());
    assert!(everything.len() > 4, "{}", everything.len());
    // Nothing asked, nothing read.
    assert!(
        store
            .events_list_many(&[], &EventQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Custom events are recorded for their step's task, in order with the
/// rest; an unknown step is `NotFound`. Pruning deletes old events in
/// batches and never reuses an id.
pub async fn custom_events_and_pruning(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    let mut rx = store.subscribe();
    store
        .event_emit(NewCustomEvent {
            step_id: c.step_id,
            name: "custom.progress".into(),
            payload: json!({"percent": 50, "note": null}),
            now: at(2),
            lease_token: Some(c.lease_token),
        })
        .await
        .unwrap();
    let r = store
        .event_emit(NewCustomEvent {
            step_id: c.step_id,
            name: "custom.stale".into(),
            payload: json!({}),
            now: at(2),
            lease_token: Some(Uuid::now_v7()),
        })
        .await;
    assert_conflict(r, "custom event under a lease not held");
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskChanged(t.id)).await);
    succeed(&store, &c, at(3)).await;
    let r = store
        .event_emit(NewCustomEvent {
            step_id: Uuid::now_v7(),
            name: "custom.x".into(),
            payload: json!({}),
            now: at(3),
            lease_token: None,
        })
        .await;
    assert_not_found(r, "custom event of an unknown step");

    let ev = task_events(&store, t.id).await;
    let custom = ev
        .iter()
        .position(|e| e.event_type == "custom.progress")
        .unwrap();
    assert_eq!(ev[custom].payload, json!({"percent": 50, "note": null}));
    assert_eq!(ev[custom].step_id, Some(c.step_id));
    assert_eq!(ev[custom].namespace, "test");
    assert_eq!(ev[custom].created_at, at(2));
    let mut earlier = types(&ev[..custom]);
    earlier.sort_unstable();
    assert_eq!(earlier, ["step.started", "task.created", "task.started"]);
    assert_eq!(ev[custom + 1].event_type, "step.completed");

    // Pruning: events before at(2) (created, step and task started) go,
    // two per batch.
    let last_id = ev.last().unwrap().id;
    let before = ev.iter().filter(|e| e.created_at < at(2)).count() as u64;
    assert_eq!(before, 3);
    assert_eq!(store.events_prune(at(2), 2).await.unwrap(), 2);
    assert_eq!(store.events_prune(at(2), 2).await.unwrap(), 1);
    assert_eq!(store.events_prune(at(2), 2).await.unwrap(), 0);
    let kept = task_events(&store, t.id).await;
    assert_eq!(kept.len(), ev.len() - 3);
    assert!(kept.iter().all(|e| e.created_at >= at(2)));
    assert_eq!(store.events_last_id().await.unwrap(), last_id);
    // Prune everything but the newest (always kept); the next event still
    // gets a higher id.
    assert_eq!(
        store.events_prune(at(100), 100).await.unwrap(),
        kept.len() as u64 - 1
    );
    assert_eq!(task_events(&store, t.id).await.len(), 1);
    assert_eq!(
        store.events_last_id().await.unwrap(),
        last_id,
        "kept after pruning"
    );
    let u = new_task(Shape::Single, at(200));
    store.task_create(u.clone()).await.unwrap();
    let next = task_events(&store, u.id).await;
    assert!(next[0].id > last_id, "{} > {last_id}", next[0].id);
    assert_eq!(
        store.events_last_id().await.unwrap(),
        next.last().unwrap().id
    );
}

/// Concurrent writers (claims and finishes racing on shared tasks): every
/// task's events still match its transitions, and every id is unique.
pub async fn concurrent_writers_record_every_event_once(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..12).map(|_| new_task(Shape::Diamond, at(0))).collect();
    store.task_create_many(tasks.clone()).await.unwrap();
    let mut handles = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let got = store
                    .step_claim(&params(&format!("w{w}"), 3, at(1)))
                    .await
                    .unwrap();
                if got.is_empty() {
                    if !store.has_open_tasks().await.unwrap() {
                        return;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let outcomes: Vec<_> = got
                    .iter()
                    .map(|c| {
                        if c.attempt == 1 && c.step_name == "b" {
                            failure(c, Some(at(1)))
                        } else {
                            success(c, json!(w))
                        }
                    })
                    .collect();
                store.step_finish_many(&outcomes, at(1)).await.unwrap();
            }
        }));
    }
    let all = async {
        for h in handles {
            h.await.unwrap();
        }
    };
    tokio::time::timeout(StdDuration::from_secs(60), all)
        .await
        .unwrap();
    let events = all_events(&store, EventQuery::default()).await;
    let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *per_type.entry(e.event_type.as_str()).or_default() += 1;
    }
    assert_eq!(per_type.get("task.completed"), Some(&12), "{per_type:?}");
    assert_eq!(per_type.get("step.failed"), Some(&12), "{per_type:?}");
    assert_eq!(per_type.get("step.completed"), Some(&48), "{per_type:?}");
    for t in &tasks {
        assert_events_match_transitions(&store, t.id).await;
    }
}
