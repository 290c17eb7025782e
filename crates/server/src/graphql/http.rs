//! The GraphQL endpoints: `POST /tasker/graphql` (queries and mutations)
//! and `GET /tasker/graphql/ws` (subscriptions over `graphql-transport-ws`,
//! also the legacy `graphql-ws`).

use super::events::{events_loader, events_loader_uncached};
use super::loaders::{StepsByTask, steps_loader};
use crate::state::AppState;
use async_graphql::dataloader::{DataLoader, NoCache};
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequest, Request, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use tasker_auth::Identity;

/// An error of the transport (unreadable body), in GraphQL's error shape.
fn transport_error(status: StatusCode, code: &str, message: String) -> Response {
    let mut e = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    (status, Json(json!({ "errors": [e] }))).into_response()
}

fn caller(identity: Option<Extension<Identity>>) -> Identity {
    identity
        .map(|Extension(i)| i)
        .unwrap_or_else(|| crate::auth::identity_of(&Default::default()))
}

/// Runs one GraphQL request (or a batch). Always 200 with `data`/`errors`
/// once the body is JSON; 400 / 413 in the same shape when it is not.
#[utoipa::path(
    post,
    path = "/tasker/graphql",
    tag = "graphql",
    request_body(content = crate::json::JsonValue, description = "`{\"query\": \"...\", \"variables\": {...}, \"operationName\": \"...\", \"extensions\": {\"persistedQuery\": ...}}`, or a JSON array of them (a batch); see docs/GRAPHQL.md and docs/graphql/schema.graphql."),
    responses(
        (status = 200, description = "`{\"data\": ..., \"errors\": [...]}` (a JSON array of those for a batch): GraphQL errors (syntax, validation, limits, permissions, persisted queries) have `extensions.code`.", body = crate::json::JsonValue),
        (status = 400, description = "The body is not a JSON GraphQL request (`errors[0].extensions.code` = `malformed_json`).", body = crate::json::JsonObject),
        (status = 413, description = "Body larger than the limit (`payload_too_large`).", body = crate::json::JsonObject),
    )
)]
pub async fn graphql_post(
    State(st): State<AppState>,
    identity: Option<Extension<Identity>>,
    req: Request,
) -> Response {
    let bytes = match Bytes::from_request(req, &()).await {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return transport_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than the server's limit".into(),
            );
        }
        Err(r) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("cannot read the request body: {r}"),
            );
        }
    };
    let batch: async_graphql::BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not a GraphQL request: {e}"),
            );
        }
    };
    let identity = caller(identity);
    // Each request of a batch gets its own loader (its cache is per request).
    let with_data = |r: async_graphql::Request| {
        r.data(st.clone())
            .data(identity.clone())
            .data(steps_loader(&st))
            .data(events_loader(&st))
    };
    let batch = match batch {
        async_graphql::BatchRequest::Single(r) => async_graphql::BatchRequest::Single(with_data(r)),
        async_graphql::BatchRequest::Batch(v) => {
            async_graphql::BatchRequest::Batch(v.into_iter().map(with_data).collect())
        }
    };
    let res = st.graphql().execute_batch(batch).await;
    Json(res).into_response()
}

/// Opens a subscription connection (WebSocket upgrade).
#[utoipa::path(
    get,
    path = "/tasker/graphql/ws",
    tag = "graphql",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol named in `Sec-WebSocket-Protocol` (`graphql-transport-ws` or `graphql-ws`)."),
        (status = 400, description = "Not a WebSocket upgrade, or no supported subprotocol.", body = crate::error::ErrorBody),
    )
)]
pub async fn graphql_ws(
    State(st): State<AppState>,
    identity: Option<Extension<Identity>>,
    protocol: Result<GraphQLProtocol, StatusCode>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(protocol), Ok(upgrade)) = (protocol, upgrade) else {
        return crate::error::ApiError::bad_request(
            "invalid_upgrade",
            "expected a WebSocket upgrade with Sec-WebSocket-Protocol: graphql-transport-ws (or graphql-ws)",
        )
        .into_response();
    };
    let mut data = Data::default();
    data.insert(st.clone());
    data.insert(caller(identity));
    // A connection lives long: its loader must not cache, or a subscription
    // would resolve `steps` from the first event's read forever.
    data.insert(DataLoader::with_cache(
        StepsByTask { state: st.clone() },
        tokio::spawn,
        NoCache,
    ));
    data.insert(events_loader_uncached(&st));
    let schema = st.graphql().clone();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, schema, protocol)
                .with_data(data)
                .serve()
        })
}
