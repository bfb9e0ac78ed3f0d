//! `POST /api/v1/records`: an agent's records as JSON lines (the spool's own format), at most
//! [`crate::MAX_BATCH_BYTES`] (else 413). A line that is not a record, or a record with a
//! field the record rule refuses (`atlas_spec::record::Record::check`: names, bounds, control characters), gives 400 naming it (`record`, `line`, `field`);
//! a run the token's user cannot see gives 404, as one that does not exist; one of their
//! tenant's that they do not own gives 403 (its owner's agent pushes it). Ingest is the
//! store's idempotent path, so a batch sent twice (an agent that did not see the answer) adds
//! nothing; the answer comes after the transaction has committed, so an acknowledged record
//! survives the server being killed. At most [`crate::INGEST_PERMITS`] batches are written at
//! once; the rest wait.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use atlas_spec::record::{LineError, Record};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::User;
use crate::error::ApiError;
use crate::AppState;

/// Parses the batch: every non-empty line must be a record.
pub(crate) fn parse_batch(body: &[u8]) -> Result<Vec<Record>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .enumerate()
        .map(|(index, (i, line))| {
            Record::parse_line(line.as_bytes()).map_err(|e| match e {
                LineError::Syntax(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("line {}: not a record: {e}", i + 1),
                )
                .with("line", i + 1),
                LineError::Refused(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("record {} (line {}): {e}", index + 1, i + 1),
                )
                .with("record", index + 1)
                .with("line", i + 1)
                .with("field", e.field()),
            })
        })
        .collect()
}

/// The run an array task belongs to (`r-1-t3` → `r-1`).
fn parent_of(run: &str) -> Option<&str> {
    let (parent, task) = run.rsplit_once("-t")?;
    (!task.is_empty() && task.bytes().all(|b| b.is_ascii_digit())).then_some(parent)
}

/// Whether `run` (`PARENT-tN`) is a task of its parent's array, as the parent's stored
/// workflow says: pushed records cannot make runs for tasks the workflow does not have.
fn is_task_of_array(store: &dyn atlas_store::Store, parent: &str, run: &str) -> bool {
    let index = run
        .rsplit_once("-t")
        .and_then(|(_, n)| n.parse::<u32>().ok());
    let spec = store.run_spec(parent).ok().and_then(|s| s.workflow);
    let array = spec
        .and_then(|text| atlas_spec::parse_workflow("workflow.yaml", &text).ok())
        .and_then(|w| w.spec.scheduling.array);
    matches!((array, index), (Some(array), Some(index)) if array.contains(index))
}

/// Whether `user` may push records of `run` (`typed`: the id as the records name it): a run
/// they cannot see (another tenant's, or theirs in a tenant they were taken out of) is 404, as
/// if it did not exist; one of their tenant's that another member owns is 403.
fn may_push(
    store: &dyn atlas_store::Store,
    user: &User,
    (run, owner): (&str, Option<String>),
    typed: &str,
) -> Result<Result<(), (StatusCode, String)>, atlas_store::StoreError> {
    if store.visible_run_id(&user.principal(), run)?.as_deref() != Some(run) {
        return Ok(Err((StatusCode::NOT_FOUND, format!("no run `{typed}`"))));
    }
    if user.1.is_some() && !may_run_with_token(store, user)? {
        return Ok(Err((
            StatusCode::FORBIDDEN,
            "this token reads only (a viewer's, or its user's role in its tenant is viewer now): it does not push records".to_string(),
        )));
    }
    if owner.as_deref() != Some(user.0.as_str()) {
        return Ok(Err((
            StatusCode::FORBIDDEN,
            format!(
                "run `{typed}` is pushed by its owner's agent, not by another member of its tenant"
            ),
        )));
    }
    Ok(Ok(()))
}

/// Whether a scoped token may push: the lesser of its role and its user's in its tenant runs.
fn may_run_with_token(
    store: &dyn atlas_store::Store,
    user: &User,
) -> Result<bool, atlas_store::StoreError> {
    let allowed = user.allowed(store.memberships(&user.0)?);
    Ok(allowed.first().is_some_and(|(_, role)| role.can_run()))
}

