//! [`SqliteStore`]: the store in one SQLite file (WAL mode, versioned migrations). Users and
//! sessions (`sqlite/users.rs`, `sqlite/sessions.rs`) and the live reads (`sqlite/live.rs`)
//! are functions over the connection that the `Store` impl below calls.

mod live;
mod nodes;
mod services;
mod sessions;
mod tenants;
mod tokens;
mod users;

use std::collections::BTreeMap;
use std::path::Path;

use atlas_spec::record::{AgentProcess, GpuSample, Record, RecordBody, RunStatus};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::model::{
    ExperimentDetail, ExperimentRow, HostRow, IngestStats, MetricPoint, MetricSummary, NewRun,
    PhaseRow, RunDetail, RunFilter, RunRow, RunSpec, SeriesPoint, UserRow,
};
use crate::schema::MIGRATIONS;
use crate::summary::{ended_phase, summarise_gpus, windows, PhaseSummary, LIFECYCLE_TYPES};
use crate::{NodeBucket, Quotas, Role, Store, StoreError, TenantRow, TokenRow, Usage};
use atlas_spec::node_record::NodeRecord;
use atlas_spec::service_record::ServiceRecord;

/// The store in a SQLite file.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    /// The file, as opened: errors name it.
    pub(crate) path: std::sync::Arc<str>,
}

