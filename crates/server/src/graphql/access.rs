//! Authorization of GraphQL operations and fields, from the same permission
//! table as REST (`tasker_auth::table::GRAPHQL`, next to `ROUTES`).
//!
//! The endpoint itself only needs a caller (`Access::Authenticated`); each
//! root field (and `Task.steps`) then asks [`require`] with the namespace of
//! what it touches, so a namespace-scoped grant opens exactly what it opens
//! over REST.

use crate::error::ApiError;
use async_graphql::Context;
use tasker_auth::Identity;

/// The caller of this request (everything is allowed when authentication is
/// off: the middleware then sets [`Identity::anonymous`]).
pub(crate) fn identity<'a>(ctx: &'a Context<'_>) -> Option<&'a Identity> {
    ctx.data_opt::<Identity>()
}

/// Checks that the caller may use `field` (`Type.field`) on `namespace`.
/// A field without a row in the table is refused: closed, never open.
pub(crate) fn require(
    ctx: &Context<'_>,
    field: &str,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let Some(permission) = tasker_auth::table::graphql_permission(field) else {
        return Err(crate::auth::forbidden(
            "(a GraphQL field missing from the permission table)",
            None,
        ));
    };
    let Some(id) = identity(ctx) else {
        return Err(crate::auth::forbidden(permission, namespace));
    };
    if id.grants.allows(permission, namespace) {
        Ok(())
    } else {
        Err(crate::auth::forbidden(permission, namespace))
    }
}

/// Who asks, for the record (`by` on transitions, a task's default initiator).
pub(crate) fn actor(ctx: &Context<'_>) -> Option<String> {
    let st = ctx.data_opt::<crate::state::AppState>()?;
    crate::auth::actor(st, identity(ctx))
}
