//! Storage services: their operator pushes each one's status (`POST /api/v1/services/status`,
//! JSON lines of [`ServiceRecord`], at most [`crate::MAX_BATCH_BYTES`]) and the dashboard's
//! services page reads them (`GET /api/v1/services`: each service's latest status and how long
//! ago it was heard from). They belong to the user whose token pushed them, or to their tenant
//! when the token is scoped to one; a viewer sees them by the runs' rule.

use atlas_spec::service_record::ServiceRecord;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::{now, User};
use crate::error::ApiError;
use crate::AppState;

/// The most services one push may carry.
pub const MAX_SERVICES: usize = 100;

/// Parses and checks a batch: every non-empty line must be a service's status within bounds,
/// observed at most [`crate::batch::MAX_AHEAD_SECONDS`] after `now`.
fn parse_batch(body: &[u8], now: f64) -> Result<Vec<ServiceRecord>, ApiError> {
    crate::batch::parse(
        body,
        "a service's status",
        MAX_SERVICES,
        |r: &ServiceRecord| {
            r.check()?;
            crate::batch::not_ahead(r.time, now)
        },
    )
}

/// `POST /api/v1/services/status`.
pub async fn push(
    State(state): State<AppState>,
    user: User,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let records = parse_batch(&body, now())?;
    let count = records.len();
    let tenant = crate::nodes::pushing_tenant(&state, &user).await?;
    let kept = state
        .write(move |s| s.put_services(&user.0, tenant.as_deref(), &records, now()))
        .await?;
    Ok(Json(json!({"services": count, "kept": kept})))
}

/// `GET /api/v1/services`.
pub async fn list(State(state): State<AppState>, user: User) -> Result<Json<Value>, ApiError> {
    let viewer = user.principal();
    let services = state.read(move |s| s.services(&viewer)).await?;
    Ok(Json(json!({"now": now(), "services": services})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn a_bad_status_is_named_by_line_and_field() {
        let now = 1_900_000_000.0;
        let good = r#"{"place":"local","name":"scratch","time":1900000000,"spec":{},"status":{"phase":"Healthy"}}"#;
        assert_eq!(parse_batch(good.as_bytes(), now).unwrap().len(), 1);
        let body = format!("{good}\n\n{}\n", good.replace("scratch", "../x"));
        let err = parse_batch(body.as_bytes(), now).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with("line 3: `name`"), "{}", err.message);
        let err = parse_batch(b"{\"name\": 1}", now).unwrap_err();
        assert!(
            err.message.contains("not a service's status"),
            "{}",
            err.message
        );
        let err = parse_batch(good.as_bytes(), now - 3600.0).unwrap_err();
        assert!(
            err.message.contains("ahead of the server's clock"),
            "{}",
            err.message
        );
        let many = format!("{good}\n").repeat(MAX_SERVICES + 1);
        let err = parse_batch(many.as_bytes(), now).unwrap_err();
        assert!(err.message.contains("lines in one push"), "{}", err.message);
    }
}
