//! Every PostgreSQL read and small write but ingest and users: runs (with [`RunFilter`] as
//! one query), experiments, a run's detail, launch figures and the live reads.
//! Each is the SQLite statement of the same name in PostgreSQL's dialect (`$n` parameters,
//! `GREATEST`/`LEAST`, `jsonb` casts of the JSON text columns).

use std::collections::BTreeMap;

use atlas_spec::record::{AgentProcess, GpuSample};
use postgres::types::ToSql;
use postgres::{Client, Row};

use crate::model::{
    ExperimentDetail, ExperimentRow, HostRow, MetricPoint, MetricSummary, NewRun, PhaseRow,
    RunDetail, RunFilter, RunRow, RunSpec, SeriesPoint,
};
use crate::summary::summarise_gpus;
use crate::StoreError;

const RUN_COLUMNS: &str = "id, experiment_id, workflow, target, repetition, status, cause, submitted_at, started_at, wall_seconds, host, source, gpu, run_dir, labels, agent_cpu_seconds, scheduler_id, figures, agent_version, node, owner, windows, tenant, storage";

/// A status word of a row as its enum; a word this Atlas does not know is an error.
fn status<T: std::str::FromStr<Err = atlas_spec::record::UnknownStatus>>(
    r: &Row,
    column: usize,
) -> Result<T, StoreError> {
    r.get::<_, &str>(column)
        .parse()
        .map_err(|e: atlas_spec::record::UnknownStatus| StoreError::Corrupt(e.to_string()))
}

fn run_row(r: &Row) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: r.get(0),
        experiment_id: r.get(1),
        workflow: r.get(2),
        target: r.get(3),
        repetition: r.get(4),
        status: status(r, 5)?,
        cause: r.get(6),
        submitted_at: r.get(7),
        started_at: r.get(8),
        wall_seconds: r.get(9),
        host: r.get(10),
        source: r.get(11),
        gpu: r.get(12),
        run_dir: r.get(13),
        labels: serde_json::from_str(r.get(14)).unwrap_or_default(),
        agent_cpu_seconds: r.get(15),
        scheduler_id: r.get(16),
        figures: serde_json::from_str(r.get(17)).unwrap_or_default(),
        agent_version: r.get(18),
        node: r.get(19),
        owner: r.get(20),
        windows: serde_json::from_str(r.get(21)).unwrap_or_default(),
        tenant: r.get(22),
        storage: serde_json::from_str(r.get(23)).unwrap_or_default(),
    })
}

pub(super) fn create_experiment(
    c: &mut Client,
    id: &str,
    workflow: &str,
    labels: &serde_json::Value,
    created_at: f64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO experiments (id, created_at, workflow, labels) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&id, &created_at, &workflow, &labels.to_string()],
    )?;
    Ok(())
}

/// What run `run` was started with (schema 7).
pub(super) fn run_spec(c: &mut Client, run: &str) -> Result<RunSpec, StoreError> {
    let row = c
        .query_opt("SELECT spec, inputs FROM runs WHERE id = $1", &[&run])?
        .ok_or_else(|| StoreError::NoSuchRun(run.into()))?;
    let inputs: Option<String> = row.get(1);
    Ok(RunSpec {
        workflow: row.get(0),
        inputs: inputs.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

pub(super) fn create_run(c: &mut Client, run: &NewRun) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO runs (id, experiment_id, workflow, target, repetition, run_dir, labels, status, submitted_at, owner, spec, inputs, tenant, cores, gpus)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted', $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (id) DO UPDATE SET experiment_id = $2, target = $4, repetition = $5, run_dir = $6, labels = $7, submitted_at = $8, owner = $9, spec = $10, inputs = $11, tenant = $12, cores = $13, gpus = $14",
        &[&run.id, &run.experiment_id, &run.workflow, &run.target, &run.repetition, &run.run_dir, &run.labels.to_string(), &run.submitted_at, &run.owner, &run.spec, &run.inputs.as_ref().map(|v| v.to_string()), &run.tenant, &run.cores, &run.gpus],
    )?;
    Ok(())
}

pub(super) fn finish_run(
    c: &mut Client,
    id: &str,
    status: atlas_spec::record::RunStatus,
    cause: &str,
    ended_at: f64,
) -> Result<(), StoreError> {
    let status = status.as_str();
    let mut tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE runs SET status = $2, cause = $3, ended_at = $4 WHERE id = $1",
        &[&id, &status, &cause, &ended_at],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchRun(id.into()));
    }
    // The run is over: no phase of it is still running or waiting.
    tx.execute(
        "UPDATE phases SET status = CASE status WHEN 'running' THEN $2 ELSE 'skipped' END,
             cause = CASE status WHEN 'running' THEN $3 ELSE cause END
         WHERE run_id = $1 AND status IN ('running', 'pending')",
        &[&id, &crate::summary::ended_phase(status), &cause],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn agent_process(
    c: &mut Client,
    run: &str,
) -> Result<Option<(String, AgentProcess)>, StoreError> {
    // The latest agent: a wake by an agent started again names it, else the runStart.
    let rows = c.query(
        "SELECT body FROM events WHERE run_id = $1 AND type IN ('runStart', 'wake') ORDER BY seq DESC",
        &[&run],
    )?;
    Ok(rows
        .iter()
        .find_map(|r| crate::summary::agent_of(r.get::<_, &str>(0))))
}

pub(super) fn set_differences(
    c: &mut Client,
    experiment: &str,
    differences: &[String],
) -> Result<(), StoreError> {
    let text = serde_json::to_string(differences).unwrap_or_else(|_| "[]".into());
    let n = c.execute(
        "UPDATE experiments SET differences = $2 WHERE id = $1",
        &[&experiment, &text],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchExperiment(experiment.into()));
    }
    Ok(())
}

