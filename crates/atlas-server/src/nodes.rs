//! Node samples: node agents push them (`POST /api/v1/nodes/samples`, JSON lines of
//! [`NodeRecord`], at most [`crate::MAX_BATCH_BYTES`]); the dashboard's nodes page reads them
//! (`GET /api/v1/nodes?minutes=N`: each node's latest sample and its use averaged over time
//! buckets, at most [`MAX_COLUMNS`] per node). Node samples belong to the user whose token
//! pushed them, and a user reads their own only (the store filters by owner in the query).

use atlas_spec::node_record::NodeRecord;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{now, User};
use crate::batch::Refusal;
use crate::error::ApiError;
use crate::AppState;

/// Buckets per node at most (the heat map's columns).
pub const MAX_COLUMNS: f64 = 120.0;
/// The shortest bucket (a node agent pushes every few seconds).
pub const MIN_BUCKET_SECONDS: f64 = 5.0;
/// The most buckets one answer holds, all nodes together.
pub const MAX_BUCKETS: usize = 120_000;
/// The longest window, in minutes (the store keeps a week).
pub const MAX_MINUTES: f64 = 7.0 * 24.0 * 60.0;

/// Parses and checks a batch: every non-empty line must be a node record within bounds, taken
/// at most [`crate::batch::MAX_AHEAD_SECONDS`] after `now` and within the week kept before it.
fn parse_batch(body: &[u8], now: f64) -> Result<Vec<NodeRecord>, ApiError> {
    crate::batch::parse(body, "a node sample", usize::MAX, |record: &NodeRecord| {
        record.check()?;
        crate::batch::not_ahead(record.time, now)?;
        if record.time < now - atlas_store::NODE_RETENTION_SECONDS {
            return Err(Refusal {
                message: "`time` is older than the week the server keeps".into(),
                field: Some("time"),
            });
        }
        Ok(())
    })
}

/// `POST /api/v1/nodes/samples`.
pub async fn ingest(
    State(state): State<AppState>,
    user: User,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let samples = parse_batch(&body, now())?;
    let count = samples.len();
    let tenant = pushing_tenant(&state, &user).await?;
    let _permit = state
        .inner
        .ingest_permits
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let inserted = state
        .write(move |s| s.ingest_node_samples(&user.0, tenant.as_deref(), &samples, now()))
        .await?;
    Ok(Json(json!({"samples": count, "inserted": inserted})))
}

/// The tenant node samples pushed by `user` belong to: that of their token's scope, while
/// they may run there (a viewer's token, or a member's who left, is refused); `None` for a
/// user's own token (the samples are theirs alone).
pub(crate) async fn pushing_tenant(
    state: &AppState,
    user: &User,
) -> Result<Option<String>, ApiError> {
    let Some(scope) = user.1.clone() else {
        return Ok(None);
    };
    let name = user.0.clone();
    let allowed = user.allowed(state.read(move |s| s.memberships(&name)).await?);
    match allowed.first() {
        Some((tenant, role)) if role.can_run() => Ok(Some(tenant.clone())),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token may not push to tenant `{}`: it is read-only, or its user is no longer a member who runs there",
                scope.tenant
            ),
        )),
    }
}

#[derive(Deserialize)]
pub struct Window {
    /// The last N minutes (default 60).
    minutes: Option<String>,
}

/// `GET /api/v1/nodes`.
pub async fn nodes(
    State(state): State<AppState>,
    user: User,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    let minutes = match window.minutes.as_deref() {
        None => 60.0,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m > 0.0 && *m <= MAX_MINUTES)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("`minutes` must be a number of minutes in (0, {MAX_MINUTES}]"),
                )
            })?,
    };
    let now = now();
    let since = now - minutes * 60.0;
    let bucket = (minutes * 60.0 / MAX_COLUMNS).max(MIN_BUCKET_SECONDS);
    let viewer = user.principal();
    let (latest, buckets) = state
        .read(move |s| {
            Ok((
                s.latest_node_samples(&viewer, since)?,
                s.node_buckets(&viewer, since, bucket, MAX_BUCKETS)?,
            ))
        })
        .await?;
    Ok(Json(json!({
        "now": now,
        "since": since,
        "bucketSeconds": bucket,
        "nodes": latest,
        "buckets": buckets,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_sample_is_named_by_line_and_field() {
        let now = 1_900_000_000.0;
        let good = r#"{"target":"cluster","node":"n1","time":1900000000,"cores":0.5}"#;
        assert_eq!(parse_batch(good.as_bytes(), now).unwrap().len(), 1);
        let body = format!("{good}\n\n{}\n", good.replace("n1", "../n1"));
        let err = parse_batch(body.as_bytes(), now).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with("line 3: `node`"), "{}", err.message);
        let err = parse_batch(b"{\"node\": 1}", now).unwrap_err();
        assert!(err.message.contains("not a node sample"), "{}", err.message);
        let err = parse_batch(good.as_bytes(), now - 3600.0).unwrap_err();
        assert!(
            err.message.contains("ahead of the server's clock"),
            "{}",
            err.message
        );
        let err = parse_batch(good.as_bytes(), now + 8.0 * 86_400.0).unwrap_err();
        assert!(
            err.message.contains("older than the week"),
            "{}",
            err.message
        );
    }
}
