//! Workflow → sbatch script: the mapping `atlas import` reads, in reverse. Every directive
//! value is quoted for sbatch's parser and every word of the job's command for the shell.

use atlas_spec::{DependencyCondition, DependencyMode, MailEvent, Resources, Workflow};

use crate::quote::{directive_quote, shell_quote, DirectiveValueError};

/// Where and how the generated job runs.
#[derive(Debug, Clone, Default)]
pub struct SbatchOptions {
    /// The command the job runs (usually `atlas agent …`), one word per element.
    pub command: Vec<String>,
    /// Partition from the target, overriding `spec.scheduling.queue`.
    pub partition: Option<String>,
    /// Account from the target, overriding `spec.scheduling.account`.
    pub account: Option<String>,
    /// More sbatch options from the target, each a whole option (`--reservation=x`).
    pub extra: Vec<String>,
    /// The job's working directory (`--chdir`).
    pub working_directory: String,
    /// Where Slurm writes the job's own stdout/stderr (`--output`).
    pub output: String,
    /// A multi-node job: the command that samples one host (`atlas agent-host …`), started
    /// on every node with `srun --overlap` before the main command, and waited for after it.
    pub host_sampler: Option<Vec<String>>,
}

/// Why a workflow cannot become an sbatch script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// A value cannot be quoted for its directive.
    #[error("{option}: {source}")]
    Value {
        option: &'static str,
        #[source]
        source: DirectiveValueError,
    },
    /// An extra option from the target is not an option.
    #[error("extra sbatch option `{0}` must start with `-`")]
    NotAnOption(String),
    /// There is nothing to run.
    #[error("the job has no command")]
    NoCommand,
}

struct Lines(Vec<String>);

impl Lines {
    fn add(&mut self, option: &'static str, value: impl ToString) -> Result<(), EmitError> {
        let value = value.to_string();
        let quoted =
            directive_quote(&value).map_err(|source| EmitError::Value { option, source })?;
        self.0.push(format!("#SBATCH {option}={quoted}"));
        Ok(())
    }

    fn add_opt(
        &mut self,
        option: &'static str,
        value: Option<impl ToString>,
    ) -> Result<(), EmitError> {
        match value {
            Some(v) => self.add(option, v),
            None => Ok(()),
        }
    }
}

