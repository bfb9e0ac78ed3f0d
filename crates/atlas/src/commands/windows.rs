//! `atlas windows freeze TARGET` and `atlas windows wake TARGET`: a window's close and open by
//! hand, for the runs of TARGET now. A freeze asks each running run's agent (on this host:
//! SIGUSR2, with `freeze` in the run directory's `control` file) to have the job save its
//! checkpoint and stop; a wake asks each frozen one to start again from it. Each command waits
//! until the store shows the run frozen (or running again), up to the checkpoint's grace and
//! the agent's stop time (`atlas run`, following the run's spool, keeps the store up to date),
//! and says what happened: the checkpoint's size and how long it took, or why there is none.
//!
//! Runs whose workflow has no `spec.checkpoint` are not frozen (they would lose their work);
//! runs whose agent is on another host are not reached from here (said so). A podman run's
//! agent is its container's PID 1, signalled with `podman kill --signal USR2`; once frozen, the
//! container is stopped (`release` in the control file first: `podman_window`), and the wake
//! starts it again: its agent resumes the run. A podman run whose workflow saves no checkpoint
//! is refused with what CRIU says about this machine. A Slurm run's agent is its batch
//! step (`scancel --batch --signal=USR2`); once frozen, its job is given back to Slurm
//! (`release` in the control file, then `scontrol requeuehold`: nothing of it holds a node),
//! and the wake releases it (`scontrol release`): the agent Slurm starts again resumes the run
//! from its spool and checkpoint (`slurm_window.rs`), on this machine's Slurm or over SSH.
//! Kubernetes runs are refused (not built yet).

use std::time::{Duration, Instant};

use atlas_backends::target::Kind;
use atlas_spec::record::RunStatus;
use atlas_store::{RunFilter, RunRow, Store};

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas windows freeze local\n  atlas runs --status frozen\n  atlas windows wake local"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long, global = true)]
    db: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand)]
enum What {
    /// Freeze the running runs of TARGET: checkpoint, then stop (a window's close).
    Freeze { target: String },
    /// Wake the frozen runs of TARGET: start again from their checkpoint (a window's open).
    Wake { target: String },
    /// Apply the targets' window schedules (`[targets.T.windows]` in atlas.toml): freeze their
    /// running runs while closed, wake their frozen runs while open; every --every seconds.
    Run {
        /// Look once and exit (for cron, or a test).
        #[arg(long)]
        once: bool,
        /// Take this instant as now (RFC 3339, `2026-12-24T19:00:00Z`): what the schedule
        /// says then is applied to the runs now.
        #[arg(long, value_name = "TIME", value_parser = instant)]
        at: Option<atlas_backends::schedule::Timestamp>,
        /// Seconds between looks.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        every: u64,
    },
    /// A window's close on a cluster without Atlas (the CronJob `atlas emit k8s --windows`
    /// writes runs it): delete the Jobs a label selector picks; their agents, run with
    /// --freeze-on-stop, freeze them.
    CloseJobs {
        /// The Jobs' label selector (`atlas.dev/window=NAME`).
        #[arg(long, value_parser = label_selector)]
        selector: String,
        /// Their namespace (default: the pod's own, or the kubeconfig's).
        #[arg(long)]
        namespace: Option<String>,
        /// The kubeconfig outside a pod (default: $KUBECONFIG, ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
    },
}

/// A label selector of plain `key=value` terms (at most 256 characters).
fn label_selector(text: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-/=,!".contains(c);
    if text.is_empty() || text.len() > 256 || !text.chars().all(ok) {
        return Err("a label selector of `key=value` terms, at most 256 characters".into());
    }
    Ok(text.to_string())
}

fn instant(text: &str) -> Result<atlas_backends::schedule::Timestamp, String> {
    text.parse()
        .map_err(|e| format!("not an RFC 3339 instant (2026-12-24T19:00:00Z): {e}"))
}

/// How long the agent needs beyond the checkpoint's grace to stop the job and record it.
const SETTLE: Duration = Duration::from_secs(15);

