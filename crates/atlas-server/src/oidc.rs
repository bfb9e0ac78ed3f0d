//! Single sign-on with OpenID Connect: the authorization code flow with PKCE, `state` and
//! `nonce` (crate `openidconnect`). `GET /auth/login` starts a login: a random state, nonce and
//! PKCE verifier kept here (at most [`MAX_PENDING`], [`MAX_PENDING_PER_CLIENT`] from one
//! address, for [`PENDING_TTL`]), the state also in a
//! short-lived cookie that binds the login to this browser, and a redirect to the provider.
//! `GET /auth/callback` takes each state once: the cookie must match, the code is exchanged
//! with the verifier, and the ID token's signature (the provider's JWKS), issuer, audience,
//! expiry and nonce are checked by the crate. The user is the token's `preferred_username`
//! (else `sub`), which must be an Atlas user name; the token's `groups` claim sets the user's
//! roles in the tenants the configured rules map them to (the provider is the source of truth
//! for those tenants: a group no longer held removes the membership). The browser then gets a
//! session like the token login's; the provider's tokens are never given to it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlas_store::{Role, StoreError};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::Extension;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::auth::{hash_token, is_https, new_session_id, new_token, now, SESSION_TTL};
use crate::AppState;

/// Logins started and not yet come back, at most.
pub const MAX_PENDING: usize = 10_000;
/// Logins under way from one client address, at most: a person needs one or two; more is one
/// client trying to fill [`MAX_PENDING`] for everybody. (Behind a proxy every browser has the
/// proxy's address; that proxy should limit its clients itself.)
pub const MAX_PENDING_PER_CLIENT: usize = 20;
/// How long a started login may take.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// The cookie that binds a login to the browser that started it.
const STATE_COOKIE: &str = "atlas_oidc_state";

/// The `groups` claim (absent: no groups).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Groups {
    #[serde(default)]
    pub groups: Vec<String>,
}
impl AdditionalClaims for Groups {}

type IdFields = IdTokenFields<
    Groups,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
type OidcClient = Client<
    Groups,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A group of the provider's that makes its members a tenant's members: `GROUP=TENANT:ROLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRule {
    pub group: String,
    pub tenant: String,
    pub role: Role,
}

impl GroupRule {
    /// `GROUP=TENANT:ROLE` (`vision-team=vision:member`).
    pub fn parse(text: &str) -> Result<GroupRule, String> {
        let bad = || {
            format!(
                "`{}`: expected GROUP=TENANT:ROLE (role admin, member or viewer)",
                text.escape_debug()
            )
        };
        let (group, rest) = text.rsplit_once('=').ok_or_else(bad)?;
        let (tenant, role) = rest.rsplit_once(':').ok_or_else(bad)?;
        let role = Role::parse(role).ok_or_else(bad)?;
        if group.is_empty() || group.len() > 256 || tenant.is_empty() || tenant.len() > 63 {
            return Err(bad());
        }
        Ok(GroupRule {
            group: group.into(),
            tenant: tenant.into(),
            role,
        })
    }
}

/// What `atlas serve` is given for single sign-on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The provider's issuer URL, exactly as its discovery document says it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// This server's callback, as the browser reaches it (`https://atlas.example/auth/callback`).
    pub redirect: String,
    pub groups: Vec<GroupRule>,
}

struct Pending {
    nonce: String,
    verifier: String,
    next: String,
    started: Instant,
    client: Option<std::net::IpAddr>,
}

