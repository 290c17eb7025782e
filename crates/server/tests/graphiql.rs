//! GraphiQL at `GET /tasker/graphql`: an HTML page whose every resource is
//! served by this server (no CDN), and whose vendored assets fetch nothing
//! from other hosts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::Harness;
use std::collections::BTreeSet;

/// Every `http://` / `https://` URL in `text`, up to its first delimiter.
fn absolute_urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for scheme in ["http://", "https://"] {
        let mut rest = text;
        while let Some(i) = rest.find(scheme) {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| c.is_whitespace() || "\"'`)<>,;\\".contains(c))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_string());
            rest = &tail[scheme.len()..];
        }
    }
    out
}

fn host(url: &str) -> &str {
    let after = url.split_once("://").map_or("", |(_, r)| r);
    after.split(['/', '?', '#', '>']).next().unwrap_or("")
}

#[tokio::test]
async fn graphiql_is_served_offline() {
    let h = Harness::new(common::sqlite().await).await;
    let page = h.get("/tasker/graphql").await;
    assert_eq!(page.status, StatusCode::OK);
    let ct = page.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(page.text.contains("id=\"graphiql\""));
    // The page itself names no absolute URL at all.
    assert_eq!(absolute_urls(&page.text), Vec::<String>::new());

    // Every script and stylesheet it loads is one of our assets, and loads.
    let mut loaded = BTreeSet::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.text.split(attr).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(url.starts_with("/tasker/graphql/assets/"), "{url}");
            loaded.insert(url.to_string());
        }
    }
    let expected: BTreeSet<String> = tasker_server::graphql::graphiql::asset_names()
        .map(|n| format!("/tasker/graphql/assets/{n}"))
        .collect();
    assert_eq!(
        loaded, expected,
        "the page loads exactly the vendored assets"
    );

    // The assets name other hosts only in inert text: XML namespaces
    // (`createElementNS`), licence comments and links shown to users.
    // None is a CDN or anything the browser would fetch at load time.
    let inert: BTreeSet<&str> = [
        "www.w3.org",
        "github.com",
        "reactjs.org",
        "commonmark.org",
        "codemirror.net",
        "en.wikipedia.org",
        "",
    ]
    .into_iter()
    .collect();
    for url in &loaded {
        let r = h.get(url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        let ct = r.headers["content-type"].to_str().unwrap();
        assert!(
            ct.starts_with("text/javascript") || ct.starts_with("text/css"),
            "{url}: {ct}"
        );
        let urls = absolute_urls(&r.text);
        if url.ends_with(".css") || url.ends_with("init.js") {
            assert_eq!(urls, Vec::<String>::new(), "{url}");
        }
        for u in urls {
            assert!(inert.contains(host(&u)), "{url} names {u}");
        }
        // Also protocol-relative (`//unpkg.com/...`) references to CDNs.
        for cdn in [
            "unpkg.com/",
            "cdn.jsdelivr.net",
            "cdnjs.cloudflare.com",
            "fonts.googleapis.com",
            "fonts.gstatic.com",
        ] {
            assert!(!r.text.contains(cdn), "{url} mentions {cdn}");
        }
    }
    h.get("/tasker/graphql/assets/nope.js")
        .await
        .assert_error(404, "not_found");
    // POST on the same path is still the endpoint.
    let r = h
        .post(
            "/tasker/graphql",
            serde_json::json!({"query": "{ __typename }"}),
        )
        .await;
    assert_eq!(r.json["data"]["__typename"], "Query", "{}", r.text);
}
