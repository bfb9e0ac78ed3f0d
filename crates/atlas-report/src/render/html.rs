//! Self-contained HTML: inline CSS and SVG charts, no script, nothing from the network.

use crate::figures::Unit;
use crate::render::{charts, value, verdict_lines};
use crate::stats::Verdict;
use crate::Report;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;font-size:14px;width:100%}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.dim td{background:#fafafa;font-weight:bold;padding-top:10px}\
.better{color:#1a7f37;font-weight:bold}.worse{color:#c62828;font-weight:bold}.note{background:#fff8e1;padding:6px 10px;border-left:4px solid #f9a825;margin:4px 0}\
.diff{background:#fdecea;padding:6px 10px;border-left:4px solid #c62828;margin:4px 0}.ok{background:#e8f5e9;padding:6px 10px;border-left:4px solid #2e7d32}\
figure.chart{margin:1.5em 0}figure.chart svg{max-width:100%;height:auto;border:1px solid #eee}.verdict{font-size:16px;margin:6px 0}.headline{font-size:20px;font-weight:600;margin:6px 0}";

/// The report as one HTML page.
pub fn html(report: &Report) -> String {
    let title = format!("Atlas comparison: {}", report.workflow);
    let mut body = format!("<h1>{}</h1>\n", escape(&title));
    body += &format!(
        "<p>{} run(s){} on {}; baseline <b>{}</b>; price sheet of {} ({}).</p>\n",
        report.runs.len(),
        report
            .experiment
            .as_ref()
            .map(|e| format!(" of experiment <code>{}</code>", escape(e)))
            .unwrap_or_default(),
        escape(&report.targets.join(", ")),
        escape(&report.baseline),
        escape(&report.price_sheet_date),
        escape(&report.currency)
    );
    if !report.headline.is_empty() {
        body += "<h2>In short</h2>\n";
        for line in &report.headline {
            body += &format!("<p class=\"headline\">{}</p>\n", escape(line));
        }
    }
    body += "<h2>Verdict</h2>\n";
    for line in verdict_lines(report) {
        body += &format!("<p class=\"verdict\">{}</p>\n", escape(&line));
    }
    body += "<h2>Like for like</h2>\n";
    if report.differences.is_empty() {
        body += "<p class=\"ok\">The runs differ only in their target.</p>\n";
    }
    for d in &report.differences {
        body += &format!(
            "<p class=\"diff\"><b>{}</b>: {} (figures marked * are affected)</p>\n",
            escape(&d.aspect),
            escape(&d.detail)
        );
    }
    for n in &report.notes {
        body += &format!("<p class=\"note\">{}</p>\n", escape(n));
    }
    body += "<h2>Charts</h2>\n";
    let mut charts: Vec<(&str, String, Option<String>)> = vec![
        (
            "timeline",
            "Phase timeline per run".into(),
            charts::timeline(report),
        ),
        (
            "cpu",
            "CPU cores in use over time".into(),
            charts::over_time(report, "CPU cores in use", |p| Some(p.cores), Unit::Value),
        ),
        (
            "memory",
            "Memory over time".into(),
            charts::over_time(
                report,
                "Memory (RSS of the job's processes)",
                |p| Some(p.rss_bytes as f64),
                Unit::Bytes,
            ),
        ),
        (
            "gpu",
            "GPU SM activity over time".into(),
            charts::over_time(report, "GPU SM activity", |p| p.gpu_percent, Unit::Percent),
        ),
    ];
    for key in [
        "wallSeconds",
        "queueWaitSeconds",
        "cpuEfficiency",
        "peakMemoryBytes",
        "cost",
        "costPer1000Units",
        "stageInSeconds",
    ] {
        let label = report
            .figures
            .iter()
            .find(|f| f.def.key == key)
            .map(|f| f.def.label.clone())
            .unwrap_or_default();
        charts.push((key, label, charts::bars(report, key)));
    }
    charts.push(("scaling", "Scaling".into(), charts::scaling(report)));
    let mut charts: Vec<(String, String, Option<String>)> = charts
        .into_iter()
        .map(|(id, caption, svg)| (id.to_string(), caption, svg))
        .collect();
    for metric in super::curves::metrics(report) {
        charts.push((
            format!("metric-{metric}"),
            format!("{metric} as each run printed it (one line per run)"),
            super::curves::chart(report, &metric),
        ));
    }
    for (id, caption, svg) in charts {
        if let Some(svg) = svg {
            body += &format!("<figure class=\"chart\" id=\"chart-{}\">{svg}<figcaption>{}</figcaption></figure>\n", escape(&id), escape(&caption));
        }
    }
    body += &table(report);
    body += &runs_table(report);
    body += "</table>\n<h2>Prices</h2>\n<ul>\n";
    for (target, source) in &report.prices {
        body += &format!("<li><b>{}</b>: {}</li>\n", escape(target), escape(source));
    }
    body += "</ul>\n";
    let checks = super::text::check_lines(report);
    if !checks.is_empty() {
        body += "<h2>Checks</h2>\n<ul>\n";
        for line in checks {
            body += &format!("<li>{}</li>\n", escape(&line));
        }
        body += "</ul>\n";
    }
    body += &format!("<h2>Method</h2>\n<p>{}</p>\n", escape(super::METHOD));
    format!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n", escape(&title))
}

/// Each run: its group, status, wall time, labels and parameters, whether it is counted, why
/// it failed, its hosts.
fn runs_table(report: &Report) -> String {
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        let text: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        escape(&text.join(" "))
    };
    let mut out = String::from("<h2>Runs</h2>\n<table id=\"runs\"><tr><th>run</th><th>group</th><th>rep</th><th>status</th><th>wall</th><th>labels</th><th>parameters</th><th>counted</th><th>cause</th><th>hosts</th></tr>\n");
    for r in &report.runs {
        let wall = r.values.get("wallSeconds").map_or(String::new(), |w| {
            value(*w, crate::figures::Unit::Seconds, &report.currency)
        });
        out += &format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{wall}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&r.id),
            escape(&r.group),
            r.repetition,
            escape(r.status.as_str()),
            pairs(&r.labels),
            pairs(&r.parameters),
            if r.excluded.is_none() { "yes" } else { "no" },
            escape(r.cause.as_deref().unwrap_or("")),
            escape(&super::hosts_line(&r.hosts))
        );
    }
    out
}

fn table(report: &Report) -> String {
    let mut out = String::from("<h2>Figures</h2>\n<table id=\"figures\"><tr><th>figure</th><th>target</th><th>n</th><th>median</th><th>interval</th><th>ratio to baseline [interval]</th><th>verdict</th></tr>\n");
    let mut dimension = None;
    for f in &report.figures {
        if dimension != Some(f.def.dimension) {
            dimension = Some(f.def.dimension);
            out += &format!(
                "<tr class=\"dim\"><td colspan=\"7\">{}</td></tr>\n",
                f.def.dimension.label()
            );
        }
        for (i, t) in f.targets.iter().enumerate() {
            let fmt = |v: f64| escape(&value(v, f.def.unit, &report.currency));
            let class = match t.verdict {
                Some(Verdict::Better) => "better",
                Some(Verdict::Worse) => "worse",
                _ => "",
            };
            out += &format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{class}\">{}</td></tr>\n",
                if i == 0 { format!("{}{}", escape(&f.def.label), if f.affected { " *" } else { "" }) } else { String::new() },
                escape(&t.target),
                t.n,
                t.estimate.map_or("-".into(), |e| fmt(e.median)),
                t.estimate.map_or("-".into(), |e| e.method.interval(&fmt(e.ci_low), &fmt(e.ci_high))),
                t.ratio.map_or(if t.target == report.baseline { "baseline".into() } else { "-".into() }, |r| super::text::ratio_text(&r)),
                t.verdict.map_or(String::new(), |v| format!("{}{}", v.as_str(), if t.indicative && !matches!(v, Verdict::NotJudged | Verdict::TooFewRuns | Verdict::Baseline) { " (indicative)" } else { "" }))
            );
        }
    }
    out + "</table>\n"
}
