//! How runs end ([`Outcome`]), how an array run's tasks add up to one, and the experiment's
//! [`Summary`].

use std::collections::BTreeMap;

use atlas_spec::record::PhaseStatus;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its agent said it succeeded.
    Succeeded,
    /// The job failed or was refused by its target (the cause).
    Failed(String),
    /// The target could not be used from here (the reason).
    Unusable(String),
}

/// The tasks of an array run, each its own run in the store (`RUN-tN`).
pub(crate) struct ArrayRuns {
    pub tasks: u64,
    pub target: String,
    pub repetition: u32,
    /// How each task's run ended, by run id.
    pub ended: BTreeMap<String, PhaseStatus>,
}

impl ArrayRuns {
    /// An array run succeeds when every task's agent reported success.
    pub fn outcome(&self) -> Outcome {
        let failed: Vec<&str> = self
            .ended
            .iter()
            .filter(|(_, s)| **s != PhaseStatus::Succeeded)
            .map(|(run, _)| run.as_str())
            .collect();
        let succeeded = self.ended.len() - failed.len();
        if failed.is_empty() && succeeded as u64 == self.tasks {
            return Outcome::Succeeded;
        }
        let failed = if failed.is_empty() {
            String::new()
        } else {
            format!(" (failed: {})", failed.join(", "))
        };
        Outcome::Failed(format!(
            "array: {succeeded} of {} tasks succeeded{failed}",
            self.tasks
        ))
    }
}

/// What an experiment came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The experiment's id.
    pub experiment: String,
    /// The runs it was to have.
    pub total: usize,
    /// Each run started, with how it ended (`None`: not followed to its end).
    pub outcomes: Vec<(String, Option<Outcome>)>,
    /// A stop was asked for (the runs after it were not started).
    pub interrupted: bool,
}

impl Summary {
    /// Runs that succeeded.
    pub fn succeeded(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| *o == Some(Outcome::Succeeded))
            .count()
    }

    /// `RUN: cause` of every run whose target could not be used.
    pub fn unusable(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter_map(|(run, o)| match o {
                Some(Outcome::Unusable(why)) => Some(format!("{run}: {why}")),
                _ => None,
            })
            .collect()
    }

    /// `RUN: cause` of every run that failed or was not followed to its end.
    pub fn failures(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter_map(|(run, o)| match o {
                Some(Outcome::Failed(cause)) => Some(format!("{run}: {cause}")),
                None => Some(format!("{run}: not followed to its end")),
                _ => None,
            })
            .collect()
    }
}
