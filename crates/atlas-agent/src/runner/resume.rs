//! An agent started again for a run it left frozen: Slurm requeued the job while it was frozen
//! (`atlas windows freeze` on a Slurm target) and started it again at the wake, with the same
//! run directory. The spool says where the run stopped: [`find`] reads it, and the run goes on
//! from there (the runner's `run`): the sequence numbers continue, a `wake` record names the
//! new agent, the phases that ended are not run again, and the frozen phase starts again with
//! `ATLAS_RESUME=1` when its checkpoint had landed, its wall time and CPU time carried over.

use std::path::Path;
use std::time::Duration;

use atlas_spec::record::{Record, RecordBody};
use atlas_spec::Phase;

/// Where a frozen run stopped, from its spool.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resume {
    /// The spool's last sequence number: the new records follow it.
    pub last_seq: u64,
    /// When the run started (Unix seconds): its wall time counts from there.
    pub run_started: f64,
    /// Seconds the run was frozen before, in all (its walltime leaves them out).
    pub frozen_before: f64,
    /// When it froze (Unix seconds).
    pub frozen_at: f64,
    /// The phase it froze in (or before), by index.
    pub phase: usize,
    /// The frozen phase, when it had started (a freeze between phases: `None`).
    pub resumed: Option<Resumed>,
}

/// A phase started again after its agent left: whether from its checkpoint, and what it had
/// used before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Resumed {
    pub from_checkpoint: bool,
    pub wall: Duration,
    pub cpu: (f64, f64),
}

/// The run's records in its spool, in sequence order (`None` when there is no spool).
fn records(spool: &Path, run: &str) -> Option<Vec<Record>> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let contents = crate::spool::read_spool(spool, offset).ok()?;
        all.extend(contents.records.into_iter().filter(|r| r.run == run));
        if contents.complete_bytes == offset {
            break;
        }
        offset = contents.complete_bytes;
    }
    all.sort_by_key(|r| r.seq);
    Some(all)
}

/// Where the run of `spool` stopped: `Ok(None)` for a new run (no spool, or nothing of it
/// in it), `Ok(Some)` when its last lifecycle record is `frozen` (an agent that left a frozen
/// run), and `Err` with the reason for a spool that has the run's records but cannot be gone
/// on from (it ended, or never froze): the run is not started a second time into it.
pub(super) fn find(spool: &Path, run: &str, phases: &[Phase]) -> Result<Option<Resume>, String> {
    let records = records(spool, run).unwrap_or_default();
    if records.is_empty() {
        return Ok(None);
    }
    let refuse = |why: &str| {
        Err(format!("the run's spool ({}) already holds {} of its records and {why}: the run is not started again into it", spool.display(), records.len()))
    };
    let Some(last) = records.iter().rev().find(|r| r.body.is_lifecycle()) else {
        return refuse("none of them says how far it got");
    };
    let RecordBody::Frozen {
        phase: name, clean, ..
    } = &last.body
    else {
        return refuse("its last state is not a freeze");
    };
    let Some(phase) = phases.iter().position(|p| p.name == *name) else {
        return refuse("it froze in a phase this workflow does not have");
    };
    let Some(run_started) = records.iter().find_map(|r| match r.body {
        RecordBody::RunStart { .. } => Some(r.time),
        _ => None,
    }) else {
        return refuse("it has no start");
    };
    let frozen_before = records
        .iter()
        .map(|r| match r.body {
            RecordBody::Wake { frozen_seconds, .. } => frozen_seconds,
            _ => 0.0,
        })
        .sum();
    Ok(Some(Resume {
        last_seq: records.last().map_or(0, |r| r.seq),
        run_started,
        frozen_before,
        frozen_at: last.time,
        phase,
        resumed: resumed(&records, name, *clean, last.time),
    }))
}

