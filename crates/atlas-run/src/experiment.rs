//! One experiment: its runs on every target, repeated, one after another (interleaved:
//! A B C A B C…) or every target of a repetition at once, followed until each has ended.

use std::path::Path;
use std::time::Duration;

use atlas_backends::{Named, VerifiedInput};
use atlas_spec::Workflow;
use atlas_store::Store;

use crate::tracker::Tracker;
use crate::{RunError, RunObserver, Summary};

/// What an experiment is: the workflow, where, how often, and what every run shares.
pub struct Plan<'a> {
    /// The workflow every run runs.
    pub workflow: &'a Workflow,
    /// The targets, in order (a name may repeat).
    pub targets: &'a [Named],
    /// Runs per target.
    pub repeat: u32,
    /// Node counts to run the workflow at, each on every target (a scaling experiment); empty:
    /// as the workflow says.
    pub nodes: &'a [u32],
    /// Every target of a repetition at once (default: one after another).
    pub parallel: bool,
    /// Labels of the experiment and its runs.
    pub labels: serde_json::Value,
    /// The agent's sampling interval.
    pub interval: Duration,
    /// Where the job starts (the project directory).
    pub project_dir: &'a Path,
    /// Run directories are made here, one per run (`RUNS_DIR/RUN_ID`).
    pub runs_dir: &'a Path,
    /// The atlas binary that runs as the agent.
    pub agent: &'a Path,
    /// The workflow's inputs, checked before the experiment.
    pub inputs: &'a [VerifiedInput],
    /// The user who starts the runs.
    pub owner: Option<String>,
    /// The tenant the runs belong to (`None`: the owner's alone).
    pub tenant: Option<String>,
    /// The tenant's runs quota: a run is not submitted when, counting the tenant's runs
    /// registered before it (by any command), it would be over this.
    pub max_active_runs: Option<u32>,
}

/// How often a running job is looked at: a stat of its spool and a `try_wait` (Slurm's watch
/// rate-limits its own `squeue`), so a job's end is seen within this.
const TICK: Duration = Duration::from_millis(10);

/// Runs the experiment `plan` describes, telling `observer` what happens; the experiment's id
/// is made here. A run's failure is in the [`Summary`]; an error is the lifecycle's own.
pub fn run_experiment(
    store: &mut dyn Store,
    plan: &Plan<'_>,
    observer: &mut dyn RunObserver,
) -> Result<Summary, RunError> {
    let experiment = crate::new_id("e");
    let now = atlas_agent::spool::unix_now();
    store.create_experiment(&experiment, &plan.workflow.metadata.name, &plan.labels, now)?;
    let sized: Vec<Workflow> = plan
        .nodes
        .iter()
        .map(|n| plan.workflow.with_nodes(*n))
        .collect();
    let total = plan.repeat as usize * plan.targets.len() * sized.len().max(1);
    observer.experiment(&experiment, total);
    like_for_like(store, &experiment, plan, observer)?;
    let mut summary = Summary {
        experiment: experiment.clone(),
        total,
        outcomes: Vec::new(),
        interrupted: false,
    };
    let rounds: Vec<&[Named]> = if plan.parallel {
        vec![plan.targets]
    } else {
        plan.targets.chunks(1).collect()
    };
    let plans: Vec<Plan<'_>> = sized
        .iter()
        .zip(plan.nodes)
        .map(|(workflow, nodes)| Plan {
            workflow,
            nodes: &[],
            labels: with_label(&plan.labels, "nodes", &nodes.to_string()),
            owner: plan.owner.clone(),
            tenant: plan.tenant.clone(),
            ..*plan
        })
        .collect();
    let plans: Vec<&Plan<'_>> = if plans.is_empty() {
        vec![plan]
    } else {
        plans.iter().collect()
    };
    'sizes: for plan in plans {
        for repetition in 0..plan.repeat {
            for round in &rounds {
                if summary.interrupted {
                    break 'sizes;
                }
                run_round(
                    store,
                    plan,
                    &experiment,
                    round,
                    repetition,
                    observer,
                    &mut summary,
                )?;
            }
        }
    }
    Ok(summary)
}

/// `labels` (a JSON object) with one more.
fn with_label(labels: &serde_json::Value, key: &str, value: &str) -> serde_json::Value {
    let mut labels = labels.clone();
    if !labels.is_object() {
        labels = serde_json::json!({});
    }
    labels[key] = serde_json::Value::String(value.to_string());
    labels
}

/// Starts the runs of one round (one target, or all with `--parallel`) and follows them to
/// their ends.
fn run_round(
    store: &mut dyn Store,
    plan: &Plan<'_>,
    experiment: &str,
    round: &[Named],
    repetition: u32,
    observer: &mut dyn RunObserver,
    summary: &mut Summary,
) -> Result<(), RunError> {
    let mut running = Vec::new();
    for target in round {
        let mut tracker = Tracker::new(store, plan, experiment, target, repetition)?;
        tracker.start(store, plan, observer)?;
        running.push(tracker);
    }
    summary.interrupted |= follow(store, plan, observer, &mut running)?;
    for tracker in running {
        let detail = store.run(&tracker.run_id)?;
        let outcome = tracker.outcome.clone();
        if let Some(outcome) = &outcome {
            observer.ended(&detail, outcome);
        }
        summary.outcomes.push((tracker.run_id, outcome));
    }
    Ok(())
}

/// Records and reports what differs between the runs other than the target.
fn like_for_like(
    store: &mut dyn Store,
    experiment: &str,
    plan: &Plan<'_>,
    observer: &mut dyn RunObserver,
) -> Result<(), RunError> {
    let mut distinct: Vec<&Named> = Vec::new();
    for t in plan.targets {
        if !distinct.iter().any(|d| d.name == t.name) {
            distinct.push(t);
        }
    }
    let differences = atlas_backends::alike::differences(&distinct, plan.workflow);
    observer.like_for_like(&differences, distinct.len());
    if !differences.is_empty() {
        store.set_differences(experiment, &differences)?;
    }
    Ok(())
}

/// Follows the running jobs until all have ended, never waiting after the last end was seen;
/// true when the observer asked to stop.
fn follow(
    store: &mut dyn Store,
    plan: &Plan<'_>,
    observer: &mut dyn RunObserver,
    running: &mut [Tracker],
) -> Result<bool, RunError> {
    let tick = TICK.min(plan.interval);
    let mut stopping = false;
    loop {
        for tracker in running.iter_mut() {
            tracker.poll(store, plan, observer)?;
        }
        if running.iter().all(|t| t.outcome.is_some()) {
            return Ok(stopping);
        }
        if !stopping && observer.stop_requested().is_some() {
            running.iter_mut().for_each(|t| t.cancel(observer));
            stopping = true;
        }
        std::thread::sleep(tick);
    }
}
