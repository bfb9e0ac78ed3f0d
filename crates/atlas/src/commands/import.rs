//! `atlas import SCRIPT`: a job script to a Workflow, with the conversion report.

use std::fmt::Write as _;
use std::path::PathBuf;

use atlas_import::{import, ConversionReport, Dialect, ImportOptions, Status};
use atlas_spec::LauncherKind;

use crate::exit::Failure;

#[derive(Clone, Copy, clap::ValueEnum)]
enum DialectChoice {
    Auto,
    Lsf,
    Slurm,
    Pbs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas import job.lsf -o atlas.yaml\n  atlas import job.sbatch --format json\n  atlas import run.sh --dialect slurm\n  atlas import job.lsf --lsf-unit MB   # the site's LSF_UNIT_FOR_LIMITS=MB"
)]
pub struct Args {
    /// The job script (LSF #BSUB, Slurm #SBATCH or PBS #PBS).
    script: PathBuf,
    /// The script's dialect; `auto` detects it from the directives.
    #[arg(long, value_enum, default_value = "auto")]
    dialect: DialectChoice,
    /// `yaml`: the Workflow on stdout, the report on stderr. `json`: one object
    /// {"workflow": …, "report": …} on stdout.
    #[arg(long, value_enum, default_value = "yaml")]
    format: Format,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// What a bare LSF memory number counts (`-M 4096`, `rusage[mem=4096]`): the site's
    /// LSF_UNIT_FOR_LIMITS from lsf.conf, KB, MB, GB or TB (default: $LSF_UNIT_FOR_LIMITS, else KB).
    #[arg(long, value_name = "UNIT")]
    lsf_unit: Option<String>,
}

/// The site's LSF memory unit: `given`, else `$LSF_UNIT_FOR_LIMITS`, else KB.
pub fn lsf_unit(given: Option<&str>) -> Result<atlas_import::LsfUnit, Failure> {
    let from_env = std::env::var("LSF_UNIT_FOR_LIMITS").ok();
    let (text, source) = match (given, from_env.as_deref()) {
        (Some(t), _) => (t, "--lsf-unit"),
        (None, Some(t)) if !t.trim().is_empty() => (t, "LSF_UNIT_FOR_LIMITS"),
        _ => return Ok(atlas_import::LsfUnit::default()),
    };
    atlas_import::LsfUnit::parse(text).ok_or_else(|| {
        Failure::input(format!(
            "{source} `{}`: one of KB, MB, GB, TB (as lsf.conf's LSF_UNIT_FOR_LIMITS)",
            text.escape_debug()
        ))
    })
}

pub fn run(args: Args) -> Result<(), Failure> {
    let text = super::read_text(&args.script)?;
    let options = ImportOptions {
        dialect: match args.dialect {
            DialectChoice::Auto => None,
            DialectChoice::Lsf => Some(Dialect::Lsf),
            DialectChoice::Slurm => Some(Dialect::Slurm),
            DialectChoice::Pbs => Some(Dialect::Pbs),
        },
        fallback_name: args
            .script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned()),
        lsf_unit: lsf_unit(args.lsf_unit.as_deref())?,
    };
    let imported = import(&text, &options)
        .map_err(|e| Failure::input(format!("{}: {e}", args.script.display())))?;
    match args.format {
        Format::Json => {
            let object =
                serde_json::json!({ "workflow": imported.workflow, "report": imported.report });
            let text = serde_json::to_string_pretty(&object).map_err(Failure::environment)?;
            super::write_output(args.output.as_deref(), &(text + "\n"))
        }
        Format::Yaml => {
            super::write_output(
                args.output.as_deref(),
                &atlas_spec::to_yaml(&imported.workflow),
            )?;
            eprint!(
                "{}",
                render_report(
                    &args.script.display().to_string(),
                    &imported.report,
                    &imported.workflow
                )
            );
            Ok(())
        }
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Mapped => "mapped",
        Status::Ignored => "ignored",
        Status::Unsupported => "unsupported",
        Status::Invalid => "invalid",
    }
}

/// The report as a readable table for stderr.
pub fn render_report(
    file: &str,
    report: &ConversionReport,
    workflow: &atlas_spec::Workflow,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} script {file}: {} directive options: {} mapped, {} ignored, {} unsupported, {} invalid",
        report.dialect.display_name(),
        report.directives.len(),
        report.count(Status::Mapped),
        report.count(Status::Ignored),
        report.count(Status::Unsupported),
        report.count(Status::Invalid),
    );
    let option_width = report
        .directives
        .iter()
        .map(|d| d.option.chars().count())
        .max()
        .unwrap_or(0)
        .min(16);
    for d in &report.directives {
        let detail = match (d.status, &d.field, &d.note) {
            (Status::Mapped, Some(field), Some(note)) => format!("-> {field} ({note})"),
            (Status::Mapped, Some(field), None) => format!("-> {field}"),
            (_, _, Some(note)) => note.clone(),
            _ => String::new(),
        };
        let value = d
            .value
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  line {:>4}  {:<11}  {:<option_width$}{value}  {detail}",
            d.line,
            status_word(d.status),
            d.option,
        );
    }
    let launcher = &workflow.spec.launcher;
    if launcher.kind != LauncherKind::None {
        let kind = serde_json::to_value(launcher.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  launcher: {kind} (line {})",
            launcher.line.unwrap_or(0)
        );
    }
    let vars = &workflow.spec.environment.scheduler_variables;
    if !vars.is_empty() {
        let _ = writeln!(
            out,
            "  scheduler variables the commands read: {}",
            vars.join(", ")
        );
    }
    for w in &report.warnings {
        match w.line {
            Some(line) => {
                let _ = writeln!(out, "  warning: line {line}: {}", w.message);
            }
            None => {
                let _ = writeln!(out, "  warning: {}", w.message);
            }
        }
    }
    out
}
