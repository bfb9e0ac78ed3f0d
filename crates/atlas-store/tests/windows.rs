//! A run's freezes and wakes on both stores: the status follows the last of them, the windows
//! list is rebuilt from the records whatever order they arrive in.

#[macro_use]
mod common;

use atlas_spec::record::{PhaseStatus, Record, RecordBody};
use common::{record, Fixture};

on_both_stores!(freezes_and_wakes_set_the_status_and_the_windows_in_any_order);

fn frozen(run: &str, seq: u64, clean: bool) -> Record {
    record(
        run,
        seq,
        RecordBody::Frozen {
            phase: "train".into(),
            clean,
            checkpoint_bytes: clean.then_some(4096),
            quiesce_seconds: 0.5,
            stop_seconds: 0.6,
            reason: (!clean).then(|| "no new checkpoint".to_string()),
            lost_seconds: Some(if clean { 0.1 } else { 12.0 }),
        },
    )
}

fn wake(run: &str, seq: u64, frozen_seconds: f64) -> Record {
    record(
        run,
        seq,
        RecordBody::Wake {
            phase: "train".into(),
            frozen_seconds,
            host: None,
            agent: None,
        },
    )
}

fn freezes_and_wakes_set_the_status_and_the_windows_in_any_order(f: &mut Fixture) {
    let run = "r-win";
    let freeze = |seq| {
        record(
            run,
            seq,
            RecordBody::Freeze {
                phase: "train".into(),
                signal: 10,
            },
        )
    };
    let records = vec![
        common::run_start(run, 1, &["train"]),
        common::phase_start(run, 2, "train", 0),
        freeze(3),
        frozen(run, 4, true),
        wake(run, 5, 30.0),
        freeze(6),
        frozen(run, 7, false),
    ];
    let store = &mut f.store;
    store.ingest(&records).unwrap();
    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.status, "frozen");
    let windows = &detail.run.windows;
    assert_eq!(windows.len(), 2, "{windows:?}");
    assert!(windows[0].clean && windows[0].checkpoint_bytes == Some(4096));
    assert_eq!(windows[0].frozen_seconds, Some(30.0));
    assert_eq!(windows[0].woken_at, Some(1005.0));
    assert!(!windows[1].clean && windows[1].woken_at.is_none());
    assert_eq!(windows[1].reason.as_deref(), Some("no new checkpoint"));
    // Woken and ended; another store gets the same records backwards.
    let rest = vec![
        wake(run, 8, 12.0),
        common::phase_end(run, 9, "train", PhaseStatus::Succeeded),
        common::run_end(run, 10, PhaseStatus::Succeeded),
    ];
    store.ingest(&rest).unwrap();
    let ended = store.run(run).unwrap();
    assert_eq!(ended.run.status, "succeeded");
    assert_eq!(ended.run.windows[1].frozen_seconds, Some(12.0));
    let mut other = f.open_again();
    let copy = "r-win2";
    let mut all: Vec<Record> = records
        .into_iter()
        .chain(rest)
        .map(|mut r| {
            r.run = copy.into();
            r
        })
        .collect();
    all.reverse();
    for r in &all {
        other.ingest(std::slice::from_ref(r)).unwrap();
    }
    let replayed = other.run(copy).unwrap();
    assert_eq!(replayed.run.status, "succeeded");
    assert_eq!(replayed.run.windows, ended.run.windows);
}
