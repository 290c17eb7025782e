//! Persisted queries, Apollo style (`extensions.persistedQuery`, version 1,
//! `sha256Hash` of the query text), and the safelist mode of production.
//!
//! - `automatic` (default): a client sends the hash alone; on a miss
//!   (`PersistedQueryNotFound`) it sends the hash with the query, which is
//!   checked against the hash, parsed, and kept in a bounded cache, so
//!   the next request with the hash alone needs no query text and no parse.
//!   Requests without the extension run as usual.
//! - `registered`: only the operations of the manifest
//!   (`server.graphql_persisted_manifest`, Apollo's persisted query manifest
//!   format) run, sent by hash or as text whose hash is in the manifest;
//!   anything else is refused before it is parsed or run.
//! - `off`: the extension is refused (`PERSISTED_QUERY_NOT_SUPPORTED`).
//!
//! Errors are GraphQL errors (HTTP 200, `data: null`) with
//! `extensions.code`: Apollo's `PERSISTED_QUERY_NOT_FOUND` (message
//! `PersistedQueryNotFound`, what Apollo clients look for) and
//! `PERSISTED_QUERY_NOT_SUPPORTED`, and `persisted_query_hash_mismatch`,
//! `persisted_query_not_allowed`, `invalid_persisted_query`.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Which persisted queries the endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersistedMode {
    /// Automatic persisted queries; any query runs.
    #[default]
    Automatic,
    /// Only the manifest's operations run.
    Registered,
    /// No persisted queries; any query runs.
    Off,
}

impl PersistedMode {
    /// The mode a configuration value names (`automatic`, `registered`, `off`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "automatic" => Some(PersistedMode::Automatic),
            "registered" => Some(PersistedMode::Registered),
            "off" => Some(PersistedMode::Off),
            _ => None,
        }
    }
}

/// The operations of a persisted query manifest, by hash.
#[derive(Clone, Default)]
pub struct Manifest {
    docs: HashMap<String, Arc<ExecutableDocument>>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("operations", &self.docs.len())
            .finish()
    }
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        let mut a: Vec<&String> = self.docs.keys().collect();
        let mut b: Vec<&String> = other.docs.keys().collect();
        a.sort();
        b.sort();
        a == b
    }
}

impl Eq for Manifest {}

#[derive(Deserialize)]
struct ManifestFile {
    format: String,
    version: u32,
    operations: Vec<ManifestOperation>,
}

#[derive(Deserialize)]
struct ManifestOperation {
    id: String,
    body: String,
}

/// The SHA-256 of a query text, lower-case hex (what clients send).
pub fn query_hash(query: &str) -> String {
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

impl Manifest {
    /// Reads an Apollo persisted query manifest (`{"format":
    /// "apollo-persisted-query-manifest", "version": 1, "operations": [{"id",
    /// "body", …}]}`): each `id` must be the SHA-256 of its `body`, and each
    /// body a GraphQL document. The error names the operation at fault.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: ManifestFile = serde_json::from_str(text)
            .map_err(|e| format!("not a persisted query manifest: {e}"))?;
        if file.format != "apollo-persisted-query-manifest" || file.version != 1 {
            return Err(format!(
                "format `{}` version {}: expected `apollo-persisted-query-manifest` version 1",
                file.format, file.version
            ));
        }
        let mut docs = HashMap::new();
        for (i, op) in file.operations.into_iter().enumerate() {
            let hash = query_hash(&op.body);
            if op.id != hash {
                return Err(format!(
                    "operations[{i}]: id `{}` is not the SHA-256 of its body (`{hash}`)",
                    op.id
                ));
            }
            let doc = async_graphql::parser::parse_query(&op.body)
                .map_err(|e| format!("operations[{i}] ({}): {e}", op.id))?;
            docs.insert(hash, Arc::new(doc));
        }
        Ok(Manifest { docs })
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// The extension (one per schema; its cache is shared by every request).
pub(crate) struct PersistedQueries {
    mode: PersistedMode,
    manifest: Arc<Manifest>,
    cache: Cache,
    parsed: Cache,
}

/// Longest query text kept in the cache (so the cache holds at most
/// `persisted_cache_size` × this much text).
pub const MAX_CACHED_QUERY_BYTES: usize = 64 * 1024;

/// Longest plain query (no persisted-query extension) whose parsed document
/// is kept by its text.
const MAX_PARSE_CACHED_BYTES: usize = 8 * 1024;

/// Plain queries whose parsed documents are kept.
const PARSE_CACHE_ENTRIES: u64 = 256;

/// Client-sent documents by hash, bounded (moka drops the least used first).
type Cache = moka::future::Cache<String, Arc<ExecutableDocument>>;

impl PersistedQueries {
    /// The extension for `mode`, keeping up to `cache_size` documents sent
    /// by clients (automatic mode).
    pub(crate) fn new(mode: PersistedMode, cache_size: usize, manifest: Manifest) -> Self {
        PersistedQueries {
            mode,
            manifest: Arc::new(manifest),
            cache: Cache::new(cache_size.max(1) as u64),
            parsed: Cache::new(PARSE_CACHE_ENTRIES),
        }
    }
}

impl ExtensionFactory for PersistedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PersistedQueriesExtension {
            mode: self.mode,
            manifest: self.manifest.clone(),
            cache: self.cache.clone(),
            parsed: self.parsed.clone(),
        })
    }
}

