//! `atlas run WORKFLOW --on TARGET… [--repeat N] [--nodes 1,2…] [--parallel] [--label k=v]…
//! [--interval 1s]`:
//! one experiment of the workflow (or a job script, imported first) on every target. Inputs
//! are checked before anything is submitted; the like-for-like check is recorded with the
//! experiment; each run's agent spool is followed into the store with live progress on stderr.
//! Runs go one after another, interleaved (A B C A B C…), or with `--parallel` every target of
//! a repetition at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use atlas_backends::Named;
use atlas_run::{run_experiment, Plan, Summary};

use crate::exit::Failure;

mod terminal;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas run job.lsf --on local\n  atlas run atlas.yaml --on local --on slurm --repeat 3 --label lr=0.5\n  atlas run atlas.yaml --on podman --parallel --interval 500ms\n  atlas run job.sbatch --on cluster --on podman --nodes 1,2,3"
)]
pub struct Args {
    /// A Workflow (atlas.yaml) or a job script (LSF, Slurm or PBS; imported first).
    workflow: PathBuf,
    /// Where to run: a target name from `atlas targets` (repeatable).
    #[arg(long = "on", required = true)]
    targets: Vec<String>,
    /// Runs per target.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Run every target of a repetition at the same time (default: one after another).
    #[arg(long)]
    parallel: bool,
    /// Node counts to run at, each on every target (`--nodes 1,2,3`): a scaling experiment,
    /// whose report gives the speed-up per host count.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1024))]
    nodes: Vec<u32>,
    /// A label for the experiment and its runs (repeatable).
    #[arg(long = "label", value_parser = super::parse_label)]
    labels: Vec<(String, String)>,
    /// Sampling interval of the agent.
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    interval: Duration,
    /// Judge the targets' references and thresholds (`checks` in atlas.toml) on the experiment
    /// once it has run, and exit 1 when one fails.
    #[arg(long)]
    check: bool,
    /// The tenant (team) the runs belong to, when you are in several (default: $ATLAS_TENANT,
    /// else your only one).
    #[arg(long)]
    tenant: Option<String>,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut seen = Vec::new();
    for n in &args.nodes {
        if seen.contains(n) {
            return Err(Failure::input(format!(
                "--nodes names {n} twice: each node count once (--repeat gives more runs of each)"
            )));
        }
        seen.push(*n);
    }
    let targets = chosen_targets(&args.targets)?;
    let workflow = super::load_workflow_or_script(&args.workflow)?;
    let experiment = launch(&Launch {
        workflow_path: &args.workflow,
        workflow: &workflow,
        targets: &targets,
        repeat: args.repeat,
        nodes: &args.nodes,
        parallel: args.parallel,
        labels: args.labels.iter().cloned().collect(),
        interval: args.interval,
        db: args.db.as_deref(),
        tenant: args.tenant.or_else(super::tenant::from_env),
    })?;
    if args.check {
        super::compare::check_experiment(&experiment, args.db.as_deref())?;
    }
    Ok(())
}

/// One experiment to run, as `atlas run` (or `atlas backfill launch`) was asked.
pub(crate) struct Launch<'a> {
    pub workflow_path: &'a std::path::Path,
    pub workflow: &'a atlas_spec::Workflow,
    pub targets: &'a [Named],
    pub repeat: u32,
    pub nodes: &'a [u32],
    pub parallel: bool,
    pub labels: BTreeMap<String, String>,
    pub interval: Duration,
    pub db: Option<&'a std::path::Path>,
    /// The tenant asked for (`--tenant`, `ATLAS_TENANT`).
    pub tenant: Option<String>,
}

