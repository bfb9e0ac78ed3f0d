//! One run of an experiment from start to end: registered in the store, prepared and submitted
//! by its target's backend, its spool followed into the store while it runs, and recorded as
//! failed with a cause when the job ends without its agent saying how.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_backends::{Backend, BackendError, Job, Kind, Named, VerifiedInput};
use atlas_spec::record::{PhaseStatus, RecordBody};
use atlas_spec::{RunDir, Workflow};
use atlas_store::{NewRun, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::live::{show_progress, Live, WITHOUT_BAR};
use crate::exit::Failure;

/// An array run succeeds when every task's agent reported success.
fn array_outcome(array: &ArrayRuns) -> Outcome {
    let failed: Vec<&str> = array
        .ended
        .iter()
        .filter(|(_, s)| **s != PhaseStatus::Succeeded)
        .map(|(run, _)| run.as_str())
        .collect();
    let succeeded = array.ended.len() - failed.len();
    if failed.is_empty() && succeeded as u64 == array.tasks {
        return Outcome::Succeeded;
    }
    Outcome::Failed(format!(
        "Slurm array: {succeeded} of {} tasks succeeded{}",
        array.tasks,
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (failed: {})", failed.join(", "))
        }
    ))
}

/// What every run of an experiment shares.
pub(super) struct Context<'a> {
    pub experiment: &'a str,
    pub workflow: &'a Workflow,
    pub project_dir: &'a Path,
    pub db_path: &'a Path,
    pub agent: &'a Path,
    pub interval: Duration,
    pub inputs: &'a [VerifiedInput],
    pub labels: &'a serde_json::Value,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Succeeded,
    /// The job failed or was refused (the cause).
    Failed(String),
    /// The target could not be used from here (the reason).
    Unusable(String),
}

/// The tasks of a Slurm array run, each its own run in the store.
struct ArrayRuns {
    tasks: u64,
    target: String,
    repetition: u32,
    /// How each task's run ended, by run id.
    ended: BTreeMap<String, PhaseStatus>,
}

/// One run being followed.
pub(super) struct Tracker {
    pub run_id: String,
    run_dir: PathBuf,
    workflow_file: PathBuf,
    backend: Box<dyn Backend>,
    bar: ProgressBar,
    /// Read position per spool, bytes and lines (one spool; one per task for a Slurm array).
    offsets: BTreeMap<PathBuf, (u64, usize)>,
    /// A Slurm array: its tasks become runs `RUN-tN` as their spools appear.
    array: Option<ArrayRuns>,
    live: Live,
    pub outcome: Option<Outcome>,
}

fn now() -> f64 {
    atlas_agent::spool::unix_now()
}

impl Tracker {
    /// Registers the run and writes its workflow into its run directory.
    pub fn new(
        store: &mut dyn Store,
        ctx: &Context<'_>,
        target: &Named,
        repetition: u32,
        bars: &MultiProgress,
    ) -> Result<Self, Failure> {
        let run_id = super::new_id("r");
        let run_dir = crate::commands::db::run_dir(ctx.db_path, &run_id);
        std::fs::create_dir_all(&run_dir).map_err(|e| {
            Failure::environment(format!("cannot create {}: {e}", run_dir.display()))
        })?;
        let workflow_file = RunDir::new(&run_dir).workflow();
        std::fs::write(&workflow_file, atlas_spec::to_yaml(ctx.workflow)).map_err(|e| {
            Failure::environment(format!("cannot write {}: {e}", workflow_file.display()))
        })?;
        if !ctx.inputs.is_empty() {
            let inputs = serde_json::to_string_pretty(ctx.inputs).unwrap_or_default();
            let _ = std::fs::write(RunDir::new(&run_dir).inputs(), inputs);
        }
        store
            .create_run(&NewRun {
                id: run_id.clone(),
                experiment_id: Some(ctx.experiment.to_string()),
                workflow: ctx.workflow.metadata.name.clone(),
                target: target.name.clone(),
                repetition: i64::from(repetition),
                run_dir: run_dir.display().to_string(),
                labels: ctx.labels.clone(),
                submitted_at: now(),
                owner: Some(crate::commands::user::current()),
            })
            .map_err(Failure::environment)?;
        let bar = bars.add(ProgressBar::new(0));
        bar.set_style(ProgressStyle::with_template(WITHOUT_BAR).expect("a valid template"));
        bar.set_prefix(format!("{run_id} {}", target.name));
        bar.enable_steady_tick(Duration::from_millis(250));
        Ok(Tracker {
            run_id,
            run_dir,
            workflow_file,
            backend: atlas_backends::backend(target),
            bar,
            offsets: BTreeMap::new(),
            array: ctx
                .workflow
                .spec
                .scheduling
                .array
                .as_ref()
                // Slurm array jobs and Kubernetes Indexed Jobs run one agent per task.
                .filter(|_| matches!(target.target.kind, Kind::Slurm | Kind::Kubernetes))
                .map(|a| ArrayRuns {
                    tasks: a.task_count(),
                    target: target.name.clone(),
                    repetition,
                    ended: BTreeMap::new(),
                }),
            live: Live::new(&target.name),
            outcome: None,
        })
    }

