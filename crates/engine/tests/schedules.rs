//! Schedules through the service under a manual clock (docs/FLOW_CONTROL.md):
//! the scheduler's pass fires due ticks once with their rendered context,
//! catches up after a "restart" per mode, leaves paused schedules alone,
//! triggers by hand, and refuses bad requests with the field named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;
use tasker_core::schedule::{CatchUp, ScheduleSpec};
use tasker_engine::clock::ManualClock;
use tasker_engine::error::EngineError;
use tasker_store::TaskQuery;

const REPORT: &str = "\
name: report
namespace: ops
context_schema:
  type: object
  required: [day]
step_templates:
  - name: build
    handler: { kind: noop }
schedules:
  - name: from-file
    cron: \"0 */10 * * * *\"
    catch_up: none
    context: { day: \"{{schedule.date}}\" }
";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().unwrap()
}

fn spec(name: &str, every: u64, catch_up: CatchUp) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        namespace: "ops".into(),
        template: "report".into(),
        version: None,
        cron: None,
        timezone: None,
        every_seconds: Some(every),
        catch_up,
        catch_up_window_seconds: None,
        context: json!({"day": "{{schedule.date}}", "at": "{{schedule.scheduled_for}}"}),
    }
}

async fn tasks(tasker: &tasker_engine::Tasker) -> Vec<tasker_store::TaskRow> {
    tasker
        .store()
        .task_list(&TaskQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn the_pass_fires_due_ticks_once_and_catches_up_per_mode() {
    let (store, _dir) = common::sqlite().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let tasker = common::builder(store)
        .template(common::template(REPORT))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(tasker.sync_template_schedules().await.unwrap(), 1);
    let from_file = tasker.get_schedule("from-file").await.unwrap();
    assert_eq!(
        from_file.next_fire_times[..2],
        [t0() + Duration::minutes(10), t0() + Duration::minutes(20)]
    );
    for (name, every, mode) in [
        ("all", 60, CatchUp::All),
        ("latest", 60, CatchUp::Latest),
        ("none", 300, CatchUp::None),
    ] {
        tasker
            .create_schedule(spec(name, every, mode))
            .await
            .unwrap();
    }

    // On time: the first tick of the two minute schedules, once.
    clock.advance(Duration::seconds(61));
    let pass = tasker.run_schedules().await.unwrap();
    assert_eq!(pass.fired, 2);
    assert_eq!(pass.next_due, Some(t0() + Duration::seconds(120)));
    assert_eq!(
        tasker.run_schedules().await.unwrap().fired,
        0,
        "fired already"
    );
    let first = tasks(&tasker).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|t| t.context
        == json!({"day": "2030-01-01", "at": "2030-01-01T00:01:00Z"})
        && t.initiator.starts_with("schedule:")));

    // Down 10 minutes (the default window is an hour): `all` fires the 10
    // missed ticks, `latest` the newest, the `none` ones nothing (their
    // 00:10 ticks are 61 s late, `late_after` is 60 s).
    clock.advance(Duration::minutes(10));
    let pass = tasker.run_schedules().await.unwrap();
    assert_eq!(pass.fired, 10 + 1);
    let ticks = |name: &'static str| {
        let tasker = tasker.clone();
        async move { tasker.schedule_ticks(name, 100).await.unwrap() }
    };
    assert_eq!(ticks("all").await.len(), 11);
    assert_eq!(ticks("latest").await.len(), 2);
    assert_eq!(ticks("none").await.len(), 0);
    assert_eq!(ticks("from-file").await.len(), 0);
    assert_eq!(
        ticks("latest").await[0].scheduled_for,
        t0() + Duration::seconds(660)
    );

    // Paused: nothing fires; resumed: from now on, the pause's ticks skipped.
    tasker.pause_schedule("all").await.unwrap();
    assert!(
        tasker
            .get_schedule("all")
            .await
            .unwrap()
            .next_fire_times
            .is_empty()
    );
    clock.advance(Duration::minutes(5));
    tasker.run_schedules().await.unwrap();
    assert_eq!(ticks("all").await.len(), 11);
    let triggered = tasker.trigger_schedule("all").await.unwrap();
    assert_eq!(triggered.context["at"], json!("2030-01-01T00:16:01Z"));
    assert_eq!(ticks("all").await.len(), 12, "a manual tick while paused");
    tasker.resume_schedule("all").await.unwrap();
    clock.advance(Duration::seconds(60));
    tasker.run_schedules().await.unwrap();
    let all = ticks("all").await;
    assert_eq!(
        all.len(),
        13,
        "one tick after the resume, none of the pause"
    );
    assert_eq!(all[0].scheduled_for, t0() + Duration::seconds(1020));
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field() {
    let (store, _dir) = common::sqlite().await;
    let tasker = common::builder(store)
        .template(common::template(REPORT))
        .build()
        .unwrap();
    let field = |e: EngineError| (e.code(), e.field());
    let mut bad = spec("x", 60, CatchUp::All);
    bad.cron = Some("not cron".into());
    let e = tasker.create_schedule(bad).await.unwrap_err();
    assert_eq!(field(e), ("invalid_field", Some("every_seconds".into())));
    let mut bad = spec("x", 60, CatchUp::All);
    bad.template = "nope".into();
    let e = tasker.create_schedule(bad).await.unwrap_err();
    assert_eq!(field(e), ("invalid_field", Some("template".into())));
    let mut bad = spec("x", 60, CatchUp::All);
    bad.context = json!({"no_day": 1});
    let e = tasker.create_schedule(bad).await.unwrap_err();
    assert_eq!(e.code(), "context_schema_violation");
    tasker
        .create_schedule(spec("x", 60, CatchUp::All))
        .await
        .unwrap();
    let e = tasker
        .create_schedule(spec("x", 60, CatchUp::All))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "conflict");
    let e = tasker.pause_schedule("missing").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
}