pub(super) fn record_launch(
    c: &mut Client,
    run: &str,
    scheduler_id: Option<&str>,
    submitted_at: Option<f64>,
    figures: &BTreeMap<String, f64>,
) -> Result<(), StoreError> {
    let figures = serde_json::to_string(figures).unwrap_or_else(|_| "{}".into());
    // `||` of two jsonb objects merges them by key, as SQLite's json_patch does here.
    let n = c.execute(
        "UPDATE runs SET scheduler_id = coalesce($2, scheduler_id), figures = (figures::jsonb || $3::text::jsonb)::text,
             submitted_at = coalesce($4, submitted_at) WHERE id = $1",
        &[&run, &scheduler_id, &figures, &submitted_at],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchRun(run.into()));
    }
    Ok(())
}

/// The runs `filter` selects, newest first, in one query.
pub(super) fn runs_filtered(c: &mut Client, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE true");
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, value: Box<dyn ToSql + Sync>| {
        args.push(value);
        *sql += &clause.replace('?', &format!("${}", args.len()));
    };
    if let Some(user) = &filter.visible_to {
        let clause = format!(" AND {}", crate::tenancy::visible_sql("runs", "?::text"));
        arg(&mut sql, &clause, Box::new(user.clone()));
    }
    if let Some(status) = &filter.status {
        arg(
            &mut sql,
            " AND status = ?",
            Box::new(status.as_str().to_string()),
        );
    }
    for (key, value) in &filter.labels {
        arg(
            &mut sql,
            " AND (labels::jsonb ->> ?::text)",
            Box::new(key.clone()),
        );
        arg(&mut sql, " = ?", Box::new(value.clone()));
    }
    if let Some(from) = filter.submitted_from {
        arg(&mut sql, " AND submitted_at >= ?", Box::new(from));
    }
    if let Some(before) = filter.submitted_before {
        arg(&mut sql, " AND submitted_at < ?", Box::new(before));
    }
    sql += " ORDER BY submitted_at DESC, id";
    if let Some(limit) = filter.limit {
        arg(
            &mut sql,
            " LIMIT ?",
            Box::new(limit.min(i64::MAX as usize) as i64),
        );
    }
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    c.query(&sql, &params)?.iter().map(run_row).collect()
}

/// The experiments, newest first; with a user, only those whose runs they all see.
pub(super) fn experiments(
    c: &mut Client,
    user: Option<&str>,
) -> Result<Vec<ExperimentRow>, StoreError> {
    let visible = crate::tenancy::visible_sql("r", "$1");
    let rows = c.query(
        &format!("SELECT e.id, e.workflow, e.created_at, e.labels, e.differences,
                (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id),
                (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id AND r.status = 'succeeded'),
                (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id AND r.status = 'failed'),
                (SELECT coalesce(string_agg(t.target, ',' ORDER BY t.first), '') FROM
                    (SELECT target, min(submitted_at) AS first FROM runs r WHERE r.experiment_id = e.id GROUP BY target) t)
         FROM experiments e
         WHERE $1::text IS NULL OR (EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id)
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id
                               AND NOT {visible}))
         ORDER BY e.created_at DESC, e.id"),
        &[&user],
    )?;
    Ok(rows
        .iter()
        .map(|r| ExperimentRow {
            id: r.get(0),
            workflow: r.get(1),
            created_at: r.get(2),
            labels: serde_json::from_str(r.get(3)).unwrap_or_default(),
            differences: serde_json::from_str(r.get(4)).unwrap_or_default(),
            runs: r.get(5),
            succeeded: r.get(6),
            failed: r.get(7),
            targets: r.get(8),
        })
        .collect())
}

