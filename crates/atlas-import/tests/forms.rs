//! Every form of every resource request in docs/import.md's "Every form, tested" table, checked
//! against the importer row by row: the table is the test's data, so the documentation cannot
//! say what the importer does not do.
//!
//! A row is `| Scheduler | directives | becomes | rule |`. Each code span in the directives
//! column is a line of the script: one that starts with `-` gets the scheduler's prefix
//! (`#SBATCH `, `#BSUB `, `#PBS `), any other is taken as written (`#SBATCH--nodes=2`, a command,
//! an indented directive). "becomes" is `key=value` pairs joined by `; `: a key is a Workflow
//! path looked up under `spec.resources`, `spec.scheduling`, `spec` and the root (dots go down,
//! numbers index lists), a value `-` means unset, and `status=S` is the last directive's status.

use atlas_import::{import, Dialect, ImportOptions};
use serde_json::Value;

const DOC: &str = include_str!("../../../docs/import.md");

struct Row {
    line: usize,
    dialect: Dialect,
    script: String,
    expected: Vec<(String, String)>,
}

/// Splits a table row on `|` that are not escaped (`\|` stays in the cell, as `|`).
fn cells(row: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The code spans of a cell, verbatim.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn rows() -> Vec<Row> {
    let start = DOC
        .find("## Every form, tested")
        .expect("docs/import.md has the forms table");
    let section = &DOC[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let first_line = DOC[..start].lines().count() + 1;
    let mut rows = Vec::new();
    for (i, text) in section.lines().enumerate() {
        let c = cells(text);
        let dialect = match c.first().map(String::as_str) {
            Some("Slurm") => Dialect::Slurm,
            Some("LSF") => Dialect::Lsf,
            Some("PBS") => Dialect::Pbs,
            _ => continue,
        };
        assert_eq!(c.len(), 4, "docs/import.md:{}: four cells", first_line + i);
        let prefix = dialect.prefix();
        let mut script = String::from("#!/bin/bash\n");
        for line in spans(&c[1]) {
            if line.starts_with('-') {
                script.push_str(&format!("{prefix} {line}\n"));
            } else {
                script.push_str(&format!("{line}\n"));
            }
        }
        script.push_str("./train\n");
        let expected = c[2]
            .split("; ")
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| {
                    panic!(
                        "docs/import.md:{}: `{pair}` is not key=value",
                        first_line + i
                    )
                });
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        rows.push(Row {
            line: first_line + i,
            dialect,
            script,
            expected,
        });
    }
    rows
}

fn lookup<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    ["spec.resources.", "spec.scheduling.", "spec.", ""]
        .iter()
        .find_map(|base| {
            let mut at = root;
            for part in format!("{base}{key}").split('.') {
                at = match part.parse::<usize>() {
                    Ok(n) => at.get(n)?,
                    Err(_) => at.get(part)?,
                };
            }
            Some(at)
        })
        .filter(|v| !v.is_null())
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[test]
fn every_form_in_the_table_becomes_what_the_table_says() {
    let rows = rows();
    assert!(rows.len() >= 100, "the table has {} rows", rows.len());
    let mut wrong = Vec::new();
    for row in &rows {
        let options = ImportOptions {
            dialect: Some(row.dialect),
            ..Default::default()
        };
        let imported = match import(&row.script, &options) {
            Ok(i) => i,
            Err(e) => {
                wrong.push(format!("docs/import.md:{}: refused: {e}", row.line));
                continue;
            }
        };
        let workflow = serde_json::to_value(&imported.workflow).unwrap();
        for (key, want) in &row.expected {
            let got = if key == "status" {
                imported
                    .report
                    .directives
                    .last()
                    .map_or("-".to_string(), |d| {
                        serde_json::to_value(d.status)
                            .unwrap()
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
            } else {
                shown(lookup(&workflow, key))
            };
            if &got != want {
                let notes: Vec<String> = imported
                    .report
                    .directives
                    .iter()
                    .filter_map(|d| d.note.clone())
                    .collect();
                wrong.push(format!(
                    "docs/import.md:{}: {key} is {got}, the table says {want} (notes: {})",
                    row.line,
                    notes.join(" | ")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows differ:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}
