//! The report as a terminal table and as Markdown.

use crate::render::{value, verdict_lines};
use crate::stats::Verdict;
use crate::{FigureRow, Report, TargetFigure};

/// The cells of one row: figure, target, n, median [CI], ratio [CI], verdict.
fn cells(report: &Report, f: &FigureRow, t: &TargetFigure, first: bool) -> [String; 6] {
    let fmt = |v: f64| value(v, f.def.unit, &report.currency);
    let name = if first {
        format!("{}{}", f.def.label, if f.affected { " *" } else { "" })
    } else {
        String::new()
    };
    let median = t.estimate.map_or("-".into(), |e| {
        match e.method.interval(&fmt(e.ci_low), &fmt(e.ci_high)) {
            interval if interval.is_empty() => fmt(e.median),
            interval => format!("{} [{interval}]", fmt(e.median)),
        }
    });
    let ratio = t.ratio.map_or(
        if t.target == report.baseline {
            "baseline".into()
        } else {
            "-".into()
        },
        |r| ratio_text(&r),
    );
    let verdict = t.verdict.map_or(String::new(), |v| {
        if t.indicative
            && !matches!(
                v,
                Verdict::NotJudged | Verdict::TooFewRuns | Verdict::Baseline
            )
        {
            format!("{} (indicative)", v.as_str())
        } else {
            v.as_str().to_string()
        }
    });
    [
        name,
        t.target.clone(),
        t.n.to_string(),
        median,
        ratio,
        verdict,
    ]
}

fn header(report: &Report) -> Vec<String> {
    let mut lines = vec![format!(
        "Comparison of {}{}: {} run(s) on {}; baseline {}",
        report.workflow,
        report
            .experiment
            .as_ref()
            .map(|e| format!(" (experiment {e})"))
            .unwrap_or_default(),
        report.runs.len(),
        report.targets.join(", "),
        report.baseline
    )];
    // The sentence per target first: what an advisor reads.
    lines.extend(report.headline.iter().map(|l| format!("In short: {l}")));
    if report.differences.is_empty() {
        lines.push("Like for like: the runs differ only in their target.".into());
    } else {
        lines.push("Not like for like (figures marked * are affected):".into());
        for d in &report.differences {
            lines.push(format!("  - {}: {}", d.aspect, d.detail));
        }
    }
    lines.extend(report.notes.iter().map(|n| format!("Note: {n}")));
    lines
}

fn colour_verdict(text: &str, verdict: Option<Verdict>, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    match verdict {
        Some(Verdict::Better) => format!("\x1b[32m{text}\x1b[0m"),
        Some(Verdict::Worse) => format!("\x1b[31m{text}\x1b[0m"),
        _ => text.to_string(),
    }
}

/// The terminal table.
pub fn terminal(report: &Report, colour: bool) -> String {
    let mut out = header(report).join("\n") + "\n";
    let mut rows: Vec<([String; 6], Option<Verdict>, Option<&str>)> = Vec::new();
    let mut dimension = None;
    for f in &report.figures {
        let heading = (dimension != Some(f.def.dimension)).then(|| f.def.dimension.label());
        dimension = Some(f.def.dimension);
        for (i, t) in f.targets.iter().enumerate() {
            rows.push((
                cells(report, f, t, i == 0),
                t.verdict,
                if i == 0 { heading } else { None },
            ));
        }
    }
    let titles = [
        "FIGURE",
        "TARGET",
        "N",
        "MEDIAN [INTERVAL]",
        "RATIO TO BASELINE [INTERVAL]",
        "VERDICT",
    ];
    let mut widths = titles.map(|t| t.chars().count());
    for (c, _, _) in &rows {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |c: &[String; 6]| {
        c.iter()
            .zip(widths)
            .take(5)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    out += &format!("\n{}\n", line(&titles.map(String::from)) + "  VERDICT");
    for (c, verdict, heading) in &rows {
        if let Some(h) = heading {
            out += &format!(
                "{}\n",
                if colour {
                    format!("\x1b[1m{h}\x1b[0m")
                } else {
                    h.to_string()
                }
            );
        }
        out += &format!("{}  {}\n", line(c), colour_verdict(&c[5], *verdict, colour));
    }
    for s in &report.scaling {
        out += &format!(
            "scaling {}: {} {} -> speed-up {:.2}, efficiency {:.0} % ({} run(s))\n",
            s.target,
            s.size,
            s.resource,
            s.speedup,
            s.efficiency * 100.0,
            s.runs
        );
    }
    for r in report.runs.iter().filter(|r| !r.hosts.is_empty()) {
        out += &format!(
            "hosts of {} ({}): {}\n",
            r.id,
            r.target,
            super::hosts_line(&r.hosts)
        );
    }
    out += "\n";
    for l in verdict_lines(report) {
        out += &format!("Verdict: {l}\n");
    }
    for l in check_lines(report) {
        out += &format!("Check: {l}\n");
    }
    out += &format!("\n{}\n", super::METHOD);
    out
}

/// Each judged reference or threshold: `local: accuracy >= 0.9: pass (0.9806)`.
pub fn check_lines(report: &Report) -> Vec<String> {
    report
        .checks
        .iter()
        .map(|c| {
            let verdict = if c.pass { "pass" } else { "FAIL" };
            let value = match (c.value, &c.figure) {
                (Some(v), _) => format!("{v} against {}", c.limit),
                (None, Some(key)) => format!("no value of {key}"),
                (None, None) => "no such figure in the report".into(),
            };
            format!("{}: {}: {verdict} ({value})", c.target, c.check)
        })
        .collect()
}

/// Markdown, for pasting into issues.
pub fn markdown(report: &Report) -> String {
    let mut out = format!("## Atlas comparison: {}\n\n", report.workflow);
    for l in header(report) {
        out += &format!("{}\n", l.replacen("  - ", "- ", 1));
    }
    out += "\n| dimension | figure | target | n | median [interval] | ratio to baseline [interval] | verdict |\n|---|---|---|---:|---|---|---|\n";
    for f in &report.figures {
        for (i, t) in f.targets.iter().enumerate() {
            let c = cells(report, f, t, i == 0);
            let escape = |s: &str| s.replace('|', "\\|");
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                if i == 0 { f.def.dimension.label() } else { "" },
                escape(&c[0]),
                c[1],
                c[2],
                escape(&c[3]),
                c[4],
                c[5]
            );
        }
    }
    out += "\n";
    for l in verdict_lines(report) {
        out += &format!("- **Verdict**: {l}\n");
    }
    for l in check_lines(report) {
        out += &format!("- **Check**: {l}\n");
    }
    out += &format!("\n{}\n", super::METHOD);
    out
}

/// A ratio with its interval as its method names it (`×1.042 [range 1.01 – 1.07]`).
pub(crate) fn ratio_text(r: &crate::stats::Estimate) -> String {
    let interval = r
        .method
        .interval(&format!("{:.3}", r.ci_low), &format!("{:.3}", r.ci_high));
    if interval.is_empty() {
        format!("×{:.3}", r.median)
    } else {
        format!("×{:.3} [{interval}]", r.median)
    }
}
