//! What the store suite's cases share: fresh stores of either kind, and records as an agent
//! writes them.
//!
//! PostgreSQL cases run on the server named by `ATLAS_TEST_POSTGRES` (`scripts/test` starts one
//! with `scripts/postgres-up`), each in a database of its own that is dropped afterwards.
//! Without that variable they are skipped, unless `ATLAS_REQUIRE_INTEGRATION` is set: then
//! they fail.

#![allow(dead_code, unused_macros)] // each test binary uses part of this

use atlas_spec::record::{PhaseStatus, Record, RecordBody};
use atlas_store::postgres::scratch::ScratchDatabase;
use atlas_store::{SqliteStore, Store};

/// A fresh store and what keeps it alive (its directory or its database).
pub struct Fixture {
    pub store: Box<dyn Store + Send>,
    /// The location to open it again (a second connection).
    pub location: String,
    _dir: Option<std::path::PathBuf>,
    _database: Option<ScratchDatabase>,
}

impl Fixture {
    /// Another connection to the same store.
    pub fn open_again(&self) -> Box<dyn Store + Send> {
        atlas_store::open(&self.location).unwrap()
    }
}

/// A new SQLite store in a directory of its own.
pub fn sqlite(tag: &str) -> Fixture {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "atlas-suite-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("atlas.db");
    Fixture {
        store: Box::new(SqliteStore::open(&path).unwrap()),
        location: path.display().to_string(),
        _dir: Some(dir),
        _database: None,
    }
}

/// The test server's URL: `None` to skip (not set, not required); a failure when required.
pub fn postgres_server() -> Option<String> {
    match std::env::var("ATLAS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("ATLAS_REQUIRE_INTEGRATION").is_some() => panic!(
            "ATLAS_TEST_POSTGRES is not set and ATLAS_REQUIRE_INTEGRATION is: start PostgreSQL with scripts/postgres-up and export its URL"
        ),
        _ => {
            eprintln!("skipped: ATLAS_TEST_POSTGRES is not set (scripts/postgres-up prints the URL)");
            None
        }
    }
}

/// A new PostgreSQL store in a database of its own, or `None` (skipped).
pub fn postgres(tag: &str) -> Option<Fixture> {
    let server = postgres_server()?;
    let database = ScratchDatabase::create(&server, tag).unwrap();
    let location = database.url().to_string();
    Some(Fixture {
        store: atlas_store::open(&location).unwrap(),
        location,
        _dir: None,
        _database: Some(database),
    })
}

/// Writes `#[test]`s that run each case on a fresh SQLite store and a fresh PostgreSQL one:
/// `mod sqlite { fn case() }` and `mod postgres { fn case() }`.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $case() { let mut f = crate::common::sqlite(stringify!($case)); super::$case(&mut f); })*
        }
        mod postgres {
            $(#[test] fn $case() {
                if let Some(mut f) = crate::common::postgres(stringify!($case)) { super::$case(&mut f); }
            })*
        }
    };
}

pub fn record(run: &str, seq: u64, body: RecordBody) -> Record {
    Record {
        run: run.into(),
        seq,
        time: 1000.0 + seq as f64,
        mono: seq as f64,
        body,
    }
}

pub fn sample(run: &str, seq: u64, phase: &str, rss: u64, write: u64) -> Record {
    record(
        run,
        seq,
        RecordBody::Sample {
            phase: Some(phase.into()),
            cpu_user_seconds: seq as f64 * 0.5,
            cpu_system_seconds: 0.1,
            rss_bytes: rss,
            read_bytes: seq * 10,
            write_bytes: write,
            threads: 1,
            processes: 1,
            cgroup_memory_bytes: None,
            gpus: vec![],
        },
    )
}

pub fn run_start(run: &str, seq: u64, phases: &[&str]) -> Record {
    record(
        run,
        seq,
        RecordBody::RunStart {
            workflow: "w".into(),
            host: "h".into(),
            agent_version: "0".into(),
            phases: phases.iter().map(|p| p.to_string()).collect(),
            interval_ms: 1000,
            cpus: 2,
            gpu: "none".into(),
            source: "process tree".into(),
            node: "Test CPU, 2 CPUs, 4.0 GiB".into(),
            agent: None,
            storage: vec![atlas_spec::record::StoragePlace {
                path: ".".into(),
                filesystem: "ext4".into(),
                mount: "/".into(),
            }],
        },
    )
}

pub fn phase_start(run: &str, seq: u64, phase: &str, index: u32) -> Record {
    record(
        run,
        seq,
        RecordBody::PhaseStart {
            phase: phase.into(),
            index,
        },
    )
}

pub fn metric(run: &str, seq: u64, phase: &str, value: f64) -> Record {
    record(
        run,
        seq,
        RecordBody::Metric {
            phase: phase.into(),
            name: "loss".into(),
            value,
        },
    )
}

pub fn phase_end(run: &str, seq: u64, phase: &str, status: PhaseStatus) -> Record {
    record(
        run,
        seq,
        RecordBody::PhaseEnd {
            phase: phase.into(),
            status,
            exit_code: Some(i32::from(status != PhaseStatus::Succeeded)),
            signal: None,
            cause: None,
            wall_seconds: 2.5,
            cpu_user_seconds: 2.0,
            cpu_system_seconds: 0.2,
            max_rss_bytes: 280,
            io: None,
        },
    )
}

pub fn run_end(run: &str, seq: u64, status: PhaseStatus) -> Record {
    record(
        run,
        seq,
        RecordBody::RunEnd {
            status,
            cause: None,
            wall_seconds: 2.6,
            agent_cpu_seconds: 0.01,
            run_dir_bytes: Some(3 << 20),
        },
    )
}

/// A one-phase run that succeeds: 8 records, two samples and two loss values.
pub fn records(run: &str) -> Vec<Record> {
    vec![
        run_start(run, 1, &["train"]),
        phase_start(run, 2, "train", 0),
        sample(run, 3, "train", 100, 10),
        metric(run, 4, "train", 0.9),
        metric(run, 5, "train", 0.5),
        sample(run, 6, "train", 300, 50),
        phase_end(run, 7, "train", PhaseStatus::Succeeded),
        run_end(run, 8, PhaseStatus::Succeeded),
    ]
}

/// A new run, as `atlas run` registers it.
pub fn new_run(id: &str, experiment: Option<&str>, owner: Option<&str>) -> atlas_store::NewRun {
    atlas_store::NewRun {
        spec: None,
        inputs: None,
        id: id.into(),
        experiment_id: experiment.map(String::from),
        workflow: "w".into(),
        target: "local".into(),
        repetition: 0,
        run_dir: format!("/tmp/{id}"),
        labels: serde_json::json!({}),
        submitted_at: 1.0,
        owner: owner.map(String::from),
        tenant: None,
        cores: 0.0,
        gpus: 0.0,
    }
}
