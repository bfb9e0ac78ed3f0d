//! [`RunObserver`]: what the lifecycle tells whoever started it. Every method has an empty
//! default, so an observer implements only what it shows.

use atlas_spec::record::Record;
use atlas_store::RunDetail;

use crate::Outcome;

/// Told what an experiment's runs do, in order, from the thread that runs them.
pub trait RunObserver {
    /// The experiment is registered: its id and how many runs it will have.
    fn experiment(&mut self, _id: &str, _runs: usize) {}
    /// What differs between the runs other than their target (empty: nothing), and how many
    /// distinct targets were compared.
    fn like_for_like(&mut self, _differences: &[String], _targets: usize) {}
    /// A run was submitted to its target, which knows it as `scheduler_id`.
    fn submitted(&mut self, _run: &str, _target: &str, _scheduler_id: &str) {}
    /// A record of a run (or of one of its array tasks) is now in the store.
    fn record(&mut self, _run: &str, _record: &Record) {}
    /// What a run's backend says while preparing or submitting it (an image being built, a GPU
    /// request left out where the target has none).
    fn note(&mut self, _run: &str, _text: &str) {}
    /// Something about a run worth a word (a spool line that was skipped).
    fn warning(&mut self, _run: &str, _message: &str) {}
    /// A run is being asked to stop; its agent will record that.
    fn cancelling(&mut self, _run: &str) {}
    /// A run ended (a refused one too), with what the store now holds about it.
    fn ended(&mut self, _run: &RunDetail, _outcome: &Outcome) {}
    /// Asked every tick while jobs run: `Some(why)` cancels the running jobs and starts no
    /// more (the CLI answers with the Ctrl-C it received).
    fn stop_requested(&mut self) -> Option<String> {
        None
    }
}
