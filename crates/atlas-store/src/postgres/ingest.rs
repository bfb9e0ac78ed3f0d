//! Ingest into PostgreSQL: SQLite's ingest (`sqlite.rs`: `insert`, `replay`, `apply_event`)
//! ported statement by statement, with the same [`PhaseSummary`] and lifecycle rule, so the two
//! stores give the same rows for any arrival order (the store test suite checks).
//!
//! What differs is how rows get in and who may write at once:
//! - each kind of row (samples, metrics, events) goes in as one `INSERT … SELECT FROM
//!   unnest($1, $2, …) ON CONFLICT DO NOTHING RETURNING run_id, seq` with one array per
//!   column, so a batch is one round trip per kind, and the returned keys say which records
//!   were new (the first of a key within a batch, as SQLite counts them);
//! - the transaction first takes an advisory lock per run (`pg_advisory_xact_lock`, in run
//!   order, so no two ingests wait on each other in a circle): ingests of one run take turns
//!   across connections and servers, and each sees what the one before it committed, as
//!   SQLite's single writer does. Ingests of different runs go on together.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use atlas_spec::record::{Record, RecordBody};
use postgres::types::ToSql;
use postgres::Transaction;

use crate::model::IngestStats;
use crate::summary::{windows, PhaseSummary, LIFECYCLE_TYPES};
use crate::StoreError;

/// The second key of the per-run advisory lock (the first is the run id's hash).
const RUN_LOCK_SEED: i64 = 0x61746c6173;

/// Ingests `records`; see the module doc.
pub(super) fn ingest(
    client: &mut postgres::Client,
    records: &[Record],
) -> Result<IngestStats, StoreError> {
    let mut tx = client.transaction()?;
    let runs: BTreeSet<&str> = records.iter().map(|r| r.run.as_str()).collect();
    for run in &runs {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
            &[run, &RUN_LOCK_SEED],
        )?;
    }
    let new = insert_all(&mut tx, records)?;
    let mut stats = IngestStats::default();
    let mut summaries: Vec<PhaseSummary> = Vec::new();
    let mut lifecycle: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (record, is_new) in records.iter().zip(&new) {
        if *is_new {
            stats.inserted += 1;
            PhaseSummary::add(&mut summaries, record);
        } else {
            stats.duplicates += 1;
        }
        if record.body.is_lifecycle() {
            lifecycle.entry(&record.run).or_default().push(record.seq);
        }
    }
    // Summaries first: a phase started in this batch is then rebuilt from all its samples.
    for s in &summaries {
        apply_summary(&mut tx, s)?;
    }
    for (run, fresh) in &lifecycle {
        replay(&mut tx, run, fresh)?;
    }
    tx.commit()?;
    Ok(stats)
}

/// Which table a record goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Samples,
    Metrics,
    Events,
}

fn table_of(body: &RecordBody) -> Table {
    match body {
        RecordBody::Sample { .. } | RecordBody::NodeSample { .. } => Table::Samples,
        RecordBody::Metric { .. } => Table::Metrics,
        _ => Table::Events,
    }
}

/// Inserts every record; for each, whether it was new (the first of its key in the store).
fn insert_all(tx: &mut Transaction<'_>, records: &[Record]) -> Result<Vec<bool>, StoreError> {
    let mut new = vec![false; records.len()];
    for table in [Table::Samples, Table::Metrics, Table::Events] {
        let of: Vec<(usize, &Record)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| table_of(&r.body) == table)
            .collect();
        if of.is_empty() {
            continue;
        }
        let rows: Vec<&Record> = of.iter().map(|(_, r)| *r).collect();
        let inserted = match table {
            Table::Samples => insert_samples(tx, &rows)?,
            Table::Metrics => insert_metrics(tx, &rows)?,
            Table::Events => insert_events(tx, &rows)?,
        };
        if inserted.len() == rows.len() {
            // All new (and so no key twice in the batch).
            of.iter().for_each(|(i, _)| new[*i] = true);
            continue;
        }
        let mut fresh: HashSet<(String, i64)> = inserted.into_iter().collect();
        for (i, r) in &of {
            // The first record of a key is the one inserted; a later one is a duplicate.
            new[*i] = fresh.remove(&(r.run.clone(), r.seq as i64));
        }
    }
    Ok(new)
}

