//! What every request and response passes through:
//!
//! - [`same_origin`]: a state-changing request (anything but GET, HEAD, OPTIONS) made with the
//!   session cookie must come from the server's own pages (`Origin`, else `Referer`), so that
//!   another site cannot make a logged-in browser post; bearer-token requests are exempt (a
//!   browser cannot add that header cross-site without CORS, which the server never grants);
//! - [`json_errors`]: errors made by axum itself (an extractor's rejection, 405, 413 from the
//!   body limit, a bad query string) rewritten into the API's JSON shape;
//! - [`bounded_body`]: a request body is read whole, within a size and a time limit, before any
//!   handler sees it;
//! - [`security_headers`]: a Content-Security-Policy, frame and sniffing protection and a
//!   same-origin referrer policy on every response.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::is_https;
use crate::error::ApiError;
use crate::AppState;

/// How long a client has to send a request's whole body (after its head): a body trickled
/// in a byte at a time would otherwise hold its connection for ever.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads the request's body before any handler does: at most [`crate::MAX_BATCH_BYTES`]
/// (else 413) and within [`BODY_TIMEOUT`] (else 408, and the connection is closed).
/// A client that announces a body larger than the limit and waits (`Expect: 100-continue`,
/// as curl does for large bodies) is refused at once, before any of it is sent; one that
/// sends without waiting is read up to the limit and then refused, so it sees the 413 rather
/// than a connection closed under its upload.
pub async fn bounded_body(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let waits = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // Also refused at once: a body announced beyond what would be drained anyway.
    let over = |limit: usize| announced.is_some_and(|n| n > limit as u64);
    if (waits && over(crate::MAX_BATCH_BYTES)) || over(DRAIN_BYTES) {
        let mut answer = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large()).into_response();
        let close = HeaderValue::from_static("close");
        answer.headers_mut().insert(header::CONNECTION, close);
        return answer;
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, read_bounded(body)).await {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large()).into_response();
        }
        Ok(Err(e)) => {
            let message = format!("the request body could not be read: {e}");
            return ApiError::new(StatusCode::BAD_REQUEST, message).into_response();
        }
        Err(_) => {
            let message = format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            );
            let mut answer = ApiError::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
            let close = HeaderValue::from_static("close");
            answer.headers_mut().insert(header::CONNECTION, close);
            return answer;
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// How much of a too-large body is read (and dropped) before the 413: a client that sends a
/// body somewhat over the limit then reads its answer, instead of a connection reset for
/// the unread rest.
pub const DRAIN_BYTES: usize = 4 * crate::MAX_BATCH_BYTES;

/// The body, or `None` when it is over [`crate::MAX_BATCH_BYTES`].
async fn read_bounded(
    mut body: axum::body::Body,
) -> Result<Option<axum::body::Bytes>, axum::Error> {
    use http_body_util::BodyExt;
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len();
        if total > DRAIN_BYTES {
            break;
        }
        if total <= crate::MAX_BATCH_BYTES {
            kept.extend_from_slice(&data);
        }
    }
    Ok((total <= crate::MAX_BATCH_BYTES).then(|| kept.into()))
}

fn too_large() -> String {
    format!(
        "the request body is too large: a request body (a record batch, a form) is at most {} bytes",
        crate::MAX_BATCH_BYTES
    )
}

/// The dashboard's policy: its own script, style sheet, API and event stream; no inline
/// script or style (the pages have none), no plugins, no `<base>`, forms to itself only, and
/// never inside another site's frame. The report, which is framed by the experiment page and
/// has its style inline, sets [`REPORT_CSP`] instead.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The HTML comparison report's policy: no script at all, its inline style and inline SVG,
/// framed only by this server's own pages (`frame-ancestors` is what browsers obey; the
/// report's `X-Frame-Options: SAMEORIGIN` is for those that know only that).
pub const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// Sets the security headers on every response that has not set its own.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Refuses (403) a state-changing request without an `Authorization` header whose `Origin`
/// (or, lacking one, `Referer`) is not this server's own origin.
pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let expected = own_origin(headers, state.config().secure_cookies);
    let got = origin_of(headers);
    if expected.is_some() && got == expected {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "a {} from a browser must come from this server's own pages (Origin {}, expected {}); API clients send `Authorization: Bearer TOKEN`",
            request.method(),
            got.as_deref().unwrap_or("missing"),
            expected.as_deref().unwrap_or("unknown: no Host header"),
        ),
    )
    .into_response()
}

/// This server's origin as the browser sees it: the scheme (https under TLS, see
/// [`is_https`]) and the host the browser asked for (`X-Forwarded-Host` from a proxy, else
/// `Host`; a browser cannot set either cross-site).
fn own_origin(headers: &HeaderMap, secure_cookies: bool) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text("x-forwarded-host")
        .and_then(|h| h.split(',').next())
        .or_else(|| text("host"))?
        .trim();
    let scheme = if is_https(headers, secure_cookies) {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// Where the request comes from: `Origin` (`null` counts as none), else the scheme and host
/// of `Referer`.
fn origin_of(headers: &HeaderMap) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = text(header::ORIGIN) {
        return (origin != "null").then(|| origin.to_ascii_lowercase());
    }
    let referer = text(header::REFERER)?;
    let (scheme, rest) = referer.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}").to_ascii_lowercase())
}

/// How much of a plain-text error body is kept as the JSON message.
const MAX_ERROR_TEXT: usize = 16 << 10;

/// Error responses that are neither JSON nor an HTML page (the login page's 401) become
/// `{"error": message}`, with the original text as the message and its other headers kept.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json_or_html(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = message_for(status, &parts.headers, text);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers.iter() {
        answer.headers_mut().insert(name.clone(), value.clone());
    }
    answer
}

fn is_json_or_html(response: &Response) -> bool {
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    kind.starts_with("application/json") || kind.starts_with("text/html")
}

/// The message for an error axum made: its own text, said more plainly where it says little.
fn message_for(status: StatusCode, headers: &HeaderMap, text: String) -> String {
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = headers
                .get(header::ALLOW)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .unwrap_or("");
            if allow.is_empty() {
                "method not allowed on this path (the Allow header lists the methods)".to_string()
            } else {
                format!("method not allowed on this path (allowed: {allow})")
            }
        }
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ if text.is_empty() => reason,
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_origin_is_compared_with_the_host_the_browser_asked_for() {
        let direct = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(
            own_origin(&direct, false).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            own_origin(&direct, true).as_deref(),
            Some("https://127.0.0.1:8080")
        );
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "Atlas.example"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            own_origin(&proxied, false).as_deref(),
            Some("https://atlas.example")
        );
        let from = |pairs| origin_of(&headers(pairs));
        assert_eq!(
            from(&[("origin", "http://a:1")]).as_deref(),
            Some("http://a:1")
        );
        assert_eq!(
            from(&[("origin", "null"), ("referer", "http://a:1/")]),
            None
        );
        assert_eq!(
            from(&[("referer", "http://a:1/runs?x=1")]).as_deref(),
            Some("http://a:1")
        );
        assert_eq!(from(&[]), None);
    }
}