/// Checks the inputs, runs the experiment with live progress, and says how it ended; its id.
pub(crate) fn launch(l: &Launch<'_>) -> Result<String, Failure> {
    let project_dir = std::env::current_dir()
        .map_err(|e| Failure::environment(format!("cannot read the current directory: {e}")))?;
    let (mut store, db_path) = super::db::open(l.db)?;
    let owner = crate::commands::user::current();
    if !crate::commands::user::valid_name(&owner) {
        return Err(Failure::input(format!(
            "{:?} ($ATLAS_USER, else $USER) is not a user name: lowercase letters, digits, `-`, `_` and `.`",
            owner.chars().take(64).collect::<String>()
        )));
    }
    let tenant = super::tenant::choose(&*store, &owner, l.tenant.as_deref())?;
    let mut max_active_runs = None;
    if let Some(tenant) = &tenant {
        let runs = u64::from(l.repeat) * l.targets.len() as u64 * l.nodes.len().max(1) as u64;
        let quotas = super::tenant::check_quota(&*store, tenant, l.workflow, l.nodes, runs)?;
        max_active_runs = quotas.runs;
        eprintln!("runs of tenant `{tenant}`: its members see them");
    }
    let targets = super::tenant::in_namespace(l.targets, tenant.as_deref());
    let store_dir = db_path.parent().unwrap_or(&project_dir).to_path_buf();
    let inputs = atlas_backends::data::verify(
        &l.workflow.spec.data.inputs,
        &project_dir,
        &store_dir.join("inputs"),
    )
    .map_err(|why| {
        Failure::input(format!(
            "{}: {why}; nothing was submitted",
            l.workflow_path.display()
        ))
    })?;
    let agent = std::env::current_exe()
        .map_err(|e| Failure::environment(format!("cannot find the atlas binary: {e}")))?;
    let runs_dir = super::db::runs_dir(&db_path);
    let plan = Plan {
        workflow: l.workflow,
        targets: &targets,
        repeat: l.repeat,
        nodes: l.nodes,
        parallel: l.parallel,
        labels: serde_json::to_value(&l.labels).unwrap_or_default(),
        interval: l.interval,
        project_dir: &project_dir,
        runs_dir: &runs_dir,
        agent: &agent,
        inputs: &inputs,
        owner: Some(owner),
        tenant,
        max_active_runs,
    };
    // Ctrl-C / SIGTERM: cancel the running jobs, let their agents record it, start no more.
    atlas_agent::signals::install();
    let names: Vec<String> = l.targets.iter().map(|t| t.name.clone()).collect();
    let mut terminal = terminal::Terminal::new(&l.workflow.metadata.name, &names);
    let summary =
        run_experiment(&mut *store, &plan, &mut terminal).map_err(Failure::environment)?;
    finish(&summary)?;
    Ok(summary.experiment.clone())
}

/// The targets named with `--on`, each known; an unknown one is an input error.
fn chosen_targets(names: &[String]) -> Result<Vec<Named>, Failure> {
    let known = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    names
        .iter()
        .map(|name| {
            known
                .iter()
                .find(|t| &t.name == name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = known.iter().map(|t| t.name.as_str()).collect();
                    Failure::input(format!(
                        "unknown target `{name}` (known: {}; see `atlas targets`)",
                        names.join(", ")
                    ))
                })
        })
        .collect()
}

/// The experiment's summary line and exit: 3 when a target was unusable, 1 when a run failed.
fn finish(summary: &Summary) -> Result<(), Failure> {
    let experiment = &summary.experiment;
    eprintln!(
        "\nexperiment {experiment}: {} of {} run(s) succeeded; see `atlas show {experiment}`, `atlas logs RUN`",
        summary.succeeded(),
        summary.total
    );
    let unusable = summary.unusable();
    let failures = summary.failures();
    let all = [&unusable[..], &failures[..]].concat().join("; ");
    let prefix = if summary.interrupted {
        "interrupted; "
    } else {
        ""
    };
    if !unusable.is_empty() {
        return Err(Failure::environment(format!("{prefix}{all}")));
    }
    if !failures.is_empty() || summary.interrupted {
        return Err(Failure::JobFailed(format!("{prefix}{all}")));
    }
    Ok(())
}
