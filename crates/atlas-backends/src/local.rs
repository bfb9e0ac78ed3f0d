//! `local`: the agent as a child process on this machine, bare metal.

use std::process::{Child, Command, Stdio};

use crate::target::Named;
use crate::{data, process, Backend, BackendError, Collected, Figures, Job, JobEnd};

/// Runs jobs as child processes of `atlas run`.
pub(crate) struct Local {
    target: Named,
    child: Option<Child>,
}

impl Local {
    pub(crate) fn new(target: Named) -> Self {
        Local {
            target,
            child: None,
        }
    }
}

impl Backend for Local {
    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError> {
        data::stage_on_host(job, &self.target.target)
    }

    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError> {
        let child = Command::new(job.agent)
            .args(crate::agent_args(job, job.workflow_file, job.run_dir))
            .current_dir(job.project_dir)
            // The target's environment (the workflow's own is exported by the agent).
            .envs(&self.target.target.environment)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| {
                BackendError::Unusable(format!(
                    "cannot start the agent {}: {e}",
                    job.agent.display()
                ))
            })?;
        let pid = format!("pid {}", child.id());
        self.child = Some(child);
        Ok(pid)
    }

    fn watch(&mut self) -> Option<JobEnd> {
        process::child_ended(&mut self.child)
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child, not reaped yet (watch drops it once reaped).
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
        Ok(())
    }

    fn collect(&mut self, _job: &Job<'_>) -> Collected {
        Collected::default()
    }
}
