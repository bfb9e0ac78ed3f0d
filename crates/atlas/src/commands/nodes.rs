//! `atlas nodes [--target T]… [--format table|json]`: every node of the Slurm and Kubernetes
//! targets (or those named), what the scheduler says and has allocated there, what is measured
//! on it, and its class (idle, under-used, busy, down, unknown) with the reason. A target that
//! cannot be reached is said on stderr (exit 3) after the others are shown.

use atlas_backends::target::{self as targets, Kind, Named};
use atlas_capacity::{classify, Class, Node, Thresholds};
use serde::Serialize;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas nodes\n  atlas nodes --target cluster --format json")]
pub struct Args {
    #[command(subcommand)]
    logs: Option<Sub>,
    /// Only this target (repeatable); default: every slurm and kubernetes target.
    #[arg(long = "target")]
    targets: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: super::format::ListFormat,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// A node's recent slurmd and kernel log lines.
    Logs {
        /// The node.
        node: String,
        /// The Slurm target it belongs to (default: the only one with that node).
        #[arg(long)]
        target: Option<String>,
        /// Lines per log.
        #[arg(long, default_value_t = 50)]
        lines: usize,
    },
}

/// One node in the output.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    target: &'a str,
    #[serde(flatten)]
    node: &'a Node,
    class: Class,
    reason: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let all = targets::load(&targets::config_files()).map_err(Failure::input)?;
    if let Some(Sub::Logs {
        node,
        target,
        lines,
    }) = args.logs
    {
        return logs(&all, &node, target.as_deref(), lines);
    }
    let chosen = chosen(&all, &args.targets)?;
    let mut listed: Vec<(&Named, Vec<Node>)> = Vec::new();
    let mut failed = Vec::new();
    for target in chosen {
        match atlas_backends::nodes::nodes(target) {
            Ok(mut nodes) => {
                let minutes = thresholds(target).minutes;
                atlas_backends::nodes::measure(target, &mut nodes, minutes);
                listed.push((target, nodes));
            }
            Err(e) => failed.push(format!("{}: {e}", target.name)),
        }
    }
    let rows: Vec<Row<'_>> = listed
        .iter()
        .flat_map(|(target, nodes)| {
            let thresholds = thresholds(target);
            nodes.iter().map(move |node| {
                let (class, reason) = classify(node, &thresholds);
                Row {
                    target: &target.name,
                    node,
                    class,
                    reason,
                }
            })
        })
        .collect();
    match args.format {
        super::format::ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "nodes": rows })).unwrap_or_default()
        ),
        super::format::ListFormat::Table => print_table(&rows),
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::environment(failed.join("\n")))
    }
}

/// `atlas nodes logs NODE`: the node's slurmd and kernel lines, from the target named or the
/// first Slurm target that has the node.
fn logs(all: &[Named], node: &str, target: Option<&str>, lines: usize) -> Result<(), Failure> {
    let slurm: Vec<&Named> = all
        .iter()
        .filter(|t| t.target.kind == Kind::Slurm && target.is_none_or(|n| t.name == n))
        .collect();
    if slurm.is_empty() {
        return Err(Failure::input(match target {
            Some(name) => format!("`{name}` is not a slurm target (see `atlas targets`)"),
            None => "no slurm target in atlas.toml".to_string(),
        }));
    }
    let mut last = None;
    for t in slurm {
        match atlas_backends::nodes::logs(t, node, lines) {
            Ok(sources) => {
                for (label, text) in sources {
                    println!("==> {}: {node}: {label} <==\n{text}\n", t.name);
                }
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(atlas_backends::BackendError::Rejected(why)) => Failure::input(why),
        Some(e) => Failure::environment(e),
        None => Failure::input(format!("no node `{node}`")),
    })
}

/// The targets named, each known and of a kind with nodes; else every such target.
fn chosen<'a>(all: &'a [Named], names: &[String]) -> Result<Vec<&'a Named>, Failure> {
    let has_nodes = |t: &Named| matches!(t.target.kind, Kind::Slurm | Kind::Kubernetes);
    if names.is_empty() {
        return Ok(all.iter().filter(|t| has_nodes(t)).collect());
    }
    let mut unique: Vec<&String> = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    unique
        .into_iter()
        .map(|name| {
            let target = all.iter().find(|t| &t.name == name).ok_or_else(|| {
                let known: Vec<&str> = all
                    .iter()
                    .filter(|t| has_nodes(t))
                    .map(|t| t.name.as_str())
                    .collect();
                Failure::input(format!(
                    "unknown target `{name}` (with nodes: {})",
                    known.join(", ")
                ))
            })?;
            if has_nodes(target) {
                Ok(target)
            } else {
                Err(Failure::input(format!(
                    "target `{name}` is a {} target: only slurm and kubernetes targets have nodes",
                    format!("{:?}", target.target.kind).to_lowercase()
                )))
            }
        })
        .collect()
}

/// The target's under-use thresholds (atlas.toml), else the defaults.
fn thresholds(target: &Named) -> Thresholds {
    let default = Thresholds::default();
    Thresholds {
        percent: target.target.under_used_percent.unwrap_or(default.percent),
        minutes: target.target.under_used_minutes.unwrap_or(default.minutes),
    }
}

fn print_table(rows: &[Row<'_>]) {
    println!(
        "{:<12} {:<16} {:<11} {:>9} {:>13} {:>7}  {:<10} REASON",
        "TARGET", "NODE", "STATE", "CPUS", "MEMORY", "GPUS", "CLASS"
    );
    for r in rows {
        let n = r.node;
        println!(
            "{:<12} {:<16} {:<11} {:>9} {:>13} {:>7}  {:<10} {}",
            r.target,
            n.name,
            n.scheduler_state,
            format!("{}/{}", n.cpus.allocated, n.cpus.total),
            format!(
                "{:.0}/{:.0} MiB",
                n.memory_mib.allocated, n.memory_mib.total
            ),
            format!("{}/{}", n.gpus.allocated, n.gpus.total),
            r.class.as_str(),
            r.reason
        );
    }
}
