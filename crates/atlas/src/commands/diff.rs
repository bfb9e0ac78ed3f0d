//! `atlas diff RUN RUN`: what differs between two runs (`atlas_report::diff`), the differing
//! words marked: in colour on a terminal, `[like this]` otherwise; `--all` lists the aspects
//! that are the same too, `--format json` gives every aspect with its words.

use std::io::IsTerminal;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas diff r-3f9a r-77c1          what differs, differing words marked\n  atlas diff r-3f9a r-77c1 --all    every aspect\n  atlas diff r-3f9a r-77c1 --format json"
)]
pub struct Args {
    /// The first run (a unique prefix is enough).
    a: String,
    /// The second run.
    b: String,
    /// Also list the aspects that are the same.
    #[arg(long)]
    all: bool,
    /// text (default) or json.
    #[arg(long, value_enum, default_value = "table")]
    format: super::format::ListFormat,
    /// The database (default: $ATLAS_DB or $XDG_DATA_HOME/atlas/atlas.db).
    #[arg(long)]
    db: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (store, _) = super::db::open(args.db.as_deref())?;
    let load = |id: &str| {
        atlas_report::load_run(&*store, id).map_err(|e| match e {
            atlas_report::ReportError::Input(why) => Failure::input(why),
            other => Failure::environment(other.to_string()),
        })
    };
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let rows = atlas_report::diff::diff(&a, &b);
    if matches!(args.format, super::format::ListFormat::Json) {
        let json = serde_json::json!({
            "a": a.detail.run.id, "b": b.detail.run.id, "aspects": rows,
        });
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        return super::write_output(None, &text);
    }
    let (ida, idb) = (&a.detail.run.id, &b.detail.run.id);
    let differ = rows.iter().filter(|r| !r.same).count();
    let mut text = format!(
        "{ida} vs {idb}: {differ} of {} aspects differ\n",
        rows.len()
    );
    let colour = std::io::stdout().is_terminal();
    let (old, new) = if colour {
        (("\x1b[1;31m", "\x1b[0m"), ("\x1b[1;32m", "\x1b[0m"))
    } else {
        (("[", "]"), ("[", "]"))
    };
    let width = ida.len().max(idb.len());
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    for row in rows.iter().filter(|r| args.all || !r.same) {
        text += &format!("{}\n", row.aspect);
        match &row.words {
            Some((wa, wb)) => {
                let side = |words: &[atlas_report::diff::Word], value: &Option<String>, mark| {
                    match value {
                        Some(_) => atlas_report::diff::marked(words, mark),
                        None => "(none)".to_string(),
                    }
                };
                text += &format!("  {ida:width$}  {}\n", side(wa, &row.a, old));
                text += &format!("  {idb:width$}  {}\n", side(wb, &row.b, new));
            }
            None => text += &format!("  {:width$}  {}\n", "both", shown(&row.a)),
        }
    }
    super::write_output(None, &text)
}