/// The frozen phase's figures before the freeze, when it had started and not ended.
fn resumed(records: &[Record], name: &str, clean: bool, frozen_at: f64) -> Option<Resumed> {
    let start = records
        .iter()
        .rposition(|r| matches!(&r.body, RecordBody::PhaseStart { phase, .. } if phase == name))?;
    let since = &records[start..];
    if since
        .iter()
        .any(|r| matches!(&r.body, RecordBody::PhaseEnd { phase, .. } if phase == name))
    {
        return None;
    }
    let frozen: f64 = since
        .iter()
        .map(|r| match &r.body {
            RecordBody::Wake {
                phase,
                frozen_seconds,
                ..
            } if phase == name => *frozen_seconds,
            _ => 0.0,
        })
        .sum();
    let wall = (frozen_at - records[start].time - frozen).max(0.0);
    // CPU seconds as the phase's last sample saw them (its processes then).
    let cpu = since
        .iter()
        .rev()
        .find_map(|r| match &r.body {
            RecordBody::Sample {
                phase: Some(phase),
                cpu_user_seconds,
                cpu_system_seconds,
                ..
            } if phase == name => Some((*cpu_user_seconds, *cpu_system_seconds)),
            _ => None,
        })
        .unwrap_or((0.0, 0.0));
    Some(Resumed {
        from_checkpoint: clean,
        wall: Duration::from_secs_f64(wall),
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(lines: &[&str]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "atlas-resume-{}-{}",
            std::process::id(),
            lines.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool.jsonl");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn line(seq: u32, time: f64, body: &str) -> String {
        format!(r#"{{"run":"r-1","seq":{seq},"time":{time},"mono":0.0,{body}}}"#)
    }

    fn phases() -> Vec<Phase> {
        serde_yaml_ng::from_str("[{name: prep, run: 'true'}, {name: train, run: 'true'}]").unwrap()
    }

    #[test]
    fn a_spool_that_ends_frozen_resumes_its_phase_with_what_it_used() {
        let start = r#""type":"runStart","workflow":"w","host":"h","agentVersion":"0","phases":["prep","train"],"intervalMs":1,"cpus":1,"gpu":"g","source":"s""#;
        let lines = [
            line(1, 100.0, start),
            line(2, 100.0, r#""type":"phaseStart","phase":"prep","index":0"#),
            line(
                3,
                101.0,
                r#""type":"phaseEnd","phase":"prep","status":"succeeded","wallSeconds":1.0,"cpuUserSeconds":0.5,"cpuSystemSeconds":0.0,"maxRssBytes":1"#,
            ),
            line(4, 101.0, r#""type":"phaseStart","phase":"train","index":1"#),
            line(
                6,
                110.0,
                r#""type":"sample","phase":"train","cpuUserSeconds":7.0,"cpuSystemSeconds":1.0,"rssBytes":1,"readBytes":0,"writeBytes":0,"threads":1,"processes":1"#,
            ),
            line(5, 105.0, r#""type":"freeze","phase":"train","signal":10"#),
            line(
                7,
                111.0,
                r#""type":"frozen","phase":"train","clean":true,"checkpointBytes":9,"quiesceSeconds":0.1,"stopSeconds":0.2"#,
            ),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let found = find(&spool(&lines), "r-1", &phases()).unwrap().unwrap();
        assert_eq!(found.last_seq, 7);
        assert_eq!(found.phase, 1);
        assert_eq!((found.run_started, found.frozen_at), (100.0, 111.0));
        let resumed = found.resumed.unwrap();
        assert!(resumed.from_checkpoint);
        assert_eq!(resumed.wall, Duration::from_secs(10));
        assert_eq!(resumed.cpu, (7.0, 1.0));
        let mut ended = lines.clone();
        let end = line(
            8,
            120.0,
            r#""type":"runEnd","status":"succeeded","wallSeconds":20.0"#,
        );
        ended.push(&end);
        // A run that ended, or one still running, is not started again into its spool.
        let why = find(&spool(&ended), "r-1", &phases()).unwrap_err();
        assert!(why.contains("not a freeze"), "{why}");
        assert!(find(&spool(&lines[..6]), "r-1", &phases()).is_err());
        // Another run's spool, or none: a new run.
        assert_eq!(find(&spool(&lines), "r-2", &phases()), Ok(None));
        let none = Path::new("/nonexistent/spool.jsonl");
        assert_eq!(find(none, "r-1", &phases()), Ok(None));
    }
}
