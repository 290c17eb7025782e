//! Who is looking at the dashboard, and what they may do.
//!
//! - **Login.** When authentication is on, the login form takes an API key
//!   or a bearer token, checks it exactly as the API checks its
//!   `Authorization` header ([`tasker_server::auth::identify`]), and keeps
//!   it in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/tasker/ui`
//!   (JavaScript never sees it; other sites' pages never send it). Each
//!   request re-verifies it, so a revoked key or an expired token stops
//!   working as it does on the API.
//! - **CSRF.** Every form carries a token that must equal the value of a
//!   second `HttpOnly`, `SameSite=Strict` cookie (double submit): a page on
//!   another site can neither read the cookie nor make the browser send it,
//!   so a forged or missing token is refused with 403 `csrf_failed`.
//! - **Permissions.** Each page and button names the API route it mirrors;
//!   its row of [`tasker_auth::table`] decides, with the same namespace
//!   scoping as the API (see [`Viewer::permit`]).

use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tasker_auth::Identity;
use tasker_auth::table::Access;
use tasker_server::{ApiError, AppState, ErrorKind};

/// The cookie holding the credential (API key or token).
pub const AUTH_COOKIE: &str = "tasker_ui_auth";
/// The cookie holding the CSRF token.
pub const CSRF_COOKIE: &str = "tasker_ui_csrf";
/// The form field (and header, for scripts) carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// Longest credential accepted in the cookie.
const MAX_CREDENTIAL: usize = 16 * 1024;

/// The value of cookie `name` in the request, if present.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for the dashboard: `HttpOnly`, `SameSite=Strict`,
/// path `/tasker/ui`, `Secure` when the request came over HTTPS (directly
/// or, per `X-Forwarded-Proto`, through a proxy). `None` clears it.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: Option<&str>) -> Option<HeaderValue> {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let mut c = match value {
        Some(v) => format!(
            "{name}={v}; Path={}; HttpOnly; SameSite=Strict",
            crate::BASE
        ),
        None => format!(
            "{name}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0",
            crate::BASE
        ),
    };
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).ok()
}

/// A fresh random token (256 bits, hex).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a CSRF token has the shape [`new_token`] makes.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The person looking: their identity and this browser's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// What they may do (everything when authentication is off).
    pub identity: Identity,
    /// Whether authentication is on (a logout button is shown).
    pub auth_on: bool,
    /// The CSRF token forms carry.
    pub csrf: String,
    /// The token is new: the response must set its cookie.
    new_csrf: bool,
}

/// Why a request is refused before its page is built.
#[derive(Debug)]
pub enum Refusal {
    /// Not logged in (or the credential stopped working): go to the login form.
    Login {
        /// Where to come back to.
        next: String,
        /// Why, when a credential was there.
        reason: Option<String>,
    },
    /// An error page (or fragment) with the API's status and code.
    Error(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Error(e)
    }
}

impl From<tasker_engine::EngineError> for Refusal {
    fn from(e: tasker_engine::EngineError) -> Self {
        Refusal::Error(e.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Login { next, reason } => {
                let mut url = format!("{}/login?next={}", crate::BASE, encode(&next));
                if reason.is_some() {
                    url.push_str("&expired=1");
                }
                (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, url)]).into_response()
            }
            Refusal::Error(e) => crate::pages::error::page(&e),
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q[2..].to_string())
        .unwrap_or_default()
}

impl Viewer {
    /// Reads the request's cookies: the CSRF token (made when missing) and,
    /// when authentication is on, the credential, verified as the API
    /// verifies a header. `path` is where to come back to after logging in.
    pub async fn from_request(
        st: &AppState,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<Viewer, Refusal> {
        let (csrf, new_csrf) = match cookie(headers, CSRF_COOKIE).filter(|t| well_formed(t)) {
            Some(t) => (t.to_string(), false),
            None => (new_token(), true),
        };
        let auth_on = st.authenticator().settings().enabled();
        let identity = if auth_on {
            let Some(credential) = cookie(headers, AUTH_COOKIE) else {
                return Err(Refusal::Login {
                    next: path.to_string(),
                    reason: None,
                });
            };
            match identify(st, credential).await {
                Ok(i) => i,
                Err(e) if e.kind() == ErrorKind::Unauthorized => {
                    return Err(Refusal::Login {
                        next: path.to_string(),
                        reason: Some(e.message().to_string()),
                    });
                }
                Err(e) => return Err(Refusal::Error(e)),
            }
        } else {
            Identity::anonymous()
        };
        Ok(Viewer {
            identity,
            auth_on,
            csrf,
            new_csrf,
        })
    }

    /// A viewer with no identity, for the login pages (only the CSRF token
    /// is used): `csrf` is the browser's token, when it has one.
    pub fn for_login(csrf: Option<String>) -> Viewer {
        let new_csrf = csrf.is_none();
        Viewer {
            identity: Identity {
                subject: "anonymous".into(),
                grants: tasker_auth::Grants::default(),
            },
            auth_on: false,
            csrf: csrf.unwrap_or_else(new_token),
            new_csrf,
        }
    }

    /// Checks the CSRF token a form sent against this browser's cookie:
    /// 403 `csrf_failed` when it is missing or differs.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), Refusal> {
        match sent {
            Some(t) if !self.new_csrf && same(t, &self.csrf) => Ok(()),
            _ => Err(Refusal::Error(ApiError::new(
                ErrorKind::Forbidden,
                "csrf_failed",
                "the form's CSRF token is missing or does not match this browser's; reload the page and try again",
            ))),
        }
    }

