//! `atlas targets [--format table|json]` lists the targets; `atlas targets check [NAME]` says
//! for each whether its tools are installed and reachable (exit 3 when one is not).

use crate::exit::Failure;
use atlas_backends::check::check;
use atlas_backends::target::{self as targets, Named};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas targets\n  atlas targets check")]
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
