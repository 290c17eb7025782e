//! The dashboard without a browser: pages render, unknown ids are 404
//! pages, buttons need the CSRF token (403 otherwise) and refuse with the
//! API's status and code, markup in data is escaped, context is masked, and
//! with authentication on the login cookie and the permission table apply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use std::time::Duration;
use tasker_engine::TaskRequest;
use tasker_server::auth::AuthSettings;

/// Stores an API key with `permissions`, returning the key to send.
async fn key(tasker: &tasker_engine::Tasker, permissions: &[&str]) -> String {
    let minted = tasker_auth::apikey::mint().unwrap();
    tasker
        .store()
        .api_key_create(tasker_store::NewApiKey {
            id: minted.id,
            name: "test".into(),
            hash: minted.hash,
            permissions: permissions.iter().map(|s| s.to_string()).collect(),
            created_at: tasker.now(),
            expires_at: None,
        })
        .await
        .unwrap();
    minted.key
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A page's CSRF token and the cookie header that goes with it.
async fn session(app: &axum::Router, path: &str) -> (String, String) {
    let a = send(app, Method::GET, path, &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let cookie = cookies_of(&a.headers).join("; ");
    assert!(cookie.starts_with("tasker_ui_csrf="), "{cookie}");
    (csrf_of(&a.body), cookie)
}

#[tokio::test]
async fn pages_render_and_unknown_ids_are_404_pages() {
    let db = sqlite().await;
    let tasker = tasker(&db, &[CHECKOUT.to_string(), WAITING.to_string()]);
    let app = app(state(tasker.clone(), None));
    let task = tasker
        .submit_task(TaskRequest::new("shop", "checkout").context(json!({"order_id": 7})))
        .await
        .unwrap();
    let steps = tasker.task_steps(task.id).await.unwrap();
    for path in [
        "/tasker/ui/".to_string(),
        "/tasker/ui/?status=pending&namespace=shop".to_string(),
        format!("/tasker/ui/tasks/{}", task.id),
        format!("/tasker/ui/tasks/{}/steps/{}", task.id, steps[0].id),
        "/tasker/ui/handlers".to_string(),
        "/tasker/ui/handlers/shop/checkout".to_string(),
        "/tasker/ui/system".to_string(),
        "/tasker/ui/assets/ui.css".to_string(),
        "/tasker/ui/assets/htmx.min.js".to_string(),
    ] {
        let a = send(&app, Method::GET, &path, &[], "").await;
        assert!(
            a.status == StatusCode::OK || (path.ends_with("system") && a.status.is_success()),
            "{path}: {} {}",
            a.status,
            a.body
        );
        let csp = a.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    }
    let page = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", task.id),
        &[],
        "",
    )
    .await;
    assert!(page.body.contains("<svg"), "the task page draws the graph");
    assert!(page.body.contains("data-step=\"ship\""));
    let other = uuid::Uuid::now_v7();
    for path in [
        format!("/tasker/ui/tasks/{other}"),
        "/tasker/ui/tasks/not-a-uuid".to_string(),
        format!("/tasker/ui/tasks/{}/steps/{other}", task.id),
        "/tasker/ui/handlers/shop/nope".to_string(),
        "/tasker/ui/no/such/page".to_string(),
        "/tasker/ui/assets/nope.js".to_string(),
    ] {
        let a = send(&app, Method::GET, &path, &[], "").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
        assert!(
            a.body.contains("<h1>404"),
            "{path}: an HTML page: {}",
            a.body
        );
    }
    // A bad filter gets the API's code for it.
    let a = send(&app, Method::GET, "/tasker/ui/?version=1.x", &[], "").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("invalid_parameter"), "{}", a.body);
}

