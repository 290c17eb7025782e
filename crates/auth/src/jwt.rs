//! Verifying a bearer JWT into an [`Identity`].
//!
//! The signature is checked by `jsonwebtoken` against exactly one configured
//! algorithm (or, with a JWKS, the algorithm of the key the token's `kid`
//! names), so `alg: none` and algorithm confusion (an HS token checked with
//! an RSA public key used as an HMAC secret) are refused. Time claims are
//! checked here against a clock the caller passes, with a leeway: `exp`
//! (required), `nbf` and `iat` (when present; an `iat` in the future beyond
//! the leeway is refused).

use crate::Identity;
use crate::permission::{Grant, Grants};
pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Longest token accepted, in bytes (longer is refused before any parsing).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused (the message is safe to show the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Why verification settings were refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Where the verification keys come from.
pub enum KeyMaterial<'a> {
    /// A shared secret (HS256/384/512).
    Secret(&'a [u8]),
    /// A PEM public key (RS*, PS*, ES256/384, EdDSA).
    Pem(&'a [u8]),
    /// A JSON Web Key Set: the token's `kid` picks the key, the key's `alg`
    /// (or its type) the algorithm.
    Jwks(&'a JwkSet),
}

/// The settings of [`JwtVerifier::new`].
pub struct JwtSettings<'a> {
    /// Verification keys.
    pub keys: KeyMaterial<'a>,
    /// Algorithm for a secret or a PEM key (`HS256` when `None` with a secret;
    /// required with a PEM key; ignored with a JWKS).
    pub algorithm: Option<&'a str>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`, in seconds.
    pub leeway_seconds: u64,
    /// Required `iss`, if any.
    pub issuer: Option<&'a str>,
    /// Required `aud` (one of the token's audiences), if any.
    pub audience: Option<&'a str>,
    /// Claim holding the permissions (a list of strings, or one space-separated string).
    pub permissions_claim: &'a str,
    /// Claim holding role names, expanded through `roles`.
    pub roles_claim: &'a str,
    /// Role name → its grants.
    pub roles: BTreeMap<String, Grants>,
}

/// One key and the only algorithm it verifies.
struct Key {
    key: DecodingKey,
    validation: Validation,
}

/// Verifies tokens. Built once at start; holds no per-request state.
pub struct JwtVerifier {
    /// `None` key id: the single configured key.
    single: Option<Key>,
    by_kid: HashMap<String, Key>,
    leeway: i64,
    permissions_claim: String,
    roles_claim: String,
    roles: BTreeMap<String, Grants>,
}

/// The outcome of a verification that may need a fresher key set.
#[derive(Debug)]
pub enum Verified {
    /// The caller.
    Identity(Identity),
    /// The token names a `kid` the key set does not have (refresh the JWKS, then retry once).
    UnknownKid(String),
}

impl JwtVerifier {
    /// Builds a verifier, checking the keys (a secret shorter than 32 bytes,
    /// an unparsable PEM or an algorithm that does not fit the key is refused).
    pub fn new(s: JwtSettings<'_>) -> Result<JwtVerifier, SetupError> {
        let validation = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            // Time claims are checked in `claims_identity` against the caller's clock.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.leeway = 0;
            let mut required = vec!["exp"];
            match s.issuer {
                Some(iss) => {
                    v.set_issuer(&[iss]);
                    required.push("iss");
                }
                None => v.iss = None,
            }
            match s.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            v
        };
        let parse_alg = |a: &str| {
            a.parse::<Algorithm>()
                .map_err(|_| SetupError(format!("`{a}` is not a JWT algorithm")))
        };
        let mut single = None;
        let mut by_kid = HashMap::new();
        match s.keys {
            KeyMaterial::Secret(secret) => {
                if secret.len() < 32 {
                    return Err(SetupError(
                        "the JWT secret must be at least 32 bytes".into(),
                    ));
                }
                let alg = parse_alg(s.algorithm.unwrap_or("HS256"))?;
                if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err(SetupError(format!(
                        "a secret verifies HS256, HS384 or HS512, not {alg:?}"
                    )));
                }
                single = Some(Key {
                    key: DecodingKey::from_secret(secret),
                    validation: validation(alg),
                });
            }
            KeyMaterial::Pem(pem) => {
                let Some(a) = s.algorithm else {
                    return Err(SetupError(
                        "a PEM public key needs its algorithm (RS256, ES256, EdDSA, ...)".into(),
                    ));
                };
                let alg = parse_alg(a)?;
                let key = match alg {
                    Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
                    other => {
                        return Err(SetupError(format!(
                            "a PEM public key cannot verify {other:?} (use a secret for HS*)"
                        )));
                    }
                }
                .map_err(|e| SetupError(format!("the public key is not a valid {a} PEM: {e}")))?;
                single = Some(Key {
                    key,
                    validation: validation(alg),
                });
            }
            KeyMaterial::Jwks(set) => {
                for jwk in &set.keys {
                    let Some(kid) = jwk.common.key_id.clone() else {
                        continue;
                    };
                    let Some(alg) = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                    else {
                        // A key without a usable `alg` cannot be pinned to one algorithm.
                        continue;
                    };
                    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                        continue;
                    }
                    let key = DecodingKey::from_jwk(jwk)
                        .map_err(|e| SetupError(format!("JWKS key `{kid}`: {e}")))?;
                    by_kid.insert(
                        kid,
                        Key {
                            key,
                            validation: validation(alg),
                        },
                    );
                }
            }
        }
        Ok(JwtVerifier {
            single,
            by_kid,
            leeway: i64::try_from(s.leeway_seconds).unwrap_or(i64::MAX),
            permissions_claim: s.permissions_claim.to_string(),
            roles_claim: s.roles_claim.to_string(),
            roles: s.roles,
        })
    }

    /// Verifies `token` at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError(format!("the token is malformed: {}", describe(&e))))?;
        let key = match &self.single {
            Some(k) => k,
            None => {
                let Some(kid) = header.kid else {
                    return Err(TokenError("the token names no key (`kid`)".into()));
                };
                match self.by_kid.get(&kid) {
                    Some(k) => k,
                    None => return Ok(Verified::UnknownKid(kid)),
                }
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(|e| TokenError(describe(&e)))?;
        self.claims_identity(&data.claims, now)
            .map(Verified::Identity)
    }

    /// Checks the time claims and reads the subject and grants.
    fn claims_identity(&self, c: &Map<String, Value>, now: i64) -> Result<Identity, TokenError> {
        let time = |name: &str| -> Result<Option<i64>, TokenError> {
            match c.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| TokenError(format!("the `{name}` claim is not a number"))),
            }
        };
        let exp = time("exp")?.ok_or_else(|| TokenError("the token has no `exp`".into()))?;
        if exp <= now.saturating_sub(self.leeway) {
            return Err(TokenError("the token has expired".into()));
        }
        if let Some(nbf) = time("nbf")?
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(TokenError("the token is not valid yet (`nbf`)".into()));
        }
        if let Some(iat) = time("iat")?
            && iat > now.saturating_add(self.leeway)
        {
            return Err(TokenError(
                "the token was issued in the future (`iat`)".into(),
            ));
        }
        let subject = match c.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError("the token has no `sub`".into())),
        };
        let mut grants = Vec::new();
        for claim in [self.permissions_claim.as_str(), "scope"] {
            for s in strings(c.get(claim)) {
                // Other applications' scopes (`openid`, `profile`) grant nothing here.
                if let Ok(g) = Grant::parse(&s) {
                    grants.push(g);
                }
            }
        }
        for role in strings(c.get(&self.roles_claim)) {
            if let Some(set) = self.roles.get(&role) {
                grants.extend(set.iter().cloned());
            }
        }
        Ok(Identity {
            subject,
            grants: Grants::new(grants),
        })
    }
}

/// A list of strings, or one space-separated string (`scope`).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A caller-facing reason (never the key or the token).
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => "the token's signature is invalid".into(),
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            "the token's algorithm is not the one this server accepts".into()
        }
        K::InvalidIssuer => "the token's issuer (`iss`) is not accepted".into(),
        K::InvalidAudience => "the token's audience (`aud`) is not accepted".into(),
        K::MissingRequiredClaim(c) => format!("the token has no `{c}`"),
        K::InvalidClaimFormat(c) => format!("the token's `{c}` claim is malformed"),
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (`nbf`)".into(),
        _ => "the token is malformed".into(),
    }
}
