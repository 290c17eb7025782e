//! GraphiQL in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`, Debian's `chromium` + `chromium-driver`) opens
//! `GET /tasker/graphql` on a server listening on a real TCP port, with every
//! host but 127.0.0.1 unresolvable, so the page must render from this
//! server's own assets. It checks that every resource the page loaded came
//! from the server, runs a query through the UI and reads the answer from
//! the result pane, and saves a screenshot to
//! `$CARGO_TARGET_DIR/ui-screenshots/graphiql.png` (or `target/…`).
//!
//! No browser or driver: the test fails, saying what to install. The
//! driver and the session come from `tasker-test-support` (shared with the
//! dashboard's browser tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use serde_json::{Value, json};
use std::time::Duration;
use tasker_test_support::browser::{Driver, save_screenshot, until};
use tasker_test_support::fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_offline_and_runs_a_query_in_chromium() {
    let h = Harness::new(common::sqlite().await).await;
    h.checkout(1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tasker_server::serve(listener, h.state.clone(), async {
        let _ = stopped.await;
    }));

    let driver = Driver::start();
    // Offline: no host but this server's resolves.
    let client = driver
        .session(
            1280,
            800,
            &["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"],
        )
        .await;

    let origin = format!("http://{addr}");
    client
        .goto(&format!("{origin}/tasker/graphql"))
        .await
        .unwrap();
    // GraphiQL rendered: its editor and run button are there.
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".graphiql-execute-button"))
        .await
        .expect("GraphiQL did not render (no run button)");
    until(
        &client,
        "!!document.querySelector('.graphiql-query-editor .CodeMirror')",
        30,
        "the query editor",
    )
    .await;

    // Everything the page loaded came from this server.
    let loaded = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded.iter().any(|u| u.ends_with("/graphiql.min.js")),
        "{loaded:?}"
    );
    for u in &loaded {
        assert!(u.starts_with(&origin), "a resource from elsewhere: {u}");
    }
    let scripts = client
        .execute(
            "return Array.from(document.scripts).map(s => s.getAttribute('src') || '');",
            vec![],
        )
        .await
        .unwrap();
    for s in scripts.as_array().unwrap() {
        let s = s.as_str().unwrap();
        assert!(
            s.is_empty() || s.starts_with("/tasker/graphql/assets/"),
            "{s}"
        );
    }

    // Run a query through the UI.
    client
        .execute(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(arguments[0]);",
            vec![json!("{ health { status backend } tasks { totalCount } }")],
        )
        .await
        .unwrap();
    client
        .find(Locator::Css(".graphiql-execute-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let answer = until(
        &client,
        "(() => { const r = document.querySelector('.graphiql-response .CodeMirror'); \
         const t = r ? r.CodeMirror.getValue() : ''; \
         return t.includes('totalCount') ? t : ''; })()",
        30,
        "the query's answer",
    )
    .await;
    let answer: Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"data": {"health": {"status": "ok", "backend": "sqlite"}, "tasks": {"totalCount": 1}}})
    );

    let path = save_screenshot(&client, "graphiql").await;
    println!("screenshot: {}", path.display());

    client.close().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