/// The keys a `… RETURNING run_id, seq` statement inserted.
fn keys(rows: Vec<postgres::Row>) -> Vec<(String, i64)> {
    rows.into_iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The columns every row has: run id, seq, time, mono.
struct Keys {
    run: Vec<String>,
    seq: Vec<i64>,
    time: Vec<f64>,
    mono: Vec<f64>,
}

impl Keys {
    fn of(rows: &[&Record]) -> Keys {
        Keys {
            run: rows.iter().map(|r| r.run.clone()).collect(),
            seq: rows.iter().map(|r| r.seq as i64).collect(),
            time: rows.iter().map(|r| r.time).collect(),
            mono: rows.iter().map(|r| r.mono).collect(),
        }
    }
}

/// The sample columns, one array each (job samples leave the node columns empty and the
/// other way round, as SQLite's two statements do).
#[derive(Default)]
struct SampleColumns {
    scope: Vec<&'static str>,
    phase: Vec<Option<String>>,
    cpu_user: Vec<Option<f64>>,
    cpu_system: Vec<Option<f64>>,
    rss: Vec<Option<i64>>,
    read: Vec<Option<i64>>,
    write: Vec<Option<i64>>,
    threads: Vec<Option<i64>>,
    processes: Vec<Option<i64>>,
    cgroup: Vec<Option<i64>>,
    gpus: Vec<Option<String>>,
    load1: Vec<Option<f64>>,
    available: Vec<Option<i64>>,
    busy: Vec<Option<f64>>,
}

impl SampleColumns {
    fn push(&mut self, body: &RecordBody) {
        let job = match body {
            RecordBody::Sample {
                phase,
                cpu_user_seconds,
                cpu_system_seconds,
                rss_bytes,
                read_bytes,
                write_bytes,
                threads,
                processes,
                cgroup_memory_bytes,
                gpus,
            } => {
                let gpus =
                    (!gpus.is_empty()).then(|| serde_json::to_string(gpus).unwrap_or_default());
                self.phase.push(phase.clone());
                self.cpu_user.push(Some(*cpu_user_seconds));
                self.cpu_system.push(Some(*cpu_system_seconds));
                self.rss.push(Some(*rss_bytes as i64));
                self.read.push(Some(*read_bytes as i64));
                self.write.push(Some(*write_bytes as i64));
                self.threads.push(Some(i64::from(*threads)));
                self.processes.push(Some(i64::from(*processes)));
                self.cgroup.push(cgroup_memory_bytes.map(|b| b as i64));
                self.gpus.push(gpus);
                true
            }
            _ => {
                self.phase.push(None);
                self.cpu_user.push(None);
                self.cpu_system.push(None);
                self.rss.push(None);
                self.read.push(None);
                self.write.push(None);
                self.threads.push(None);
                self.processes.push(None);
                self.cgroup.push(None);
                self.gpus.push(None);
                false
            }
        };
        self.scope.push(if job { "job" } else { "node" });
        match body {
            RecordBody::NodeSample {
                load1,
                memory_available_bytes,
                cpu_busy_fraction,
                ..
            } => {
                self.load1.push(Some(*load1));
                self.available.push(Some(*memory_available_bytes as i64));
                self.busy.push(Some(*cpu_busy_fraction));
            }
            _ => {
                self.load1.push(None);
                self.available.push(None);
                self.busy.push(None);
            }
        }
    }
}

fn insert_samples(
    tx: &mut Transaction<'_>,
    rows: &[&Record],
) -> Result<Vec<(String, i64)>, StoreError> {
    let k = Keys::of(rows);
    let mut c = SampleColumns::default();
    rows.iter().for_each(|r| c.push(&r.body));
    let params: [&(dyn ToSql + Sync); 18] = [
        &k.run,
        &k.seq,
        &k.time,
        &k.mono,
        &c.scope,
        &c.phase,
        &c.cpu_user,
        &c.cpu_system,
        &c.rss,
        &c.read,
        &c.write,
        &c.threads,
        &c.processes,
        &c.cgroup,
        &c.gpus,
        &c.load1,
        &c.available,
        &c.busy,
    ];
    let inserted = tx.query(
        "INSERT INTO samples (run_id, seq, time, mono, scope, phase, cpu_user_seconds, cpu_system_seconds,
             rss_bytes, read_bytes, write_bytes, threads, processes, cgroup_memory_bytes, gpus, load1,
             memory_available_bytes, cpu_busy_fraction)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::text[], $6::text[],
             $7::float8[], $8::float8[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
             $13::bigint[], $14::bigint[], $15::text[], $16::float8[], $17::bigint[], $18::float8[])
         ON CONFLICT DO NOTHING RETURNING run_id, seq",
        &params,
    )?;
    Ok(keys(inserted))
}