/// The provider, as discovered at start, and the logins under way.
pub struct Oidc {
    issuer: String,
    client: OidcClient,
    http: openidconnect::reqwest::Client,
    groups: Vec<GroupRule>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Oidc {
    /// Reads the provider's discovery document and keys.
    pub async fn discover(settings: Settings) -> Result<Oidc, String> {
        // No redirects: a provider's endpoint cannot send the server elsewhere (SSRF).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| format!("--oidc-issuer `{}`: {e}", settings.issuer))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                format!(
                    "cannot read {}/.well-known/openid-configuration: {}",
                    settings.issuer,
                    chain(&e)
                )
            })?;
        let redirect = RedirectUrl::new(settings.redirect.clone())
            .map_err(|e| format!("the callback URL `{}`: {e}", settings.redirect))?;
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id),
            Some(ClientSecret::new(settings.client_secret)),
        )
        .set_redirect_uri(redirect);
        Ok(Oidc {
            issuer: settings.issuer.trim_end_matches('/').to_string(),
            client,
            http,
            groups: settings.groups,
            pending: Mutex::default(),
        })
    }

    /// A new login: the provider's URL to send the browser to and the state.
    fn start(
        &self,
        next: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<(String, String), String> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(format!(
                "{MAX_PENDING} logins are under way; try again in a few minutes"
            ));
        }
        let from_client = pending.values().filter(|p| p.client == client).count();
        if client.is_some() && from_client >= MAX_PENDING_PER_CLIENT {
            return Err(format!(
                "{from_client} logins from your address are under way and not finished; finish one, or try again in {} minutes",
                PENDING_TTL.as_secs() / 60
            ));
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                next: next.into(),
                started: Instant::now(),
                client,
            },
        );
        Ok((url.to_string(), state.secret().clone()))
    }

    /// The login `state` named, taken once.
    fn take(&self, state: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
    }

    /// Exchanges the code and checks the ID token: who signed in.
    async fn finish(&self, code: &str, login: &Pending) -> Result<SignedIn, String> {
        let exchange = self
            .client
            .exchange_code(AuthorizationCode::new(code.into()))
            .map_err(|e| format!("the provider has no token endpoint: {e}"))?
            .set_pkce_verifier(PkceCodeVerifier::new(login.verifier.clone()));
        let tokens = exchange
            .request_async(&self.http)
            .await
            .map_err(|e| format!("the provider did not accept the code: {}", chain(&e)))?;
        let id_token = tokens
            .id_token()
            .ok_or("the provider's answer has no ID token")?;
        let claims = id_token
            .claims(
                &self.client.id_token_verifier(),
                &Nonce::new(login.nonce.clone()),
            )
            .map_err(|e| format!("the ID token was refused: {}", chain(&e)))?;
        let name = claims
            .preferred_username()
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| claims.subject().as_str().to_string());
        if atlas_spec::check_name(&name).is_err() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "the provider's user name {:?} is not an Atlas user name (lowercase letters, digits, `-`, `_`, `.`)",
                name.chars().take(64).collect::<String>()
            ));
        }
        Ok(SignedIn {
            subject: format!("{} {}", self.issuer, claims.subject().as_str()),
            name,
            groups: claims.additional_claims().groups.clone(),
        })
    }
}

/// Who signed in: their identity at the provider (issuer and `sub`: the only stable, unique
/// key), the Atlas name they get the first time, and their groups.
struct SignedIn {
    subject: String,
    name: String,
    groups: Vec<String>,
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn state_cookie(state: Option<&str>, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    match state {
        Some(s) => format!(
            "{STATE_COOKIE}={s}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age={}{secure}",
            PENDING_TTL.as_secs()
        ),
        None => format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth; Max-Age=0{secure}"),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{name}=")).map(String::from))
}

/// A refused login: logged, and a page that says why and links to the login page.
fn refused(status: StatusCode, why: &str) -> Response {
    eprintln!("atlas serve: a single sign-on login was refused: {why}");
    crate::dashboard::login_refused(status, why)
}

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /auth/login?next=PATH`: to the provider.
pub async fn start(
    State(app): State<AppState>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(oidc) = app.oidc() else {
        return refused(
            StatusCode::NOT_FOUND,
            "single sign-on is not set up on this server",
        );
    };
    let next = crate::dashboard::local_target(q.next.as_deref());
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    match oidc.start(next, client) {
        Ok((url, state)) => {
            let https = is_https(&headers, app.config().secure_cookies);
            (
                [(header::SET_COOKIE, state_cookie(Some(&state), https))],
                Redirect::to(&url),
            )
                .into_response()
        }
        Err(why) => refused(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback?code=&state=`: back from the provider.
