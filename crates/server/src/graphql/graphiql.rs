//! GraphiQL at `GET /tasker/graphql`, served from files compiled into the
//! binary (crates/server/assets/graphiql/: GraphiQL 3.9.0 and React 18.3.1,
//! MIT, unmodified), so it works with no network access: the page loads
//! only its own assets, from this server.

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The page.
const INDEX: &str = include_str!("../../assets/graphiql/index.html");

/// The page's assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/init.js"),
    ),
];

/// The names of the assets the page may load (for tests and docs).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(n, _, _)| *n)
}

/// The GraphiQL page (queries and mutations against `POST /tasker/graphql`).
#[utoipa::path(
    get,
    path = "/tasker/graphql",
    tag = "graphql",
    responses((status = 200, description = "GraphiQL (HTML), with no external resources.", content_type = "text/html"))
)]
pub async fn graphiql_page() -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX,
    )
        .into_response()
}

/// `{file}` in a path.
#[derive(Debug, Deserialize)]
pub struct AssetPath {
    /// File name.
    pub file: String,
}

/// A file of the GraphiQL page.
#[utoipa::path(
    get,
    path = "/tasker/graphql/assets/{file}",
    tag = "graphql",
    params(("file" = String, Path, description = "Asset file name")),
    responses(
        (status = 200, description = "The file (JavaScript or CSS)."),
        (status = 404, description = "No such asset.", body = ErrorBody),
    )
)]
pub async fn graphiql_asset(ApiPath(p): ApiPath<AssetPath>) -> Result<Response, ApiError> {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == p.file) else {
        return Err(ApiError::not_found(
            "not_found",
            format!("no GraphiQL asset `{}`", p.file),
        ));
    };
    // The files change only with the binary: a day in caches is safe.
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, *content_type),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        *bytes,
    )
        .into_response())
}
