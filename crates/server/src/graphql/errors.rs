//! Errors of the GraphQL interface, from the same [`ApiError`]s as REST, so
//! both report the same `code` for the same request.
//!
//! - Mutations answer [`UserError`]s in their payload (`errors`) for anything
//!   the caller can fix (validation, not found, conflicts, permissions).
//! - Queries answer top-level GraphQL errors with `extensions.code`
//!   (and `extensions.field` when an input is to blame).
//! - Internal failures never leak: the message is opaque, the cause is logged.

use crate::error::{ApiError, ErrorKind};
use async_graphql::{ErrorExtensions, SimpleObject};

/// A problem the caller can fix, as mutations report it.
#[derive(Debug, Clone, SimpleObject)]
pub struct UserError {
    /// Stable machine code: the same as REST's `error.code` for the same request.
    pub code: String,
    /// What happened and, where possible, how to fix it.
    pub message: String,
    /// The input at fault (`reason`, `tags[2]`, `retryLimit` …), when one is.
    pub field: Option<String>,
}

/// Whether the error is the server's own (a bug, the database).
pub(crate) fn is_internal(e: &ApiError) -> bool {
    matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable)
}

/// Logs an internal error's cause; returns the opaque GraphQL error.
fn internal(e: &ApiError) -> async_graphql::Error {
    tracing::error!(error = %e, "graphql: internal error");
    async_graphql::Error::new(e.message().to_string()).extend_with(|_, ext| {
        ext.set("code", e.code());
    })
}

/// A top-level GraphQL error for `e` (`extensions.code`, `extensions.field`).
pub(crate) fn to_graphql(e: ApiError) -> async_graphql::Error {
    if is_internal(&e) {
        return internal(&e);
    }
    let field = e.field_name();
    async_graphql::Error::new(e.message().to_string()).extend_with(|_, ext| {
        ext.set("code", e.code());
        if let Some(f) = &field {
            ext.set("field", f.as_str());
        }
    })
}

/// A [`UserError`] for `e`, or the opaque top-level error when it is internal.
pub(crate) fn to_user(e: ApiError) -> Result<UserError, async_graphql::Error> {
    if is_internal(&e) {
        return Err(internal(&e));
    }
    Ok(UserError {
        code: e.code().to_string(),
        message: e.message().to_string(),
        field: e.field_name(),
    })
}

/// `?` for resolvers: anything that converts to an [`ApiError`].
pub(crate) trait GqlResult<T> {
    /// As a top-level GraphQL error.
    fn gql(self) -> Result<T, async_graphql::Error>;
}

impl<T, E: Into<ApiError>> GqlResult<T> for Result<T, E> {
    fn gql(self) -> Result<T, async_graphql::Error> {
        self.map_err(|e| to_graphql(e.into()))
    }
}
