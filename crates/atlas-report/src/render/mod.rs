//! The report's outputs: a terminal table (colour on a TTY), Markdown, JSON, CSV (one row per
//! run and figure) and self-contained HTML with inline SVG charts.

use crate::figures::Unit;
use crate::Report;

mod charts;
mod csv;
mod curves;
mod html;
mod text;

/// An output format of `atlas compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Terminal { colour: bool },
    Markdown,
    Json,
    Csv,
    Html,
}

/// The report in `format`.
/// How the report's numbers were made, said in every format.
pub const METHOD: &str = "Method: medians over the counted runs. Intervals: with 5 runs or more a 95 % percentile bootstrap interval of the median (2,000 resamples, fixed seed); with 2-4 runs the range of the values (not a confidence interval); with 1 run none, and no verdict. A ratio uses the smaller of the two run counts. A verdict is better/worse only when the ratio's interval excludes 1.";

pub use text::check_lines;

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Terminal { colour } => text::terminal(report, colour),
        Format::Markdown => text::markdown(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Csv => csv::csv(report),
        Format::Html => html::html(report),
    }
}

/// A value with three significant digits (`0.0154`, `12.3`, `11855`).
pub fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 9) as usize;
    format!("{v:.decimals$}")
}

/// A value in its unit, for people.
pub(crate) fn value(v: f64, unit: Unit, currency: &str) -> String {
    match unit {
        Unit::Seconds if v < 1.0 => format!("{:.0} ms", v * 1000.0),
        Unit::Seconds => format!("{v:.2} s"),
        Unit::Bytes => bytes(v),
        Unit::BytesPerSecond => format!("{}/s", bytes(v)),
        Unit::Fraction => format!("{:.1} %", v * 100.0),
        Unit::Percent => format!("{v:.1} %"),
        // Three significant digits below 1 (`0.0000234 USD`, never `0.00000`), cents above.
        Unit::Money if v == 0.0 => format!("0 {currency}"),
        Unit::Money if v.abs() < 1.0 => format!("{} {currency}", significant(v)),
        Unit::Money => format!("{v:.2} {currency}"),
        Unit::Value => {
            if v.abs() >= 1000.0 || v == v.trunc() {
                format!("{v:.0}")
            } else {
                format!("{v:.4}")
            }
        }
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The verdict lines of the report: each target's judged figures, in words.
pub(crate) fn verdict_lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    let indicative = if report.indicative {
        " (indicative only: fewer than 3 runs)"
    } else {
        ""
    };
    for target in report.targets.iter().filter(|t| **t != report.baseline) {
        let (mut better, mut worse, mut unjudged) = (Vec::new(), Vec::new(), Vec::new());
        let mut same = 0;
        for f in &report.figures {
            let Some(tf) = f.targets.iter().find(|t| &t.target == target) else {
                continue;
            };
            let (Some(v), Some(r)) = (tf.verdict, tf.ratio) else {
                continue;
            };
            let what = format!("{} ×{:.3}", f.def.label, r.median);
            match v {
                crate::stats::Verdict::Better => better.push(what),
                crate::stats::Verdict::Worse => worse.push(what),
                crate::stats::Verdict::NoClearDifference => same += 1,
                crate::stats::Verdict::TooFewRuns => unjudged.push(what),
                crate::stats::Verdict::NotJudged | crate::stats::Verdict::Baseline => {}
            }
        }
        let judged = !(better.is_empty() && worse.is_empty() && same == 0);
        let mut line = format!("{target} vs {}", report.baseline);
        if judged {
            line +=
                &format!(
                "{indicative}: better in {}; worse in {}; no clear difference in {same} figure(s)",
                if better.is_empty() { "nothing".into() } else { better.join(", ") },
                if worse.is_empty() { "nothing".into() } else { worse.join(", ") },
            );
        }
        if !unjudged.is_empty() {
            line += &format!(
                "{} one run, so ratios only, no verdict (with 2-4 runs a range, with --repeat 5 or more a bootstrap interval): {}",
                if judged { ";" } else { ":" },
                unjudged.join(", ")
            );
        }
        lines.push(line);
    }
    lines
}

/// A multi-node run's hosts in one line: `node0 CPU 7.1 s, peak 100 MiB; node1 …`.
pub(crate) fn hosts_line(hosts: &[atlas_store::HostRow]) -> String {
    hosts
        .iter()
        .map(|h| {
            let cpu = h.cpu_seconds.map_or("-".into(), |c| format!("{c:.1} s"));
            let rss = h.peak_rss_bytes.map_or("-".into(), |b| bytes(b as f64));
            format!("{} CPU {cpu}, peak {rss}", h.host)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_three_significant_digits() {
        let money = |v| value(v, Unit::Money, "USD");
        assert_eq!(money(0.0000234), "0.0000234 USD");
        assert_eq!(money(0.0154), "0.0154 USD");
        assert_eq!(money(0.0), "0 USD");
        assert_eq!(money(12.345), "12.35 USD");
    }
}