struct PersistedQueriesExtension {
    mode: PersistedMode,
    manifest: Arc<Manifest>,
    cache: Cache,
    /// Parsed plain queries by their text: a client that sends the same
    /// query again (the usual case: queries are constants in client code)
    /// skips the parse. Validation still runs on every request.
    parsed: Cache,
}

/// A GraphQL error with `extensions.code`.
fn error(code: &str, message: impl Into<String>) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

#[derive(Deserialize)]
struct PersistedQuery {
    version: i64,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

impl PersistedQueriesExtension {
    /// The manifest's document of `hash`, or (automatic mode) a client's.
    async fn cached(&self, hash: &str) -> Option<Arc<ExecutableDocument>> {
        if let Some(doc) = self.manifest.docs.get(hash) {
            return Some(doc.clone());
        }
        if self.mode != PersistedMode::Automatic {
            return None;
        }
        self.cache.get(hash).await
    }

    /// The request to run, or why it may not run.
    async fn resolve(&self, mut request: Request) -> ServerResult<Request> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            if self.mode == PersistedMode::Registered {
                // Text alone: allowed when it is a manifest operation.
                let hash = query_hash(&request.query);
                return match self.manifest.docs.get(&hash) {
                    Some(doc) => Ok(with_document(request, doc)),
                    None => Err(not_allowed()),
                };
            }
            return Ok(self.parse_cached(request).await);
        };
        if self.mode == PersistedMode::Off {
            return Err(error(
                "PERSISTED_QUERY_NOT_SUPPORTED",
                "PersistedQueryNotSupported",
            ));
        }
        let pq: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
            error(
                "invalid_persisted_query",
                "extensions.persistedQuery: expected {\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}",
            )
        })?;
        if pq.version != 1 {
            return Err(error(
                "invalid_persisted_query",
                format!(
                    "extensions.persistedQuery.version: only version 1 is supported, not {}",
                    pq.version
                ),
            ));
        }
        let hash = pq.sha256_hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error(
                "invalid_persisted_query",
                "extensions.persistedQuery.sha256Hash: expected 64 hexadecimal digits",
            ));
        }
        if request.query.is_empty() {
            return match self.cached(&hash).await {
                Some(doc) => Ok(with_document(request, &doc)),
                None => Err(error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")),
            };
        }
        if query_hash(&request.query) != hash {
            return Err(error(
                "persisted_query_hash_mismatch",
                "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query",
            ));
        }
        if let Some(doc) = self.cached(&hash).await {
            return Ok(with_document(request, &doc));
        }
        if self.mode == PersistedMode::Registered {
            return Err(not_allowed());
        }
        let doc = Arc::new(async_graphql::parser::parse_query(&request.query)?);
        // Bounded in bytes too: a huge query runs but is not kept.
        if request.query.len() <= MAX_CACHED_QUERY_BYTES {
            self.cache.insert(hash, doc.clone()).await;
        }
        Ok(with_document(request, &doc))
    }
}

impl PersistedQueriesExtension {
    /// A plain request with its document from [`Self::parsed`] (parsed
    /// and kept on a miss). A query that does not parse is left as it is,
    /// for the schema to report.
    async fn parse_cached(&self, request: Request) -> Request {
        if request.query.len() > MAX_PARSE_CACHED_BYTES {
            return request;
        }
        if let Some(doc) = self.parsed.get(request.query.as_str()).await {
            return with_document(request, &doc);
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
            return request;
        };
        let doc = Arc::new(doc);
        self.parsed.insert(request.query.clone(), doc.clone()).await;
        with_document(request, &doc)
    }
}

fn not_allowed() -> ServerError {
    error(
        "persisted_query_not_allowed",
        "this server runs only registered operations (server.graphql_persisted_queries = \"registered\")",
    )
}

/// The request with its document already parsed (the text is not parsed
/// again).
fn with_document(mut request: Request, doc: &ExecutableDocument) -> Request {
    request.set_parsed_query(doc.clone());
    request
}

#[async_trait::async_trait]
impl Extension for PersistedQueriesExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = self.resolve(request).await?;
        next.run(ctx, request).await
    }
}
