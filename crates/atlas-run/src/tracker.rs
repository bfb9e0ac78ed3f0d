//! One run of an experiment from start to end: registered in the store, prepared and submitted
//! by its target's backend, its spool followed into the store while it runs, and recorded as
//! failed with a cause when the job ends without its agent saying how.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atlas_backends::{Backend, BackendError, Job, Named, Notes};
use atlas_spec::record::{PhaseStatus, RecordBody, RunStatus};
use atlas_spec::RunDir;
use atlas_store::{NewRun, Store};

use crate::outcome::ArrayRuns;
use crate::{Outcome, Plan, RunError, RunObserver};

/// What an incomplete last line of a spool means.
const TORN: &str = "an incomplete last line (torn by a crash, or still being written)";

fn now() -> f64 {
    atlas_agent::spool::unix_now()
}

/// The backend's view of a run (from the tracker's fields, so its backend can be borrowed too).
fn job<'a>(
    run_id: &'a str,
    run_dir: &'a RunDir,
    plan: &'a Plan<'a>,
    workflow_file: &'a Path,
    notes: &'a Notes,
) -> Job<'a> {
    Job {
        notes,
        run_id,
        run_dir: run_dir.root(),
        workflow: plan.workflow,
        workflow_file,
        project_dir: plan.project_dir,
        interval: plan.interval,
        agent: plan.agent,
        inputs: plan.inputs,
    }
}

/// One run being followed.
pub(crate) struct Tracker {
    pub run_id: String,
    target: String,
    run_dir: RunDir,
    backend: Box<dyn Backend>,
    /// Read position per spool, bytes and lines (one spool; one per task for an array).
    offsets: BTreeMap<PathBuf, (u64, usize)>,
    /// An array run whose tasks each have an agent: they become runs `RUN-tN`.
    array: Option<ArrayRuns>,
    /// How the run's agent said it ended.
    run_end: Option<PhaseStatus>,
    pub outcome: Option<Outcome>,
}

impl Tracker {
    /// Makes the run's directory, writes its workflow and inputs there and registers it.
    pub fn new(
        store: &mut dyn Store,
        plan: &Plan<'_>,
        experiment: &str,
        target: &Named,
        repetition: u32,
    ) -> Result<Self, RunError> {
        let run_id = crate::new_id("r");
        let run_dir = RunDir::new(plan.runs_dir.join(&run_id));
        // Private to the user (the runs directory too, when made here); a backend that needs
        // more (podman's group-writable bind mount) says so for its run.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(run_dir.root())
            .map_err(|e| RunError::file(run_dir.root(), e))?;
        let workflow_file = run_dir.workflow();
        let spec = atlas_spec::to_yaml(plan.workflow);
        std::fs::write(&workflow_file, &spec).map_err(|e| RunError::file(&workflow_file, e))?;
        if !plan.inputs.is_empty() {
            let inputs = serde_json::to_string_pretty(plan.inputs).unwrap_or_default();
            std::fs::write(run_dir.inputs(), inputs)
                .map_err(|e| RunError::file(&run_dir.inputs(), e))?;
        }
        // The workflow and inputs go into the store too: a report made elsewhere, or after the
        // run directory is gone, still knows them.
        let inputs = (!plan.inputs.is_empty())
            .then(|| serde_json::to_value(plan.inputs).ok())
            .flatten();
        let totals = plan.workflow.spec.resources.totals();
        store.create_run(&NewRun {
            id: run_id.clone(),
            spec: Some(spec),
            inputs,
            experiment_id: Some(experiment.to_string()),
            workflow: plan.workflow.metadata.name.clone(),
            target: target.name.clone(),
            repetition: i64::from(repetition),
            run_dir: run_dir.root().display().to_string(),
            labels: plan.labels.clone(),
            submitted_at: now(),
            owner: plan.owner.clone(),
            tenant: plan.tenant.clone(),
            cores: f64::from(totals.cores),
            gpus: f64::from(totals.gpus),
        })?;
        let backend = atlas_backends::backend(target);
        let array = plan
            .workflow
            .spec
            .scheduling
            .array
            .as_ref()
            .filter(|_| backend.agent_per_array_task())
            .map(|a| ArrayRuns {
                tasks: a.task_count(),
                target: target.name.clone(),
                repetition,
                ended: BTreeMap::new(),
            });
        Ok(Tracker {
            run_id,
            target: target.name.clone(),
            run_dir,
            backend,
            offsets: BTreeMap::new(),
            array,
            run_end: None,
            outcome: None,
        })
    }