/// `D-HH:MM:SS`, sbatch's longest time format.
fn slurm_time(seconds: u64) -> String {
    format!(
        "{}-{:02}:{:02}:{:02}",
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Megabytes (sbatch's default unit), rounded up so the job never gets less than asked.
fn megabytes(bytes: u64) -> String {
    format!("{}M", bytes.div_ceil(1 << 20))
}

fn resources(lines: &mut Lines, r: &Resources) -> Result<(), EmitError> {
    lines.add_opt("--nodes", r.nodes)?;
    lines.add_opt("--ntasks", r.tasks)?;
    lines.add_opt("--ntasks-per-node", r.tasks_per_node)?;
    lines.add_opt("--cpus-per-task", r.cpus_per_task)?;
    let typed = |n: u32| match &r.gpu_type {
        Some(kind) => format!("{kind}:{n}"),
        None => n.to_string(),
    };
    // A count the others already imply (an import derives them) is not said twice.
    let per_node_implied = r
        .gpus_per_task
        .zip(r.tasks_per_node)
        .and_then(|(g, t)| g.checked_mul(t));
    let total_implied = r
        .gpus_per_node
        .zip(r.nodes)
        .or(r.gpus_per_task.zip(r.tasks))
        .and_then(|(g, n)| g.checked_mul(n));
    let said = |v: Option<u32>, implied: Option<u32>| v.filter(|v| Some(*v) != implied);
    lines.add_opt(
        "--gpus-per-node",
        said(r.gpus_per_node, per_node_implied).map(typed),
    )?;
    lines.add_opt("--gpus-per-task", r.gpus_per_task.map(typed))?;
    lines.add_opt("--gpus", said(r.gpus, total_implied).map(typed))?;
    lines.add_opt("--mem", r.memory_per_node.map(|q| megabytes(q.bytes())))?;
    lines.add_opt(
        "--mem-per-cpu",
        r.memory_per_cpu.map(|q| megabytes(q.bytes())),
    )?;
    lines.add_opt(
        "--mem-per-gpu",
        r.memory_per_gpu.map(|q| megabytes(q.bytes())),
    )?;
    lines.add_opt("--time", r.walltime.map(|w| slurm_time(w.as_secs())))?;
    lines.add_opt("--constraint", r.constraint.as_ref())?;
    if r.exclusive == Some(true) {
        lines.0.push("#SBATCH --exclusive".into());
    }
    Ok(())
}

fn dependency(w: &Workflow) -> Option<String> {
    let s = &w.spec.scheduling;
    let items: Vec<String> = s
        .dependencies
        .iter()
        .map(|d| {
            let kind = match d.condition {
                DependencyCondition::After => "after",
                DependencyCondition::AfterOk => "afterok",
                DependencyCondition::AfterNotOk => "afternotok",
                DependencyCondition::AfterAny => "afterany",
                DependencyCondition::AfterCorr => "aftercorr",
                DependencyCondition::Singleton => return "singleton".to_string(),
            };
            std::iter::once(kind.to_string())
                .chain(d.jobs.iter().cloned())
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    let separator = if s.dependency_mode == Some(DependencyMode::Any) {
        "?"
    } else {
        ","
    };
    (!items.is_empty()).then(|| items.join(separator))
}

fn mail(lines: &mut Lines, w: &Workflow) -> Result<(), EmitError> {
    let Some(mail) = &w.spec.scheduling.mail else {
        return Ok(());
    };
    let events: Vec<&str> = mail
        .events
        .iter()
        .map(|e| match e {
            MailEvent::Begin => "BEGIN",
            MailEvent::End => "END",
            MailEvent::Fail => "FAIL",
            MailEvent::Requeue => "REQUEUE",
            MailEvent::TimeLimit => "TIME_LIMIT",
        })
        .collect();
    if !events.is_empty() {
        lines.add("--mail-type", events.join(","))?;
    }
    if !mail.users.is_empty() {
        lines.add("--mail-user", mail.users.join(","))?;
    }
    Ok(())
}

/// The sbatch script for `workflow`, running `options.command`.
pub fn sbatch_script(workflow: &Workflow, options: &SbatchOptions) -> Result<String, EmitError> {
    if options.command.is_empty() {
        return Err(EmitError::NoCommand);
    }
    let s = &workflow.spec.scheduling;
    let mut lines = Lines(vec![
        "#!/bin/bash".into(),
        "# Written by atlas; the job runs its workflow under `atlas agent`.".into(),
    ]);
    lines.add("--job-name", &workflow.metadata.name)?;
    lines.add_opt(
        "--partition",
        options.partition.as_ref().or(s.queue.as_ref()),
    )?;
    lines.add_opt("--account", options.account.as_ref().or(s.account.as_ref()))?;
    lines.add_opt("--qos", s.qos.as_ref())?;
    lines.add_opt("--reservation", s.reservation.as_ref())?;
    resources(&mut lines, &workflow.spec.resources)?;
    lines.add_opt("--array", s.array.as_ref())?;
    lines.add_opt("--dependency", dependency(workflow))?;
    lines.add_opt("--begin", s.begin.as_ref())?;
    mail(&mut lines, workflow)?;
    lines.add("--chdir", &options.working_directory)?;
    lines.add("--output", &options.output)?;
    for extra in &options.extra {
        if !extra.starts_with('-') {
            return Err(EmitError::NotAnOption(extra.clone()));
        }
        let quoted = directive_quote(extra).map_err(|source| EmitError::Value {
            option: "extra",
            source,
        })?;
        lines.0.push(format!("#SBATCH {quoted}"));
    }
    let command: Vec<String> = options.command.iter().map(|w| shell_quote(w)).collect();
    lines.0.push(String::new());
    match &options.host_sampler {
        None => lines.0.push(format!("exec {}", command.join(" "))),
        Some(sampler) => {
            // One sampler per node beside the job's own steps (it asks for no CPUs of them);
            // each stops once the main agent's spool has the run's end.
            let sampler: Vec<String> = sampler.iter().map(|w| shell_quote(w)).collect();
            lines.0.extend([
                "# One host sampler per node (atlas agent-host), then the agent.".to_string(),
                format!(
                    "srun --overlap --ntasks-per-node=1 --nodes=\"$SLURM_JOB_NUM_NODES\" --kill-on-bad-exit=0 {} &",
                    sampler.join(" ")
                ),
                "samplers=$!".to_string(),
                format!("{} &", command.join(" ")),
                "agent=$!".to_string(),
                "# A signal to this script (scancel --batch) is the agent's to handle.".to_string(),
                "trap 'kill -TERM \"$agent\" 2>/dev/null' TERM INT".to_string(),
                "wait \"$agent\"; status=$?".to_string(),
                "while kill -0 \"$agent\" 2>/dev/null; do wait \"$agent\"; status=$?; done".to_string(),
                "wait \"$samplers\"".to_string(),
                "exit \"$status\"".to_string(),
            ]);
        }
    }
    Ok(lines.0.join("\n") + "\n")
}
