//! Subscriptions over a real WebSocket (`graphql-transport-ws`) on a real
//! socket: connection init, the current state first, a change made through
//! REST, and the upgrade refused without credentials when authentication is on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_graphql::futures_util::{SinkExt, StreamExt};
use common::Harness;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
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
    let mut req = format!("ws://{addr}/tasker/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "graphql-transport-ws"
    );
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(recv(&mut ws).await["type"], "connection_ack");
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
