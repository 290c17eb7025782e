//! # tasker-auth
//!
//! Who may call Tasker, and what they may do. Pure code (no I/O): the server
//! reads keys and JWKS documents and hands them in.
//!
//! | module | role |
//! |---|---|
//! | [`permission`] | `resource:action` permissions, wildcards, `@namespace` scopes |
//! | [`table`] | the one route → permission table |
//! | [`jwt`] | verifying a bearer JWT into an [`Identity`] |
//! | [`apikey`] | API keys: minting, hashing, constant-time checking |

pub mod apikey;
pub mod jwt;
pub mod permission;
pub mod table;

pub use permission::{Grant, GrantError, Grants};

/// Who made a request, and what they may do. Built per request, never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The JWT subject (`sub`), or `key:<id>` for an API key; `anonymous` with `auth.mode = none`.
    pub subject: String,
    /// What the caller may do.
    pub grants: Grants,
}

impl Identity {
    /// The caller of a server with authentication off: may do everything.
    pub fn anonymous() -> Self {
        Identity {
            subject: "anonymous".into(),
            grants: Grants::all(),
        }
    }
}
