//! Schedules and their ticks (docs/FLOW_CONTROL.md, "Schedules").

use super::factory::{Shape, new_task};
use super::*;
use crate::{NewSchedule, ScheduleFire, ScheduleRow, ScheduleSource, TaskQuery};
use serde_json::json;
use tasker_core::schedule::{CatchUp, DueRules, ScheduleSpec, due_ticks};

fn spec(name: &str, every: u64, catch_up: CatchUp) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        namespace: "test".into(),
        template: "shape".into(),
        version: None,
        cron: None,
        timezone: None,
        every_seconds: Some(every),
        catch_up,
        catch_up_window_seconds: None,
        context: json!({"day": "{{schedule.date}}"}),
    }
}

async fn save(store: &Arc<dyn Store>, spec: ScheduleSpec, now: DateTime<Utc>) -> ScheduleRow {
    store
        .schedule_save(
            NewSchedule {
                id: Uuid::now_v7(),
                spec,
                source: ScheduleSource::Api,
                now,
            },
            false,
        )
        .await
        .unwrap()
}

fn fire(row: &ScheduleRow, tick: DateTime<Utc>, manual: bool, now: DateTime<Utc>) -> ScheduleFire {
    ScheduleFire {
        schedule_id: row.id,
        scheduled_for: tick,
        manual,
        task: new_task(Shape::Single, now),
    }
}

