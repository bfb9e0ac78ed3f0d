//! The web dashboard: one HTML shell, a script and a style sheet, embedded in the binary
//! (nothing from a CDN). The script draws the page for the path (runs, a run, an experiment,
//! targets) from the API and keeps it live with server-sent events. The login page takes a
//! token and sets the session cookie.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::{hash_token, PageUser, COOKIE};
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
    token: Option<String>,
    /// A dashboard path to go to after logging in.
    next: Option<String>,
}

/// `GET /login`: the form; with `?token=…` (a link the demo prints) it logs in at once and
/// goes to `next` (a path on this server) or the runs.
pub async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let next = q
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".into());
    match q.token {
        Some(token) => log_in(&state, token.trim(), &next).await,
        None => Html(LOGIN.replace("{{message}}", "")).into_response(),
    }
}

/// `POST /login` with `token=…` (a form).
pub async fn login(State(state): State<AppState>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let token = text
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(|t| t.replace('+', " "))
        .unwrap_or_default();
    log_in(&state, token.trim(), "/").await
}

async fn log_in(state: &AppState, token: &str, next: &str) -> Response {
    let hash = hash_token(token);
    let valid = !token.is_empty()
        && matches!(
            state.read(move |s| s.user_for_token(&hash)).await,
            Ok(Some(_))
        );
    // A token is `atl_` and hex: nothing else may reach the cookie header.
    let clean = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid || !clean {
        let page = LOGIN.replace(
            "{{message}}",
            "<p class=\"error\">That token is not known here.</p>",
        );
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
        )],
        Redirect::to(next),
    )
        .into_response()
}

/// `POST /logout`: forgets the session.
pub async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
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
