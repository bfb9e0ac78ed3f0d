//! CSV for notebooks: one row per run and figure.

use crate::Report;

/// The header of the CSV output (docs/compare.md).
pub const HEADER: &str =
    "experiment,run,target,group,repetition,status,counted,dimension,figure,unit,value";

fn field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub fn csv(report: &Report) -> String {
    let mut out = format!("{HEADER}\n");
    for run in &report.runs {
        for f in &report.figures {
            let Some(v) = run.values.get(&f.def.key) else {
                continue;
            };
            let unit = serde_json::to_value(f.def.unit)
                .ok()
                .and_then(|u| u.as_str().map(String::from))
                .unwrap_or_default();
            let dimension = serde_json::to_value(f.def.dimension)
                .ok()
                .and_then(|u| u.as_str().map(String::from))
                .unwrap_or_default();
            out += &format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                field(report.experiment.as_deref().unwrap_or("")),
                field(&run.id),
                field(&run.target),
                field(&run.group),
                run.repetition,
                field(run.status.as_str()),
                run.excluded.is_none(),
                dimension,
                field(&f.def.key),
                unit,
                v
            );
        }
    }
    out
}
