//! `atlas backfill suggest [--target T]… [WORKFLOW…] [--format table|json]`: where and until
//! when each workflow (or, without one, each pending job of the queue) could start now without
//! delaying a reserved job, and why each fits or not (`atlas_capacity::backfill`).
//! `atlas backfill launch --target T WORKFLOW…`: runs the workflows that fit, each on the nodes
//! that make it fit (`--nodelist`) with its walltime, as an experiment labelled `backfill`.
//! `atlas backfill plan --target T`: when each pending job will start by Atlas's model of the
//! scheduler (`atlas_capacity::plan`) beside when Slurm itself expects it, and how many agree.

use std::path::PathBuf;

use atlas_backends::target::{self as targets, Kind, Named};
use atlas_capacity::backfill::{
    suggest_with_margin, Candidate, Reservation, Suggestion, SLURM_MARGIN_SECONDS,
};
use serde::Serialize;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas backfill suggest --target cluster\n  atlas backfill suggest --target cluster job.sbatch --format json"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Where each workflow (or pending job) fits now, until when, and why.
    Suggest {
        /// Only this target (repeatable); default: every slurm and kubernetes target.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Workflows or job scripts to place (default: the queue's pending jobs).
        workflows: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: super::format::ListFormat,
    },
    /// When each pending job of a Slurm target starts by Atlas's plan, beside Slurm's own
    /// expected start: a check of Atlas's model of the scheduler.
    Plan {
        /// The Slurm target.
        #[arg(long = "target")]
        target: String,
        #[arg(long, value_enum, default_value = "table")]
        format: super::format::ListFormat,
    },
    /// Runs the workflows that fit now on a Slurm target, each on its nodes, as experiments.
    Launch {
        /// The Slurm target.
        #[arg(long = "target")]
        target: String,
        /// Workflows or job scripts (each needs a walltime to fit before a reservation).
        #[arg(required = true)]
        workflows: Vec<PathBuf>,
        /// Sampling interval of the agent.
        #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
        interval: std::time::Duration,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetPlan<'a> {
    target: &'a str,
    reservations: Vec<Reservation>,
    suggestions: Vec<Suggestion>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (names, workflows, format) = match args.what {
        What::Suggest {
            targets,
            workflows,
            format,
        } => (targets, workflows, format),
        What::Launch {
            target,
            workflows,
            interval,
        } => return launch(&target, &workflows, interval),
        What::Plan { target, format } => return plan(&target, format),
    };
    let all = targets::load(&targets::config_files()).map_err(Failure::input)?;
    let chosen: Vec<&Named> = all
        .iter()
        .filter(|t| matches!(t.target.kind, Kind::Slurm | Kind::Kubernetes))
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .collect();
    if let Some(missing) = names.iter().find(|n| !chosen.iter().any(|t| &t.name == *n)) {
        return Err(Failure::input(format!(
            "`{missing}` is not a slurm or kubernetes target (see `atlas targets`)"
        )));
    }
    let mut candidates = Vec::new();
    for path in &workflows {
        candidates.push(candidate(path)?);
    }
    let mut plans = Vec::new();
    let mut failed = Vec::new();
    for target in chosen {
        let planned = atlas_backends::nodes::nodes(target).and_then(|nodes| {
            let (reservations, pending) = atlas_backends::nodes::queue(target)?;
            let wanted = if workflows.is_empty() {
                pending
            } else {
                candidates.clone()
            };
            Ok(TargetPlan {
                target: &target.name,
                suggestions: suggest_with_margin(&nodes, &reservations, &wanted, margin(target)),
                reservations,
            })
        });
        match planned {
            Ok(plan) => plans.push(plan),
            Err(e) => failed.push(format!("{}: {e}", target.name)),
        }
    }
    match format {
        super::format::ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "targets": plans }))
                .unwrap_or_default()
        ),
        super::format::ListFormat::Table => print(&plans),
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::environment(failed.join("\n")))
    }
}

/// How long before a reservation a job must end to be fitted: Slurm's planning step.
fn margin(target: &Named) -> f64 {
    if target.target.kind == Kind::Slurm {
        SLURM_MARGIN_SECONDS
    } else {
        0.0
    }
}

/// A workflow as a candidate: its nodes, CPUs per node and walltime.
fn candidate(path: &std::path::Path) -> Result<Candidate, Failure> {
    let workflow = super::load_workflow_or_script(path)?;
    let per_node = atlas_emit::k8s::pod::PerNode::of(&workflow);
    Ok(Candidate {
        name: workflow.metadata.name.clone(),
        nodes: per_node.nodes,
        cpus_per_node: f64::from(per_node.cpus),
        walltime: workflow.spec.resources.walltime.map(|w| w.as_secs() as f64),
    })
}

/// The Slurm target named `name`.
fn slurm_target(all: &[Named], name: &str) -> Result<Named, Failure> {
    all.iter()
        .find(|t| t.name == name && t.target.kind == Kind::Slurm)
        .cloned()
        .ok_or_else(|| {
            Failure::input(format!(
                "`{name}` is not a slurm target (see `atlas targets`)"
            ))
        })
}

