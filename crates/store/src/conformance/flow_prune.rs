//! Housekeeping of flow control: old schedule ticks, idle buckets and
//! key counters go; what is still needed stays (docs/FLOW_CONTROL.md,
//! "Housekeeping").

use super::factory::{Shape, new_task};
use super::*;
use crate::flow::{ConcurrencyKey, RateBucket, StepFlow};
use crate::{NewSchedule, ScheduleFire, ScheduleSource};
use serde_json::json;
use tasker_core::schedule::{CatchUp, ScheduleSpec};

fn with_flow(roots: usize, flow: StepFlow, now: DateTime<Utc>) -> crate::NewTask {
    let mut t = new_task(Shape::Roots(roots), now);
    for s in &mut t.steps {
        s.flow = flow.clone();
    }
    t
}

fn keyed(limit: i32) -> StepFlow {
    StepFlow {
        concurrency: Some(ConcurrencyKey {
            key: "prune-key".into(),
            limit,
        }),
        ..StepFlow::default()
    }
}

fn bucket(key: &str) -> StepFlow {
    StepFlow {
        rate: Some(RateBucket {
            key: key.into(),
            per_second: 1.0,
            burst: 1.0,
        }),
        ..StepFlow::default()
    }
}

/// Ticks fired before the cutoff go, except each schedule's newest; a
/// bucket not drawn from since the cutoff goes, a recent one stays; on
/// PostgreSQL an idle key counter goes. Afterwards a key, a bucket and a
/// schedule work exactly as before: a new task of the key obeys its limit,
/// a new bucket starts full, and an old tick still cannot fire again.
pub async fn housekeeping_prunes_ticks_buckets_and_keys(store: Arc<dyn Store>) {
    let row = store
        .schedule_save(
            NewSchedule {
                id: Uuid::now_v7(),
                spec: ScheduleSpec {
                    name: "prune-me".into(),
                    namespace: "test".into(),
                    template: "shape".into(),
                    version: None,
                    cron: None,
                    timezone: None,
                    every_seconds: Some(10),
                    catch_up: CatchUp::All,
                    catch_up_window_seconds: None,
                    context: json!({}),
                },
                source: ScheduleSource::Api,
                now: at(0),
            },
            false,
        )
        .await
        .unwrap();
    for t in [10, 20, 30] {
        let fired = store
            .schedule_fire(ScheduleFire {
                schedule_id: row.id,
                scheduled_for: at(t),
                manual: false,
                task: new_task(Shape::Single, at(t)),
            })
            .await
            .unwrap();
        assert!(fired.is_some());
    }
    // A key and two buckets: one drawn from long ago, one recently.
    store
        .task_create(with_flow(1, keyed(1), at(0)))
        .await
        .unwrap();
    store
        .task_create(with_flow(1, bucket("old-api"), at(0)))
        .await
        .unwrap();
    let got = claim(&store, 10, at(1)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for c in &got {
        succeed(&store, c, at(2)).await;
    }
    let recent = with_flow(1, bucket("new-api"), at(100));
    store.task_create(recent.clone()).await.unwrap();
    // (The ticks' tasks run too.)
    let got = claim(&store, 10, at(100)).await;
    assert!(got.iter().any(|c| c.task_id == recent.id), "{got:?}");

    let n = store.flow_prune(at(50), 100).await.unwrap();
    assert_eq!(n.schedule_ticks, 2, "{n:?}");
    assert_eq!(n.rate_buckets, 1, "{n:?}");
    assert!(n.flow_keys <= 1, "{n:?}");
    let ticks = store.schedule_ticks(row.id, 10).await.unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].scheduled_for, at(30));
    // Nothing left to prune: a second pass deletes nothing.
    assert_eq!(
        store.flow_prune(at(50), 100).await.unwrap(),
        crate::flow::FlowPruned::default()
    );

    // An old tick does not fire again, though its row is gone.
    let again = store
        .schedule_fire(ScheduleFire {
            schedule_id: row.id,
            scheduled_for: at(10),
            manual: false,
            task: new_task(Shape::Single, at(60)),
        })
        .await
        .unwrap();
    assert!(again.is_none());

    // The key still holds its limit; the pruned bucket comes back full
    // (burst 1: one step now, the other waits for its token).
    let k = with_flow(2, keyed(1), at(60));
    store.task_create(k.clone()).await.unwrap();
    let b = with_flow(2, bucket("old-api"), at(60));
    store.task_create(b.clone()).await.unwrap();
    let got = claim(&store, 10, at(61)).await;
    assert_eq!(
        got.iter().filter(|c| c.task_id == k.id).count(),
        1,
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|c| c.task_id == b.id).count(),
        1,
        "{got:?}"
    );
    assert!(claim(&store, 10, at(61)).await.is_empty());
}
