//! Users and tokens: `atlas user add` makes a token (printed once) and keeps only its SHA-256.
//! Every API call and page needs the token, as `Authorization: Bearer TOKEN` or as the session
//! cookie the login page sets (HttpOnly, SameSite=Strict), and sees only its user's runs.
//! Tenants (namespaces with quotas) and OIDC can come in here: both end in a [`User`].

use std::io::Read;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "atlas_session";

/// The hex SHA-256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new token: `atl_` and 32 random bytes (from the kernel) in hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "atl_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The token a request carries: bearer header first, then the session cookie.
pub fn token_of(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    bearer.or_else(|| {
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .strip_prefix(&format!("{COOKIE}="))
                    .map(String::from)
            })
    })
}

/// The token of an `Authorization` header's value: the scheme is `Bearer` in any case
/// (RFC 9110: auth schemes are case-insensitive), then whitespace, then the token.
fn bearer(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The user a request is made by.
#[derive(Debug, Clone)]
pub struct User(pub String);

impl User {
    /// Looks the token up; `None` for a missing or unknown token.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
        let Some(token) = token_of(parts) else {
            return Ok(None);
        };
        let hash = hash_token(&token);
        let name = state.read(move |store| store.user_for_token(&hash)).await?;
        Ok(name.map(User))
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        User::from_parts(parts, state).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid token is needed: `Authorization: Bearer TOKEN` (atlas user add NAME makes one)",
            )
        })
    }
}

/// A user for a dashboard page: without a session, the browser goes to the login page.
pub struct PageUser(pub User);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match User::from_parts(parts, state).await {
            Ok(Some(user)) => Ok(PageUser(user)),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed_to_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        for header in ["Bearer atl_1", "bearer atl_1", "BEARER  atl_1 "] {
            assert_eq!(bearer(header).as_deref(), Some("atl_1"), "{header}");
        }
        assert_eq!(bearer("Basic atl_1"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