fn insert_metrics(
    tx: &mut Transaction<'_>,
    rows: &[&Record],
) -> Result<Vec<(String, i64)>, StoreError> {
    let k = Keys::of(rows);
    let (mut phase, mut name, mut value) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        if let RecordBody::Metric {
            phase: p,
            name: n,
            value: v,
        } = &r.body
        {
            phase.push(p.as_str());
            name.push(n.as_str());
            value.push(*v);
        }
    }
    let inserted = tx.query(
        "INSERT INTO metrics (run_id, seq, time, mono, phase, name, value)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::text[], $6::text[], $7::float8[])
         ON CONFLICT DO NOTHING RETURNING run_id, seq",
        &[&k.run, &k.seq, &k.time, &k.mono, &phase, &name, &value],
    )?;
    Ok(keys(inserted))
}

fn insert_events(
    tx: &mut Transaction<'_>,
    rows: &[&Record],
) -> Result<Vec<(String, i64)>, StoreError> {
    let k = Keys::of(rows);
    let (mut kind, mut body) = (Vec::new(), Vec::new());
    for r in rows {
        let value = serde_json::to_value(&r.body).unwrap_or_default();
        kind.push(value["type"].as_str().unwrap_or_default().to_string());
        body.push(serde_json::to_string(&r.body).unwrap_or_default());
    }
    let inserted = tx.query(
        "INSERT INTO events (run_id, seq, time, mono, type, body)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::text[], $6::text[])
         ON CONFLICT DO NOTHING RETURNING run_id, seq",
        &[&k.run, &k.seq, &k.time, &k.mono, &kind, &body],
    )?;
    Ok(keys(inserted))
}

/// Folds a batch's summary into the phase's row (which its phaseStart made): SQLite's
/// `apply_summary`, with `GREATEST`/`LEAST` for SQLite's two-argument `max`/`min`.
fn apply_summary(tx: &mut Transaction<'_>, s: &PhaseSummary<'_>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE phases SET job_samples = job_samples + $3,
             job_peak_rss = GREATEST(coalesce(job_peak_rss, $4), $4),
             job_read_min = LEAST(coalesce(job_read_min, $5), $5), job_read_max = GREATEST(coalesce(job_read_max, $6), $6),
             job_write_min = LEAST(coalesce(job_write_min, $7), $7), job_write_max = GREATEST(coalesce(job_write_max, $8), $8),
             job_gpu_samples = job_gpu_samples + $9,
             job_max_processes_at = CASE WHEN $10 > coalesce(job_max_processes, -1) THEN $11
                 WHEN $10 = job_max_processes THEN LEAST(job_max_processes_at, $11) ELSE job_max_processes_at END,
             job_max_processes = GREATEST(coalesce(job_max_processes, $10), $10)
         WHERE run_id = $1 AND name = $2",
        &[&s.run, &s.phase, &s.samples, &s.peak_rss, &s.read.0, &s.read.1, &s.write.0, &s.write.1, &s.gpu_samples, &s.peak_processes.0, &s.peak_processes.1],
    )?;
    Ok(())
}

/// Applies every lifecycle event of `run` in sequence order (SQLite's `replay`): the run and
/// phase rows are the same for any arrival order, and a replay repairs them. Phase summaries
/// are rebuilt from the samples for the phases started in `fresh` (this batch).
fn replay(tx: &mut Transaction<'_>, run: &str, fresh: &[u64]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO runs (id, workflow, target, status, submitted_at)
         VALUES ($1, '', 'unknown', 'running', (SELECT min(time) FROM events WHERE run_id = $1))
         ON CONFLICT (id) DO UPDATE SET status = 'running' WHERE runs.status = 'submitted'",
        &[&run],
    )?;
    let events: Vec<Record> = tx
        .query(
            &format!(
                "SELECT seq, time, mono, body FROM events WHERE run_id = $1
             AND type IN ({LIFECYCLE_TYPES}) ORDER BY seq"
            ),
            &[&run],
        )?
        .into_iter()
        .filter_map(|row| {
            let body = serde_json::from_str(row.get::<_, &str>(3)).ok()?;
            Some(Record {
                run: run.to_string(),
                seq: row.get::<_, i64>(0) as u64,
                time: row.get(1),
                mono: row.get(2),
                body,
            })
        })
        .collect();
    // Nothing after the run's end changes it (as in SQLite's replay).
    for event in &events {
        apply_event(tx, event, fresh.contains(&event.seq))?;
        if matches!(event.body, RecordBody::RunEnd { .. }) {
            break;
        }
    }
    if events
        .iter()
        .any(|e| matches!(e.body, RecordBody::Frozen { .. }))
    {
        tx.execute(
            "UPDATE runs SET windows = $2 WHERE id = $1",
            &[&run, &windows(&events)],
        )?;
    }
    Ok(())
}

