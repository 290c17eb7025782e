//! A `graphql-transport-ws` client over a real socket, for the tests that
//! subscribe to a real server (in process or the `tasker` binary).

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The client side of the socket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `ws://{addr}/tasker/graphql/ws` asking for `graphql-transport-ws`,
/// checks the server chose it, and completes the handshake
/// (`connection_init` answered by `connection_ack`).
pub async fn connect(addr: &str) -> Ws {
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
    assert_eq!(
        recv(&mut ws, Duration::from_secs(10)).await["type"],
        "connection_ack"
    );
    ws
}

/// The next text message, as JSON; fails the test after `within`.
pub async fn recv(ws: &mut Ws, within: Duration) -> Value {
    loop {
        let m = tokio::time::timeout(within, ws.next())
            .await
            .unwrap_or_else(|_| panic!("a message within {within:?}"))
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Sends one JSON message.
pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}