pub fn run(args: Args) -> Result<(), Failure> {
    match args.what {
        What::Freeze { target } => act(args.db.as_deref(), &target, true),
        What::Wake { target } => act(args.db.as_deref(), &target, false),
        What::Run { once, at, every } => {
            super::window_schedule::control(args.db.as_deref(), once, at, every)
        }
        What::CloseJobs {
            selector,
            namespace,
            kubeconfig,
        } => {
            if let Some(ns) = namespace
                .as_deref()
                .filter(|n| !atlas_spec::is_dns1123_label(n))
            {
                return Err(Failure::input(format!(
                    "--namespace {ns:?}: a namespace is a DNS-1123 label (lowercase letters, digits and `-`, at most 63)"
                )));
            }
            if let Some(path) = kubeconfig.as_deref().filter(|p| !p.is_file()) {
                return Err(Failure::input(format!(
                    "--kubeconfig {}: not a readable file",
                    path.display()
                )));
            }
            let deleted = atlas_backends::k8s_window::close_jobs(
                &selector,
                namespace.as_deref(),
                kubeconfig.as_deref(),
            )
            .map_err(Failure::environment)?;
            if deleted.is_empty() {
                println!("no Job `{selector}`: nothing to close");
            }
            for name in deleted {
                println!("Job {name} deleted: its agent freezes it (checkpoint, then stop)");
            }
            Ok(())
        }
    }
}

/// Freezes (or wakes) the caller's runs of `target` now, and waits until they got there.
pub(crate) fn act(db: Option<&std::path::Path>, target: &str, freeze: bool) -> Result<(), Failure> {
    atlas_spec::check_name(target)
        .map_err(|e| Failure::input(format!("target {target:?}: {e}")))?;
    let targets = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    let named = targets
        .iter()
        .find(|t| t.name == *target)
        .ok_or_else(|| {
            Failure::input(format!(
                "no target `{target}` here (see `atlas targets`; run this where the runs' atlas.toml is)"
            ))
        })?;
    let kind = named.target.kind;
    if !matches!(
        kind,
        Kind::Local | Kind::Podman | Kind::Slurm | Kind::Kubernetes
    ) {
        return Err(Failure::input(format!(
            "target `{target}` is {kind:?}: `atlas windows` freezes local, podman, Slurm and Kubernetes runs"
        )));
    }
    let (mut store, _) = super::db::open(db)?;
    // The store as the runs' spools say now, whether or not their `atlas run` still follows
    // them (it may have been stopped while a run was frozen).
    catch_up_runs(store.as_mut(), target)?;
    let wanted = if freeze {
        RunStatus::Running
    } else {
        RunStatus::Frozen
    };
    let filter = RunFilter {
        visible_to: Some(super::user::current()),
        status: Some(wanted),
        ..Default::default()
    };
    let runs: Vec<RunRow> = store
        .runs_filtered(&filter)
        .map_err(Failure::environment)?
        .into_iter()
        .filter(|r| r.target == *target)
        .collect();
    if runs.is_empty() {
        let state = if freeze { "running" } else { "frozen" };
        println!("{target}: no {state} run of yours; nothing to do");
        return Ok(());
    }
    let mut asked = Vec::new();
    for run in &runs {
        match ask(store.as_ref(), run, named, freeze) {
            Ok(grace) => asked.push((run.id.clone(), grace)),
            Err(why) => eprintln!("{}: not {}: {why}", run.id, verb(freeze)),
        }
    }
    let mut failed = asked.len() < runs.len();
    for (id, grace) in asked {
        let mut arrived = wait(store.as_mut(), &id, freeze, grace + SETTLE)?;
        if !arrived && !freeze && kind == Kind::Slurm {
            // Released, but the cluster is busy: Slurm starts it when it can.
            let run = store.run(&id).map_err(Failure::environment)?.run;
            if let Some(queued) = super::slurm_window::queued(named, &run) {
                println!("{id}: {queued}: its agent resumes the run when Slurm starts it");
                arrived = true;
            }
        }
        failed |= !arrived;
        if arrived && freeze {
            // Frozen (with its checkpoint or not): the job gives its place back.
            let run = store.run(&id).map_err(Failure::environment)?.run;
            if let Err(why) = give_back(named, &run, grace) {
                eprintln!("{id}: {why}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Failure::JobFailed(format!(
            "not every run got {} (above)",
            if freeze { "frozen" } else { "woken" }
        )));
    }
    Ok(())
}