/// One lifecycle event applied to the run and phase rows (SQLite's `apply_event`).
fn apply_event(tx: &mut Transaction<'_>, r: &Record, fresh: bool) -> Result<(), StoreError> {
    match &r.body {
        RecordBody::RunStart {
            workflow,
            host,
            agent_version,
            source,
            gpu,
            phases,
            node,
            storage,
            ..
        } => {
            let node = (!node.is_empty()).then_some(node);
            let storage = serde_json::to_string(storage).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "INSERT INTO runs (id, workflow, target, status, submitted_at, started_at, host, agent_version, source, gpu, node, storage)
                 VALUES ($1, $2, 'unknown', 'running', $3, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET status = 'running', started_at = $3, submitted_at = LEAST(runs.submitted_at, $3),
                     workflow = CASE runs.workflow WHEN '' THEN $2 ELSE runs.workflow END, host = $4, agent_version = $5,
                     source = $6, gpu = $7, node = $8, storage = $9",
                &[&r.run, workflow, &r.time, host, agent_version, source, gpu, &node, &storage],
            )?;
            for (i, name) in phases.iter().enumerate() {
                tx.execute(
                    "INSERT INTO phases (run_id, name, position, status) VALUES ($1, $2, $3, 'pending')
                     ON CONFLICT (run_id, name) DO UPDATE SET position = $3",
                    &[&r.run, name, &(i as i64)],
                )?;
            }
        }
        RecordBody::PhaseStart { phase, index } => {
            tx.execute(
                "INSERT INTO phases (run_id, name, position, status, started_at) VALUES ($1, $2, $3, 'running', $4)
                 ON CONFLICT (run_id, name) DO UPDATE SET status = 'running', started_at = $4, position = $3",
                &[&r.run, phase, &i64::from(*index), &r.time],
            )?;
            if fresh {
                summarise_phase(tx, &r.run, phase)?;
            }
        }
        RecordBody::PhaseEnd {
            phase,
            status,
            exit_code,
            signal,
            cause,
            wall_seconds,
            cpu_user_seconds,
            cpu_system_seconds,
            max_rss_bytes,
            io,
        } => {
            let io = io.and_then(|io| serde_json::to_string(&io).ok());
            tx.execute(
                "INSERT INTO phases (run_id, name, status, wall_seconds, exit_code, signal, cause, cpu_user_seconds, cpu_system_seconds, max_rss_bytes, io)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (run_id, name) DO UPDATE SET status = $3, wall_seconds = $4, exit_code = $5, signal = $6, cause = $7,
                   cpu_user_seconds = $8, cpu_system_seconds = $9, max_rss_bytes = $10, io = $11",
                &[&r.run, phase, &status.as_str(), wall_seconds, &exit_code.map(i64::from), &signal.map(i64::from), &cause.as_ref().map(|c| c.to_string()), cpu_user_seconds, cpu_system_seconds, &(*max_rss_bytes as i64), &io],
            )?;
        }
        RecordBody::RunEnd {
            status,
            cause,
            wall_seconds,
            agent_cpu_seconds,
            run_dir_bytes,
        } => {
            tx.execute(
                "UPDATE runs SET status = $2, cause = $3, ended_at = $4, wall_seconds = $5, agent_cpu_seconds = $6, storage_bytes = $7 WHERE id = $1",
                &[&r.run, &status.as_str(), &cause.as_ref().map(|c| c.to_string()), &r.time, wall_seconds, agent_cpu_seconds, &run_dir_bytes.map(|b| b as f64)],
            )?;
        }
        RecordBody::Frozen { .. } => {
            tx.execute(
                "UPDATE runs SET status = 'frozen' WHERE id = $1 AND status = 'running'",
                &[&r.run],
            )?;
        }
        RecordBody::Wake { .. } => {
            tx.execute(
                "UPDATE runs SET status = 'running' WHERE id = $1 AND status = 'frozen'",
                &[&r.run],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// Samples ingested before their phase (a replayed spool): summarised now, from all of them.
fn summarise_phase(tx: &mut Transaction<'_>, run: &str, phase: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE phases SET (job_samples, job_peak_rss, job_read_min, job_read_max, job_write_min, job_write_max, job_gpu_samples) =
            (SELECT count(*), max(rss_bytes), min(read_bytes), max(read_bytes), min(write_bytes), max(write_bytes), count(gpus)
             FROM samples s WHERE s.run_id = $1 AND s.phase = $2 AND s.scope = 'job')
         WHERE run_id = $1 AND name = $2",
        &[&run, &phase],
    )?;
    tx.execute(
        "UPDATE phases SET (job_max_processes, job_max_processes_at) =
            (SELECT processes, time FROM samples s WHERE s.run_id = $1 AND s.phase = $2 AND s.scope = 'job'
             ORDER BY processes DESC, seq LIMIT 1)
         WHERE run_id = $1 AND name = $2",
        &[&run, &phase],
    )?;
    Ok(())
}
