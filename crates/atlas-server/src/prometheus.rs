//! `GET /metrics`: Prometheus text exposition of the user's running jobs, so an existing
//! Grafana can read Atlas: per run its CPU seconds, memory, GPU activity and phase (as a
//! label of an info series), and the server's own ingest count.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use atlas_store::RunFilter;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::auth::User;
use crate::error::ApiError;
use crate::AppState;

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<AppState>,
    user: User,
) -> Result<impl IntoResponse, ApiError> {
    let name = user.principal();
    let running = state
        .read(move |s| {
            let running = RunFilter {
                visible_to: Some(name),
                status: Some(atlas_spec::record::RunStatus::Running),
                ..RunFilter::default()
            };
            let mut out = Vec::new();
            for run in s.runs_filtered(&running)? {
                let latest = s.latest_sample(&run.id)?;
                out.push((run, latest));
            }
            Ok(out)
        })
        .await?;
    let mut text = String::new();
    let families = [
        (
            "atlas_job_cpu_seconds_total",
            "counter",
            "CPU seconds of the job's processes in the current phase",
        ),
        (
            "atlas_job_memory_rss_bytes",
            "gauge",
            "RSS of the job's processes",
        ),
        (
            "atlas_job_gpu_sm_percent",
            "gauge",
            "SM activity of the job's first GPU",
        ),
        (
            "atlas_job_phase_info",
            "gauge",
            "the phase a running job is in (1)",
        ),
        (
            "atlas_job_last_sample_timestamp_seconds",
            "gauge",
            "when the job was last sampled",
        ),
    ];
    for (family, kind, help) in families {
        let _ = writeln!(text, "# HELP {family} {help}\n# TYPE {family} {kind}");
        for (run, latest) in &running {
            let Some((_, p)) = latest else { continue };
            let labels = format!(
                "run=\"{}\",workflow=\"{}\",target=\"{}\"",
                label(&run.id),
                label(&run.workflow),
                label(&run.target)
            );
            let value = match family {
                "atlas_job_cpu_seconds_total" => Some(p.cpu_seconds),
                "atlas_job_memory_rss_bytes" => Some(p.rss_bytes as f64),
                "atlas_job_gpu_sm_percent" => p.gpu_percent,
                "atlas_job_last_sample_timestamp_seconds" => Some(p.time),
                _ => None,
            };
            if family == "atlas_job_phase_info" {
                let phase = p.phase.as_deref().unwrap_or("");
                let _ = writeln!(text, "{family}{{{labels},phase=\"{}\"}} 1", label(phase));
            } else if let Some(value) = value {
                let _ = writeln!(text, "{family}{{{labels}}} {value}");
            }
        }
    }
    let _ = writeln!(
        text,
        "# HELP atlas_server_ingested_records_total records ingested through the API since start\n# TYPE atlas_server_ingested_records_total counter\natlas_server_ingested_records_total {}",
        state.inner.ingested.load(Ordering::Relaxed)
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