/// A frozen run's job gives back what it holds: Slurm's job requeued and held, podman's
/// container stopped; a local run's agent waits, holding nothing but itself.
fn give_back(target: &atlas_backends::Named, run: &RunRow, grace: Duration) -> Result<(), String> {
    match target.target.kind {
        Kind::Slurm => super::slurm_window::give_back(target, run)
            .map_err(|why| format!("its job was not given back to Slurm: {why}")),
        Kind::Kubernetes => {
            let dir = run.run_dir.as_deref().ok_or("it has no run directory")?;
            let said = atlas_backends::k8s_window::Window::connect(target)
                .and_then(|w| w.give_back(&run.id, std::path::Path::new(dir), grace))
                .map_err(|why| format!("its Job was not given back: {why}"))?;
            println!("{}: {said}", run.id);
            Ok(())
        }
        Kind::Podman => {
            let name = container(run)?;
            write_control(run, "release")?;
            let took = atlas_backends::podman_window::give_back(name, grace)
                .map_err(|why| format!("its container was not stopped: {why}"))?;
            println!(
                "{}: container {name} stopped: none of it runs, {:.1} s after it was given back",
                run.id,
                took.as_secs_f64()
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The run's container name, as its backend gave it (checked: it goes to podman).
fn container(run: &RunRow) -> Result<&str, String> {
    run.scheduler_id
        .as_deref()
        .filter(|n| atlas_spec::check_name(n).is_ok())
        .ok_or_else(|| "its container is not known".to_string())
}

/// Writes a request into the control file of a run whose directory is on this machine.
fn write_control(run: &RunRow, word: &str) -> Result<(), String> {
    let dir = run.run_dir.as_deref().ok_or("it has no run directory")?;
    let control = atlas_spec::RunDir::new(dir).control();
    std::fs::write(&control, format!("{word}\n"))
        .map_err(|e| format!("cannot write {}: {e}", control.display()))
}

fn verb(freeze: bool) -> &'static str {
    if freeze {
        "frozen"
    } else {
        "woken"
    }
}

/// The agent on this host, found by the pid and start time its runStart recorded.
fn signal_agent(store: &dyn Store, run: &RunRow) -> Result<(), String> {
    let (host, agent) = store
        .agent_process(&run.id)
        .map_err(|e| e.to_string())?
        .ok_or("its agent has not reported where it runs")?;
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if host != here.trim() {
        return Err(format!("its agent runs on {host}, not on this host"));
    }
    if !atlas_agent::procfs::is_alive(agent.pid, agent.start) {
        return Err("its agent is gone (see `atlas show`)".into());
    }
    // SAFETY: kill(2) on the agent's pid, checked alive with its start time just above.
    if unsafe { libc::kill(agent.pid as i32, libc::SIGUSR2) } != 0 {
        return Err(format!(
            "cannot signal its agent: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The agent in a podman container is its PID 1: `podman kill --signal USR2`; the control
/// file is in the run directory, which the container mounts at /atlas/run.
fn signal_container(run: &RunRow) -> Result<(), String> {
    let name = container(run)?;
    let out = std::process::Command::new("podman")
        .args(["kill", "--signal", "USR2", name])
        .output()
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "podman kill: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Why a run whose workflow saves no checkpoint is not frozen; on podman, what a transparent
/// checkpoint (CRIU) would need here.
fn no_checkpoint(kind: Kind) -> String {
    let lost = "its workflow has no spec.checkpoint, so freezing it would lose its work";
    if kind != Kind::Podman {
        return lost.into();
    }
    match atlas_backends::podman_window::criu_usable() {
        Err(why) => format!("{lost}; a transparent checkpoint (CRIU) cannot be taken here: {why}"),
        Ok(()) => format!(
            "{lost}; CRIU works on this machine, but Atlas does not take transparent checkpoints yet"
        ),
    }
}

/// Whether a podman run's container is stopped (given back at the freeze).
fn stopped(run: &RunRow) -> Result<bool, String> {
    let state = atlas_backends::podman_window::state(container(run)?)
        .map_err(|why| format!("its container is not there: {why}"))?;
    Ok(state != "running")
}

/// Writes the request into the run's directory and signals its agent; the checkpoint's grace.
fn ask(
    store: &dyn Store,
    run: &RunRow,
    target: &atlas_backends::Named,
    freeze: bool,
) -> Result<Duration, String> {
    let spec = store.run_spec(&run.id).map_err(|e| e.to_string())?;
    let workflow = spec
        .workflow
        .and_then(|text| atlas_spec::parse_workflow("workflow.yaml", &text).ok())
        .ok_or("its workflow is not in the store")?;
    let checkpoint = workflow
        .spec
        .checkpoint
        .ok_or_else(|| no_checkpoint(target.target.kind))?;
    if freeze && workflow.spec.scheduling.requeue == Some(false) {
        return Err("its workflow says it must not be stopped and started again (spec.scheduling.requeue: false, from --no-requeue, -rn or -r n)".into());
    }
    match (target.target.kind, freeze) {
        // Its control file is where its job runs (here, or on the cluster).
        (Kind::Slurm, true) => super::slurm_window::freeze(target, run)?,
        (Kind::Slurm, false) => super::slurm_window::wake(target, run)?,
        (Kind::Kubernetes, freeze) => {
            let window = atlas_backends::k8s_window::Window::connect(target)?;
            if freeze {
                window.freeze(&run.id)?
            } else {
                let dir = run.run_dir.as_deref().ok_or("it has no run directory")?;
                window.wake(&run.id, std::path::Path::new(dir))?
            }
        }
        (kind, _) => {
            write_control(run, if freeze { "freeze" } else { "wake" })?;
            match kind {
                Kind::Podman if !freeze && stopped(run)? => {
                    // Its agent, started again, resumes the run from its spool.
                    atlas_backends::podman_window::wake(container(run)?)
                        .map_err(|why| format!("its container did not start: {why}"))?
                }
                Kind::Podman => signal_container(run)?,
                _ => signal_agent(store, run)?,
            }
        }
    }
    if freeze {
        println!(
            "{}: asked to checkpoint (SIG{} to its job, up to {} s) and stop",
            run.id,
            checkpoint.signal.trim_start_matches("SIG"),
            checkpoint.grace().as_secs()
        );
    } else {
        let from = match run.windows.last() {
            Some(w) if w.clean && w.checkpoint_bytes.is_some() => "from its checkpoint",
            Some(w) if w.clean => "with its next phase",
            _ => "from the start of its phase (it was frozen without a checkpoint)",
        };
        println!("{}: asked to start again {from}", run.id);
    }
    Ok(checkpoint.grace())
}

/// Ingests what the spools of the caller's running and frozen runs of `target` hold (those
/// whose directory is here: on this machine, or the mirror of a remote one).
fn catch_up_runs(store: &mut dyn Store, target: &str) -> Result<(), Failure> {
    for status in [RunStatus::Running, RunStatus::Frozen] {
        let filter = RunFilter {
            visible_to: Some(super::user::current()),
            status: Some(status),
            ..Default::default()
        };
        let runs = store.runs_filtered(&filter).map_err(Failure::environment)?;
        for run in runs.iter().filter(|r| r.target == target) {
            catch_up_run(store, run)?;
        }
    }
    Ok(())
}

fn catch_up_run(store: &mut dyn Store, run: &RunRow) -> Result<(), Failure> {
    if let Some(dir) = run.run_dir.as_deref().map(atlas_spec::RunDir::new) {
        super::liveness::catch_up(store, &run.id, &dir).map_err(Failure::environment)?;
    }
    Ok(())
}

/// Waits until the run is frozen (or running again, or over); whether it got there. The
/// run's spool is read on the way, so a run whose `atlas run` is gone gets there too.
fn wait(store: &mut dyn Store, id: &str, freeze: bool, within: Duration) -> Result<bool, Failure> {
    let until = Instant::now() + within;
    loop {
        let run = store.run(id).map_err(Failure::environment)?.run;
        catch_up_run(store, &run)?;
        let run = store.run(id).map_err(Failure::environment)?.run;
        let arrived = if freeze {
            run.status == RunStatus::Frozen
        } else {
            run.status != RunStatus::Frozen
        };
        if arrived || run.status.is_over() {
            say(&run, freeze);
            // A freeze without a checkpoint got there, but lost work: not a success.
            let clean = !freeze || run.windows.last().is_some_and(|w| w.clean);
            return Ok(
                clean && (arrived && !run.status.is_over() || (!freeze && run.status.is_over()))
            );
        }
        if Instant::now() >= until {
            eprintln!(
                "{id}: not {} after {} s in the store; if its `atlas run` is gone, `atlas ingest` its spool ({}/spool.jsonl) to see where it is",
                verb(freeze),
                within.as_secs(),
                run.run_dir.as_deref().unwrap_or("its run directory")
            );
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn say(run: &RunRow, freeze: bool) {
    let Some(window) = run.windows.last().filter(|_| freeze) else {
        println!("{}: {}", run.id, run.status);
        return;
    };
    match (window.clean, window.checkpoint_bytes) {
        (true, None) => println!(
            "{}: frozen before phase {} ({})",
            run.id,
            window.phase,
            window.reason.as_deref().unwrap_or("between phases")
        ),
        (true, Some(bytes)) => println!(
            "{}: frozen in phase {}, checkpoint {} written in {:.1} s, job stopped {:.1} s after the signal",
            run.id,
            window.phase,
            super::format::bytes(bytes as i64),
            window.quiesce_seconds,
            window.stop_seconds
        ),
        _ => println!(
            "{}: frozen without checkpoint in phase {}: {}",
            run.id,
            window.phase,
            window.reason.as_deref().unwrap_or("no checkpoint")
        ),
    }
}