async fn task_count(store: &Arc<dyn Store>) -> i64 {
    store
        .task_list(&TaskQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .total
        .unwrap_or(-1)
}

/// A schedule round-trips; its name is unique (a second create is a
/// conflict, a replace keeps id, anchor and last tick); list by name; delete.
pub async fn schedules_round_trip(store: Arc<dyn Store>) {
    let row = save(
        &store,
        spec("b-nightly", 60, CatchUp::All),
        at(0) + Duration::milliseconds(700),
    )
    .await;
    assert_eq!(row.anchor, at(0), "anchored on whole seconds");
    assert_eq!((row.paused_at, row.last_tick_at), (None, None));
    assert_eq!(row.spec, spec("b-nightly", 60, CatchUp::All));
    assert_eq!(
        store.schedule_get("b-nightly").await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(store.schedule_get("nope").await.unwrap(), None);
    let again = store
        .schedule_save(
            NewSchedule {
                id: Uuid::now_v7(),
                spec: spec("b-nightly", 30, CatchUp::None),
                source: ScheduleSource::Template,
                now: at(5),
            },
            false,
        )
        .await;
    assert_conflict(again, "a taken name");
    store
        .schedule_fire(fire(&row, at(60), false, at(61)))
        .await
        .unwrap()
        .expect("fires");
    let replaced = store
        .schedule_save(
            NewSchedule {
                id: Uuid::now_v7(),
                spec: spec("b-nightly", 30, CatchUp::None),
                source: ScheduleSource::Template,
                now: at(100),
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        (replaced.id, replaced.anchor, replaced.last_tick_at),
        (row.id, at(0), Some(at(60)))
    );
    assert_eq!(replaced.spec.every_seconds, Some(30));
    assert_eq!(replaced.source, ScheduleSource::Template);
    save(&store, spec("a-hourly", 3600, CatchUp::Latest), at(0)).await;
    let names: Vec<String> = store
        .schedule_list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name)
        .collect();
    assert_eq!(names, ["a-hourly", "b-nightly"]);
    store.schedule_delete(row.id).await.unwrap();
    assert_eq!(store.schedule_get("b-nightly").await.unwrap(), None);
    assert!(store.schedule_ticks(row.id, 10).await.unwrap().is_empty());
    assert_not_found(store.schedule_delete(row.id).await, "deleted twice");
    assert_eq!(task_count(&store).await, 1, "its task stays");
}

/// A tick creates one task and records itself; firing it again, or an
/// older tick after it, creates nothing; the next tick fires.
pub async fn tick_creates_one_task_and_duplicates_are_refused(store: Arc<dyn Store>) {
    let row = save(&store, spec("poll", 10, CatchUp::All), at(0)).await;
    let first = fire(&row, at(10), false, at(11));
    let task = store
        .schedule_fire(first.clone())
        .await
        .unwrap()
        .expect("first fire");
    assert_eq!(task.id, first.task.id);
    assert_eq!(store.task_get(task.id).await.unwrap().id, task.id);
    // The same tick again (another process, another task id): refused.
    assert_eq!(
        store
            .schedule_fire(fire(&row, at(10), false, at(12)))
            .await
            .unwrap(),
        None
    );
    let got = store.schedule_get("poll").await.unwrap().unwrap();
    assert_eq!(got.last_tick_at, Some(at(10)));
    store
        .schedule_fire(fire(&row, at(20), false, at(21)))
        .await
        .unwrap()
        .expect("next tick");
    assert_eq!(
        store
            .schedule_fire(fire(&row, at(15), false, at(22)))
            .await
            .unwrap(),
        None,
        "older than the last tick"
    );
    assert_eq!(task_count(&store).await, 2);
    let ticks = store.schedule_ticks(row.id, 10).await.unwrap();
    let times: Vec<_> = ticks.iter().map(|t| (t.scheduled_for, t.manual)).collect();
    assert_eq!(times, [(at(20), false), (at(10), false)], "newest first");
    assert_eq!(ticks[1].task_id, task.id);
    assert_eq!(ticks[1].fired_at, at(11));
    let unknown = ScheduleFire {
        schedule_id: Uuid::now_v7(),
        ..fire(&row, at(30), false, at(30))
    };
    assert_not_found(store.schedule_fire(unknown).await, "unknown schedule");
}

/// Paused: ticks are refused (a manual trigger still fires, without
/// moving the last tick); resuming settles the ticks missed meanwhile;
/// pausing twice or resuming a running schedule is a conflict.
pub async fn paused_schedules_do_not_fire(store: Arc<dyn Store>) {
    let row = save(&store, spec("poll", 10, CatchUp::All), at(0)).await;
    let paused = store
        .schedule_set_paused(row.id, true, at(5))
        .await
        .unwrap();
    assert_eq!(paused.paused_at, Some(at(5)));
    assert_conflict(
        store.schedule_set_paused(row.id, true, at(6)).await,
        "paused twice",
    );
    assert_eq!(
        store
            .schedule_fire(fire(&row, at(10), false, at(10)))
            .await
            .unwrap(),
        None
    );
    let manual = store
        .schedule_fire(fire(&row, at(12), true, at(12)))
        .await
        .unwrap()
        .expect("manual fires while paused");
    assert_eq!(store.task_get(manual.id).await.unwrap().id, manual.id);
    let resumed = store
        .schedule_set_paused(row.id, false, at(35))
        .await
        .unwrap();
    assert_eq!(
        (resumed.paused_at, resumed.last_tick_at),
        (None, Some(at(35)))
    );
    assert_conflict(
        store.schedule_set_paused(row.id, false, at(36)).await,
        "not paused",
    );
    for missed in [at(20), at(30)] {
        assert_eq!(
            store
                .schedule_fire(fire(&row, missed, false, at(36)))
                .await
                .unwrap(),
            None,
            "missed while paused"
        );
    }
    store
        .schedule_fire(fire(&row, at(40), false, at(40)))
        .await
        .unwrap()
        .expect("after the resume");
    assert_eq!(task_count(&store).await, 2);
    assert_not_found(
        store
            .schedule_set_paused(Uuid::now_v7(), true, at(41))
            .await,
        "unknown schedule",
    );
}

/// After a restart, the due ticks of each catch-up mode fire once each,
/// and a second pass (another process, the same view) fires nothing.
pub async fn catch_up_after_a_restart(store: Arc<dyn Store>) {
    let rules = DueRules {
        window: Duration::seconds(300),
        late_after: Duration::seconds(30),
    };
    // Last fired at 60 s; the process comes back at 610 s: ticks every
    // 60 s from 120 s to 600 s were missed (9), 5 of them in the window.
    let now = at(610);
    let mut expect = Vec::new();
    for (name, mode, fired) in [
        ("none", CatchUp::None, 1),
        ("latest", CatchUp::Latest, 1),
        ("all", CatchUp::All, 5),
    ] {
        let row = save(&store, spec(name, 60, mode), at(0)).await;
        store
            .schedule_fire(fire(&row, at(60), false, at(60)))
            .await
            .unwrap()
            .expect("first");
        expect.push((row.id, fired));
    }
    let mut late = save(&store, spec("none-late", 60, CatchUp::None), at(0)).await;
    store
        .schedule_fire(fire(&late, at(60), false, at(60)))
        .await
        .unwrap()
        .expect("first");
    for pass in 0..2 {
        let mut created = 0;
        for row in store.schedule_list().await.unwrap() {
            let timer = row.spec.compile().unwrap();
            let when = if row.spec.name == "none-late" {
                at(645)
            } else {
                now
            };
            for t in due_ticks(
                &timer,
                row.spec.catch_up,
                row.anchor,
                row.last_tick_at,
                when,
                rules,
            ) {
                if store
                    .schedule_fire(fire(&row, t, false, when))
                    .await
                    .unwrap()
                    .is_some()
                {
                    created += 1;
                }
            }
        }
        assert_eq!(created, if pass == 0 { 7 } else { 0 }, "pass {pass}");
    }
    for (id, fired) in expect {
        let ticks = store.schedule_ticks(id, 100).await.unwrap();
        assert_eq!(ticks.len(), fired + 1, "{id}: {ticks:?}");
        assert_eq!(
            ticks[0].scheduled_for,
            at(600),
            "the newest missed tick fired"
        );
    }
    let all = store.schedule_get("all").await.unwrap().unwrap();
    let ticks = store.schedule_ticks(all.id, 100).await.unwrap();
    let times: Vec<_> = ticks.iter().rev().map(|t| t.scheduled_for).collect();
    assert_eq!(times, [at(60), at(360), at(420), at(480), at(540), at(600)]);
    late = store.schedule_get("none-late").await.unwrap().unwrap();
    assert_eq!(
        late.last_tick_at,
        Some(at(60)),
        "45 s late under `none`: skipped"
    );
    assert_eq!(task_count(&store).await, 4 + 7);
}

/// Processes racing on the same ticks create one task per tick.
pub async fn concurrent_fires_create_one_task_per_tick(store: Arc<dyn Store>) {
    let row = save(&store, spec("race", 1, CatchUp::All), at(0)).await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        let row = row.clone();
        handles.push(tokio::spawn(async move {
            let mut won = 0;
            for s in 1..=10 {
                if store
                    .schedule_fire(fire(&row, at(s), false, at(s)))
                    .await
                    .unwrap()
                    .is_some()
                {
                    won += 1;
                }
            }
            won
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert_eq!(total, 10);
    assert_eq!(task_count(&store).await, 10);
    assert_eq!(store.schedule_ticks(row.id, 100).await.unwrap().len(), 10);
}