pub async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = app.oidc() else {
        return refused(
            StatusCode::NOT_FOUND,
            "single sign-on is not set up on this server",
        );
    };
    if let Some(error) = &q.error {
        let shown: String = error.chars().take(64).collect();
        return refused(
            StatusCode::UNAUTHORIZED,
            &format!("the provider said `{shown}`"),
        );
    }
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "the provider's answer has no code or no state",
        );
    };
    if cookie(&headers, STATE_COOKIE).as_deref() != Some(state) {
        return refused(
            StatusCode::BAD_REQUEST,
            "this login was not started in this browser (its state does not match)",
        );
    }
    let Some(login) = oidc.take(state) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "this login has expired or was already used; sign in again",
        );
    };
    let signed_in = match oidc.finish(code, &login).await {
        Ok(found) => found,
        Err(why) => return refused(StatusCode::UNAUTHORIZED, &why),
    };
    let rules = oidc.groups.clone();
    let session = new_session_id().and_then(|id| new_token().map(|t| (id, t)));
    let Ok((id, unusable)) = session else {
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no random bytes for a session",
        );
    };
    let (id_hash, now) = (hash_token(&id), now());
    let stored = app
        .write(move |s| {
            // The user made for this identity; else a new one under the provider's name, with
            // an API token nobody is shown. An existing account of that name is never taken.
            let user = match s.user_for_subject(&signed_in.subject)? {
                Some(user) => user,
                None => {
                    let name = signed_in.name;
                    let hash = hash_token(&unusable);
                    match s.add_sso_user(&name, &signed_in.subject, &hash, now) {
                        Ok(()) => name,
                        Err(StoreError::UserExists(_)) => return Ok(Err(name)),
                        Err(e) => return Err(e),
                    }
                }
            };
            apply_groups(s, &user, &signed_in.groups, &rules)?;
            s.create_session(&id_hash, &user, now, now + SESSION_TTL.as_secs_f64())?;
            Ok(Ok(user))
        })
        .await;
    let user = match stored {
        Ok(Ok(user)) => user,
        Ok(Err(taken)) => {
            return refused(
                StatusCode::FORBIDDEN,
                &format!("the user name `{taken}` belongs to another account here (made with a token, or by another identity); single sign-on never takes an account over"),
            )
        }
        Err(e) => return e.into_response(),
    };
    eprintln!("atlas serve: {user} signed in through single sign-on");
    let https = is_https(&headers, app.config().secure_cookies);
    // Both cookies: an array of headers would keep only the last of two with one name.
    (
        AppendHeaders([
            (
                header::SET_COOKIE,
                crate::auth::session_cookie(Some(&id), https),
            ),
            (header::SET_COOKIE, state_cookie(None, https)),
        ]),
        Redirect::to(&login.next),
    )
        .into_response()
}

/// The user's roles in the tenants the rules name: set from the groups they hold, removed
/// where they hold none of the tenant's groups. Tenants that do not exist are skipped (logged).
fn apply_groups(
    store: &mut dyn atlas_store::Store,
    user: &str,
    groups: &[String],
    rules: &[GroupRule],
) -> Result<(), StoreError> {
    let mut best: std::collections::BTreeMap<&str, Option<Role>> = Default::default();
    for rule in rules {
        let held = groups.iter().any(|g| g == &rule.group);
        let entry = best.entry(rule.tenant.as_str()).or_insert(None);
        if held {
            *entry = Some(entry.map_or(rule.role, |r| r.max(rule.role)));
        }
    }
    for (tenant, role) in best {
        let result = match role {
            Some(role) => store.set_member(tenant, user, role),
            None => store.remove_member(tenant, user).map(|_| ()),
        };
        match result {
            Err(StoreError::NoSuchTenant(t)) => {
                eprintln!("atlas serve: --oidc-group names tenant `{t}`, which does not exist (atlas tenant add {t})");
            }
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_rules_read_group_tenant_and_role() {
        let rule = GroupRule::parse("cn=vision,ou=groups=vision:admin").unwrap();
        assert_eq!(rule.group, "cn=vision,ou=groups");
        assert_eq!(rule.tenant, "vision");
        assert_eq!(rule.role, Role::Admin);
        for bad in [
            "vision",
            "g=vision",
            "g=vision:owner",
            "=vision:member",
            "g=:member",
        ] {
            assert!(GroupRule::parse(bad).is_err(), "{bad}");
        }
        assert!(state_cookie(Some("s"), true).contains("HttpOnly; SameSite=Lax; Path=/auth"));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; atlas_oidc_state=xyz".parse().unwrap());
        assert_eq!(cookie(&headers, STATE_COOKIE).as_deref(), Some("xyz"));
    }
}
