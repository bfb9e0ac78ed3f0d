//! `atlas windows run`: the after-hours controller. It reads the targets' window schedules
//! (`[targets.T.windows]` in atlas.toml, `atlas_backends::schedule`) and, every few seconds,
//! brings the caller's runs of each such target to the schedule's state: while a target is
//! closed its running runs are frozen (checkpoint, then stop: `atlas windows freeze`), while it
//! is open its frozen runs are woken. It looks at states, not at transitions, so a controller
//! that was down, or a clock that jumped, puts the runs right at its next look. `--at` takes
//! an instant as now (what the schedule says then is applied), `--once` looks once.

use std::path::Path;
use std::time::Duration;

use atlas_spec::record::RunStatus;
use atlas_store::RunFilter;

use crate::exit::Failure;

/// The scheduled targets: each with its checked schedule.
fn scheduled() -> Result<Vec<(String, atlas_backends::schedule::Schedule)>, Failure> {
    let targets = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    let scheduled: Vec<_> = targets
        .iter()
        .filter_map(|t| {
            let schedule = t.target.windows.as_ref()?.parse().ok()?;
            Some((t.name.clone(), schedule))
        })
        .collect();
    if scheduled.is_empty() {
        return Err(Failure::input(
            "no target here has a window schedule: add `[targets.T.windows]` (open, close, days, timezone or dates) to atlas.toml (docs/windows.md)",
        ));
    }
    Ok(scheduled)
}

/// How many of the caller's runs of `target` are in `status`.
fn count(db: Option<&Path>, target: &str, status: RunStatus) -> Result<usize, Failure> {
    let (store, _) = super::db::open(db)?;
    let filter = RunFilter {
        visible_to: Some(super::user::current()),
        status: Some(status),
        ..Default::default()
    };
    let runs = store.runs_filtered(&filter).map_err(Failure::environment)?;
    Ok(runs.iter().filter(|r| r.target == target).count())
}

/// One look: each scheduled target's runs brought to its state at `now`; whether all got there.
fn look(db: Option<&Path>, now: atlas_backends::schedule::Timestamp) -> Result<bool, Failure> {
    let mut all_there = true;
    for (target, schedule) in scheduled()? {
        let open = schedule.is_open(now);
        let (wrong, verb) = if open {
            (RunStatus::Frozen, "waking")
        } else {
            (RunStatus::Running, "freezing")
        };
        let n = count(db, &target, wrong)?;
        if n == 0 {
            continue;
        }
        let state = if open { "open" } else { "closed" };
        println!(
            "{now}: `{target}` is {state} ({}): {verb} {n} run(s)",
            schedule.describe()
        );
        // Runs that did not get there are said and looked at again; a target the windows
        // cannot act on ends the controller.
        match super::windows::act(db, &target, !open) {
            Ok(()) => {}
            Err(Failure::JobFailed(cause)) => {
                eprintln!("{target}: {cause}");
                all_there = false;
            }
            Err(other) => return Err(other),
        }
    }
    Ok(all_there)
}

/// `atlas serve --windows`: the controller in a thread of its own beside the server, once the
/// schedules are known to be readable; a look that fails is said and the next one comes.
pub fn start_beside(db: Option<std::path::PathBuf>, every: u64) -> Result<(), Failure> {
    let targets = scheduled()?;
    for (target, schedule) in &targets {
        println!("after-hours windows of `{target}`: {}", schedule.describe());
    }
    std::thread::Builder::new()
        .name("windows".into())
        .spawn(move || loop {
            let now = atlas_backends::schedule::Timestamp::now();
            match look(db.as_deref(), now) {
                Err(Failure::Input(why) | Failure::Environment(why) | Failure::JobFailed(why)) => {
                    eprintln!("after-hours windows: {why}")
                }
                Err(Failure::Diagnostic(report)) => eprintln!("after-hours windows: {report:?}"),
                Ok(_) => {}
            }
            std::thread::sleep(Duration::from_secs(every));
        })
        .map_err(|e| Failure::environment(format!("cannot start the windows controller: {e}")))?;
    Ok(())
}

/// `atlas windows run`.
pub fn control(
    db: Option<&Path>,
    once: bool,
    at: Option<atlas_backends::schedule::Timestamp>,
    every: u64,
) -> Result<(), Failure> {
    loop {
        let now = at.unwrap_or_else(atlas_backends::schedule::Timestamp::now);
        let all_there = look(db, now)?;
        if once {
            return if all_there {
                Ok(())
            } else {
                Err(Failure::JobFailed(
                    "not every run got to its window's state (above)".into(),
                ))
            };
        }
        std::thread::sleep(Duration::from_secs(every));
    }
}
