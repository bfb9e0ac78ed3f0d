//! `atlas targets [--format table|json]` lists the targets; `atlas targets check [NAME]` says
//! for each whether its tools are installed and reachable (exit 3 when one is not).

use std::process::Command;

use crate::exit::Failure;
use crate::targets::{self, Kind, Named};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    check: Option<Sub>,
    #[arg(long, value_enum, default_value = "table")]
    format: super::format::ListFormat,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Check that each target (or NAME) can be used from here.
    Check {
        /// Only this target.
        name: Option<String>,
    },
}

pub fn run(args: Args) -> Result<(), Failure> {
    let all = targets::load(&targets::config_files()).map_err(Failure::input)?;
    match args.check {
        None => list(&all, args.format),
        Some(Sub::Check { name }) => {
            let chosen: Vec<&Named> = match &name {
                Some(n) => vec![all.iter().find(|t| &t.name == n).ok_or_else(|| {
                    let known: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
                    Failure::input(format!(
                        "unknown target `{n}` (known: {})",
                        known.join(", ")
                    ))
                })?],
                None => all.iter().collect(),
            };
            let mut unusable = 0;
            for target in chosen {
                let (ok, detail) = check(target);
                unusable += usize::from(!ok);
                println!(
                    "{:<12} {:<4} {detail}",
                    target.name,
                    if ok { "ok" } else { "FAIL" }
                );
            }
            if unusable > 0 {
                return Err(Failure::environment(format!(
                    "{unusable} target(s) cannot be used from here"
                )));
            }
            Ok(())
        }
    }
}

fn list(all: &[Named], format: super::format::ListFormat) -> Result<(), Failure> {
    let text = match format {
        super::format::ListFormat::Json => {
            serde_json::to_string_pretty(all).map_err(Failure::environment)? + "\n"
        }
        super::format::ListFormat::Table => {
            let mut out = format!(
                "{:<12} {:<8} {:<40} {}\n",
                "TARGET", "KIND", "SETTINGS", "FROM"
            );
            for t in all {
                let value = serde_json::to_value(&t.target).unwrap_or_default();
                let settings: Vec<String> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != "kind")
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            v.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| v.to_string())
                        )
                    })
                    .collect();
                let kind = serde_json::to_value(t.target.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                out += &format!(
                    "{:<12} {:<8} {:<40} {}\n",
                    t.name,
                    kind,
                    settings.join(" "),
                    t.source
                );
            }
            out
        }
    };
    super::write_output(None, &text)
}

/// Whether `program` is on PATH.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs a command; its stdout, or a one-line reason it failed.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{program} failed: {}",
            err.lines().next().unwrap_or("no message")
        ))
    }
}

/// (usable, what was found).
fn check(target: &Named) -> (bool, String) {
    let t = &target.target;
    match t.kind {
        Kind::Local => match installed("bash") {
            true => (true, "bash, /proc".into()),
            false => (false, "bash is not installed".into()),
        },
        Kind::Slurm => {
            if let Some(missing) = ["sbatch", "squeue", "scancel", "sinfo"]
                .into_iter()
                .find(|p| !installed(p))
            {
                return (false, format!("{missing} is not installed (Debian: slurm-client; a local cluster: scripts/slurm-up)"));
            }
            match output("sinfo", &["-h", "-o", "%P|%a|%D|%T|%C"]) {
                Err(why) => (false, format!("the controller is unreachable: {why}")),
                Ok(table) => {
                    let rows: Vec<Vec<&str>> =
                        table.lines().map(|l| l.split('|').collect()).collect();
                    let wanted = t.partition.as_deref();
                    let row = rows
                        .iter()
                        .find(|r| wanted.is_none_or(|p| r[0].trim_end_matches('*') == p));
                    match row {
                        None => (
                            false,
                            format!("partition `{}` does not exist", wanted.unwrap_or("?")),
                        ),
                        Some(r) if r.len() == 5 => {
                            let cpus: Vec<&str> = r[4].split('/').collect();
                            let idle = cpus.get(1).copied().unwrap_or("?");
                            let usable = r[1] == "up";
                            (
                                usable,
                                format!(
                                    "partition {} {}, {} node(s) {}, {idle} CPUs idle",
                                    r[0].trim_end_matches('*'),
                                    r[1],
                                    r[2],
                                    r[3]
                                ),
                            )
                        }
                        Some(_) => (false, format!("unexpected sinfo output: {table}")),
                    }
                }
            }
        }
        Kind::Podman => {
            if !installed("podman") {
                return (
                    false,
                    "podman is not installed (Debian: podman runc)".into(),
                );
            }
            match output("podman", &["info", "--format", "{{.Host.OCIRuntime.Name}}"]) {
                Err(why) => (false, why),
                Ok(runtime) => match &t.image {
                    Some(image) if output("podman", &["image", "exists", image]).is_err() => (
                        false,
                        format!("runtime {runtime}; the image {image} is missing"),
                    ),
                    Some(image) => (true, format!("runtime {runtime}, image {image}")),
                    None => (true, format!("runtime {runtime}")),
                },
            }
        }
    }
}
