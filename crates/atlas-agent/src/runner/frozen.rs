//! A frozen run waits: nothing of the job runs until `atlas windows wake` (`wake` in the
//! control file, SIGUSR2), or a stop signal. On a scheduler that gives the machines back while
//! frozen (Slurm: the job requeued and held, `atlas windows freeze` first writes `release`),
//! the stop signal that comes with the requeue is not a cancel: the agent leaves quietly, its
//! spool ending in `frozen`, and the agent Slurm starts again at the wake resumes from there
//! (`runner/resume.rs`).

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use atlas_spec::record::RecordBody;
use atlas_spec::Phase;

use super::Agent;
use crate::freeze::{self, Control};
use crate::signals;
use crate::warning::AgentWarning;

/// What ended a frozen wait other than a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A stop signal: the run is cancelled.
    Signal(i32),
    /// The scheduler took the job back to requeue it (asked with `release`): the agent leaves
    /// without ending the run.
    Released,
}

impl Agent<'_> {
    /// A freeze asked while the previous phase was ending: nothing of the job runs, so the run is
    /// frozen here, before `next`, until the wake (the phase then starts from its start);
    /// `Some` when it stopped instead.
    pub(super) fn freeze_between(
        &mut self,
        next: &Phase,
        asked: Instant,
    ) -> std::io::Result<Option<Stop>> {
        let took = asked.elapsed().as_secs_f64();
        let record = RecordBody::Frozen {
            phase: next.name.clone(),
            clean: true,
            checkpoint_bytes: None,
            quiesce_seconds: took,
            stop_seconds: took,
            reason: Some(
                "between phases: the one before ended while it was asked to checkpoint".into(),
            ),
            // The phase before ended on its own: nothing of it is done again.
            lost_seconds: Some(0.0),
        };
        Ok(self.frozen_until_woken(record, &next.name)?.err())
    }

    /// Records `frozen`, waits for the wake and records it (the walltime limit moved by the
    /// time frozen): how long it was frozen, or what stopped it instead.
    pub(super) fn frozen_until_woken(
        &mut self,
        frozen: RecordBody,
        phase: &str,
    ) -> std::io::Result<Result<Duration, Stop>> {
        self.spool.append(frozen)?;
        self.spool.flush()?;
        let waiting = Instant::now();
        match self.wait_for_wake()? {
            None => {
                let frozen = waiting.elapsed();
                self.deadline = self.deadline.map(|d| d + frozen);
                self.spool.append(RecordBody::Wake {
                    phase: phase.to_string(),
                    frozen_seconds: frozen.as_secs_f64(),
                    host: None,
                    agent: None,
                })?;
                self.spool.flush()?;
                Ok(Ok(frozen))
            }
            Some(stop) => Ok(Err(stop)),
        }
    }

    /// Nothing of the job runs: waits for a wake (`None`), or a stop; a cancelling signal is
    /// recorded, a release is not.
    fn wait_for_wake(&mut self) -> std::io::Result<Option<Stop>> {
        let (tx, rx) = channel::<()>();
        let tx = std::sync::Mutex::new(tx);
        signals::on_signal(move || {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(());
            }
        });
        if self.leave_when_frozen {
            // Frozen on a stop taken for a window's close (--freeze-on-stop). (Not the control
            // file's word: on Slurm `release` is written once the store shows the run frozen,
            // which may be before this wait begins, and the agent must wait for the requeue.)
            self.spool.flush()?;
            return Ok(Some(Stop::Released));
        }
        loop {
            let _ = rx.recv_timeout(Duration::from_secs(1));
            if let Some(signal) = signals::take() {
                if freeze::read_control(&self.config.run_dir) == Some(Control::Release) {
                    self.spool.flush()?;
                    return Ok(Some(Stop::Released));
                }
                self.spool.append(RecordBody::Signal { signal })?;
                self.spool.flush()?;
                return Ok(Some(Stop::Signal(signal)));
            }
            if signals::take_control()
                && freeze::read_control(&self.config.run_dir) == Some(Control::Wake)
            {
                return Ok(None);
            }
            self.spool.sync_if_due()?;
        }
    }
}

impl Agent<'_> {
    /// Whether a SIGTERM now is a window's close: with `--freeze-on-stop`, a checkpoint to
    /// take, and no freeze or stop under way.
    pub(super) fn stop_is_a_freeze<T>(&self, freezing: bool, stopping: &Option<T>) -> bool {
        self.config.freeze_on_stop
            && self.workflow.spec.checkpoint.is_some()
            && !freezing
            && stopping.is_none()
    }

    /// With `--keep-checkpoint`: a copy of the checkpoint that just landed, in the run
    /// directory (a failure is said, and the freeze stays clean where the job can still read
    /// its own).
    pub(super) fn keep_checkpoint(&self, checkpoint: Option<&std::path::Path>) {
        let Some(checkpoint) = checkpoint.filter(|_| self.config.keep_checkpoint) else {
            return;
        };
        let kept = atlas_spec::RunDir::new(&self.config.run_dir).kept_checkpoint();
        if let Err(e) = freeze::keep(checkpoint, &kept) {
            (self.config.warnings)(AgentWarning::CannotFreeze {
                why: format!(
                    "cannot keep a copy of {} in {}: {e}",
                    checkpoint.display(),
                    kept.display()
                ),
            });
        }
    }

    /// With `--keep-checkpoint`: the kept copy put back where the job reads it, when the
    /// working directory lost it (a pod created again).
    pub(super) fn restore_checkpoint(&self, checkpoint: &std::path::Path) {
        if !self.config.keep_checkpoint {
            return;
        }
        let kept = atlas_spec::RunDir::new(&self.config.run_dir).kept_checkpoint();
        if let Err(e) = freeze::restore(checkpoint, &kept) {
            (self.config.warnings)(AgentWarning::CannotFreeze {
                why: format!(
                    "cannot put the kept checkpoint {} back at {}: {e}",
                    kept.display(),
                    checkpoint.display()
                ),
            });
        }
    }
}
