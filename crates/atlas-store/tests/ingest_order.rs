//! Ingest does not depend on the order records arrive in: any permutation of a run's records,
//! in any batches, gives the same run and phase rows as the spool's own order.

use atlas_spec::record::{PhaseStatus, Record, RecordBody};
use atlas_store::{SqliteStore, Store};
use proptest::prelude::*;

fn record(seq: u64, body: RecordBody) -> Record {
    Record {
        run: "r-1".into(),
        seq,
        time: 1000.0 + seq as f64,
        mono: seq as f64,
        body,
    }
}

fn sample(seq: u64, phase: &str, rss: u64) -> Record {
    record(
        seq,
        RecordBody::Sample {
            phase: Some(phase.into()),
            cpu_user_seconds: seq as f64,
            cpu_system_seconds: 0.1,
            rss_bytes: rss,
            read_bytes: seq * 10,
            write_bytes: 10,
            threads: 1,
            processes: 1,
            cgroup_memory_bytes: None,
            gpus: vec![],
        },
    )
}

fn end(seq: u64, phase: &str, status: PhaseStatus) -> Record {
    record(
        seq,
        RecordBody::PhaseEnd {
            phase: phase.into(),
            status,
            exit_code: Some(i32::from(status != PhaseStatus::Succeeded)),
            signal: None,
            cause: None,
            wall_seconds: 1.5,
            cpu_user_seconds: 1.0,
            cpu_system_seconds: 0.1,
            max_rss_bytes: 300,
        },
    )
}

/// A two-phase run as an agent spools it: the first phase fails, the second is skipped.
fn spool() -> Vec<Record> {
    let start = RecordBody::RunStart {
        workflow: "w".into(),
        host: "h".into(),
        agent_version: "0".into(),
        phases: vec!["prep".into(), "train".into()],
        interval_ms: 1000,
        cpus: 2,
        gpu: "none".into(),
        source: "process tree".into(),
        node: String::new(),
        agent: None,
    };
    let phase_start = RecordBody::PhaseStart {
        phase: "prep".into(),
        index: 0,
    };
    let metric = RecordBody::Metric {
        phase: "prep".into(),
        name: "loss".into(),
        value: 0.5,
    };
    let run_end = RecordBody::RunEnd {
        status: PhaseStatus::Failed,
        cause: None,
        wall_seconds: 2.0,
        agent_cpu_seconds: 0.01,
    };
    vec![
        record(1, start),
        record(2, phase_start),
        sample(3, "prep", 100),
        sample(4, "prep", 300),
        record(5, metric),
        end(6, "prep", PhaseStatus::Failed),
        end(7, "train", PhaseStatus::Skipped),
        record(8, run_end),
    ]
}

fn fresh_store(name: &str) -> SqliteStore {
    let dir = std::env::temp_dir().join(format!("atlas-order-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    SqliteStore::open(&dir.join("atlas.db")).unwrap()
}

/// The run and its phases as JSON, for comparison.
fn state(store: &SqliteStore) -> serde_json::Value {
    serde_json::to_value(store.run("r-1").unwrap()).unwrap()
}

#[test]
fn a_phase_start_before_its_run_start_ingests() {
    let mut store = fresh_store("early");
    let records = spool();
    store
        .ingest(&records[1..2])
        .expect("a phaseStart before its runStart is kept");
    store.ingest(&records[5..]).unwrap();
    store.ingest(&records[..5]).unwrap();
    let run = store.run("r-1").unwrap();
    assert_eq!(run.run.status, "failed");
    assert!(
        run.phases.iter().all(|p| p.status != "running"),
        "{:?}",
        run.phases
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_permutation_of_a_spool_ingests_to_the_same_store(
        order in Just(spool()).prop_shuffle(),
        batch in 1usize..8,
    ) {
        let mut expected = fresh_store("in-order");
        expected.ingest(&spool()).unwrap();
        let mut store = fresh_store("shuffled");
        for chunk in order.chunks(batch) {
            store.ingest(chunk).unwrap();
        }
        prop_assert_eq!(state(&store), state(&expected));
        // Ingesting the whole spool again changes nothing.
        store.ingest(&spool()).unwrap();
        prop_assert_eq!(state(&store), state(&expected));
    }
}

#[test]
fn a_run_start_after_the_run_end_does_not_reopen_the_run() {
    let mut store = fresh_store("reopen");
    store.ingest(&spool()).unwrap();
    let mut late = spool()[0].clone();
    late.seq = 50;
    store.ingest(&[late]).unwrap();
    assert_eq!(store.run("r-1").unwrap().run.status, "failed");
}