/// One experiment with its runs; a unique prefix of the id is enough.
pub(super) fn experiment(c: &mut Client, id: &str) -> Result<ExperimentDetail, StoreError> {
    let all = experiments(c, None)?;
    let matches: Vec<&ExperimentRow> = all
        .iter()
        .filter(|e| e.id == id || e.id.starts_with(id))
        .collect();
    let experiment = match matches.as_slice() {
        [only] => (*only).clone(),
        [] => return Err(StoreError::NoSuchExperiment(id.into())),
        many => many
            .iter()
            .find(|e| e.id == id)
            .map(|e| (*e).clone())
            .ok_or_else(|| StoreError::AmbiguousExperiment(id.into()))?,
    };
    let run_list = c
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE experiment_id = $1 ORDER BY submitted_at, id"
            ),
            &[&experiment.id],
        )?
        .iter()
        .map(run_row)
        .collect::<Result<_, _>>()?;
    Ok(ExperimentDetail {
        experiment,
        run_list,
    })
}

/// The run whose id is `prefix`, or the only one that starts with it.
fn find_run_id(c: &mut Client, prefix: &str) -> Result<String, StoreError> {
    let like = format!("{}%", prefix.replace(['%', '_', '\\'], ""));
    let ids: Vec<String> = c
        .query(
            "SELECT id FROM runs WHERE id = $1 OR id LIKE $2 ORDER BY id = $1 DESC LIMIT 2",
            &[&prefix, &like],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    match ids.as_slice() {
        [only] => Ok(only.clone()),
        [exact, _] if exact == prefix => Ok(exact.clone()),
        [_, _] => Err(StoreError::AmbiguousRun(prefix.into())),
        _ => Err(StoreError::NoSuchRun(prefix.into())),
    }
}

/// One run with its phases, their app metrics and GPU figures.
pub(super) fn run(c: &mut Client, id: &str) -> Result<RunDetail, StoreError> {
    let id = find_run_id(c, id)?;
    let run = c
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            &[&id],
        )?
        .map(|r| run_row(&r))
        .ok_or_else(|| StoreError::NoSuchRun(id.clone()))??;
    let mut phases: Vec<PhaseRow> = c
        .query(
            "SELECT p.name, p.position, p.status, p.started_at, p.wall_seconds, p.exit_code, p.signal, p.cause,
                    p.cpu_user_seconds, p.cpu_system_seconds, p.max_rss_bytes,
                    p.job_peak_rss, p.job_read_max - p.job_read_min, p.job_write_max - p.job_write_min, p.job_samples,
                    p.job_max_processes, p.job_max_processes_at, p.job_gpu_samples, p.io
             FROM phases p WHERE p.run_id = $1 ORDER BY p.position NULLS FIRST",
            &[&id],
        )?
        .iter()
        .map(phase_row)
        .collect::<Result<_, _>>()?;
    for phase in &mut phases {
        phase.metrics = metric_summaries(c, &id, &phase.name)?;
        if phase.gpu.is_some() {
            phase.gpu = gpu_summary(c, &id, &phase.name)?;
        }
    }
    let hosts = c
        .query(
            "SELECT body::jsonb ->> 'host' AS h, count(*),
                max((body::jsonb ->> 'cpuUserSeconds')::float8 + (body::jsonb ->> 'cpuSystemSeconds')::float8),
                max((body::jsonb ->> 'rssBytes')::bigint), max((body::jsonb ->> 'processes')::bigint)
             FROM events WHERE run_id = $1 AND type = 'hostSample' GROUP BY h ORDER BY h",
            &[&id],
        )?
        .iter()
        .map(|r| {
            Ok(HostRow {
                host: r.try_get(0)?,
                samples: r.try_get(1)?,
                cpu_seconds: r.try_get(2)?,
                peak_rss_bytes: r.try_get(3)?,
                peak_processes: r.try_get(4)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(RunDetail { run, phases, hosts })
}

/// A phase row; `gpu` is a placeholder (`Some`) when the phase had GPU samples.
fn phase_row(r: &Row) -> Result<PhaseRow, StoreError> {
    Ok(PhaseRow {
        name: r.get(0),
        position: r.get(1),
        status: status(r, 2)?,
        started_at: r.get(3),
        wall_seconds: r.get(4),
        exit_code: r.get(5),
        signal: r.get(6),
        cause: r.get(7),
        cpu_user_seconds: r.get(8),
        cpu_system_seconds: r.get(9),
        max_rss_bytes: r.get(10),
        peak_job_rss_bytes: r.get(11),
        read_bytes: r.get(12),
        write_bytes: r.get(13),
        samples: r.get(14),
        peak_processes: r.get(15),
        peak_processes_at: r.get(16),
        io: r
            .get::<_, Option<&str>>(18)
            .and_then(|t| serde_json::from_str(t).ok()),
        metrics: Vec::new(),
        gpu: (r.get::<_, i64>(17) > 0).then(Default::default),
    })
}

fn metric_summaries(
    c: &mut Client,
    run: &str,
    phase: &str,
) -> Result<Vec<MetricSummary>, StoreError> {
    let rows = c.query(
        "SELECT name, count(*), min(value), max(value), avg(value),
                (SELECT value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.phase = m.phase AND m2.name = m.name ORDER BY seq LIMIT 1),
                (SELECT value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.phase = m.phase AND m2.name = m.name ORDER BY seq DESC LIMIT 1)
         FROM metrics m WHERE run_id = $1 AND phase = $2 GROUP BY run_id, phase, name ORDER BY name",
        &[&run, &phase],
    )?;
    Ok(rows
        .iter()
        .map(|r| MetricSummary {
            name: r.get(0),
            count: r.get(1),
            min: r.get(2),
            max: r.get(3),
            mean: r.get(4),
            first: r.get(5),
            last: r.get(6),
        })
        .collect())
}

fn gpu_summary(
    c: &mut Client,
    run: &str,
    phase: &str,
) -> Result<Option<crate::GpuSummary>, StoreError> {
    let per_sample: Vec<Vec<GpuSample>> = c
        .query(
            "SELECT gpus FROM samples WHERE run_id = $1 AND phase = $2 AND scope = 'job' AND gpus IS NOT NULL ORDER BY seq",
            &[&run, &phase],
        )?
        .iter()
        .filter_map(|r| serde_json::from_str(r.get(0)).ok())
        .collect();
    Ok(summarise_gpus(&per_sample))
}

const POINT_COLUMNS: &str = "seq, time, cpu_user_seconds + cpu_system_seconds, rss_bytes, (gpus::jsonb -> 0 ->> 'smPercent')::float8, phase";

fn point(r: &Row) -> (i64, SeriesPoint) {
    (
        r.get(0),
        SeriesPoint {
            time: r.get(1),
            cpu_seconds: r.get::<_, Option<f64>>(2).unwrap_or(0.0),
            rss_bytes: r.get::<_, Option<i64>>(3).unwrap_or(0),
            gpu_percent: r.get(4),
            phase: r.get(5),
        },
    )
}

/// SQLite's `series_between` in one statement: the first and last job sample of the range
/// (index walks from either end), then one lateral lookup per evenly spaced point.
pub(super) fn series_between(
    c: &mut Client,
    run: &str,
    from: Option<f64>,
    to: Option<f64>,
    points: usize,
) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
    let (from, to) = (from.unwrap_or(f64::MIN), to.unwrap_or(f64::MAX));
    let steps = points.max(2) as i64 - 1;
    let rows = c.query(
        &format!(
            "WITH ends AS (
                SELECT (SELECT seq FROM samples WHERE run_id = $1 AND scope = 'job' AND time >= $2 AND time <= $3 ORDER BY seq LIMIT 1) AS first,
                       (SELECT seq FROM samples WHERE run_id = $1 AND scope = 'job' AND time >= $2 AND time <= $3 ORDER BY seq DESC LIMIT 1) AS last)
             SELECT DISTINCT ON (p.seq) {POINT_COLUMNS} FROM ends, generate_series(0::bigint, $4::bigint) k,
                 LATERAL (SELECT * FROM samples WHERE run_id = $1 AND scope = 'job'
                          AND seq >= ends.first + (ends.last - ends.first) * k / $4 ORDER BY seq LIMIT 1) p
             WHERE ends.first IS NOT NULL ORDER BY p.seq"
        ),
        &[&run, &from, &to, &steps],
    )?;
    Ok(rows.iter().map(point).collect())
}

pub(super) fn samples_after(
    c: &mut Client,
    run: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
    let rows = c.query(
        &format!("SELECT {POINT_COLUMNS} FROM samples WHERE run_id = $1 AND seq > $2 AND scope = 'job' ORDER BY seq LIMIT $3"),
        &[&run, &after, &(limit as i64)],
    )?;
    Ok(rows.iter().map(point).collect())
}

pub(super) fn latest_sample(
    c: &mut Client,
    run: &str,
) -> Result<Option<(i64, SeriesPoint)>, StoreError> {
    Ok(c
        .query_opt(
            &format!("SELECT {POINT_COLUMNS} FROM samples WHERE run_id = $1 AND scope = 'job' ORDER BY seq DESC LIMIT 1"),
            &[&run],
        )?
        .map(|r| point(&r)))
}

pub(super) fn metrics_after(
    c: &mut Client,
    run: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<MetricPoint>, StoreError> {
    let rows = c.query(
        "SELECT seq, time, phase, name, value FROM metrics WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&run, &after, &(limit as i64)],
    )?;
    Ok(rows
        .iter()
        .map(|r| MetricPoint {
            seq: r.get(0),
            time: r.get(1),
            phase: r.get(2),
            name: r.get(3),
            value: r.get(4),
        })
        .collect())
}