#[tokio::test]
async fn the_step_table_pages_and_filters_and_the_list_searches_correlation_ids() {
    let db = sqlite().await;
    let tasker = tasker(&db, &[CHECKOUT.to_string(), wide(120)]);
    let app = app(state(tasker.clone(), None));
    let big = tasker
        .submit_task(TaskRequest::new("bench", "wide").correlation_id("batch-7"))
        .await
        .unwrap();
    let get = |path: String| {
        let app = app.clone();
        async move { send(&app, Method::GET, &path, &[], "").await }
    };
    let rows = |body: &str| body.matches("<tr data-step=").count();
    let base = format!("/tasker/ui/tasks/{}", big.id);

    let a = get(base.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(rows(&a.body), 50, "one page of the table");
    assert!(a.body.contains("Steps 1–50 of 120"), "{}", a.body);
    assert!(
        a.body.contains(&format!("{base}?step_page=2")),
        "a next link"
    );
    assert!(
        a.body.contains("data-step=\"join\""),
        "the picture has every level"
    );
    let a = get(format!("{base}?step_page=3")).await;
    assert_eq!(rows(&a.body), 20);
    assert!(a.body.contains("Steps 101–120 of 120"));
    assert!(!a.body.contains("id=\"steps-next\""), "the last page");
    assert!(
        a.body.contains(&format!("hx-get=\"{base}?step_page=3\"")),
        "live refreshes fetch the page the operator is on"
    );
    let a = get(format!("{base}?step_state=pending")).await;
    assert_eq!(rows(&a.body), 50);
    assert!(a.body.contains("pending: 120"));
    let a = get(format!("{base}?step_state=error")).await;
    assert_eq!((a.status, rows(&a.body)), (StatusCode::OK, 0));
    assert!(a.body.contains("No step matches."));
    let a = get(format!("{base}?step_page=9")).await;
    assert!(a.body.contains("past the last"), "{}", a.body);
    for (q, field) in [
        ("step_page=0", "step_page"),
        ("step_page=x", "step_page"),
        ("step_state=bogus", "step_state"),
    ] {
        let a = get(format!("{base}?{q}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.body);
        assert!(
            a.body.contains("invalid_parameter") && a.body.contains(field),
            "{q}: {}",
            a.body
        );
    }

    // The list's correlation-id search.
    let other = tasker
        .submit_task(TaskRequest::new("shop", "checkout").context(json!({"order_id": 1})))
        .await
        .unwrap();
    let a = get("/tasker/ui/?correlation_id=batch-7".into()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(&format!("data-task=\"{}\"", big.id)));
    assert!(!a.body.contains(&format!("data-task=\"{}\"", other.id)));
    assert!(
        a.body.contains("value=\"batch-7\""),
        "the form keeps the search"
    );
    let a = get("/tasker/ui/?correlation_id=batch".into()).await;
    assert!(a.body.contains("No task matches."), "exact, not a prefix");
    let a = get("/tasker/ui/?correlation_id=%3Cb%3E".into()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("correlation_id"), "{}", a.body);
    assert!(!a.body.contains("<b>"), "escaped");
}

#[tokio::test]
async fn buttons_need_the_csrf_token_and_refuse_like_the_api() {
    let db = sqlite().await;
    let tasker = tasker(&db, &[WAITING.to_string()]);
    let app = app(state(tasker.clone(), None));
    let task = tasker
        .submit_task(TaskRequest::new("ops", "waiting"))
        .await
        .unwrap();
    let page = format!("/tasker/ui/tasks/{}", task.id);
    let (token, cookie) = session(&app, &page).await;
    let retry = format!("{page}/retry");
    // Missing, forged, or without the cookie: 403 csrf_failed, nothing done.
    for (cookie, body) in [
        (cookie.as_str(), String::new()),
        (cookie.as_str(), format!("_csrf={}", "0".repeat(64))),
        ("", format!("_csrf={token}")),
    ] {
        let a = send(
            &app,
            Method::POST,
            &retry,
            &[FORM, ("cookie", cookie), ("hx-request", "true")],
            &body,
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        assert!(a.body.contains("csrf_failed"), "{}", a.body);
    }
    // With the token: the API's answer to retrying a pending task.
    let ui = send(
        &app,
        Method::POST,
        &retry,
        &[FORM, ("cookie", &cookie), ("hx-request", "true")],
        &format!("_csrf={token}"),
    )
    .await;
    let api = send(
        &app,
        Method::POST,
        &format!("/tasker/tasks/{}/retry", task.id),
        &[],
        "",
    )
    .await;
    assert_eq!(ui.status, api.status);
    let code = serde_json::from_str::<serde_json::Value>(&api.body).unwrap()["error"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ui.body.contains(&format!("data-code=\"{code}\"")),
        "{code}: {}",
        ui.body
    );
    // A malformed results editor: the API's malformed_json.
    let steps = tasker.task_steps(task.id).await.unwrap();
    let resolve = format!("{page}/steps/{}/resolve", steps[0].id);
    let a = send(
        &app,
        Method::POST,
        &resolve,
        &[FORM, ("cookie", &cookie), ("hx-request", "true")],
        &format!("_csrf={token}&results=%7Bnope"),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("malformed_json"), "{}", a.body);
    // Resolve with results, then cancel: both through the service.
    let a = send(
        &app,
        Method::POST,
        &resolve,
        &[FORM, ("cookie", &cookie), ("hx-request", "true")],
        &format!("_csrf={token}&results=%7B%22by_hand%22%3A42%7D"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["hx-trigger"], "tasker:changed");
    let step = tasker.step(steps[0].id).await.unwrap();
    assert_eq!(step.status.as_str(), "resolved_manually");
    assert_eq!(step.results.unwrap()["by_hand"], 42);
    // Without htmx: a redirect back to the page.
    let a = send(
        &app,
        Method::POST,
        &format!("{page}/cancel"),
        &[FORM, ("cookie", &cookie)],
        &format!("_csrf={token}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.headers["location"], page.as_str());
    let t = tasker.task_status(task.id).await.unwrap();
    assert_eq!(t.task.status.as_str(), "cancelled");
}

#[tokio::test]
async fn markup_in_data_is_escaped_and_context_masked() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite().await;
    let tasker = tasker(&db, &[flaky(&dir.path().join("marker"))]);
    let worker = tasker.start();
    let app = app(state(tasker.clone(), None));
    let task = tasker
        .submit_task(TaskRequest::new("ops", "flaky").context(json!({
            "note": "<script>window.__pwned=3</script>",
            "api_token": "hunter2-secret",
        })))
        .await
        .unwrap();
    let done = tasker
        .wait_for_task(task.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status.as_str(), "error");
    let steps = tasker.task_steps(task.id).await.unwrap();
    let flaky = steps.iter().find(|s| s.name == "flaky").unwrap();
    for path in [
        format!("/tasker/ui/tasks/{}", task.id),
        format!("/tasker/ui/tasks/{}/steps/{}", task.id, flaky.id),
    ] {
        let a = send(&app, Method::GET, &path, &[], "").await;
        assert_eq!(a.status, StatusCode::OK);
        // The only scripts are ours.
        assert_eq!(a.body.matches("<script").count(), 2, "{path}");
        assert!(!a.body.contains("<img src=x"), "{path}");
        assert!(
            a.body.contains("script&#62;window.__pwned=1"),
            "{path}: the error is shown, escaped"
        );
        assert!(!a.body.contains("hunter2"), "{path}: the token is masked");
    }
    let page = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", task.id),
        &[],
        "",
    )
    .await;
    assert!(page.body.contains("script&#62;window.__pwned=3"));
    assert!(page.body.contains("[FILTERED]"));
    assert!(page.body.contains("data-state=\"error\""), "the red node");
    worker.shutdown().await;
}

#[tokio::test]
async fn with_authentication_the_cookie_and_the_permission_table_apply() {
    let db = sqlite().await;
    let tasker = tasker(&db, &[CHECKOUT.to_string(), WAITING.to_string()]);
    let settings = AuthSettings {
        api_keys: true,
        ..AuthSettings::none()
    };
    let app = app(state(tasker.clone(), Some(settings)));
    let viewer_key = key(
        &tasker,
        &[
            "tasker.task:show",
            "tasker.task:index",
            "tasker.workflow_step:index",
        ],
    )
    .await;
    let ops_key = key(&tasker, &["*@ops"]).await;
    let shop = tasker
        .submit_task(TaskRequest::new("shop", "checkout").context(json!({"order_id": 1})))
        .await
        .unwrap();
    let ops = tasker
        .submit_task(TaskRequest::new("ops", "waiting"))
        .await
        .unwrap();
    // No cookie: to the login form, coming back afterwards.
    let a = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", shop.id),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(
        a.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/tasker/ui/login?next=")
    );
    // Log in: a bad key is refused, a good one lands in an HttpOnly strict cookie.
    let (token, csrf_cookie) = session(&app, "/tasker/ui/login").await;
    let bad = send(
        &app,
        Method::POST,
        "/tasker/ui/login",
        &[FORM, ("cookie", &csrf_cookie)],
        &format!("_csrf={token}&credential=tk_nope&next=/tasker/ui/"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{}", bad.body);
    let no_csrf = send(
        &app,
        Method::POST,
        "/tasker/ui/login",
        &[FORM, ("cookie", &csrf_cookie)],
        &format!("credential={viewer_key}"),
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let login = |key: String| {
        let app = app.clone();
        let (token, csrf_cookie) = (token.clone(), csrf_cookie.clone());
        async move {
            let a = send(
                &app,
                Method::POST,
                "/tasker/ui/login",
                &[FORM, ("cookie", &csrf_cookie)],
                &format!("_csrf={token}&credential={key}&next=/tasker/ui/"),
            )
            .await;
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
            let raw: Vec<String> = a
                .headers
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(
                raw.iter().any(|c| c.starts_with("tasker_ui_auth=")
                    && c.contains("HttpOnly")
                    && c.contains("SameSite=Strict")),
                "{raw:?}"
            );
            cookies_of(&a.headers).join("; ")
        }
    };
    let viewer = login(viewer_key.clone()).await;
    let a = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", shop.id),
        &[("cookie", &viewer)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        !a.body.contains("id=\"cancel-task\""),
        "no button without the permission"
    );
    // The button is refused as the API refuses: 403 naming the permission.
    let token = csrf_of(&a.body);
    let ui = send(
        &app,
        Method::POST,
        &format!("/tasker/ui/tasks/{}/cancel", shop.id),
        &[FORM, ("cookie", &viewer), ("hx-request", "true")],
        &format!("_csrf={token}"),
    )
    .await;
    let api = send(
        &app,
        Method::DELETE,
        &format!("/tasker/tasks/{}", shop.id),
        &[("x-api-key", &viewer_key)],
        "",
    )
    .await;
    assert_eq!(
        (ui.status, api.status),
        (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN)
    );
    assert!(ui.body.contains("tasker.task:cancel"), "{}", ui.body);
    // Handlers and system need their own permissions.
    let a = send(
        &app,
        Method::GET,
        "/tasker/ui/handlers",
        &[("cookie", &viewer)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // A namespace-scoped key sees its namespace only.
    let opsc = login(ops_key.clone()).await;
    let a = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", ops.id),
        &[("cookie", &opsc)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", shop.id),
        &[("cookie", &opsc)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("@shop"), "{}", a.body);
    let a = send(
        &app,
        Method::GET,
        &format!("/tasker/ui/tasks/{}", uuid::Uuid::now_v7()),
        &[("cookie", &opsc)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = send(
        &app,
        Method::GET,
        "/tasker/ui/?namespace=ops",
        &[("cookie", &opsc)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(&app, Method::GET, "/tasker/ui/", &[("cookie", &opsc)], "").await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "the list of every namespace needs a global grant"
    );
    // A forged cookie is a login, not a page.
    let a = send(
        &app,
        Method::GET,
        "/tasker/ui/",
        &[("cookie", "tasker_ui_auth=tk_forged")],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    // The live stream needs `tasker.event:index`, as the API's stream.
    let a = send(
        &app,
        Method::GET,
        "/tasker/ui/live?after=0",
        &[("cookie", &viewer)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_flow_page_shows_schedules_and_pauses_as_the_api_lists_them() {
    let db = sqlite().await;
    let tasker = tasker(&db, &[CHECKOUT.to_string()]);
    let app = app(state(tasker.clone(), None));
    let empty = send(&app, Method::GET, "/tasker/ui/flow", &[], "").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert!(empty.body.contains("id=\"no-pauses\""), "{}", empty.body);
    assert!(empty.body.contains("id=\"no-schedules\""), "{}", empty.body);

    let json_ct = ("content-type", "application/json");
    let s = send(
        &app,
        Method::POST,
        "/tasker/schedules",
        &[json_ct],
        &json!({"name": "nightly", "namespace": "shop", "template": "checkout",
                "cron": "0 0 3 * * *", "timezone": "Europe/Paris",
                "context": {"order_id": 1}})
        .to_string(),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    let p = send(
        &app,
        Method::POST,
        "/tasker/flow/pauses",
        &[json_ct],
        &json!({"namespace": "shop", "reason": "<script>window.__pwned=1</script>"}).to_string(),
    )
    .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);

    let page = send(&app, Method::GET, "/tasker/ui/flow", &[], "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("id=\"schedules\""), "{body}");
    assert!(body.contains("nightly"), "{body}");
    assert!(body.contains("cron 0 0 3 * * * (Europe/Paris)"), "{body}");
    assert!(body.contains("id=\"pauses\""), "{body}");
    assert!(
        body.contains("&#60;script&#62;window.__pwned")
            || body.contains("&lt;script&gt;window.__pwned"),
        "the reason is escaped: {body}"
    );
    assert!(!body.contains("<script>window.__pwned"), "{body}");
    // The fire times the page shows are the API's.
    let api = send(&app, Method::GET, "/tasker/schedules", &[], "").await;
    let api: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    let first = api["schedules"][0]["next_fire_times"][0].as_str().unwrap();
    let first = chrono::DateTime::parse_from_rfc3339(first)
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert!(body.contains(&tasker_ui_time(first)), "{body}");

    // Paused schedule: no next fire times.
    let r = send(
        &app,
        Method::POST,
        "/tasker/schedules/nightly/pause",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = send(&app, Method::GET, "/tasker/ui/flow", &[], "").await;
    assert!(page.body.contains("st-pending\">paused"), "{}", page.body);
}

/// How the dashboard prints a time (`tasker_ui::format::time`).
fn tasker_ui_time(t: chrono::DateTime<chrono::Utc>) -> String {
    tasker_ui::format::time(t)
}
