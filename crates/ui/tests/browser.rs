//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, `fantoccini`) against the whole server on a
//! free port, the engine running. If the browser cannot start, the tests
//! fail (they never skip): install `chromium` and `chromium-driver`
//! (`.ci/run` does).
//!
//! Screenshots go to `$CARGO_TARGET_DIR/ui-screenshots/` (or
//! `target/ui-screenshots/`) for a person to look at.
//!
//! Waiting is on the page itself: a `MutationObserver` in the browser
//! resolves when the condition holds (no sleeps, no reloads). The driver,
//! the session and the waiting come from `tasker-test-support` (shared
//! with the GraphiQL browser test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tasker_engine::TaskRequest;
use tasker_test_support::browser::{Driver, js, save_png, save_screenshot, until};
use tasker_test_support::fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_fix_and_filter_tasks_in_a_real_browser() {
    let d = Driver::start();
    let marker = tempfile::tempdir().unwrap();
    let server = Server::start(
        sqlite().await,
        &[
            CHECKOUT.to_string(),
            WAITING.to_string(),
            flaky(&marker.path().join("m")),
            wide(1000),
        ],
        true,
    )
    .await;
    let tasker = server.tasker.clone();
    let c = d.session(1280, 900, &[]).await;

    // A finished task, a failed one, one waiting for an external worker.
    let ok = tasker
        .submit_task(
            TaskRequest::new("shop", "checkout")
                .context(json!({"order_id": 1}))
                .correlation_id("order-1-abc"),
        )
        .await
        .unwrap();
    let failed = tasker
        .submit_task(TaskRequest::new("ops", "flaky").context(json!({
            "note": "<script>window.__pwned=3</script>", "api_token": "hunter2"
        })))
        .await
        .unwrap();
    let waiting = tasker
        .submit_task(TaskRequest::new("ops", "waiting"))
        .await
        .unwrap();
    for id in [ok.id, failed.id] {
        tasker
            .wait_for_task(id, Duration::from_secs(30))
            .await
            .unwrap();
    }

    // The list, with counts per status.
    c.goto(&server.url("/")).await.unwrap();
    c.find(Locator::Css(&format!("tr[data-task='{}']", failed.id)))
        .await
        .unwrap();
    let counts = c
        .find(Locator::Css("a[data-status='error']"))
        .await
        .unwrap();
    assert_eq!(counts.text().await.unwrap(), "error: 1");
    save_screenshot(&c, "list").await;

    // Filters: the status select and the form.
    c.find(Locator::Css("#f-status"))
        .await
        .unwrap()
        .select_by_value("error")
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "location.search.includes('status=error')",
        10,
        "the filtered list",
    )
    .await;
    let rows = c
        .find_all(Locator::Css("table.tasks tbody tr[data-task]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the failed task");
    assert_eq!(
        rows[0].attr("data-task").await.unwrap().as_deref(),
        Some(failed.id.to_string().as_str())
    );

    // Search by correlation id: exactly the task that carries it.
    c.goto(&server.url("/")).await.unwrap();
    c.find(Locator::Css("#f-correlation"))
        .await
        .unwrap()
        .send_keys("order-1-abc")
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "location.search.includes('correlation_id=order-1-abc')",
        10,
        "the search by correlation id",
    )
    .await;
    let rows = c
        .find_all(Locator::Css("table.tasks tbody tr[data-task]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the task with that correlation id");
    assert_eq!(
        rows[0].attr("data-task").await.unwrap().as_deref(),
        Some(ok.id.to_string().as_str())
    );
    save_screenshot(&c, "list-correlation-search").await;
    // A malformed id is refused with the API's code, naming the field.
    c.goto(&server.url("/?correlation_id=a%20b")).await.unwrap();
    let refusal = c
        .find(Locator::Css("p.flash.error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        refusal.contains("invalid_parameter") && refusal.contains("correlation_id"),
        "{refusal}"
    );
    c.goto(&server.url("/?status=error")).await.unwrap();

    // Open the failed task from the list: the red node, the escaped error.
    c.find(Locator::Css(&format!("tr[data-task='{}'] a", failed.id)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('svg.dag g.node[data-step=\"flaky\"]')",
        10,
        "the graph",
    )
    .await;
    let node = c
        .find(Locator::Css("svg.dag g.node[data-step='flaky']"))
        .await
        .unwrap();
    assert_eq!(
        node.attr("data-state").await.unwrap().as_deref(),
        Some("error")
    );
    let fill = js(
        &c,
        "getComputedStyle(document.querySelector('svg.dag g.node[data-step=\"flaky\"] rect')).fill",
    )
    .await;
    assert_eq!(fill, json!("rgb(251, 224, 226)"), "a red node");
    let body = js(&c, "document.body.innerText").await;
    let body = body.as_str().unwrap();
    assert!(
        body.contains("<script>window.__pwned=1</script>"),
        "the error text is shown as text"
    );
    assert!(
        body.contains("<script>window.__pwned=3</script>"),
        "the context too"
    );
    assert!(!body.contains("hunter2"), "the token is masked");
    assert_eq!(
        js(&c, "window.__pwned === undefined").await,
        json!(true),
        "nothing injected ran"
    );
    until(
        &c,
        "document.body.dataset.liveState === 'open'",
        10,
        "the live stream",
    )
    .await;
    save_screenshot(&c, "task-failed").await;

    // Retry: the node turns green without a reload.
    js(&c, "(window.__same_page = 'yes')").await;
    c.find(Locator::Css("#retry-task"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('svg.dag g.node[data-step=\"flaky\"]').dataset.state === 'complete' \
         && document.querySelector('#task-status').dataset.status === 'complete'",
        30,
        "the retried step to turn green",
    )
    .await;
    assert_eq!(
        js(&c, "window.__same_page").await,
        json!("yes"),
        "no reload"
    );
    let fill = js(
        &c,
        "getComputedStyle(document.querySelector('svg.dag g.node[data-step=\"flaky\"] rect')).fill",
    )
    .await;
    assert_eq!(fill, json!("rgb(220, 242, 227)"), "a green node");
    assert!(
        js(&c, "document.querySelector('#flash').innerText")
            .await
            .as_str()
            .unwrap()
            .contains("Task retried")
    );
    assert_eq!(js(&c, "window.__pwned === undefined").await, json!(true));
    save_screenshot(&c, "task-retried").await;

    // Resolve a step with JSON results (step page, results editor).
    let steps = tasker.task_steps(waiting.id).await.unwrap();
    let outside = steps.iter().find(|s| s.name == "outside").unwrap();
    c.goto(&server.url(&format!("/tasks/{}/steps/{}", waiting.id, outside.id)))
        .await
        .unwrap();
    let editor = c.find(Locator::Css("#results-editor")).await.unwrap();
    editor.clear().await.unwrap();
    editor
        .send_keys(r#"{"shipped": true, "parcels": 2}"#)
        .await
        .unwrap();
    js(&c, "(window.__same_page = 'step')").await;
    c.find(Locator::Css("#resolve-step"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('#step-status').dataset.status === 'resolved_manually' \
         && document.querySelector('#results').innerText.includes('\"parcels\": 2')",
        20,
        "the step to be resolved with the results",
    )
    .await;
    assert_eq!(js(&c, "window.__same_page").await, json!("step"));
    save_screenshot(&c, "step-resolved").await;
    let step = tasker.step(outside.id).await.unwrap();
    assert_eq!(step.results.unwrap()["parcels"], 2);

    // Cancel a task (confirming the dialog).
    let other = tasker
        .submit_task(TaskRequest::new("ops", "waiting"))
        .await
        .unwrap();
    c.goto(&server.url(&format!("/tasks/{}", other.id)))
        .await
        .unwrap();
    c.find(Locator::Css("#cancel-task"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
    until(
        &c,
        "document.querySelector('#task-status').dataset.status === 'cancelled'",
        20,
        "the task to be cancelled",
    )
    .await;
    // A stale button is refused with the API's code.
    let refused = c
        .execute_async(
            &format!(
                "const done = arguments[0]; fetch('/tasker/ui/tasks/{}/retry', {{method: 'POST', \
                 headers: {{'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true'}}, \
                 body: '_csrf=' + document.querySelector('meta[name=csrf-token]').content}}) \
                 .then(r => r.text().then(t => done([r.status, t])));",
                other.id
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused[0], json!(409), "{refused}");
    let api = c
        .execute_async(
            &format!(
                "const done = arguments[0]; fetch('/tasker/tasks/{}/retry', {{method: 'POST'}}) \
                 .then(r => r.json().then(j => done([r.status, j.error.code])));",
                other.id
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused[0], api[0], "the API's status");
    let code = api[1].as_str().unwrap();
    assert!(
        refused[1]
            .as_str()
            .unwrap()
            .contains(&format!("data-code=\"{code}\"")),
        "the API's code {code}: {refused}"
    );

    // A 1,000-step task renders, readable: wrapped and collapsed with counts.
    let big = tasker
        .submit_task(TaskRequest::new("bench", "wide"))
        .await
        .unwrap();
    c.goto(&server.url(&format!("/tasks/{}", big.id)))
        .await
        .unwrap();
    let drawn = c.find_all(Locator::Css("svg.dag g.node")).await.unwrap();
    assert!(drawn.len() < 60, "collapsed: {} boxes", drawn.len());
    let more = c
        .find(Locator::Css("svg.dag g.more text.name"))
        .await
        .unwrap();
    assert_eq!(more.text().await.unwrap(), "+963 more");
    // The step table is paged (the picture and the counts cover all).
    let rows = c
        .find_all(Locator::Css("table.steps tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 50, "one page of the step table");
    assert_eq!(
        js(&c, "document.querySelector('#steps-caption').innerText").await,
        json!("Steps 1–50 of 1000")
    );
    assert_eq!(
        js(
            &c,
            "document.querySelector('a[data-step-state=pending]').innerText"
        )
        .await,
        json!("pending: 1000")
    );
    save_screenshot(&c, "task-1000-steps").await;
    // Next page, without a reload; the address follows.
    js(&c, "(window.__same_page = 'big')").await;
    c.find(Locator::Css("#steps-next"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('#steps-caption').innerText === 'Steps 51–100 of 1000' \
         && document.querySelector('table.steps tbody tr').dataset.step === 'm49' \
         && location.search.includes('step_page=2')",
        10,
        "the second page of steps",
    )
    .await;
    assert_eq!(
        js(&c, "window.__same_page").await,
        json!("big"),
        "no reload"
    );
    // A live change keeps the page the operator is on (the root first:
    // a step is resolved after its parents).
    let big_steps = tasker.task_steps(big.id).await.unwrap();
    for name in ["root", "m60"] {
        let s = big_steps.iter().find(|s| s.name == name).unwrap();
        tasker
            .resolve_step(s.id, json!({"by": "hand"}), None)
            .await
            .unwrap();
    }
    until(
        &c,
        "document.querySelector('tr[data-step=m60]').dataset.state === 'resolved_manually'",
        10,
        "the live update of the second page",
    )
    .await;
    assert_eq!(
        js(&c, "document.querySelector('#steps-caption').innerText").await,
        json!("Steps 51–100 of 1000")
    );
    js(&c, "(document.querySelector('.graph').scrollIntoView(), document.querySelector('.graph').scrollTop = 400)").await;
    let graph = c.find(Locator::Css(".graph")).await.unwrap();
    save_png("task-1000-graph", &graph.screenshot().await.unwrap());

    // Phone width: the list and a task still fit.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&server.url(&format!("/tasks/{}", failed.id)))
        .await
        .unwrap();
    save_screenshot(&c, "task-phone").await;
    let overflow = js(
        &c,
        "[document.documentElement.scrollWidth, window.innerWidth, \
          [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 \
             && !e.closest('.scroll, .graph')).slice(0, 5).map(e => e.tagName + '.' + e.className)]",
    )
    .await;
    assert!(
        overflow[0].as_i64().unwrap() <= overflow[1].as_i64().unwrap() + 1,
        "no sideways scrolling of the page at phone width: {overflow}"
    );

    // Handlers and system pages.
    c.set_window_size(1280, 900).await.unwrap();
    c.goto(&server.url("/handlers/shop/checkout"))
        .await
        .unwrap();
    c.find(Locator::Css("svg.dag g.node[data-step='ship']"))
        .await
        .unwrap();
    save_screenshot(&c, "handler").await;
    c.goto(&server.url("/system")).await.unwrap();
    c.find(Locator::Css("#queue-depth")).await.unwrap();
    save_screenshot(&c, "system").await;

    // The flow page: a schedule and a paused template, as the API has them.
    let spec = serde_json::from_value(json!({
        "name": "nightly-checkout", "namespace": "shop", "template": "checkout",
        "cron": "0 30 2 * * *", "timezone": "Europe/Paris", "context": {"order_id": 7}
    }))
    .unwrap();
    tasker.create_schedule(spec).await.unwrap();
    let scope = tasker_store::FlowScope {
        namespace: "ops".into(),
        name: Some("flaky".into()),
    };
    tasker
        .pause_scope(
            &scope,
            Some("on-call"),
            Some("payments API incident <b>#42</b>"),
        )
        .await
        .unwrap();
    c.goto(&server.url("/flow")).await.unwrap();
    let schedule = c.find(Locator::Css("#schedules tbody tr")).await.unwrap();
    let row = schedule.text().await.unwrap();
    assert!(row.contains("nightly-checkout"), "{row}");
    assert!(row.contains("cron 0 30 2 * * * (Europe/Paris)"), "{row}");
    let pause = c.find(Locator::Css("#pauses tbody tr")).await.unwrap();
    let row = pause.text().await.unwrap();
    assert!(
        row.contains("payments API incident <b>#42</b>"),
        "shown as text: {row}"
    );
    assert!(row.contains("on-call"), "{row}");
    save_screenshot(&c, "flow").await;

    c.close().await.unwrap();
    server.stop().await;
}