/// How close Atlas's start must be to Slurm's to agree (Slurm prints whole seconds).
const AGREE_SECONDS: f64 = 1.0;

/// `atlas backfill plan`: Atlas's plan of the pending jobs beside Slurm's expected starts.
fn plan(name: &str, format: super::format::ListFormat) -> Result<(), Failure> {
    let all = targets::load(&targets::config_files()).map_err(Failure::input)?;
    let target = slurm_target(&all, name)?;
    let nodes = atlas_backends::nodes::nodes(&target).map_err(Failure::environment)?;
    let (running, pending, now, step) =
        atlas_backends::nodes::queue_snapshot(&target).map_err(Failure::environment)?;
    let planned = atlas_capacity::plan::plan_starts(&nodes, &running, &pending, now, step);
    let compared: Vec<_> = planned
        .iter()
        .filter_map(|p| Some((p.start? - p.scheduler_start?).abs()))
        .collect();
    let agree = compared.iter().filter(|d| **d <= AGREE_SECONDS).count();
    match format {
        super::format::ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "target": name, "now": now, "resolutionSeconds": step, "running": running.len(),
                "jobs": planned, "compared": compared.len(), "agree": agree,
                "agreeWithinSeconds": AGREE_SECONDS,
            }))
            .unwrap_or_default()
        ),
        super::format::ListFormat::Table => {
            let at = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("+{:.0} s", t - now));
            println!(
                "{name}: {} running, {} pending; plan steps of {step:.0} s (bf_resolution)",
                running.len(),
                pending.len()
            );
            println!("  {:<10} {:>10} {:>10}  nodes", "job", "slurm", "atlas");
            for p in &planned {
                println!(
                    "  {:<10} {:>10} {:>10}  {}",
                    p.job,
                    at(p.scheduler_start),
                    at(p.start),
                    p.nodes.join(",")
                );
            }
            println!(
                "{agree} of {} start(s) agree within {AGREE_SECONDS:.0} s",
                compared.len()
            );
        }
    }
    Ok(())
}

/// Plans the workflows on `target` and runs each that fits on its nodes; those that do not
/// are said with the reason (exit 1 when none fits).
fn launch(name: &str, paths: &[PathBuf], interval: std::time::Duration) -> Result<(), Failure> {
    let all = targets::load(&targets::config_files()).map_err(Failure::input)?;
    let target = &slurm_target(&all, name)?;
    let mut workflows = Vec::new();
    for path in paths {
        workflows.push((
            path,
            super::load_workflow_or_script(path)?,
            candidate(path)?,
        ));
    }
    let mut launched = 0;
    let mut outcome = Ok(());
    // Planned again before each: the holes shrink while the earlier ones run.
    for (path, workflow, wanted) in &workflows {
        let nodes = atlas_backends::nodes::nodes(target).map_err(Failure::environment)?;
        let (reservations, _) =
            atlas_backends::nodes::queue(target).map_err(Failure::environment)?;
        let planned = suggest_with_margin(
            &nodes,
            &reservations,
            std::slice::from_ref(wanted),
            margin(target),
        );
        let s = &planned[0];
        if !s.fits {
            eprintln!("{}: not launched: {}", path.display(), s.reason);
            continue;
        }
        eprintln!(
            "{}: launching on {}: {}",
            path.display(),
            s.nodes.join(","),
            s.reason
        );
        let mut placed = target.clone();
        placed
            .target
            .sbatch_options
            .push(format!("--nodelist={}", s.nodes.join(",")));
        let mut labels =
            std::collections::BTreeMap::from([("backfill".to_string(), s.nodes.join(","))]);
        if let Some(until) = s.until {
            labels.insert("backfill-until-seconds".into(), format!("{until:.0}"));
        }
        launched += 1;
        let result = super::run::launch(&super::run::Launch {
            workflow_path: path,
            workflow,
            targets: std::slice::from_ref(&placed),
            repeat: 1,
            nodes: &[],
            parallel: false,
            labels,
            interval,
            db: None,
            tenant: super::tenant::from_env(),
        })
        .map(|_| ());
        if outcome.is_ok() {
            outcome = result;
        }
    }
    if launched == 0 {
        return Err(Failure::JobFailed(
            "no workflow fits now; nothing was launched".into(),
        ));
    }
    outcome
}

fn print(plans: &[TargetPlan<'_>]) {
    for plan in plans {
        println!(
            "{}: {} reservation(s)",
            plan.target,
            plan.reservations.len()
        );
        for r in &plan.reservations {
            println!(
                "  job {} starts in {:.0} s on {}",
                r.job,
                r.starts_in,
                if r.nodes.is_empty() {
                    "(any node)".to_string()
                } else {
                    r.nodes.join(",")
                }
            );
        }
        if plan.suggestions.is_empty() {
            println!("  nothing to place (no workflow given, no pending job)");
        }
        for s in &plan.suggestions {
            println!(
                "  {:<24} {:<8} {}",
                s.candidate.name,
                if s.fits { "fits" } else { "no" },
                s.reason
            );
        }
    }
}