    /// Whether this viewer may use the API route `method` `api_path` (a
    /// template of [`tasker_auth::table::ROUTES`]) about `namespace`: the
    /// same decision the API makes. A namespace-scoped grant needs the
    /// namespace; `None` means the request spans every namespace.
    pub fn permit(
        &self,
        st: &AppState,
        method: &str,
        api_path: &str,
        namespace: Option<&str>,
    ) -> Result<(), Refusal> {
        if !self.auth_on {
            return Ok(());
        }
        let permission = match tasker_auth::table::access(method, api_path) {
            Some(Access::Permission(p)) => p,
            Some(Access::Status) if st.authenticator().settings().status_requires_auth => {
                "tasker.health_status:index"
            }
            Some(_) => return Ok(()),
            // A route missing from the table is closed, as on the API.
            None => {
                return Err(Refusal::Error(tasker_server::auth::forbidden(
                    "(a route missing from the permission table)",
                    None,
                )));
            }
        };
        if self.identity.grants.allows(permission, namespace) {
            Ok(())
        } else {
            Err(Refusal::Error(tasker_server::auth::forbidden(
                permission, namespace,
            )))
        }
    }

    /// Whether [`Viewer::permit`] would allow it (to show or hide a button).
    pub fn may(
        &self,
        st: &AppState,
        method: &str,
        api_path: &str,
        namespace: Option<&str>,
    ) -> bool {
        self.permit(st, method, api_path, namespace).is_ok()
    }

    /// Whether some grant could allow `api_path` in some namespace: the
    /// API's first check, before it looks the task up (so a caller with no
    /// grant at all gets 403, not 404, for an unknown task).
    pub fn permit_any(&self, method: &str, api_path: &str) -> Result<(), Refusal> {
        if !self.auth_on {
            return Ok(());
        }
        if let Some(Access::Permission(p)) = tasker_auth::table::access(method, api_path)
            && !self.identity.grants.allows(p, None)
            && self
                .identity
                .grants
                .namespaces_for(p)
                .is_none_or(|ns| ns.is_empty())
        {
            return Err(Refusal::Error(tasker_server::auth::forbidden(p, None)));
        }
        Ok(())
    }

    /// Who acts, for the record (`by` on transitions), as the API records it.
    pub fn actor(&self, st: &AppState) -> Option<String> {
        tasker_server::auth::actor(st, Some(&self.identity))
    }

    /// The subject shown in the header, when logged in.
    pub fn subject(&self) -> Option<&str> {
        self.auth_on.then_some(self.identity.subject.as_str())
    }

    /// Adds the CSRF cookie to `res` when it was made for this request.
    pub fn finish(&self, headers: &HeaderMap, mut res: Response) -> Response {
        if self.new_csrf
            && let Some(v) = set_cookie(headers, CSRF_COOKIE, Some(&self.csrf))
        {
            res.headers_mut().append(SET_COOKIE, v);
        }
        res
    }
}

/// Verifies a credential (API key or token) as the API verifies its
/// `Authorization: Bearer` header.
pub async fn identify(st: &AppState, credential: &str) -> Result<Identity, ApiError> {
    if credential.len() > MAX_CREDENTIAL {
        return Err(tasker_server::auth::unauthenticated(
            "the credential is too long",
        ));
    }
    let mut h = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {}", credential.trim())).map_err(|_| {
        tasker_server::auth::unauthenticated("the credential is not printable text")
    })?;
    h.insert(AUTHORIZATION, value);
    tasker_server::auth::identify(st, &h).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; tasker_ui_csrf=abc"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        let t = new_token();
        assert!(well_formed(&t));
        assert!(same(&t, &t.clone()));
        assert!(!same(&t, &new_token()));
        assert!(!same(&t, &t[..63]));
        assert!(!well_formed("<script>"));
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let v = set_cookie(&HeaderMap::new(), AUTH_COOKIE, Some("tk_x")).unwrap();
        let v = v.to_str().unwrap();
        assert!(
            v.contains("HttpOnly") && v.contains("SameSite=Strict"),
            "{v}"
        );
        assert!(!v.contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&h, AUTH_COOKIE, None)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("Max-Age=0; Secure")
        );
    }
}
