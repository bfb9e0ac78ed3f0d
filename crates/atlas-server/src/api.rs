//! The REST API's read side: JSON for runs, phases, samples, app metrics, logs, experiments,
//! the comparison and targets. Every handler takes the [`User`] and answers 404 for a run or
//! experiment that is not theirs, as for one that does not exist.

use atlas_report::render::{render, Format};
use atlas_report::{Options, ReportError, Selection};
use atlas_store::{RunDetail, RunFilter, RunRow, SeriesPoint};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::User;
use crate::error::ApiError;
use crate::AppState;

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such page or API path (see /api/v1/openapi.json)",
    )
}

/// The user's run `id` (a unique prefix of one of *their* runs works, as on the command line).
/// Other users' runs are never looked at, and a 404 names only what the caller typed.
pub(crate) async fn owned_run(
    state: &AppState,
    user: &User,
    id: String,
) -> Result<RunDetail, ApiError> {
    let (owner, typed) = (user.principal(), id.clone());
    let detail = state
        .read(move |s| match s.visible_run_id(&owner, &id)? {
            Some(full) => s.run(&full).map(Some),
            None => Ok(None),
        })
        .await?;
    detail.ok_or_else(|| ApiError::not_found(&format!("run `{typed}`")))
}

/// `GET /api/v1/me`: the caller, their tenants and roles, and the rule that decides which runs
/// they see (the dashboard shows it when they see none).
pub async fn me(State(state): State<AppState>, user: User) -> Result<Json<Value>, ApiError> {
    let name = user.0.clone();
    let tenants = user.allowed(state.read(move |s| s.memberships(&name)).await?);
    let tenants: Vec<Value> = tenants
        .iter()
        .map(|(t, role)| json!({"name": t, "role": role.as_str()}))
        .collect();
    Ok(Json(json!({
        "user": user.0,
        "tenants": tenants,
        "token": user.1.as_ref().map(|scope| json!({"tenant": scope.tenant, "role": scope.role.as_str()})),
        "why": if user.1.is_some() { "This token is scoped to one tenant: it sees that tenant's runs (while its user is a member), at most with its role, and nothing else." } else { "A run belongs to the user who started it (ATLAS_USER, else USER, where `atlas run` ran) and to their tenant (--tenant or ATLAS_TENANT when they are in several). You see your tenants' runs and your own runs of no tenant." },
    })))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    /// Only runs with this status.
    status: Option<atlas_spec::record::RunStatus>,
    /// Only runs with this label, `key=value`.
    label: Option<String>,
    /// Unix seconds: only runs submitted at or after this time.
    from: Option<f64>,
    /// Unix seconds: only runs submitted before this time.
    to: Option<f64>,
    /// At most this many, newest first (default 200).
    limit: Option<usize>,
}

/// `GET /api/v1/runs`: the user's runs, newest first, filtered by the store's query.
pub async fn runs(
    State(state): State<AppState>,
    user: User,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<RunRow>>, ApiError> {
    let labels = match &q.label {
        None => Vec::new(),
        Some(text) => match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => vec![(key.to_string(), value.to_string())],
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "label: expected key=value",
                ))
            }
        },
    };
    let filter = RunFilter {
        visible_to: Some(user.principal()),
        status: q.status,
        labels,
        submitted_from: q.from,
        submitted_before: q.to,
        limit: Some(q.limit.unwrap_or(200)),
    };
    Ok(Json(state.read(move |s| s.runs_filtered(&filter)).await?))
}

/// `GET /api/v1/runs/{id}`: the run with its phases and their summaries.
/// `GET /api/v1/runs/{id}`: the run with its phases, and each phase's command as the run
/// ran it (`commands`: from the workflow kept with it; empty for runs kept without one).
pub async fn run(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let detail = owned_run(&state, &user, id).await?;
    let full = detail.run.id.clone();
    let spec = state.read(move |s| s.run_spec(&full)).await?;
    let commands: Vec<Value> = spec
        .workflow
        .and_then(|yaml| atlas_spec::parse_workflow("workflow.yaml", &yaml).ok())
        .map(|w| {
            w.spec
                .phases
                .iter()
                .map(|p| json!({"phase": p.name, "run": p.run}))
                .collect()
        })
        .unwrap_or_default();
    let mut value = serde_json::to_value(&detail).map_err(ApiError::internal)?;
    value["commands"] = json!(commands);
    Ok(Json(value))
}

#[derive(Deserialize)]
pub struct SamplesQuery {
    /// Unix seconds: only samples at or after this time.
    from: Option<f64>,
    /// Unix seconds: only samples at or before this time.
    to: Option<f64>,
    /// At most this many points, evenly spaced (default 500, at most 5000).
    width: Option<usize>,
}

/// One point of a chart.
#[derive(Serialize)]
pub struct Point {
    pub seq: i64,
    #[serde(flatten)]
    pub point: SeriesPoint,
}

/// `GET /api/v1/runs/{id}/samples`: job samples in a time range, downsampled to `width`.
pub async fn samples(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<SamplesQuery>,
) -> Result<Json<Vec<Point>>, ApiError> {
    let run = owned_run(&state, &user, id).await?.run.id;
    let width = q.width.unwrap_or(500).clamp(2, 5000);
    let points = state
        .read(move |s| s.series_between(&run, q.from, q.to, width))
        .await?;
    Ok(Json(
        points
            .into_iter()
            .map(|(seq, point)| Point { seq, point })
            .collect(),
    ))
}