    /// The backend's view of this run (from the fields, so the backend can be borrowed too).
    fn job<'a>(
        run_id: &'a str,
        run_dir: &'a Path,
        workflow_file: &'a Path,
        ctx: &'a Context<'a>,
    ) -> Job<'a> {
        Job {
            run_id,
            run_dir,
            workflow: ctx.workflow,
            workflow_file,
            project_dir: ctx.project_dir,
            interval: ctx.interval,
            agent: ctx.agent,
            inputs: ctx.inputs,
        }
    }

    /// Prepares and submits the job; a refusal ends the run here with its cause.
    pub fn start(&mut self, store: &mut dyn Store, ctx: &Context<'_>) -> Result<(), Failure> {
        let job = Self::job(&self.run_id, &self.run_dir, &self.workflow_file, ctx);
        let submitted = self.bar.suspend(|| {
            let figures = self.backend.prepare(&job)?;
            store
                .record_launch(&self.run_id, None, None, &figures)
                .map_err(|e| BackendError::Unusable(e.to_string()))?;
            let submitted_at = now();
            let id = self.backend.submit(&job)?;
            Ok::<_, BackendError>((id, submitted_at))
        });
        match submitted {
            Ok((id, submitted_at)) => {
                self.bar.suspend(|| {
                    eprintln!("  {}: {} submitted ({id})", self.live.label, self.run_id)
                });
                store
                    .record_launch(
                        &self.run_id,
                        Some(&id),
                        Some(submitted_at),
                        &Default::default(),
                    )
                    .map_err(Failure::environment)?;
                Ok(())
            }
            Err(error) => {
                let cause = error.to_string();
                self.bar.finish_and_clear();
                eprintln!("  {}: {cause}", self.run_id);
                store
                    .finish_run(&self.run_id, "failed", &cause, now())
                    .map_err(Failure::environment)?;
                self.outcome = Some(match error {
                    BackendError::Rejected(_) => Outcome::Failed(cause),
                    BackendError::Unusable(_) => Outcome::Unusable(cause),
                });
                Ok(())
            }
        }
    }

    /// Ingests what the spool gained and checks whether the job has ended.
    pub fn poll(&mut self, store: &mut dyn Store, ctx: &Context<'_>) -> Result<(), Failure> {
        if self.outcome.is_some() {
            return Ok(());
        }
        let end = self.backend.watch();
        self.ingest(store, end.is_some())?;
        let Some(end) = end else {
            return Ok(());
        };
        self.bar.finish_and_clear();
        let job = Self::job(&self.run_id, &self.run_dir, &self.workflow_file, ctx);
        let collected = self.backend.collect(&job);
        if !collected.figures.is_empty() {
            store
                .record_launch(&self.run_id, None, None, &collected.figures)
                .map_err(Failure::environment)?;
        }
        if let Some(array) = &self.array {
            let outcome = array_outcome(array);
            let (status, cause) = match &outcome {
                Outcome::Succeeded => (
                    "succeeded",
                    format!("array of {} tasks, all succeeded", array.tasks),
                ),
                Outcome::Failed(cause) | Outcome::Unusable(cause) => ("failed", cause.clone()),
            };
            store
                .finish_run(&self.run_id, status, &cause, now())
                .map_err(Failure::environment)?;
            self.outcome = Some(outcome);
            return Ok(());
        }
        let outcome = match self.live.status {
            Some(PhaseStatus::Succeeded) => Outcome::Succeeded,
            Some(_) => Outcome::Failed(
                store
                    .run(&self.run_id)
                    .map_err(Failure::environment)?
                    .run
                    .cause
                    .unwrap_or_default(),
            ),
            None => {
                let tail = collected
                    .output_tail
                    .map(|t| format!("; its output ends with:\n{t}"))
                    .unwrap_or_default();
                let cause = format!(
                    "the job ended ({}) without its agent reporting the end; see {}{tail}",
                    end.state,
                    self.run_dir.display()
                );
                store
                    .finish_run(&self.run_id, "failed", &cause, now())
                    .map_err(Failure::environment)?;
                Outcome::Failed(cause)
            }
        };
        self.outcome = Some(outcome);
        Ok(())
    }

    /// The spools to follow: the run's own, or one per array task that has started.
    fn spools(&self) -> Vec<(PathBuf, Option<String>)> {
        let dir = RunDir::new(&self.run_dir);
        if self.array.is_none() {
            return vec![(dir.spool(), None)];
        }
        let Ok(tasks) = std::fs::read_dir(dir.tasks()) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|task| task.file_name().to_str()?.parse::<u32>().ok())
            .map(|n| (dir.task(n).spool(), Some(n.to_string())))
            .collect()
    }

    /// Reads the spools from where they were left and stores the new records.
    fn ingest(&mut self, store: &mut dyn Store, last: bool) -> Result<(), Failure> {
        for (spool, task) in self.spools() {
            if !spool.exists() {
                continue;
            }
            if let (Some(task), Some(array)) = (&task, &self.array) {
                if !self.offsets.contains_key(&spool) {
                    self.create_task_run(store, array, task, &spool)?;
                }
            }
            let (offset, lines) = self.offsets.get(&spool).copied().unwrap_or((0, 0));
            let contents = atlas_agent::spool::read_spool(&spool, offset)
                .map_err(|e| Failure::environment(format!("reading {}: {e}", spool.display())))?;
            self.offsets.insert(
                spool.clone(),
                (contents.complete_bytes, lines + contents.complete_lines),
            );
            // Bad lines are consumed now, so say so now; an incomplete last line is read again
            // next time and is only worth a word once the job has ended.
            let torn = contents.torn_line.filter(|_| last);
            let warnings = contents
                .bad_lines
                .iter()
                .map(|(line, why)| (line, why.as_str()))
                .chain(
                    torn.as_ref()
                        .map(|line| (line, crate::commands::ingest::TORN)),
                );
            for (line, why) in warnings {
                let line = lines + line;
                self.bar
                    .suspend(|| eprintln!("warning: {}:{line}: {why}", spool.display()));
            }
            if contents.records.is_empty() {
                continue;
            }
            store
                .ingest(&contents.records)
                .map_err(Failure::environment)?;
            for r in &contents.records {
                self.live.update(&r.body, r.mono, &self.bar);
                if let (RecordBody::RunEnd { status, .. }, Some(array)) = (&r.body, &mut self.array)
                {
                    array.ended.insert(r.run.clone(), *status);
                }
            }
            show_progress(&self.bar, &self.live);
        }
        Ok(())
    }

    /// Registers an array task's run (`RUN-tN`) when its spool first appears.
    fn create_task_run(
        &self,
        store: &mut dyn Store,
        array: &ArrayRuns,
        task: &str,
        spool: &Path,
    ) -> Result<(), Failure> {
        let parent = store.run(&self.run_id).map_err(Failure::environment)?.run;
        store
            .create_run(&NewRun {
                id: format!("{}-t{task}", self.run_id),
                experiment_id: parent.experiment_id,
                workflow: parent.workflow,
                target: array.target.clone(),
                repetition: i64::from(array.repetition),
                run_dir: spool.parent().unwrap_or(spool).display().to_string(),
                labels: parent.labels,
                submitted_at: parent.submitted_at,
                owner: parent.owner,
            })
            .map_err(Failure::environment)
    }

    /// Asks the job to stop; its agent records the cancellation.
    pub fn cancel(&mut self) {
        if self.outcome.is_none() {
            self.bar.suspend(|| {
                eprintln!(
                    "  cancelling {}; waiting for its agent to record it",
                    self.run_id
                )
            });
            self.backend.cancel();
        }
    }
}
