//! The run lifecycle on the real local backend, watched by a recording observer: an experiment
//! of two repetitions, a failing phase, a stop asked for while a job runs, and the like-for-like
//! check. The agent is this test binary itself: started as `lifecycle agent WORKFLOW …` (the
//! command line every backend gives the agent) it runs the real agent library, so the test
//! needs no other binary. libtest-mimic keeps the usual test runner's command line for nextest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_backends::target::{Named, Target};
use atlas_run::{run_experiment, Outcome, Plan, RunObserver};
use atlas_spec::record::Record;
use atlas_store::{RunDetail, SqliteStore, Store};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("agent") {
        std::process::exit(agent(&args[2..]));
    }
    let tests = vec![
        Trial::test(
            "runs_are_followed_into_the_store_and_told_in_order",
            in_order,
        ),
        Trial::test(
            "a_failed_phase_is_the_runs_outcome_with_its_cause",
            failed_phase,
        ),
        Trial::test("a_stop_cancels_the_running_job_and_starts_no_more", stop),
    ];
    libtest_mimic::run(&Arguments::from_args(), tests).exit();
}

/// The agent: `WORKFLOW --run-id ID --run-dir DIR --interval MS --quiet`.
fn agent(args: &[String]) -> i32 {
    let value = |flag: &str| {
        let i = args.iter().position(|a| a == flag).expect("flag given");
        args[i + 1].clone()
    };
    let interval = value("--interval");
    let millis: u64 = interval.trim_end_matches("ms").parse().expect("NNNms");
    let workflow = atlas_agent::load_workflow(Path::new(&args[0])).expect("a valid workflow");
    let config = atlas_agent::AgentConfig {
        run_id: value("--run-id"),
        run_dir: PathBuf::from(value("--run-dir")),
        interval: Duration::from_millis(millis),
        grace: Duration::from_secs(2),
        passthrough: false,
        records_to_stdout: false,
        keep_checkpoint: false,
        freeze_on_stop: false,
        warnings: atlas_agent::ignore_warnings(),
    };
    match atlas_agent::run(&workflow, &config, Box::new(atlas_agent::gpu::NoGpus)) {
        Ok(outcome) if outcome.status == atlas_spec::record::PhaseStatus::Succeeded => 0,
        _ => 1,
    }
}

/// What the lifecycle told, in order, as short lines.
#[derive(Default)]
struct Recording {
    events: Vec<String>,
    stop_after_records: Option<usize>,
    records: usize,
}

impl RunObserver for Recording {
    fn experiment(&mut self, _id: &str, runs: usize) {
        self.events.push(format!("experiment {runs}"));
    }
    fn like_for_like(&mut self, differences: &[String], targets: usize) {
        self.events
            .push(format!("alike {targets} {}", differences.len()));
    }
    fn submitted(&mut self, run: &str, target: &str, _id: &str) {
        self.events.push(format!("submitted {run} {target}"));
    }
    fn record(&mut self, run: &str, record: &Record) {
        self.records += 1;
        let kind = serde_json::to_value(&record.body).unwrap()["type"].clone();
        if kind != "sample" && kind != "nodeSample" {
            self.events
                .push(format!("record {run} {}", kind.as_str().unwrap()));
        }
    }
    fn cancelling(&mut self, run: &str) {
        self.events.push(format!("cancelling {run}"));
    }
    fn ended(&mut self, run: &RunDetail, outcome: &Outcome) {
        let outcome = match outcome {
            Outcome::Succeeded => "succeeded".to_string(),
            Outcome::Failed(cause) => format!("failed: {cause}"),
            Outcome::Unusable(why) => format!("unusable: {why}"),
        };
        self.events
            .push(format!("ended {} {} {outcome}", run.run.id, run.run.status));
    }
    fn stop_requested(&mut self) -> Option<String> {
        self.stop_after_records
            .filter(|n| self.records >= *n)
            .map(|_| "asked".to_string())
    }
}

