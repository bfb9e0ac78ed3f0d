//! `atlas compare EXPERIMENT | RUN… [--baseline TARGET] [--format …] [-o FILE]`: the comparison
//! report (crate `atlas-report`) of an experiment's runs or of the runs named.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use atlas_report::prices::PriceSheet;
use atlas_report::render::{render, Format};
use atlas_report::{Options, ReportError, Selection};

use crate::exit::Failure;

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Terminal,
    Html,
    Md,
    Json,
    Csv,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas compare e-3f9a1c2e\n  atlas compare r-1 r-2 --baseline local --format html -o report.html\n  atlas compare r-1 r-2 r-3 r-4 --by label:lr\n  atlas compare e-3f9a1c2e --by param:batch-size --format json\n  atlas compare e-3f9a1c2e --check   (exit 1 when a target's `checks` fail)"
)]
pub struct Args {
    /// An experiment id (`e-…`), or one or more run ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// The group the others are compared with (default: the first one).
    #[arg(long)]
    baseline: Option<String>,
    /// What runs are grouped by: target, label:KEY, param:NAME (from `--NAME VALUE` in the
    /// commands) or run.
    #[arg(long, default_value = "target")]
    by: atlas_report::GroupBy,
    #[arg(long, value_enum, default_value = "terminal")]
    format: OutputFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The app metric that counts work done, for the cost per 1,000 units (e.g. `samples`).
    #[arg(long)]
    unit: Option<String>,
    /// A price sheet read over the default one (docs/compare.md).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Refuse to compare runs that differ in more than their target.
    #[arg(long)]
    strict: bool,
    /// Exit 1 when a reference or threshold fails (the workflow's spec.checks, atlas.toml's
    /// `checks`).
    #[arg(long)]
    check: bool,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<PathBuf>,
}

/// The targets' checks as atlas.toml gives them, parsed; a check that does not parse is an
/// input error naming its target.
fn target_checks(
    targets: &[atlas_backends::target::Named],
) -> Result<Vec<(String, Vec<atlas_report::checks::Check>)>, Failure> {
    let mut checks = Vec::new();
    for t in targets.iter().filter(|t| !t.target.checks.is_empty()) {
        let parsed = t
            .target
            .checks
            .iter()
            .map(|c| atlas_report::checks::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure::input(format!("target `{}`: checks: {e}", t.name)))?;
        checks.push((t.name.clone(), parsed));
    }
    Ok(checks)
}

/// The workflow's own checks (`spec.checks`: per target, `*` for all) for each group, with
/// atlas.toml's for the same target after them; a check that does not parse is an input
/// error naming where it was written.
fn merged_checks(
    workflow: Option<&atlas_spec::Workflow>,
    groups: &[String],
    from_targets: Vec<(String, Vec<atlas_report::checks::Check>)>,
) -> Result<Vec<(String, Vec<atlas_report::checks::Check>)>, Failure> {
    let mut merged = Vec::new();
    for group in groups {
        let mut list = Vec::new();
        if let Some(w) = workflow {
            for key in ["*", group.as_str()] {
                for text in w.spec.checks.get(key).into_iter().flatten() {
                    let check = atlas_report::checks::parse(text).map_err(|e| {
                        Failure::input(format!("the workflow's spec.checks.{key}: {e}"))
                    })?;
                    list.push(check);
                }
            }
        }
        if let Some((_, more)) = from_targets.iter().find(|(t, _)| t == group) {
            list.extend(more.iter().cloned());
        }
        if !list.is_empty() {
            merged.push((group.clone(), list));
        }
    }
    Ok(merged)
}

