//! The web dashboard: one HTML shell, a script and a style sheet, embedded in the binary
//! (nothing from a CDN). The script draws the page for the path (runs, a run, an experiment,
//! targets) from the API and keeps it live with server-sent events. The login page takes a
//! token (in a form, never in the URL), starts a session and sets its cookie.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{
    hash_token, is_https, new_session_id, now, session_cookie, session_cookie_of, PageUser,
    SESSION_TTL,
};
use crate::error::ApiError;
use crate::AppState;

const SHELL: &str = include_str!("../assets/index.html");
const LOGIN: &str = include_str!("../assets/login.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// Every dashboard page: the shell, which the script fills in.
pub async fn page(PageUser(user): PageUser) -> Html<String> {
    Html(SHELL.replace("{{user}}", &html_escape(&user.0)))
}

/// The embedded assets.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (kind, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "app.css" => ("text/css; charset=utf-8", STYLE),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    /// A dashboard path to go to after logging in.
    next: Option<String>,
}

/// `GET /login`: the form, which comes back to `next` (a path on this server) once logged in,
/// and the single sign-on link when the server has a provider. A token is never taken from the
/// URL: URLs end up in logs, histories and `Referer`s.
pub async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let sso = state.oidc().is_some();
    login_form(StatusCode::OK, "", local_target(q.next.as_deref()), sso)
}

fn login_form(status: StatusCode, message: &str, next: &str, sso: bool) -> Response {
    let link = if sso {
        format!(
            "<p><a class=\"sso\" href=\"/auth/login?next={}\">Sign in with single sign-on</a></p>",
            html_escape(&crate::auth::query_escape(next))
        )
    } else {
        String::new()
    };
    let page = LOGIN
        .replace("{{message}}", message)
        .replace("{{sso}}", &link)
        .replace("{{next}}", &html_escape(next));
    (status, Html(page)).into_response()
}

/// The login page with why a single sign-on login was refused.
pub fn login_refused(status: StatusCode, why: &str) -> Response {
    let message = format!(
        "<p class=\"error\">Not signed in: {}.</p>",
        html_escape(why)
    );
    login_form(status, &message, "/", false)
}

/// The longest `next` a login keeps (longer ones go to `/`): single sign-on holds it for each
/// login under way.
pub const MAX_NEXT: usize = 2048;

/// Where a login may send the browser: `next` when it is a path on this server, else `/`. A
/// local path starts with one `/` (`//host` and `/\host` are other hosts to a browser) and
/// holds only visible ASCII: browsers drop tabs and newlines from URLs, so `/\t/evil.example`
/// would become `//evil.example`, and a control character cannot be sent in `Location`.
pub fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && n.len() <= MAX_NEXT
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/",
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login` with `token=…&next=…` (the form): a new session, then `next`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_target(form.next.as_deref()).to_string();
    let hash = hash_token(form.token.trim());
    let user = match state.read(move |s| s.user_for_token(&hash)).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            let message = "<p class=\"error\">That token is not known here.</p>";
            return login_form(
                StatusCode::UNAUTHORIZED,
                message,
                &next,
                state.oidc().is_some(),
            );
        }
        Err(e) => return e.into_response(),
    };
    let id = match new_session_id() {
        Ok(id) => id,
        Err(e) => {
            return ApiError::internal(format!("no random bytes for a session: {e}"))
                .into_response()
        }
    };
    let (hash, now) = (hash_token(&id), now());
    let expires = now + SESSION_TTL.as_secs_f64();
    if let Err(e) = state
        .write(move |s| s.create_session(&hash, &user, now, expires))
        .await
    {
        return e.into_response();
    }
    let https = is_https(&headers, state.config().secure_cookies);
    (
        [(header::SET_COOKIE, session_cookie(Some(&id), https))],
        Redirect::to(&next),
    )
        .into_response()
}

/// `POST /logout`: ends the session in the store (the cookie alone would outlive a copy of it)
/// and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie_of(&headers) {
        let hash = hash_token(&id);
        if let Err(e) = state.write(move |s| s.delete_session(&hash)).await {
            return e.into_response();
        }
    }
    let https = is_https(&headers, state.config().secure_cookies);
    (
        [(header::SET_COOKIE, session_cookie(None, https))],
        Redirect::to("/login"),
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        for good in ["/", "/runs/r-1", "/experiments/e-1?x=%2F"] {
            assert_eq!(local_target(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n",
            "https://evil.example",
            "evil",
            "/caf\u{e9}",
            "/a b",
            "",
        ] {
            assert_eq!(local_target(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_target(None), "/");
        let long = format!("/{}", "a".repeat(MAX_NEXT));
        assert_eq!(
            local_target(Some(&long)),
            "/",
            "too long to keep for a login"
        );
    }
}
