//! [`ApiError`]: an error as the API answers it, a status and `{"error": message}`. Its own
//! module so that the API's handlers, the authentication and ingest all depend on it, and not
//! on each other.

use atlas_store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error as the API answers it: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// More fields for a client to act on (`record`, `field`, …), beside `error`.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds a field to the answer beside `error`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiError {
        self.details.insert(key.into(), value.into());
        self
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }

    pub(crate) fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("no {what} (or not yours)"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NoSuchRun(id) => ApiError::not_found(&format!("run `{id}`")),
            StoreError::NoSuchExperiment(id) => ApiError::not_found(&format!("experiment `{id}`")),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), json!(self.message));
        (self.status, Json(body)).into_response()
    }
}
