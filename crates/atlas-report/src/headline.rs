//! The report's first lines: one sentence per target against the baseline that reads in ten
//! seconds (`podman: 1.42× slower, 1.38× dearer per 1,000 samples; accuracy the same (0.93 vs
//! 0.93)`), from the figures already judged: time to completion, the cost (per 1,000 units when
//! the report counts work, else per run) and the quality metrics (app metrics that are better
//! higher and not a rate: accuracy, score). How sure each part is follows its verdict.

use crate::stats::Better;
use crate::stats::Verdict;
use crate::{FigureRow, TargetFigure};

/// How sure a part of the sentence is, from its verdict.
fn hedge(t: &TargetFigure) -> &'static str {
    match t.verdict {
        Some(Verdict::Better | Verdict::Worse) if t.indicative => " (indicative)",
        Some(Verdict::Better | Verdict::Worse) => "",
        Some(Verdict::NoClearDifference) => " (within the noise)",
        _ => " (one run each: not judged)",
    }
}

/// `1.42× slower` / `1.18× faster` / `about the same time`.
fn compared(ratio: f64, more: &str, less: &str, same: &str) -> String {
    if (ratio - 1.0).abs() < 0.005 {
        same.to_string()
    } else if ratio > 1.0 {
        format!("{}× {more}", two(ratio))
    } else {
        format!("{}× {less}", two(1.0 / ratio))
    }
}

fn two(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Three significant digits, for a metric's value.
fn metric(v: f64) -> String {
    crate::render::significant(v)
}

fn of<'a>(row: &'a FigureRow, target: &str) -> Option<&'a TargetFigure> {
    row.targets.iter().find(|t| t.target == target)
}

/// Time to completion and cost of `group` against the baseline, each with how sure it is.
fn time_and_cost(figures: &[FigureRow], group: &str) -> Vec<(String, &'static str)> {
    let find = |key: &str| figures.iter().find(|f| f.def.key == key);
    let mut parts = Vec::new();
    if let Some(t) = find("wallSeconds").and_then(|f| of(f, group)) {
        if let Some(r) = &t.ratio {
            let said = compared(r.median, "slower", "faster", "about as fast");
            parts.push((said, hedge(t)));
        }
    }
    let cost = find("costPer1000Units").or_else(|| find("cost"));
    if let Some((row, t)) = cost.and_then(|f| Some((f, of(f, group)?))) {
        if let Some(r) = &t.ratio {
            let per = row.def.label.trim_start_matches("cost ");
            let said = compared(r.median, "dearer", "cheaper", "about as dear");
            parts.push((format!("{said} {per}"), hedge(t)));
        }
    }
    parts
}

/// `; accuracy the same (0.931 vs 0.931)` for each quality metric (better higher, not a rate).
fn quality(figures: &[FigureRow], group: &str, baseline: &str) -> String {
    let mut out = String::new();
    let rows = figures.iter().filter(|f| {
        f.def.key.starts_with("metric.")
            && f.def.better == Better::Higher
            && !f.def.key.contains("per_s")
    });
    for row in rows {
        let (Some(t), Some(b)) = (of(row, group), of(row, baseline)) else {
            continue;
        };
        let (Some(e), Some(be)) = (&t.estimate, &b.estimate) else {
            continue;
        };
        let how = match t.verdict {
            Some(Verdict::Better) => " higher",
            Some(Verdict::Worse) => " lower",
            _ if metric(e.median) == metric(be.median) => " the same",
            _ => "",
        };
        let values = format!("{} vs {}", metric(e.median), metric(be.median));
        out += &format!("; {}{how} ({values})", row.def.label);
    }
    out
}

/// One line per target other than the baseline; a hedge all its parts share is said once, at
/// the end.
pub fn lines(figures: &[FigureRow], groups: &[String], baseline: &str) -> Vec<String> {
    groups
        .iter()
        .filter(|g| *g != baseline)
        .map(|group| {
            let parts = time_and_cost(figures, group);
            let shared = parts
                .first()
                .map(|p| p.1)
                .filter(|h| parts.iter().all(|p| p.1 == *h));
            let said: Vec<String> = parts
                .iter()
                .map(|(text, h)| match shared {
                    Some(_) => text.clone(),
                    None => format!("{text}{h}"),
                })
                .collect();
            let head = if said.is_empty() {
                "no run to compare".to_string()
            } else {
                said.join(", ")
            };
            let quality = quality(figures, group, baseline);
            format!("{group}: {head}{quality}{}", shared.unwrap_or(""))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{Dimension, FigureDef, Unit};
    use crate::stats::Better;
    use crate::stats::{Estimate, Method};

    fn est(v: f64, n: usize) -> Estimate {
        Estimate {
            median: v,
            ci_low: v,
            ci_high: v,
            n,
            method: if n == 1 { Method::Value } else { Method::Range },
        }
    }

    fn row(
        key: &str,
        label: &str,
        better: Better,
        base: f64,
        other: f64,
        verdict: Verdict,
    ) -> FigureRow {
        let t = |target: &str, v: f64, ratio: Option<f64>, verdict| TargetFigure {
            target: target.into(),
            n: 3,
            values: vec![v; 3],
            estimate: Some(est(v, 3)),
            ratio: ratio.map(|r| est(r, 3)),
            verdict: Some(verdict),
            indicative: false,
        };
        FigureRow {
            def: FigureDef {
                key: key.into(),
                dimension: Dimension::Performance,
                label: label.into(),
                unit: Unit::Value,
                better,
            },
            affected: false,
            targets: vec![
                t("local", base, None, Verdict::Baseline),
                t("podman", other, Some(other / base), verdict),
            ],
        }
    }

    #[test]
    fn a_target_reads_in_one_sentence() {
        let figures = vec![
            row(
                "wallSeconds",
                "time to completion",
                Better::Lower,
                10.0,
                14.2,
                Verdict::Worse,
            ),
            row(
                "cost",
                "cost per run",
                Better::Lower,
                1.0,
                0.5,
                Verdict::Better,
            ),
            row(
                "costPer1000Units",
                "cost per 1,000 samples",
                Better::Lower,
                2.0,
                2.76,
                Verdict::Worse,
            ),
            row(
                "metric.accuracy",
                "accuracy",
                Better::Higher,
                0.931,
                0.9312,
                Verdict::NoClearDifference,
            ),
            row(
                "metric.imgs_per_s",
                "imgs_per_s",
                Better::Higher,
                10.0,
                7.0,
                Verdict::Worse,
            ),
        ];
        let groups = ["local".to_string(), "podman".to_string()];
        assert_eq!(
            lines(&figures, &groups, "local"),
            ["podman: 1.42× slower, 1.38× dearer per 1,000 samples; accuracy the same (0.931 vs 0.931)"]
        );
        let mut faster = figures.clone();
        faster[0] = row(
            "wallSeconds",
            "time to completion",
            Better::Lower,
            10.0,
            5.0,
            Verdict::NoClearDifference,
        );
        faster.remove(2);
        assert_eq!(
            lines(&faster, &groups, "local")[0],
            "podman: 2.00× faster (within the noise), 2.00× cheaper per run; accuracy the same (0.931 vs 0.931)"
        );
        let mut one_run = faster.clone();
        one_run[0].targets[1].verdict = Some(Verdict::TooFewRuns);
        one_run[1].targets[1].verdict = Some(Verdict::TooFewRuns);
        assert_eq!(
            lines(&one_run, &groups, "local")[0],
            "podman: 2.00× faster, 2.00× cheaper per run; accuracy the same (0.931 vs 0.931) (one run each: not judged)"
        );
    }
}
