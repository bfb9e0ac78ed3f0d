//! Users, tokens and sessions. `atlas user add` makes a token (printed once) and keeps only its
//! SHA-256. API clients send it as `Authorization: Bearer TOKEN` (the scheme in any case).
//! Browsers never hold the token: the login page takes it once and sets a session cookie, an
//! opaque random id whose SHA-256 the store keeps with its user and expiry ([`SESSION_TTL`]),
//! HttpOnly, SameSite=Lax, and `Secure` under https ([`is_https`]). Every request then sees
//! only what its user sees. A token may also be scoped to one tenant and one role
//! (`atlas token add`): it then sees that tenant's runs alone, and never more than its user's
//! own role there ([`User::allowed`]). Single sign-on (`oidc.rs`) ends in a session too.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use atlas_store::Role;

use crate::error::ApiError;
use crate::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "atlas_session";

/// How long a session lasts from the login (not extended by use): a working day.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The hex SHA-256 of a token or session id: what the store keeps.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 random bytes from the kernel, in hex.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new token: `atl_` and 32 random bytes in hex.
pub fn new_token() -> std::io::Result<String> {
    Ok(format!("atl_{}", random_hex()?))
}

/// A new session id: 32 random bytes in hex (nothing in it says who it is for).
pub fn new_session_id() -> std::io::Result<String> {
    random_hex()
}

/// Now, in Unix seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What a request authenticates with.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// An `Authorization` header (an API client); `None` when it is not `Bearer TOKEN`.
    Bearer(Option<String>),
    /// The session cookie (a browser).
    Session(String),
}

/// The request's credential: an `Authorization` header, when there is one, is the only one
/// looked at (a browser cannot send one cross-site without CORS, which the server never
/// allows); else the session cookie.
pub fn credential_of(headers: &HeaderMap) -> Option<Credential> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return Some(Credential::Bearer(value.to_str().ok().and_then(bearer)));
    }
    session_cookie_of(headers).map(Credential::Session)
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(String::from)
        })
}

/// The token of an `Authorization` header's value: the scheme is `Bearer` in any case
/// (RFC 9110: auth schemes are case-insensitive), then whitespace, then the token.
fn bearer(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// Whether the browser talks to this server over https: `--secure-cookies` says so, or a
/// proxy in front does (`X-Forwarded-Proto: https`).
pub fn is_https(headers: &HeaderMap, secure_cookies: bool) -> bool {
    secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that starts a session (`id`), or ends it (`None`).
pub fn session_cookie(id: Option<&str>, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}"),
    }
}

/// The user a request is made by, and the tenant and role their token is scoped to (`None`:
/// the user's own token, or a browser session, with all their tenants and roles).
#[derive(Debug, Clone)]
pub struct User(pub String, pub Option<Scope>);

/// What a scoped API token (`atlas token add`) allows: one tenant, at most one role.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub tenant: String,
    pub role: Role,
}

impl User {
    /// Looks the token or session up; `None` for a missing, unknown or expired one.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
        User::from_credential(credential_of(&parts.headers), state).await
    }

    /// The user `credential` stands for now; `None` for a missing, unknown, revoked or expired
    /// one (a long-lived stream asks again: [`crate::live`]).
    pub async fn from_credential(
        credential: Option<Credential>,
        state: &AppState,
    ) -> Result<Option<User>, ApiError> {
        Ok(match credential {
            None | Some(Credential::Bearer(None)) => None,
            Some(Credential::Bearer(Some(token))) => {
                let hash = hash_token(&token);
                state
                    .read(move |s| {
                        if let Some(name) = s.user_for_token(&hash)? {
                            return Ok(Some(User(name, None)));
                        }
                        Ok(s.scoped_token(&hash)?.map(|t| {
                            let scope = Scope {
                                tenant: t.tenant,
                                role: t.role,
                            };
                            User(t.user, Some(scope))
                        }))
                    })
                    .await?
            }
            Some(Credential::Session(id)) => {
                let (hash, now) = (hash_token(&id), now());
                let name = state.read(move |s| s.session_user(&hash, now)).await?;
                name.map(|n| User(n, None))
            }
        })
    }

    /// Who the store's visibility rule is asked about (`atlas_store::tenancy::principal`).
    pub fn principal(&self) -> String {
        atlas_store::tenancy::principal(&self.0, self.1.as_ref().map(|s| s.tenant.as_str()))
    }

    /// The caller's tenants and roles (`memberships`: the user's) as their token allows: a
    /// scoped token keeps its one tenant, with the lesser of its role and the user's.
    pub fn allowed(&self, memberships: Vec<(String, Role)>) -> Vec<(String, Role)> {
        match &self.1 {
            None => memberships,
            Some(scope) => memberships
                .into_iter()
                .filter(|(tenant, _)| *tenant == scope.tenant)
                .map(|(tenant, role)| (tenant, role.min(scope.role)))
                .collect(),
        }
    }

    /// Whether the token is read-only (scoped with the viewer role).
    pub fn read_only(&self) -> bool {
        self.1.as_ref().is_some_and(|s| s.role == Role::Viewer)
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        User::from_parts(parts, state).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid token is needed: `Authorization: Bearer TOKEN` (atlas user add NAME makes one), or a session from /login",
            )
        })
    }
}

/// A user for a dashboard page: without a session, the browser goes to the login page, which
/// comes back to this page afterwards.
pub struct PageUser(pub User);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match User::from_parts(parts, state).await {
            Ok(Some(user)) => Ok(PageUser(user)),
            Ok(None) => {
                let here = parts.uri.path();
                Err(Redirect::to(&format!("/login?next={}", query_escape(here))).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// `text` percent-encoded for a query value (all but unreserved characters and `/`).
pub(crate) fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed_to_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(new_session_id().unwrap().len(), 64);
        for header in ["Bearer atl_1", "bearer atl_1", "BEARER  atl_1 "] {
            assert_eq!(bearer(header).as_deref(), Some("atl_1"), "{header}");
        }
        assert_eq!(bearer("Basic atl_1"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(query_escape("/runs/r-1 x?y"), "/runs/r-1%20x%3Fy");
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_authorization_header_is_the_only_credential_when_present() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; atlas_session=s1".parse().unwrap());
        assert_eq!(
            credential_of(&headers),
            Some(Credential::Session("s1".into()))
        );
        headers.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(credential_of(&headers), Some(Credential::Bearer(None)));
        assert!(!is_https(&headers, false));
        headers.insert("x-forwarded-proto", "HTTPS".parse().unwrap());
        assert!(is_https(&headers, false));
        assert!(session_cookie(Some("s1"), true).ends_with("; Secure"));
        assert!(session_cookie(None, false).contains("Max-Age=0"));
    }
}