    /// Prepares and submits the job; a refusal ends the run here with its cause.
    pub fn start(
        &mut self,
        store: &mut dyn Store,
        plan: &Plan<'_>,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        let workflow_file = self.run_dir.workflow();
        let notes = Notes::default();
        let submitted = self.prepare_and_submit(store, plan, &workflow_file, &notes);
        for note in notes.take() {
            observer.note(&self.run_id, &note);
        }
        match submitted {
            Ok((id, submitted_at)) => {
                observer.submitted(&self.run_id, &self.target, &id);
                let none = BTreeMap::new();
                store.record_launch(&self.run_id, Some(&id), Some(submitted_at), &none)?;
            }
            Err(error) => {
                let cause = error.to_string();
                store.finish_run(&self.run_id, RunStatus::Failed, &cause, now())?;
                self.outcome = Some(match error {
                    BackendError::Rejected(_) => Outcome::Failed(cause),
                    BackendError::Unusable(_) => Outcome::Unusable(cause),
                });
            }
        }
        Ok(())
    }

    fn prepare_and_submit(
        &mut self,
        store: &mut dyn Store,
        plan: &Plan<'_>,
        workflow_file: &Path,
        notes: &Notes,
    ) -> Result<(String, f64), BackendError> {
        if let (Some(tenant), Some(limit)) = (&plan.tenant, plan.max_active_runs) {
            // Counted again now that this run is registered (it is one of them): commands
            // started at the same moment all passed the first check before registering, so a
            // run that finds the tenant over its quota stops here. Under a tie all of them may
            // stop; the quota is never passed.
            let active = store
                .usage(tenant, now(), now())
                .map_err(|e| BackendError::Unusable(e.to_string()))?
                .active_runs;
            if active > u64::from(limit) {
                return Err(BackendError::Rejected(format!(
                    "tenant `{tenant}` has {active} runs active with this one, over its quota of {limit} at once (runs started by other commands at the same moment); not submitted"
                )));
            }
        }
        let job = job(&self.run_id, &self.run_dir, plan, workflow_file, notes);
        let figures = self.backend.prepare(&job)?;
        store
            .record_launch(&self.run_id, None, None, &figures)
            .map_err(|e| BackendError::Unusable(e.to_string()))?;
        let submitted_at = now();
        Ok((self.backend.submit(&job)?, submitted_at))
    }
}