/// `GET /api/v1/runs/{id}/metrics`: every app metric value the job printed, in order.
pub async fn metrics(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<Vec<atlas_store::MetricPoint>>, ApiError> {
    let run = owned_run(&state, &user, id).await?.run.id;
    Ok(Json(
        state
            .read(move |s| s.metrics_after(&run, 0, 100_000))
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct LogQuery {
    /// The phase (default: the last one that started).
    phase: Option<String>,
    /// How many lines from the end (default 40, at most 1000).
    lines: Option<usize>,
}

/// `GET /api/v1/runs/{id}/log`: the end of a phase's output (stdout and stderr).
pub async fn log(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let detail = owned_run(&state, &user, id).await?;
    let phase = q
        .phase
        .or_else(|| {
            detail
                .phases
                .iter()
                .rfind(|p| p.started_at.is_some())
                .map(|p| p.name.clone())
        })
        .unwrap_or_default();
    if !detail.phases.iter().any(|p| p.name == phase) {
        return Err(ApiError::not_found(&format!("phase `{phase}` in this run")));
    }
    let lines = q.lines.unwrap_or(40).min(1000);
    // Only a phase recorded for this run, and only through RunDir, which refuses any name
    // that is not a plain file name of its own.
    let dir = detail.run.run_dir.as_deref().map(atlas_spec::RunDir::new);
    let read = |stream: atlas_spec::Stream| {
        dir.as_ref()
            .and_then(|d| atlas_agent::rundir_io::open_log(d, &phase, stream).ok())
            .and_then(|file| tail_lines(file, lines))
            .unwrap_or_default()
    };
    Ok(Json(
        json!({"phase": phase, "stdout": read(atlas_spec::Stream::Stdout), "stderr": read(atlas_spec::Stream::Stderr)}),
    ))
}

/// The last `lines` lines of a log file, reading at most its last 1 MiB.
fn tail_lines(mut file: std::fs::File, lines: usize) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const MAX_TAIL_BYTES: u64 = 1 << 20;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX_TAIL_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_TAIL_BYTES).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Some(all[all.len().saturating_sub(lines)..].join("\n"))
}

/// The user's experiment `id` (one whose runs are all theirs; a unique prefix among *their*
/// experiments works). A 404 names only what the caller typed.
async fn owned_experiment(
    state: &AppState,
    user: &User,
    id: String,
) -> Result<atlas_store::ExperimentDetail, ApiError> {
    let (owner, typed) = (user.principal(), id.clone());
    let detail = state
        .read(move |s| match s.visible_experiment_id(&owner, &id)? {
            Some(full) => s.experiment(&full).map(Some),
            None => Ok(None),
        })
        .await?;
    detail.ok_or_else(|| ApiError::not_found(&format!("experiment `{typed}`")))
}

/// `GET /api/v1/experiments`: the user's experiments (those whose runs are all theirs),
/// newest first.
pub async fn experiments(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<atlas_store::ExperimentRow>>, ApiError> {
    let name = user.principal();
    Ok(Json(
        state.read(move |s| s.visible_experiments(&name)).await?,
    ))
}

/// `GET /api/v1/experiments/{id}`: the experiment and its runs.
pub async fn experiment(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<atlas_store::ExperimentDetail>, ApiError> {
    Ok(Json(owned_experiment(&state, &user, id).await?))
}

#[derive(Deserialize)]
pub struct CompareQuery {
    baseline: Option<String>,
    unit: Option<String>,
}

async fn report(
    state: &AppState,
    user: &User,
    id: String,
    q: CompareQuery,
) -> Result<atlas_report::Report, ApiError> {
    let id = owned_experiment(state, user, id).await?.experiment.id;
    let options = Options {
        baseline: q.baseline,
        unit: q.unit,
        strict: false,
        prices: state.inner.prices.clone(),
        target_prices: state.target_prices(),
        by: atlas_report::GroupBy::Target,
    };
    let made = state
        .read(move |s| {
            Ok(atlas_report::load(s, &Selection::Experiment(id))
                .and_then(|loaded| atlas_report::compare(loaded, &options)))
        })
        .await?;
    made.map_err(|e| match e {
        ReportError::Input(m) | ReportError::NotLikeForLike(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
        }
        ReportError::Store(e) => ApiError::from(e),
    })
}

/// `GET /api/v1/experiments/{id}/comparison`: the same JSON as `atlas compare --format json`.
pub async fn comparison(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Result<Response, ApiError> {
    let report = report(&state, &user, id, q).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        render(&report, Format::Json),
    )
        .into_response())
}

/// `GET /api/v1/experiments/{id}/report`: the HTML report, as `atlas compare --format html`,
/// with its own policy ([`crate::layers::REPORT_CSP`]): the experiment page frames it.
pub async fn report_html(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Result<Response, ApiError> {
    let report = report(&state, &user, id, q).await?;
    Ok((
        [
            (header::CONTENT_SECURITY_POLICY, crate::layers::REPORT_CSP),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        ],
        Html(render(&report, Format::Html)),
    )
        .into_response())
}

/// `GET /api/v1/targets`: the targets of the directory the server was started in.
pub async fn targets(State(state): State<AppState>, _user: User) -> Json<Value> {
    Json(serde_json::to_value(&state.inner.targets).unwrap_or_default())
}