/// Runs one store operation; a database error names the store it happened in.
fn named<T>(
    store: &str,
    operation: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    operation().map_err(|e| e.in_store(store))
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`. When it cannot be
    /// opened for writing because its file system is full or read-only, an up-to-date store is
    /// opened read-only instead, so it can still be listed and reported on (writes then fail,
    /// naming the store).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        match Self::open_writable(path) {
            Err(StoreError::Database { store, source }) if cannot_write(&source) => {
                let why = format!("{source}{}", free_space_note(path));
                match Self::open_read_only(path) {
                    Ok(mut read_only) => {
                        read_only.path = format!("{store} (opened read-only: {why})").into();
                        Ok(read_only)
                    }
                    Err(_) => Err(StoreError::Database {
                        store: format!("{store}{}", free_space_note(path)),
                        source,
                    }),
                }
            }
            other => other,
        }
    }

    /// A store that is only read: SQLite's `immutable` mode, which needs no WAL or
    /// shared-memory file (none can be made on a full disk).
    fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let name = path.display().to_string();
        let uri = format!(
            "file:{}?immutable=1",
            name.replace('?', "%3f").replace('#', "%23")
        );
        let conn = Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != MIGRATIONS.len() as i64 {
            return Err(StoreError::NotADatabase {
                path: name,
                reason: "not at this Atlas's schema version, and it cannot be migrated read-only"
                    .into(),
            });
        }
        Ok(SqliteStore {
            conn,
            path: name.as_str().into(),
        })
    }

    fn open_writable(path: &Path) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        // Only SQLite's own "not a database" is reported as such; anything else (a lock held
        // too long, a permission) is a database error with its own message.
        let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotADatabase {
                path: name.clone(),
                reason: e.to_string(),
            },
            _ => StoreError::Database {
                store: name.clone(),
                source: e,
            },
        };
        let conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(classify)?;
        set_wal(&conn).map_err(classify)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(classify)?;
        // No checkpoint when the last connection closes: that checkpoint fsyncs, deletes the
        // WAL, and the next `atlas` command creates it again with more fsyncs (six on the
        // launch path of `atlas run`). SQLite checkpoints as the WAL grows (1,000 pages), and
        // the store loses nothing the spool does not still hold: the agent's spool is fsynced
        // at the run's end and ingest is idempotent.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(classify)?;
        let mut store = SqliteStore {
            conn,
            path: name.as_str().into(),
        };
        store.migrate(&name).map_err(|e| e.in_store(&name))?;
        Ok(store)
    }

    /// Brings the schema up to date. Several processes may open a new database at once (an
    /// `atlas run` and an `atlas runs`): the version is read again under the write lock
    /// (`BEGIN IMMEDIATE`), so only one of them migrates and the others see its work.
    fn migrate(&mut self, name: &str) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(StoreError::TooNew {
                path: name.into(),
                found: version,
                known,
            });
        }
        if version == 0 {
            let tables: i64 =
                tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
            if tables > 0 {
                return Err(StoreError::NotADatabase {
                    path: name.into(),
                    reason: "it holds tables Atlas did not make".into(),
                });
            }
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        Ok(())
    }

    fn find_run_id(&self, prefix: &str) -> Result<String, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM runs WHERE id = ?1 OR id LIKE ?2 ORDER BY id = ?1 DESC LIMIT 2",
        )?;
        let ids: Vec<String> = stmt
            .query_map(
                params![prefix, format!("{}%", prefix.replace(['%', '_'], ""))],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [only] => Ok(only.clone()),
            [exact, _] if exact == prefix => Ok(exact.clone()),
            [_, _] => Err(StoreError::AmbiguousRun(prefix.into())),
            _ => Err(StoreError::NoSuchRun(prefix.into())),
        }
    }
}

/// Errors that mean "this file system takes no writes now" (full, read-only, I/O refused).
fn cannot_write(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
        )
    )
}

/// " (its file system has N bytes free)" when that is little, else nothing.
fn free_space_note(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return String::new();
    };
    // SAFETY: statvfs(3) on a NUL-terminated path into a zeroed struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_dir.as_ptr(), &mut stat) } != 0 {
        return String::new();
    }
    let free = stat.f_bavail as u64 * stat.f_frsize as u64;
    if free < 1 << 20 {
        format!(" (its file system has {free} bytes free)")
    } else {
        String::new()
    }
}

/// A status word of a row as its enum; a word this Atlas does not know is a conversion error.
fn parse_status<T: std::str::FromStr<Err = atlas_spec::record::UnknownStatus>>(
    r: &rusqlite::Row<'_>,
    column: usize,
) -> rusqlite::Result<T> {
    let word: String = r.get(column)?;
    word.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Switches to WAL (persistent in the file, so usually already on). Switching needs a lock
/// upgrade for which SQLite returns BUSY at once instead of waiting, so it is retried for a while.
fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut attempts = 0;
    loop {
        let mode: rusqlite::Result<String> =
            conn.query_row("PRAGMA journal_mode", [], |r| r.get(0));
        if mode.as_deref().is_ok_and(|m| m.eq_ignore_ascii_case("wal")) {
            return Ok(());
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && attempts < 200 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

const RUN_COLUMNS: &str = "id, experiment_id, workflow, target, repetition, status, cause, submitted_at, started_at, wall_seconds, host, source, gpu, run_dir, labels, agent_cpu_seconds, scheduler_id, figures, agent_version, node, owner, windows, tenant, storage";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let labels: String = r.get(14)?;
    Ok(RunRow {
        id: r.get(0)?,
        experiment_id: r.get(1)?,
        workflow: r.get(2)?,
        target: r.get(3)?,
        repetition: r.get(4)?,
        status: parse_status(r, 5)?,
        cause: r.get(6)?,
        submitted_at: r.get(7)?,
        started_at: r.get(8)?,
        wall_seconds: r.get(9)?,
        host: r.get(10)?,
        source: r.get(11)?,
        gpu: r.get(12)?,
        run_dir: r.get(13)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        agent_cpu_seconds: r.get(15)?,
        scheduler_id: r.get(16)?,
        figures: serde_json::from_str(&r.get::<_, String>(17)?).unwrap_or_default(),
        agent_version: r.get(18)?,
        node: r.get(19)?,
        owner: r.get(20)?,
        windows: serde_json::from_str(&r.get::<_, String>(21)?).unwrap_or_default(),
        tenant: r.get(22)?,
        storage: serde_json::from_str(&r.get::<_, String>(23)?).unwrap_or_default(),
    })
}

/// Folds the batch into the phase's row (which its phaseStart made).
fn apply_summary(tx: &Transaction<'_>, s: &PhaseSummary<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE phases SET job_samples = job_samples + ?3,
             job_peak_rss = max(coalesce(job_peak_rss, ?4), ?4),
             job_read_min = min(coalesce(job_read_min, ?5), ?5), job_read_max = max(coalesce(job_read_max, ?6), ?6),
             job_write_min = min(coalesce(job_write_min, ?7), ?7), job_write_max = max(coalesce(job_write_max, ?8), ?8),
             job_gpu_samples = job_gpu_samples + ?9,
             job_max_processes_at = CASE WHEN ?10 > coalesce(job_max_processes, -1) THEN ?11
                 WHEN ?10 = job_max_processes THEN min(job_max_processes_at, ?11) ELSE job_max_processes_at END,
             job_max_processes = max(coalesce(job_max_processes, ?10), ?10)
         WHERE run_id = ?1 AND name = ?2",
    )?
    .execute(params![s.run, s.phase, s.samples, s.peak_rss, s.read.0, s.read.1, s.write.0, s.write.1, s.gpu_samples, s.peak_processes.0, s.peak_processes.1])?;
    Ok(())
}

/// Inserts one record; true when it was new. Run and phase rows follow the events, and only
/// for new records, so a replay changes nothing.
fn insert(tx: &Transaction<'_>, r: &Record) -> rusqlite::Result<bool> {
    let inserted = match &r.body {
        RecordBody::Sample { phase, cpu_user_seconds, cpu_system_seconds, rss_bytes, read_bytes, write_bytes, threads, processes, cgroup_memory_bytes, gpus } => {
            let gpus = (!gpus.is_empty()).then(|| serde_json::to_string(gpus).unwrap_or_default());
            tx.prepare_cached(
                "INSERT INTO samples (run_id, seq, time, mono, scope, phase, cpu_user_seconds, cpu_system_seconds, rss_bytes, read_bytes, write_bytes, threads, processes, cgroup_memory_bytes, gpus)
                 VALUES (?1, ?2, ?3, ?4, 'job', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
            )?
            .execute(params![r.run, r.seq as i64, r.time, r.mono, phase, cpu_user_seconds, cpu_system_seconds, *rss_bytes as i64, *read_bytes as i64, *write_bytes as i64, threads, processes, cgroup_memory_bytes.map(|b| b as i64), gpus])?
        }
        RecordBody::NodeSample { load1, memory_total_bytes: _, memory_available_bytes, cpu_busy_fraction } => tx
            .prepare_cached(
                "INSERT INTO samples (run_id, seq, time, mono, scope, load1, memory_available_bytes, cpu_busy_fraction)
                 VALUES (?1, ?2, ?3, ?4, 'node', ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )?
            .execute(params![r.run, r.seq as i64, r.time, r.mono, load1, *memory_available_bytes as i64, cpu_busy_fraction])?,
        RecordBody::Metric { phase, name, value } => tx
            .prepare_cached("INSERT INTO metrics (run_id, seq, time, mono, phase, name, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING")?
            .execute(params![r.run, r.seq as i64, r.time, r.mono, phase, name, value])?,
        body => {
            let kind = serde_json::to_value(body).ok().and_then(|v| v["type"].as_str().map(String::from)).unwrap_or_default();
            let n = tx
                .prepare_cached("INSERT INTO events (run_id, seq, time, mono, type, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING")?
                .execute(params![r.run, r.seq as i64, r.time, r.mono, kind, serde_json::to_string(body).unwrap_or_default()])?;
            n
        }
    };
    Ok(inserted == 1)
}

/// Applies every lifecycle event of `run` in sequence order, whatever order they arrived in, so
/// the run and phase rows are the same for any arrival order and a replay repairs them. Phase
/// summaries are rebuilt from the samples for the phases started in `fresh` (this batch).
fn replay(tx: &Transaction<'_>, run: &str, fresh: &[u64]) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO runs (id, workflow, target, status, submitted_at)
         VALUES (?1, '', 'unknown', 'running', (SELECT min(time) FROM events WHERE run_id = ?1))
         ON CONFLICT (id) DO UPDATE SET status = 'running' WHERE runs.status = 'submitted'",
        params![run],
    )?;
    let events: Vec<Record> = tx
        .prepare_cached(&format!(
            "SELECT seq, time, mono, body FROM events WHERE run_id = ?1
             AND type IN ({LIFECYCLE_TYPES}) ORDER BY seq"
        ))?
        .query_map(params![run], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .filter_map(|row| {
            let (seq, time, mono, body) = row.ok()?;
            let body = serde_json::from_str(&body).ok()?;
            Some(Record {
                run: run.to_string(),
                seq: seq as u64,
                time,
                mono,
                body,
            })
        })
        .collect();
    // Nothing after the run's end changes it: a later runStart (a replayed or forged one)
    // does not reopen a finished run.
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
            "UPDATE runs SET windows = ?2 WHERE id = ?1",
            params![run, windows(&events)],
        )?;
    }
    Ok(())
}

fn apply_event(tx: &Transaction<'_>, r: &Record, fresh: bool) -> rusqlite::Result<()> {
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
                 VALUES (?1, ?2, 'unknown', 'running', ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET status = 'running', started_at = ?3, submitted_at = min(runs.submitted_at, ?3), workflow = CASE runs.workflow WHEN '' THEN ?2 ELSE runs.workflow END, host = ?4, agent_version = ?5, source = ?6, gpu = ?7, node = ?8, storage = ?9",
                params![r.run, workflow, r.time, host, agent_version, source, gpu, node, storage],
            )?;
            for (i, name) in phases.iter().enumerate() {
                tx.execute(
                    "INSERT INTO phases (run_id, name, position, status) VALUES (?1, ?2, ?3, 'pending') ON CONFLICT (run_id, name) DO UPDATE SET position = ?3",
                    params![r.run, name, i as i64],
                )?;
            }
        }
        RecordBody::PhaseStart { phase, index } => {
            tx.execute(
                "INSERT INTO phases (run_id, name, position, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)
                 ON CONFLICT (run_id, name) DO UPDATE SET status = 'running', started_at = ?4, position = ?3",
                params![r.run, phase, index, r.time],
            )?;
            if !fresh {
                return Ok(());
            }
            // Samples ingested before their phase (a replayed spool): summarise them now.
            tx.execute(
                "UPDATE phases SET (job_samples, job_peak_rss, job_read_min, job_read_max, job_write_min, job_write_max, job_gpu_samples) =
                    (SELECT count(*), max(rss_bytes), min(read_bytes), max(read_bytes), min(write_bytes), max(write_bytes), count(gpus)
                     FROM samples s WHERE s.run_id = ?1 AND s.phase = ?2 AND s.scope = 'job')
                 WHERE run_id = ?1 AND name = ?2",
                params![r.run, phase],
            )?;
            tx.execute(
                "UPDATE phases SET (job_max_processes, job_max_processes_at) =
                    (SELECT processes, time FROM samples s WHERE s.run_id = ?1 AND s.phase = ?2 AND s.scope = 'job'
                     ORDER BY processes DESC, seq LIMIT 1)
                 WHERE run_id = ?1 AND name = ?2",
                params![r.run, phase],
            )?;
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
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (run_id, name) DO UPDATE SET status = ?3, wall_seconds = ?4, exit_code = ?5, signal = ?6, cause = ?7,
                   cpu_user_seconds = ?8, cpu_system_seconds = ?9, max_rss_bytes = ?10, io = ?11",
                params![r.run, phase, status.as_str(), wall_seconds, exit_code, signal, cause.as_ref().map(|c| c.to_string()), cpu_user_seconds, cpu_system_seconds, *max_rss_bytes as i64, io],
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
                "UPDATE runs SET status = ?2, cause = ?3, ended_at = ?4, wall_seconds = ?5, agent_cpu_seconds = ?6, storage_bytes = ?7 WHERE id = ?1",
                params![r.run, status.as_str(), cause.as_ref().map(|c| c.to_string()), r.time, wall_seconds, agent_cpu_seconds, run_dir_bytes.map(|b| b as f64)],
            )?;
        }
        RecordBody::Frozen { .. } => {
            tx.execute(
                "UPDATE runs SET status = 'frozen' WHERE id = ?1 AND status = 'running'",
                params![r.run],
            )?;
        }
        RecordBody::Wake { .. } => {
            tx.execute(
                "UPDATE runs SET status = 'running' WHERE id = ?1 AND status = 'frozen'",
                params![r.run],
            )?;
        }
        _ => {}
    }
    Ok(())
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.to_string()
    }

    fn create_experiment(
        &mut self,
        id: &str,
        workflow: &str,
        labels: &serde_json::Value,
        created_at: f64,
    ) -> Result<(), StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            self.conn.execute(
                "INSERT INTO experiments (id, created_at, workflow, labels) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![id, created_at, workflow, labels.to_string()],
            )?;
            Ok(())
        })
    }

    fn create_run(&mut self, run: &NewRun) -> Result<(), StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            self.conn.execute(
                "INSERT INTO runs (id, experiment_id, workflow, target, repetition, run_dir, labels, status, submitted_at, owner, spec, inputs, tenant, cores, gpus)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'submitted', ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (id) DO UPDATE SET experiment_id = ?2, target = ?4, repetition = ?5, run_dir = ?6, labels = ?7, submitted_at = ?8, owner = ?9, spec = ?10, inputs = ?11, tenant = ?12, cores = ?13, gpus = ?14",
                params![run.id, run.experiment_id, run.workflow, run.target, run.repetition, run.run_dir, run.labels.to_string(), run.submitted_at, run.owner, run.spec, run.inputs.as_ref().map(|v| v.to_string()), run.tenant, run.cores, run.gpus],
            )?;
            Ok(())
        })
    }

    fn ingest(&mut self, records: &[Record]) -> Result<IngestStats, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let tx = self.conn.transaction()?;
            let mut stats = IngestStats::default();
            let mut summaries: Vec<PhaseSummary> = Vec::new();
            let mut lifecycle: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for record in records {
                if insert(&tx, record)? {
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
                apply_summary(&tx, s)?;
            }
            for (run, fresh) in &lifecycle {
                replay(&tx, run, fresh)?;
            }
            tx.commit()?;
            Ok(stats)
        })
    }

    fn finish_run(
        &mut self,
        id: &str,
        status: RunStatus,
        cause: &str,
        ended_at: f64,
    ) -> Result<(), StoreError> {
        let status = status.as_str();
        let store = self.path.clone();
        named(&store, move || {
            let n = self.conn.execute(
                "UPDATE runs SET status = ?2, cause = ?3, ended_at = ?4 WHERE id = ?1",
                params![id, status, cause, ended_at],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchRun(id.into()));
            }
            // The run is over: no phase of it is still running or waiting.
            self.conn.execute(
                "UPDATE phases SET status = CASE status WHEN 'running' THEN ?2 ELSE 'skipped' END,
                     cause = CASE status WHEN 'running' THEN ?3 ELSE cause END
                 WHERE run_id = ?1 AND status IN ('running', 'pending')",
                params![id, ended_phase(status), cause],
            )?;
            Ok(())
        })
    }

    fn run_spec(&self, run: &str) -> Result<RunSpec, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let row: Option<(Option<String>, Option<String>)> = self
                .conn
                .query_row(
                    "SELECT spec, inputs FROM runs WHERE id = ?1",
                    params![run],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (workflow, inputs) = row.ok_or_else(|| StoreError::NoSuchRun(run.into()))?;
            Ok(RunSpec {
                workflow,
                inputs: inputs.and_then(|t| serde_json::from_str(&t).ok()),
            })
        })
    }

    fn agent_process(&self, run: &str) -> Result<Option<(String, AgentProcess)>, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let mut stmt = self.conn.prepare_cached(
                "SELECT body FROM events WHERE run_id = ?1 AND type IN ('runStart', 'wake') ORDER BY seq DESC",
            )?;
            let bodies = stmt.query_map(params![run], |r| r.get::<_, String>(0))?;
            for body in bodies {
                if let Some(found) = crate::summary::agent_of(&body?) {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        })
    }

    fn set_differences(
        &mut self,
        experiment: &str,
        differences: &[String],
    ) -> Result<(), StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let text = serde_json::to_string(differences).unwrap_or_else(|_| "[]".into());
            let n = self.conn.execute(
                "UPDATE experiments SET differences = ?2 WHERE id = ?1",
                params![experiment, text],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchExperiment(experiment.into()));
            }
            Ok(())
        })
    }

    fn record_launch(
        &mut self,
        run: &str,
        scheduler_id: Option<&str>,
        submitted_at: Option<f64>,
        figures: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let figures = serde_json::to_string(figures).unwrap_or_else(|_| "{}".into());
            let n = self.conn.execute(
                "UPDATE runs SET scheduler_id = coalesce(?2, scheduler_id), figures = json_patch(figures, ?3), submitted_at = coalesce(?4, submitted_at) WHERE id = ?1",
                params![run, scheduler_id, figures, submitted_at],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchRun(run.into()));
            }
            Ok(())
        })
    }

    fn series(&self, run: &str, points: usize) -> Result<Vec<SeriesPoint>, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            Ok(live::series_between(&self.conn, run, None, None, points)?
                .into_iter()
                .map(|(_, point)| point)
                .collect())
        })
    }

    fn experiments(&self) -> Result<Vec<ExperimentRow>, StoreError> {
        let store = self.path.clone();
        named(&store, move || experiment_rows(&self.conn, None))
    }

    fn visible_experiments(&self, owner: &str) -> Result<Vec<ExperimentRow>, StoreError> {
        let store = self.path.clone();
        named(&store, move || experiment_rows(&self.conn, Some(owner)))
    }

    fn experiment(&self, id: &str) -> Result<ExperimentDetail, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let all = self.experiments()?;
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
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE experiment_id = ?1 ORDER BY submitted_at, id"
            ))?;
            let run_list = stmt
                .query_map([&experiment.id], run_row)?
                .collect::<Result<_, _>>()?;
            Ok(ExperimentDetail {
                experiment,
                run_list,
            })
        })
    }

    fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY submitted_at DESC, id"
            ))?;
            let rows = stmt.query_map([], run_row)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    fn run(&self, id: &str) -> Result<RunDetail, StoreError> {
        let store = self.path.clone();
        named(&store, move || {
            let id = self.find_run_id(id)?;
            let run = self
                .conn
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                    [&id],
                    run_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::NoSuchRun(id.clone()))?;
            let mut stmt = self.conn.prepare(
                "SELECT p.name, p.position, p.status, p.started_at, p.wall_seconds, p.exit_code, p.signal, p.cause,
                        p.cpu_user_seconds, p.cpu_system_seconds, p.max_rss_bytes,
                        p.job_peak_rss, p.job_read_max - p.job_read_min, p.job_write_max - p.job_write_min, p.job_samples,
                        p.job_max_processes, p.job_max_processes_at, p.io
                 FROM phases p WHERE p.run_id = ?1 ORDER BY p.position",
            )?;
            let mut phases: Vec<PhaseRow> = stmt
                .query_map([&id], |r| {
                    Ok(PhaseRow {
                        name: r.get(0)?,
                        position: r.get(1)?,
                        status: parse_status(r, 2)?,
                        started_at: r.get(3)?,
                        wall_seconds: r.get(4)?,
                        exit_code: r.get(5)?,
                        signal: r.get(6)?,
                        cause: r.get(7)?,
                        cpu_user_seconds: r.get(8)?,
                        cpu_system_seconds: r.get(9)?,
                        max_rss_bytes: r.get(10)?,
                        peak_job_rss_bytes: r.get(11)?,
                        read_bytes: r.get(12)?,
                        write_bytes: r.get(13)?,
                        samples: r.get(14)?,
                        peak_processes: r.get(15)?,
                        peak_processes_at: r.get(16)?,
                        io: r
                            .get::<_, Option<String>>(17)?
                            .and_then(|t| serde_json::from_str(&t).ok()),
                        metrics: Vec::new(),
                        gpu: None,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut metrics = self.conn.prepare(
                "SELECT name, count(*), min(value), max(value), avg(value),
                        (SELECT value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.phase = m.phase AND m2.name = m.name ORDER BY seq LIMIT 1),
                        (SELECT value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.phase = m.phase AND m2.name = m.name ORDER BY seq DESC LIMIT 1)
                 FROM metrics m WHERE run_id = ?1 AND phase = ?2 GROUP BY run_id, phase, name ORDER BY name",
            )?;
            for phase in &mut phases {
                phase.metrics = metrics
                    .query_map(params![id, phase.name], |r| {
                        Ok(MetricSummary {
                            name: r.get(0)?,
                            count: r.get(1)?,
                            min: r.get(2)?,
                            max: r.get(3)?,
                            mean: r.get(4)?,
                            first: r.get(5)?,
                            last: r.get(6)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
            }
            let mut gpus = self.conn.prepare(
                "SELECT gpus FROM samples WHERE run_id = ?1 AND phase = ?2 AND scope = 'job' AND gpus IS NOT NULL ORDER BY seq",
            )?;
            let mut gpu_samples = self
                .conn
                .prepare("SELECT job_gpu_samples FROM phases WHERE run_id = ?1 AND name = ?2")?;
            for phase in &mut phases {
                // Only phases whose samples had GPUs are read sample by sample.
                let with_gpus: i64 =
                    gpu_samples.query_row(params![id, phase.name], |r| r.get(0))?;
                if with_gpus == 0 {
                    continue;
                }
                let per_sample: Vec<Vec<GpuSample>> = gpus
                    .query_map(params![id, phase.name], |r| r.get::<_, String>(0))?
                    .filter_map(|text| text.ok().and_then(|t| serde_json::from_str(&t).ok()))
                    .collect();
                phase.gpu = summarise_gpus(&per_sample);
            }
            let hosts = self
                .conn
                .prepare(
                    "SELECT json_extract(body, '$.host') AS h, count(*),
                        max(json_extract(body, '$.cpuUserSeconds') + json_extract(body, '$.cpuSystemSeconds')),
                        max(json_extract(body, '$.rssBytes')), max(json_extract(body, '$.processes'))
                     FROM events WHERE run_id = ?1 AND type = 'hostSample' GROUP BY h ORDER BY h",
                )?
                .query_map([&id], |r| {
                    Ok(HostRow {
                        host: r.get(0)?,
                        samples: r.get(1)?,
                        cpu_seconds: r.get(2)?,
                        peak_rss_bytes: r.get(3)?,
                        peak_processes: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(RunDetail { run, phases, hosts })
        })
    }

    fn runs_filtered(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let store = self.path.clone();
        named(&store, move || runs_filtered(&self.conn, filter))
    }

    fn add_user(&mut self, name: &str, token_hash: &str, now: f64) -> Result<(), StoreError> {
        let store = self.path.clone();
        named(&store, || {
            users::add_user(&self.conn, name, token_hash, now)
        })
    }

    fn user_for_subject(&self, subject: &str) -> Result<Option<String>, StoreError> {
        named(&self.path, || users::user_for_subject(&self.conn, subject))
    }

    fn add_sso_user(
        &mut self,
        name: &str,
        subject: &str,
        token_hash: &str,
        now: f64,
    ) -> Result<(), StoreError> {
        named(&self.path, || {
            users::add_sso_user(&self.conn, name, subject, token_hash, now)
        })
    }

    fn user_for_token(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        named(&self.path, || users::user_for_token(&self.conn, token_hash))
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        named(&self.path, || users::users(&self.conn))
    }

    fn run_owner(&self, run: &str) -> Result<Option<Option<String>>, StoreError> {
        named(&self.path, || users::run_owner(&self.conn, run))
    }

    fn visible_run_id(&self, owner: &str, prefix: &str) -> Result<Option<String>, StoreError> {
        named(&self.path, || {
            users::visible_run_id(&self.conn, owner, prefix)
        })
    }

    fn visible_experiment_id(
        &self,
        owner: &str,
        prefix: &str,
    ) -> Result<Option<String>, StoreError> {
        named(&self.path, || {
            users::visible_experiment_id(&self.conn, owner, prefix)
        })
    }

    fn claim_run(&mut self, run: &str, owner: &str) -> Result<(), StoreError> {
        named(&self.path, || users::claim_run(&self.conn, run, owner))
    }

    fn create_session(
        &mut self,
        id_hash: &str,
        user: &str,
        now: f64,
        expires_at: f64,
    ) -> Result<(), StoreError> {
        let store = self.path.clone();
        named(&store, || {
            sessions::create_session(&mut self.conn, id_hash, user, now, expires_at)
        })
    }

    fn session_user(&self, id_hash: &str, now: f64) -> Result<Option<String>, StoreError> {
        named(&self.path, || {
            sessions::session_user(&self.conn, id_hash, now)
        })
    }

    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError> {
        named(&self.path, || sessions::delete_session(&self.conn, id_hash))
    }

    fn add_tenant(&mut self, name: &str, now: f64) -> Result<(), StoreError> {
        named(&self.path, || tenants::add_tenant(&self.conn, name, now))
    }

    fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        named(&self.path, || tenants::tenants(&self.conn))
    }

    fn set_member(&mut self, tenant: &str, user: &str, role: Role) -> Result<(), StoreError> {
        named(&self.path, || {
            tenants::set_member(&self.conn, tenant, user, role)
        })
    }

    fn remove_member(&mut self, tenant: &str, user: &str) -> Result<bool, StoreError> {
        named(&self.path, || {
            tenants::remove_member(&self.conn, tenant, user)
        })
    }

    fn set_quotas(&mut self, tenant: &str, quotas: &Quotas) -> Result<(), StoreError> {
        named(&self.path, || {
            tenants::set_quotas(&self.conn, tenant, quotas)
        })
    }

    fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, StoreError> {
        named(&self.path, || tenants::memberships(&self.conn, user))
    }

    fn usage(&self, tenant: &str, since: f64, now: f64) -> Result<Usage, StoreError> {
        named(&self.path, || {
            tenants::usage(&self.conn, tenant, since, now)
        })
    }

    fn known_event_seqs(&self, run: &str, seqs: &[u64]) -> Result<Vec<u64>, StoreError> {
        named(&self.path, || {
            users::known_event_seqs(&self.conn, run, seqs)
        })
    }

    fn add_token(&mut self, token: &TokenRow, token_hash: &str) -> Result<(), StoreError> {
        named(&self.path, || {
            tokens::add_token(&self.conn, token, token_hash)
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        named(&self.path, || tokens::tokens(&self.conn))
    }

    fn revoke_token(&mut self, id: &str) -> Result<bool, StoreError> {
        named(&self.path, || tokens::revoke_token(&self.conn, id))
    }

    fn scoped_token(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        named(&self.path, || tokens::scoped_token(&self.conn, token_hash))
    }

    fn ingest_node_samples(
        &mut self,
        owner: &str,
        tenant: Option<&str>,
        samples: &[NodeRecord],
        now: f64,
    ) -> Result<u64, StoreError> {
        let store = self.path.clone();
        named(&store, || {
            nodes::ingest(&mut self.conn, owner, tenant, samples, now)
        })
    }

    fn latest_node_samples(&self, owner: &str, since: f64) -> Result<Vec<NodeRecord>, StoreError> {
        named(&self.path, || nodes::latest(&self.conn, owner, since))
    }

    fn put_services(
        &mut self,
        owner: &str,
        tenant: Option<&str>,
        records: &[ServiceRecord],
        now: f64,
    ) -> Result<u64, StoreError> {
        let store = self.path.clone();
        named(&store, || {
            services::put(&mut self.conn, owner, tenant, records, now)
        })
    }

    fn services(&self, viewer: &str) -> Result<Vec<ServiceRecord>, StoreError> {
        named(&self.path, || services::list(&self.conn, viewer))
    }

    fn node_buckets(
        &self,
        owner: &str,
        since: f64,
        bucket: f64,
        limit: usize,
    ) -> Result<Vec<NodeBucket>, StoreError> {
        named(&self.path, || {
            nodes::buckets(&self.conn, owner, since, bucket, limit)
        })
    }

    fn series_between(
        &self,
        run: &str,
        from: Option<f64>,
        to: Option<f64>,
        points: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
        named(&self.path, || {
            live::series_between(&self.conn, run, from, to, points)
        })
    }

    fn samples_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SeriesPoint)>, StoreError> {
        named(&self.path, || {
            live::samples_after(&self.conn, run, after, limit)
        })
    }

    fn latest_sample(&self, run: &str) -> Result<Option<(i64, SeriesPoint)>, StoreError> {
        named(&self.path, || live::latest_sample(&self.conn, run))
    }

    fn metrics_after(
        &self,
        run: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        named(&self.path, || {
            live::metrics_after(&self.conn, run, after, limit)
        })
    }
}

/// The experiments, newest first; with a user, only those whose runs they all see.
fn experiment_rows(
    conn: &Connection,
    user: Option<&str>,
) -> Result<Vec<ExperimentRow>, StoreError> {
    let visible = crate::tenancy::visible_sql("r", "?1");
    let mut stmt = conn.prepare(&format!(
        "SELECT e.id, e.workflow, e.created_at, e.labels, e.differences,
                (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id),
                (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id AND r.status = 'succeeded'),
                (SELECT count(*) FROM runs r WHERE r.experiment_id = e.id AND r.status = 'failed')
         FROM experiments e
         WHERE ?1 IS NULL OR (EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id)
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id
                               AND NOT {visible}))
         ORDER BY e.created_at DESC, e.id"
    ))?;
    let mut rows: Vec<ExperimentRow> = stmt
        .query_map([user], |r| {
            let labels: String = r.get(3)?;
            Ok(ExperimentRow {
                id: r.get(0)?,
                workflow: r.get(1)?,
                created_at: r.get(2)?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
                differences: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                runs: r.get(5)?,
                succeeded: r.get(6)?,
                failed: r.get(7)?,
                targets: String::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut targets =
        conn.prepare("SELECT target FROM runs WHERE experiment_id = ?1 ORDER BY submitted_at")?;
    for row in &mut rows {
        let mut seen: Vec<String> = Vec::new();
        for t in targets.query_map([&row.id], |r| r.get::<_, String>(0))? {
            let t = t?;
            if !seen.contains(&t) {
                seen.push(t);
            }
        }
        row.targets = seen.join(",");
    }
    Ok(rows)
}

/// The runs `filter` selects, newest first: one query, every condition in its WHERE (a label
/// through `json_each`, so keys need no quoting).
fn runs_filtered(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
    use rusqlite::types::Value;
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, value: Value| {
        args.push(value);
        *sql += &clause.replace('?', &format!("?{}", args.len()));
    };
    if let Some(user) = &filter.visible_to {
        let clause = format!(" AND {}", crate::tenancy::visible_sql("runs", "?"));
        arg(&mut sql, &clause, Value::Text(user.clone()));
    }
    if let Some(status) = &filter.status {
        arg(
            &mut sql,
            " AND status = ?",
            Value::Text(status.as_str().into()),
        );
    }
    for (key, value) in &filter.labels {
        arg(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM json_each(runs.labels) l WHERE l.key = ?",
            Value::Text(key.clone()),
        );
        arg(&mut sql, " AND l.value = ?)", Value::Text(value.clone()));
    }
    if let Some(from) = filter.submitted_from {
        arg(&mut sql, " AND submitted_at >= ?", Value::Real(from));
    }
    if let Some(before) = filter.submitted_before {
        arg(&mut sql, " AND submitted_at < ?", Value::Real(before));
    }
    sql += " ORDER BY submitted_at DESC, id";
    if let Some(limit) = filter.limit {
        arg(
            &mut sql,
            " LIMIT ?",
            Value::Integer(limit.min(i64::MAX as usize) as i64),
        );
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), run_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    //! What only the SQLite store does; everything both stores do is in `tests/suite.rs`.
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("atlas-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("atlas.db")
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_clearly() {
        let path = temp("notdb");
        std::fs::write(
            &path,
            b"this is not a database, just text that is long enough to look like a header",
        )
        .unwrap();
        let err = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("is not an Atlas database"), "{err}");
    }

    #[test]
    fn many_openers_of_a_new_database_all_succeed() {
        for round in 0..20 {
            let path = temp(&format!("race-{round}"));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || {
                        SqliteStore::open(&path)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            for opener in openers {
                assert_eq!(opener.join().unwrap(), Ok(()), "round {round}");
            }
        }
    }
}
