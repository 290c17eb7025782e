//! The API's own description: the OpenAPI 3.1 document and Swagger UI.
//!
//! Swagger UI's files are compiled into the binary (`utoipa-swagger-ui` with
//! its `vendored` feature), so `/tasker/docs/` works with no network access,
//! at build time or at run time.

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::openapi;
use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::{Arc, LazyLock};
use utoipa_swagger_ui::Config;

/// Swagger UI's settings: load our document.
static SWAGGER: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new(["/tasker/openapi.json"])));

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/tasker/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = crate::json::JsonObject))
)]
pub async fn openapi_json(
    axum::extract::State(st): axum::extract::State<crate::AppState>,
) -> Response {
    Json(openapi::document_for(st.config())).into_response()
}

/// Redirects to the Swagger UI page.
#[utoipa::path(
    get,
    path = "/tasker/docs",
    tag = "docs",
    responses((status = 303, description = "Redirect to `/tasker/docs/`."))
)]
pub async fn docs_redirect() -> Redirect {
    Redirect::to("/tasker/docs/")
}

/// The Swagger UI page.
#[utoipa::path(
    get,
    path = "/tasker/docs/",
    tag = "docs",
    responses((status = 200, description = "Swagger UI (HTML).", content_type = "text/html"))
)]
pub async fn docs_index() -> Result<Response, ApiError> {
    swagger_file("")
}

/// `{file}` in a path.
#[derive(Debug, Deserialize)]
pub struct FilePath {
    /// File name.
    pub file: String,
}

/// A Swagger UI asset (script, style sheet, icon).
#[utoipa::path(
    get,
    path = "/tasker/docs/{file}",
    tag = "docs",
    params(("file" = String, Path, description = "Asset name, e.g. `swagger-ui.css`")),
    responses(
        (status = 200, description = "The asset."),
        (status = 404, description = "No such asset.", body = ErrorBody),
    )
)]
pub async fn docs_asset(ApiPath(p): ApiPath<FilePath>) -> Result<Response, ApiError> {
    swagger_file(&p.file)
}

fn swagger_file(name: &str) -> Result<Response, ApiError> {
    match utoipa_swagger_ui::serve(name, SWAGGER.clone()) {
        Ok(Some(file)) => {
            let mut res = (
                StatusCode::OK,
                [(CONTENT_TYPE, file.content_type)],
                file.bytes.into_owned(),
            )
                .into_response();
            if file.gzpipped
                && let Ok(v) = "gzip".parse()
            {
                res.headers_mut().insert(CONTENT_ENCODING, v);
            }
            Ok(res)
        }
        Ok(None) => Err(ApiError::not_found(
            "not_found",
            format!("no documentation asset `{name}`"),
        )),
        Err(e) => Err(ApiError::internal(format!(
            "cannot serve swagger asset {name}: {e}"
        ))),
    }
}
