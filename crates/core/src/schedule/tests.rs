use super::*;
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn spec(cron: Option<&str>, every: Option<u64>) -> ScheduleSpec {
    ScheduleSpec {
        name: "nightly".into(),
        namespace: "default".into(),
        template: "report".into(),
        version: None,
        cron: cron.map(String::from),
        timezone: None,
        every_seconds: every,
        catch_up: CatchUp::Latest,
        catch_up_window_seconds: None,
        context: json!({}),
    }
}

fn rules() -> DueRules {
    DueRules {
        window: Duration::hours(1),
        late_after: Duration::seconds(60),
    }
}

#[test]
fn cron_with_and_without_seconds_and_a_time_zone() {
    let five = spec(Some("*/15 * * * *"), None)
        .compile()
        .expect("5 fields");
    let anchor = at("2030-01-01T00:00:00Z");
    assert_eq!(
        five.ticks_between(anchor, at("2030-01-01T00:46:00Z"), anchor, 10),
        vec![
            at("2030-01-01T00:15:00Z"),
            at("2030-01-01T00:30:00Z"),
            at("2030-01-01T00:45:00Z")
        ]
    );
    let six = spec(Some("*/20 * * * * *"), None)
        .compile()
        .expect("6 fields");
    assert_eq!(
        six.next_after(at("2030-01-01T00:00:05Z"), anchor),
        Some(at("2030-01-01T00:00:20Z"))
    );
    let mut paris = spec(Some("0 9 * * *"), None);
    paris.timezone = Some("Europe/Paris".into());
    let t = paris.compile().expect("tz");
    // 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer.
    assert_eq!(
        t.next_after(at("2030-01-10T00:00:00Z"), anchor),
        Some(at("2030-01-10T08:00:00Z"))
    );
    assert_eq!(
        t.next_after(at("2030-07-10T00:00:00Z"), anchor),
        Some(at("2030-07-10T07:00:00Z"))
    );
}

#[test]
fn intervals_count_from_the_anchor() {
    let t = spec(None, Some(10)).compile().expect("every");
    let anchor = at("2030-01-01T00:00:03Z");
    assert_eq!(
        t.next_after(anchor, anchor),
        Some(at("2030-01-01T00:00:13Z"))
    );
    assert_eq!(
        t.ticks_between(
            at("2030-01-01T00:00:13.5Z"),
            at("2030-01-01T00:00:43Z"),
            anchor,
            10
        ),
        vec![
            at("2030-01-01T00:00:23Z"),
            at("2030-01-01T00:00:33Z"),
            at("2030-01-01T00:00:43Z")
        ]
    );
    assert_eq!(
        t.latest_between(anchor, at("2030-01-01T00:00:42Z"), anchor),
        Some(at("2030-01-01T00:00:33Z"))
    );
    // The anchor itself is not a tick.
    assert_eq!(
        t.latest_between(anchor - Duration::seconds(1), anchor, anchor),
        None
    );
}

#[test]
fn due_ticks_per_catch_up_mode() {
    let t = spec(None, Some(60)).compile().expect("every");
    let anchor = at("2030-01-01T00:00:00Z");
    // Down from 00:00 to 02:00:30: the window is one hour.
    let now = at("2030-01-01T02:00:30Z");
    let settled = Some(at("2030-01-01T00:05:00Z"));
    let none = due_ticks(&t, CatchUp::None, anchor, settled, now, rules());
    assert_eq!(
        none,
        vec![at("2030-01-01T02:00:00Z")],
        "on time (30 s late)"
    );
    let late = due_ticks(
        &t,
        CatchUp::None,
        anchor,
        settled,
        at("2030-01-01T02:01:59Z"),
        rules(),
    );
    assert_eq!(late, vec![at("2030-01-01T02:01:00Z")], "59 s late: fires");
    let hourly = spec(None, Some(3600)).compile().expect("hourly");
    let skipped = due_ticks(
        &hourly,
        CatchUp::None,
        anchor,
        None,
        at("2030-01-01T02:30:00Z"),
        rules(),
    );
    assert!(skipped.is_empty(), "30 min late: skipped");
    let latest = due_ticks(&t, CatchUp::Latest, anchor, settled, now, rules());
    assert_eq!(latest, vec![at("2030-01-01T02:00:00Z")]);
    let all = due_ticks(&t, CatchUp::All, anchor, settled, now, rules());
    assert_eq!(all.len(), 60, "the hour before now: 01:01 to 02:00");
    assert_eq!(all[0], at("2030-01-01T01:01:00Z"));
    // Nothing after what was settled.
    assert!(due_ticks(&t, CatchUp::All, anchor, Some(now), now, rules()).is_empty());
}

#[test]
fn bad_specs_name_their_field() {
    let field = |s: ScheduleSpec| s.compile().err().map(|e| e.field);
    assert_eq!(field(spec(Some("61 * * * *"), None)), Some("cron".into()));
    assert_eq!(field(spec(None, None)), Some("cron".into()));
    assert_eq!(
        field(spec(Some("* * * * *"), Some(5))),
        Some("every_seconds".into())
    );
    assert_eq!(field(spec(None, Some(0))), Some("every_seconds".into()));
    assert_eq!(field(spec(Some("0 0 30 2 *"), None)), Some("cron".into()));
    let mut tz = spec(Some("* * * * *"), None);
    tz.timezone = Some("Mars/Olympus".into());
    assert_eq!(field(tz), Some("timezone".into()));
    let mut ctx = spec(None, Some(5));
    ctx.context = json!({"day": "{{schedule.nope}}"});
    assert_eq!(field(ctx), Some("context".into()));
    let mut name = spec(None, Some(5));
    name.name = "no spaces".into();
    assert_eq!(field(name), Some("name".into()));
}

#[test]
fn contexts_render_the_tick() {
    let ctx = json!({
        "day": "{{schedule.date}}",
        "label": "run of {{ schedule.name }} at {{schedule.scheduled_for}}",
        "manual": "{{schedule.manual}}",
        "n": [1, "{{schedule.name}}"],
    });
    let out = render_context(
        &ctx,
        &TickInfo {
            name: "nightly",
            scheduled_for: at("2030-01-02T03:04:05Z"),
            manual: false,
        },
    );
    assert_eq!(
        out,
        json!({
            "day": "2030-01-02",
            "label": "run of nightly at 2030-01-02T03:04:05Z",
            "manual": false,
            "n": [1, "nightly"],
        })
    );
}