/// `atlas run --check`: the experiment's comparison (default options), its checks printed;
/// exit 1 when one fails.
pub(crate) fn check_experiment(
    experiment: &str,
    db: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let targets = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    let from_targets = target_checks(&targets)?;
    let (store, _) = super::db::open(db)?;
    let selection = Selection::Experiment(experiment.to_string());
    let loaded =
        atlas_report::load(&*store, &selection).map_err(|e| Failure::environment(e.to_string()))?;
    let workflow = loaded.runs.iter().find_map(|r| r.workflow.clone());
    let options = Options {
        baseline: None,
        unit: None,
        strict: false,
        prices: PriceSheet::load(None).map_err(Failure::input)?,
        target_prices: targets
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.target.price.clone()?)))
            .collect(),
        by: atlas_report::GroupBy::Target,
    };
    let mut report =
        atlas_report::compare(loaded, &options).map_err(|e| Failure::environment(e.to_string()))?;
    let checks = merged_checks(workflow.as_ref(), &report.targets, from_targets)?;
    if checks.is_empty() {
        return Err(Failure::input(
            "--check: neither the workflow (spec.checks) nor a target here (`checks` in atlas.toml) sets a check (docs/compare.md)",
        ));
    }
    report.checks = atlas_report::checks::evaluate(&report, &checks);
    for line in atlas_report::render::check_lines(&report) {
        eprintln!("check: {line}");
    }
    failed_checks(&report)
}

/// Exit 1 naming the checks that failed.
fn failed_checks(report: &atlas_report::Report) -> Result<(), Failure> {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| format!("{}: {}", c.target, c.check))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure::JobFailed(format!(
        "{} check(s) failed: {}",
        failed.len(),
        failed.join("; ")
    )))
}

pub fn run(args: Args) -> Result<(), Failure> {
    let extra = match &args.prices {
        Some(path) => Some((path.clone(), super::read_text(path)?)),
        None => None,
    };
    let prices = PriceSheet::load(extra.as_ref().map(|(p, t)| (p.as_path(), t.as_str())))
        .map_err(Failure::input)?;
    let targets = atlas_backends::target::load(&atlas_backends::target::config_files())
        .map_err(Failure::input)?;
    let target_prices: BTreeMap<String, String> = targets
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.target.price.clone()?)))
        .collect();
    let from_targets = target_checks(&targets)?;
    let selection = match args.ids.as_slice() {
        [one] if one.starts_with("e-") => Selection::Experiment(one.clone()),
        ids => Selection::Runs(ids.to_vec()),
    };
    let (store, _) = super::db::open(args.db.as_deref())?;
    let failure = |e: ReportError| match e {
        ReportError::Input(m) => Failure::input(m),
        ReportError::NotLikeForLike(m) => Failure::JobFailed(format!(
            "the runs are not like for like; --strict refuses to compare them:\n{m}"
        )),
        ReportError::Store(e) => Failure::environment(e),
    };
    let loaded = atlas_report::load(&*store, &selection).map_err(failure)?;
    let workflow = loaded.runs.iter().find_map(|r| r.workflow.clone());
    let options = Options {
        baseline: args.baseline,
        unit: args.unit,
        strict: args.strict,
        prices,
        target_prices,
        by: args.by,
    };
    let mut report = atlas_report::compare(loaded, &options).map_err(failure)?;
    if report.by == "target" {
        let checks = merged_checks(workflow.as_ref(), &report.targets, from_targets)?;
        report.checks = atlas_report::checks::evaluate(&report, &checks);
    }
    let format = match args.format {
        OutputFormat::Terminal => Format::Terminal {
            colour: args.output.is_none()
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none(),
        },
        OutputFormat::Html => Format::Html,
        OutputFormat::Md => Format::Markdown,
        OutputFormat::Json => Format::Json,
        OutputFormat::Csv => Format::Csv,
    };
    super::write_output(args.output.as_deref(), &render(&report, format))?;
    if let Some(path) = &args.output {
        eprintln!("wrote {}", path.display());
    }
    if args.check {
        failed_checks(&report)?;
    }
    // Nothing to compare when no run succeeded: the report is written (it shows the runs), and
    // the exit says why, with each run's cause.
    if !report.runs.is_empty() && report.runs.iter().all(|r| r.excluded.is_some()) {
        let causes: Vec<String> = report
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.id,
                    r.cause.as_deref().unwrap_or(r.status.as_str())
                )
            })
            .collect();
        return Err(Failure::JobFailed(format!(
            "no run succeeded, so there is nothing to compare; {}",
            causes.join("; ")
        )));
    }
    Ok(())
}
