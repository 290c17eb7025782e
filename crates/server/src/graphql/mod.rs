//! The GraphQL API (async-graphql 7.2): the same application service,
//! rules, views, permissions and error codes as REST, as a second interface.
//!
//! | module | role |
//! |---|---|
//! | `query` | `task`, `tasks` (Relay connection), `step`, `handlers`, `handler`, `health` |
//! | `mutation` | the operator actions, answering payloads with typed `UserError`s |
//! | `flow` | `schedules`, `schedule`, `flowPauses` and their mutations (docs/FLOW_CONTROL.md) |
//! | `subscription` | `taskUpdated`, `stepUpdated`, `tasks`: current state first, then changes |
//! | `types` | tasks, steps (parents, children, siblings), transitions, payloads |
//! | `loaders` | the per-request DataLoader of steps by task (one store call per batch) |
//! | `events` | `Task.events` (the outbox) and its loader of event pages by task |
//! | [`access`] | per-field authorization from `tasker_auth::table::GRAPHQL` |
//! | `errors` | [`UserError`] and the mapping from REST's `ApiError` |
//! | [`persisted`] | Apollo persisted queries (bounded cache) and the registered-only mode |
//! | `http` | `POST /tasker/graphql`, `GET /tasker/graphql/ws` |
//! | [`graphiql`] | `GET /tasker/graphql`: GraphiQL, vendored (no CDN) |
//!
//! Limits ([`GraphqlSettings`]): query depth and complexity, introspection
//! on or off, persisted queries; page sizes are REST's (`max_page_size`), request bodies REST's
//! `body_limit_bytes`. See docs/GRAPHQL.md.

pub mod access;
mod errors;
mod events;
mod flow;
pub mod graphiql;
pub(crate) mod http;
mod loaders;
mod mutation;
pub mod persisted;
mod query;
mod subscription;
mod types;

pub use errors::UserError;
pub use subscription::SubscriptionRoot;

use async_graphql::{MergedObject, Schema};

/// The root of reads: tasks, steps, handlers, health (`query`) and flow
/// control (`flow`).
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(query::CoreQuery, flow::FlowQuery);

/// The root of writes: the operator actions (`mutation`) and flow control
/// (`flow`).
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(mutation::CoreMutation, flow::FlowMutation);

/// The schema type.
pub type TaskerSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Limits of the GraphQL endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlSettings {
    /// Deepest selection nesting accepted (default 15).
    pub max_depth: usize,
    /// Highest query complexity accepted: each field counts 1, a `tasks`
    /// page counts its size times its selection (default 5000).
    pub max_complexity: usize,
    /// Whether `__schema` / `__type` are answered (turn off in production
    /// if the schema should not be discoverable; default on).
    pub introspection: bool,
    /// Which persisted queries are accepted (default automatic).
    pub persisted_queries: persisted::PersistedMode,
    /// Most client-sent documents kept by hash (automatic mode; default 1000).
    pub persisted_cache_size: usize,
    /// The registered operations (Apollo persisted query manifest).
    pub manifest: persisted::Manifest,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        GraphqlSettings {
            max_depth: 15,
            max_complexity: 5000,
            introspection: true,
            persisted_queries: persisted::PersistedMode::Automatic,
            persisted_cache_size: 1000,
            manifest: persisted::Manifest::default(),
        }
    }
}

impl GraphqlSettings {
    /// Every problem with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_depth == 0 {
            out.push("graphql.max_depth: must be at least 1".to_string());
        }
        if self.max_complexity == 0 {
            out.push("graphql.max_complexity: must be at least 1".to_string());
        }
        if self.persisted_cache_size == 0 {
            out.push("server.graphql_persisted_cache_size: must be at least 1".to_string());
        }
        if self.persisted_queries == persisted::PersistedMode::Registered
            && self.manifest.is_empty()
        {
            out.push(
                "server.graphql_persisted_manifest: `registered` persisted queries need a manifest with at least one operation".to_string(),
            );
        }
        out
    }
}

/// Builds the schema with `settings`' limits (request data, such as the
/// state and the caller, is added per request).
pub fn build_schema(settings: &GraphqlSettings) -> TaskerSchema {
    let mut b = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .limit_depth(settings.max_depth)
    .limit_complexity(settings.max_complexity)
    // The parser's own nesting guard (lists, objects, fragments).
    .limit_recursive_depth(64)
    .extension(persisted::PersistedQueries::new(
        settings.persisted_queries,
        settings.persisted_cache_size,
        settings.manifest.clone(),
    ));
    if !settings.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

/// The schema as SDL: what `tasker graphql schema` prints and
/// docs/graphql/schema.graphql holds.
pub fn sdl() -> String {
    build_schema(&GraphqlSettings::default()).sdl()
}