impl Tracker {
    /// Ingests what the spool gained and checks whether the job has ended.
    pub fn poll(
        &mut self,
        store: &mut dyn Store,
        plan: &Plan<'_>,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        if self.outcome.is_some() {
            return Ok(());
        }
        let end = self.backend.watch();
        self.ingest(store, observer, end.is_some())?;
        let Some(end) = end else {
            return Ok(());
        };
        let workflow_file = self.run_dir.workflow();
        let notes = Notes::default();
        let collected = self.backend.collect(&job(
            &self.run_id,
            &self.run_dir,
            plan,
            &workflow_file,
            &notes,
        ));
        for note in notes.take() {
            observer.note(&self.run_id, &note);
        }
        if !collected.figures.is_empty() {
            store.record_launch(&self.run_id, None, None, &collected.figures)?;
        }
        let outcome = match (&self.array, self.run_end) {
            (Some(array), _) => {
                let outcome = array.outcome();
                let (status, cause) = match &outcome {
                    Outcome::Succeeded => (
                        RunStatus::Succeeded,
                        format!("array of {} tasks, all succeeded", array.tasks),
                    ),
                    Outcome::Failed(c) | Outcome::Unusable(c) => (RunStatus::Failed, c.clone()),
                };
                store.finish_run(&self.run_id, status, &cause, now())?;
                outcome
            }
            (None, Some(PhaseStatus::Succeeded)) => Outcome::Succeeded,
            (None, Some(_)) => {
                let mut cause = store.run(&self.run_id)?.run.cause.unwrap_or_default();
                if let Some(failure) = &collected.failure {
                    // The agent saw only its end (a signal); the scheduler knows why.
                    cause = format!("{failure}; the agent recorded: {cause}");
                    store.finish_run(&self.run_id, RunStatus::Failed, &cause, now())?;
                }
                Outcome::Failed(cause)
            }
            (None, None) => {
                let tail = collected
                    .output_tail
                    .map(|t| format!("; its output ends with:\n{t}"))
                    .unwrap_or_default();
                // The agent is gone: what it started must not outlive the run.
                let leftovers = atlas_agent::procfs::processes_of_run(&self.run_id);
                for &pid in &leftovers {
                    // SAFETY: plain kill(2) of a process whose environment names this run.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                let killed = match leftovers.len() {
                    0 => String::new(),
                    n => format!("; {n} leftover process(es) killed"),
                };
                let failure = collected
                    .failure
                    .as_ref()
                    .map(|f| format!("{f}; "))
                    .unwrap_or_default();
                let cause = format!(
                    "{failure}the job ended ({}) without its agent reporting the end{killed}; see {}{tail}",
                    end.state,
                    self.run_dir.root().display()
                );
                store.finish_run(&self.run_id, RunStatus::Failed, &cause, now())?;
                Outcome::Failed(cause)
            }
        };
        self.outcome = Some(outcome);
        Ok(())
    }

    /// The spools to follow: the run's own, or one per array task that has started.
    fn spools(&self) -> Vec<(PathBuf, Option<u32>)> {
        if self.array.is_none() {
            // The run's spool, then the samples of each host of a multi-node job.
            let hosts = std::fs::read_dir(self.run_dir.root().join("hosts"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "jsonl"));
            return std::iter::once(self.run_dir.spool())
                .chain(hosts)
                .map(|spool| (spool, None))
                .collect();
        }
        let Ok(tasks) = std::fs::read_dir(self.run_dir.tasks()) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|task| task.file_name().to_str()?.parse::<u32>().ok())
            .map(|n| (self.run_dir.task(n).spool(), Some(n)))
            .collect()
    }

    /// Reads the spools from where they were left and stores the new records.
    fn ingest(
        &mut self,
        store: &mut dyn Store,
        observer: &mut dyn RunObserver,
        last: bool,
    ) -> Result<(), RunError> {
        for (spool, task) in self.spools() {
            if !spool.exists() {
                continue;
            }
            if let (Some(task), Some(array)) = (task, &self.array) {
                if !self.offsets.contains_key(&spool) {
                    self.create_task_run(store, array, task)?;
                }
            }
            let (offset, lines) = self.offsets.get(&spool).copied().unwrap_or((0, 0));
            // The job can replace its spool (a link to /dev/zero, a FIFO): then it is not read,
            // and the run ends as one whose agent did not report.
            let contents = match atlas_agent::spool::read_spool(&spool, offset) {
                Ok(contents) => contents,
                Err(e) => {
                    if last {
                        let message = format!("{}: not read: {e}", spool.display());
                        observer.warning(&self.run_id, &message);
                    }
                    continue;
                }
            };
            self.offsets.insert(
                spool.clone(),
                (contents.complete_bytes, lines + contents.complete_lines),
            );
            // Bad lines are consumed now, so say so now; an incomplete last line is read again
            // next time and is only worth a word once the job has ended.
            let torn = contents.torn_line.filter(|_| last);
            let bad = contents.bad_lines.iter().map(|(l, why)| (l, why.as_str()));
            for (line, why) in bad.chain(torn.as_ref().map(|l| (l, TORN))) {
                let message = format!("{}:{}: {why}", spool.display(), lines + line);
                observer.warning(&self.run_id, &message);
            }
            // A spool is written by its job, which may write anything: only records of this
            // run (of this task, for a task's spool) are taken, never another run's.
            let own = task.map_or_else(
                || self.run_id.clone(),
                |t| atlas_spec::task_run_id(&self.run_id, t),
            );
            let (records, foreign): (Vec<_>, Vec<_>) =
                contents.records.into_iter().partition(|r| r.run == own);
            if let Some(r) = foreign.first() {
                let message = format!(
                    "{}: {} record(s) for other runs (`{}` …) refused; a spool carries its own run's records only",
                    spool.display(),
                    foreign.len(),
                    r.run
                );
                observer.warning(&self.run_id, &message);
            }
            if records.is_empty() {
                continue;
            }
            store.ingest(&records)?;
            for r in &records {
                if let RecordBody::RunEnd { status, .. } = &r.body {
                    match &mut self.array {
                        Some(array) => {
                            array.ended.insert(r.run.clone(), *status);
                        }
                        None => self.run_end = Some(*status),
                    }
                }
                observer.record(&self.run_id, r);
            }
        }
        Ok(())
    }

    /// Registers an array task's run (`RUN-tN`) when its spool first appears.
    fn create_task_run(
        &self,
        store: &mut dyn Store,
        array: &ArrayRuns,
        task: u32,
    ) -> Result<(), RunError> {
        let parent = store.run(&self.run_id)?.run;
        let spec = store.run_spec(&self.run_id)?;
        store.create_run(&NewRun {
            id: atlas_spec::task_run_id(&self.run_id, task),
            spec: spec.workflow,
            inputs: spec.inputs,
            experiment_id: parent.experiment_id,
            workflow: parent.workflow,
            target: array.target.clone(),
            repetition: i64::from(array.repetition),
            run_dir: self.run_dir.task(task).root().display().to_string(),
            labels: parent.labels,
            submitted_at: parent.submitted_at,
            owner: parent.owner,
            tenant: parent.tenant,
            // The parent counts the whole array's request.
            cores: 0.0,
            gpus: 0.0,
        })?;
        Ok(())
    }

    /// Asks the job to stop; its agent records the cancellation.
    pub fn cancel(&mut self, observer: &mut dyn RunObserver) {
        if self.outcome.is_none() {
            observer.cancelling(&self.run_id);
            if let Err(e) = self.backend.cancel() {
                observer.warning(&self.run_id, &format!("cannot cancel: {e}"));
            }
        }
    }
}
