//! A JSON Web Key Set fetched from a URL: at start, and again when a token
//! names a `kid` the set lacks (a key rotation at the issuer), at most once
//! per [`REFRESH_INTERVAL`] (the first refresh at once), with a bounded answer and a timeout, so tokens
//! with made-up `kid`s cannot make the server hammer the issuer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tasker_auth::Grants;
use tasker_auth::jwt::{JwtSettings, JwtVerifier, KeyMaterial, TokenError, Verified};

/// Shortest time between two fetches.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Longest a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The verification settings besides the keys (owned, for rebuilds).
#[derive(Clone)]
pub struct JwtOptions {
    /// Clock skew allowed.
    pub leeway_seconds: u64,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Claim of the permissions.
    pub permissions_claim: String,
    /// Claim of the roles.
    pub roles_claim: String,
    /// Role → grants.
    pub roles: BTreeMap<String, Grants>,
}

impl JwtOptions {
    /// A verifier over `keys` with these options.
    pub fn verifier(
        &self,
        keys: KeyMaterial<'_>,
        algorithm: Option<&str>,
    ) -> Result<JwtVerifier, tasker_auth::jwt::SetupError> {
        JwtVerifier::new(JwtSettings {
            keys,
            algorithm,
            leeway_seconds: self.leeway_seconds,
            issuer: self.issuer.as_deref(),
            audience: self.audience.as_deref(),
            permissions_claim: &self.permissions_claim,
            roles_claim: &self.roles_claim,
            roles: self.roles.clone(),
        })
    }
}

/// The keys of a JWKS URL and when they were last fetched.
pub struct JwksSource {
    url: String,
    client: reqwest::Client,
    options: JwtOptions,
    current: RwLock<Arc<JwtVerifier>>,
    /// When the set was last refreshed for an unknown `kid` (held while
    /// fetching, so concurrent unknown `kid`s cause one fetch).
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
}

impl JwksSource {
    /// Fetches the set once; fails when the URL does not answer a usable set.
    pub async fn connect(url: &str, options: JwtOptions) -> Result<JwksSource, String> {
        Self::connect_with_interval(url, options, REFRESH_INTERVAL).await
    }

    /// [`JwksSource::connect`], refreshing at most once per `min_interval`.
    pub async fn connect_with_interval(
        url: &str,
        options: JwtOptions,
        min_interval: Duration,
    ) -> Result<JwksSource, String> {
        // reqwest is built without a default TLS provider (one crypto backend, ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let verifier = fetch(&client, url, &options).await?;
        Ok(JwksSource {
            url: url.to_string(),
            client,
            options,
            current: RwLock::new(Arc::new(verifier)),
            last_refresh: tokio::sync::Mutex::new(None),
            min_interval,
        })
    }

    fn current(&self) -> Arc<JwtVerifier> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Verifies `token`, refreshing the set once when its `kid` is unknown.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, TokenError> {
        let first = self.current().verify(token, now)?;
        let Verified::UnknownKid(_) = first else {
            return Ok(first);
        };
        {
            let mut last = self.last_refresh.lock().await;
            if last.is_none_or(|t| t.elapsed() >= self.min_interval) {
                *last = Some(Instant::now());
                match fetch(&self.client, &self.url, &self.options).await {
                    Ok(v) => match self.current.write() {
                        Ok(mut cur) => *cur = Arc::new(v),
                        Err(poisoned) => *poisoned.into_inner() = Arc::new(v),
                    },
                    Err(e) => {
                        tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed; keeping the previous keys")
                    }
                }
            }
        }
        self.current().verify(token, now)
    }
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    options: &JwtOptions,
) -> Result<JwtVerifier, String> {
    let mut res = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetching the JWKS {url}: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("fetching the JWKS {url}: status {}", res.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("reading the JWKS {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the JWKS {url} is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let set: tasker_auth::jwt::JwkSet = serde_json::from_slice(&body)
        .map_err(|e| format!("the JWKS {url} is not a key set: {e}"))?;
    options
        .verifier(KeyMaterial::Jwks(&set), None)
        .map_err(|e| format!("the JWKS {url}: {e}"))
}
