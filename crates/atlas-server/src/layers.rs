//! What every response passes through on its way out: errors made by axum itself (an
//! extractor's rejection, 405, 413 from the body limit, a bad query string) rewritten into the
//! API's JSON shape, so that a client never has to parse plain text.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

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
            format!("method not allowed on this path (allowed: {allow})")
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is too large: a record batch is at most {} bytes",
            crate::MAX_BATCH_BYTES
        ),
        _ if text.is_empty() => reason,
        _ => text,
    }
}