/// New lifecycle records (not stored yet) for runs that have ended: an ended run's state is
/// not rewritten by a late record with a lower sequence number (its owner could otherwise
/// change its status, wall time or directory size after the fact). `Some` names the first.
fn rewrites_an_ended_run(
    store: &dyn atlas_store::Store,
    lifecycle: &std::collections::BTreeMap<String, Vec<u64>>,
) -> Result<Option<String>, atlas_store::StoreError> {
    for (run, seqs) in lifecycle {
        let known = store.known_event_seqs(run, seqs)?;
        if seqs.iter().all(|s| known.contains(s)) {
            continue;
        }
        let ended = match store.run(run) {
            Ok(detail) => detail.run.status.is_over(),
            Err(atlas_store::StoreError::NoSuchRun(_)) => false,
            Err(e) => return Err(e),
        };
        if ended {
            return Ok(Some(run.to_string()));
        }
    }
    Ok(None)
}

/// `POST /api/v1/records`.
pub async fn records(
    State(state): State<AppState>,
    user: User,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let records = parse_batch(&body)?;
    let runs: BTreeSet<String> = records.iter().map(|r| r.run.clone()).collect();
    let mut lifecycle: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for r in records.iter().filter(|r| r.body.is_lifecycle()) {
        lifecycle.entry(r.run.clone()).or_default().push(r.seq);
    }
    let caller = user.clone();
    let unclaimed = state
        .read(move |s| {
            let mut unclaimed = Vec::new();
            for run in &runs {
                // One look-up of the owner per run (of the parent for an unknown array task).
                if let Some(owner) = s.run_owner(run)? {
                    if let Err(refused) = may_push(s, &caller, (run, owner), run)? {
                        return Ok(Err(refused));
                    }
                    continue;
                }
                // An array task the agent reports before `atlas run` has registered it: the
                // parent must be the caller's before anything is said of its array.
                let parent = match parent_of(run) {
                    Some(p) => s.run_owner(p)?.map(|owner| (p, owner)),
                    None => None,
                };
                let Some((parent, owner)) = parent else {
                    return Ok(Err((StatusCode::NOT_FOUND, format!("no run `{run}`"))));
                };
                if let Err(refused) = may_push(s, &caller, (parent, owner), run)? {
                    return Ok(Err(refused));
                }
                if !is_task_of_array(s, parent, run) {
                    return Ok(Err((
                        StatusCode::BAD_REQUEST,
                        format!("`{run}` is not a task of the array of `{parent}`"),
                    )));
                }
                unclaimed.push(run.clone());
            }
            if let Some(run) = rewrites_an_ended_run(s, &lifecycle)? {
                return Ok(Err((
                    StatusCode::CONFLICT,
                    format!("run `{run}` has ended: new records of its lifecycle (start, phases, end, freezes) are not taken; samples and metrics are"),
                )));
            }
            Ok(Ok(unclaimed))
        })
        .await?
        .map_err(|(status, message)| ApiError::new(status, message))?;
    let _permit = state
        .inner
        .ingest_permits
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let count = records.len() as u64;
    let name = user.0.clone();
    let stats = state
        .write(move |s| {
            let stats = s.ingest(&records)?;
            for run in &unclaimed {
                s.claim_run(run, &name)?;
            }
            Ok(stats)
        })
        .await?;
    state
        .inner
        .ingested
        .fetch_add(stats.inserted, Ordering::Relaxed);
    Ok(Json(json!({
        "records": count,
        "inserted": stats.inserted,
        "duplicates": stats.duplicates,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_is_named_and_task_runs_find_their_parent() {
        let good = r#"{"run":"r-1","seq":1,"time":1.0,"mono":0.0,"type":"signal","signal":15}"#;
        let body = format!("{good}\n\n{{\"run\": 3}}\n");
        let err = parse_batch(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message.starts_with("line 3: not a record"),
            "{}",
            err.message
        );
        assert_eq!(parse_batch(good.as_bytes()).unwrap().len(), 1);
        assert_eq!(parent_of("r-1a-t12"), Some("r-1a"));
        assert_eq!(parent_of("r-1a"), None);
        assert_eq!(parent_of("r-1a-t"), None);
    }
}