/// A directory, a store and a `local` target for one test.
struct Sandbox {
    dir: PathBuf,
    store: SqliteStore,
    targets: Vec<Named>,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("atlas-run-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        let store = SqliteStore::open(&dir.join("atlas.db")).unwrap();
        let local = Named {
            name: "local".into(),
            target: Target::local(),
            source: "test".into(),
        };
        Sandbox {
            dir,
            store,
            targets: vec![local],
        }
    }

    fn run(&mut self, phases: &str, repeat: u32, observer: &mut Recording) -> atlas_run::Summary {
        let text = format!("apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: w}}\nspec:\n  phases:\n{phases}");
        let workflow = atlas_spec::parse_workflow("w.yaml", &text).unwrap();
        let agent = std::env::current_exe().unwrap();
        let plan = Plan {
            workflow: &workflow,
            targets: &self.targets,
            repeat,
            nodes: &[],
            parallel: false,
            labels: serde_json::json!({}),
            interval: Duration::from_millis(100),
            project_dir: &self.dir,
            runs_dir: &self.dir.join("runs"),
            agent: &agent,
            inputs: &[],
            owner: Some("ada".into()),
            tenant: None,
            max_active_runs: None,
        };
        run_experiment(&mut self.store, &plan, observer).unwrap()
    }
}

fn in_order() -> Result<(), Failed> {
    let mut s = Sandbox::new("order");
    let mut seen = Recording::default();
    let summary = s.run("  - {name: one, run: 'echo hi'}\n", 2, &mut seen);
    assert_eq!(summary.total, 2);
    assert_eq!(summary.succeeded(), 2, "{summary:?}");
    let runs: Vec<&str> = summary.outcomes.iter().map(|(r, _)| r.as_str()).collect();
    let mut expected = vec!["experiment 2".to_string(), "alike 1 0".to_string()];
    for run in &runs {
        expected.push(format!("submitted {run} local"));
        for kind in ["runStart", "phaseStart", "phaseEnd", "runEnd"] {
            expected.push(format!("record {run} {kind}"));
        }
        expected.push(format!("ended {run} succeeded succeeded"));
    }
    assert_eq!(seen.events, expected);
    let stored = s.store.run(runs[0]).unwrap();
    assert_eq!(stored.run.owner.as_deref(), Some("ada"));
    assert_eq!(stored.phases[0].status, "succeeded");
    // What the run was started with is in the store, not only in its run directory.
    let spec = s.store.run_spec(runs[0]).unwrap();
    assert!(spec.workflow.unwrap().contains("echo hi"));
    Ok(())
}

fn failed_phase() -> Result<(), Failed> {
    let mut s = Sandbox::new("failed");
    let mut seen = Recording::default();
    let summary = s.run(
        "  - {name: one, run: 'exit 3'}\n  - {name: two, run: 'true'}\n",
        1,
        &mut seen,
    );
    assert_eq!(summary.succeeded(), 0);
    let failures = summary.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("exit"), "{failures:?}");
    let detail = s.store.run(&summary.outcomes[0].0).unwrap();
    assert_eq!(detail.run.status, "failed");
    assert_eq!(detail.phases[1].status, "skipped");
    Ok(())
}

fn stop() -> Result<(), Failed> {
    let mut s = Sandbox::new("stop");
    let mut seen = Recording {
        stop_after_records: Some(1),
        ..Recording::default()
    };
    let summary = s.run("  - {name: long, run: 'sleep 300'}\n", 3, &mut seen);
    assert!(summary.interrupted);
    assert_eq!(
        summary.outcomes.len(),
        1,
        "no run is started after the stop"
    );
    let run = &summary.outcomes[0].0;
    assert!(
        seen.events.contains(&format!("cancelling {run}")),
        "{:?}",
        seen.events
    );
    let detail = s.store.run(run).unwrap();
    assert_eq!(detail.run.status, "failed");
    assert!(
        detail.run.cause.unwrap_or_default().contains("cancel"),
        "recorded as cancelled"
    );
    Ok(())
}
