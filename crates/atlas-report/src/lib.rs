//! `atlas compare`: the report that says, with numbers, where a workflow runs better and
//! cheaper. From the store's runs it computes each run's figures (`figures.rs`) over
//! performance, elasticity, data access and economics (`prices.rs`), scalability across run
//! sizes (`scaling.rs`), medians with intervals by a method named with each (`stats.rs`) and
//! direction-aware verdicts against a baseline group, runs grouped by target or by a label,
//! parameter or run (`group.rs`), and the like-for-like check (`alike.rs`); `render/`
//! writes it as a terminal table, Markdown, JSON, CSV or self-contained HTML with SVG charts.

use std::collections::BTreeMap;

use atlas_spec::Workflow;
use atlas_store::{RunDetail, SeriesPoint, Store};
use serde::Serialize;

pub use group::{BadGrouping, GroupBy};

pub mod alike;
pub mod checks;
pub mod diff;
pub mod efficiency;
pub mod figures;
mod group;
mod headline;
pub mod prices;
pub mod render;
pub mod scaling;
pub mod stats;
mod storage;

use figures::{FigureDef, RunData};
use prices::PriceSheet;
use stats::{Estimate, Verdict};

/// The version of the JSON report's shape (docs/compare.md).
pub const SCHEMA_VERSION: u32 = 1;

/// Points per run kept for the charts.
const SERIES_POINTS: usize = 400;

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Bad input: an unknown id, runs of different workflows, an unknown baseline…
    #[error("{0}")]
    Input(String),
    /// `--strict` and the runs differ in more than their target.
    #[error("the runs are not like for like (--strict):\n{0}")]
    NotLikeForLike(String),
    #[error(transparent)]
    Store(#[from] atlas_store::StoreError),
}

/// What to compare.
pub enum Selection {
    Experiment(String),
    Runs(Vec<String>),
}

/// How to compare.
pub struct Options {
    /// The target the others are compared with (default: the first target).
    pub baseline: Option<String>,
    /// The app metric that counts work, for the cost per 1,000 units.
    pub unit: Option<String>,
    /// Refuse to compare runs that differ in more than their target.
    pub strict: bool,
    pub prices: PriceSheet,
    /// The price sheet entry of each target (`price` in atlas.toml).
    pub target_prices: BTreeMap<String, String>,
    /// What runs are grouped by for the statistics (default: their target).
    pub by: GroupBy,
}

/// A run as loaded for the report.
pub struct RunInput {
    pub detail: RunDetail,
    /// The workflow it ran (its copy in the run directory), when readable.
    pub workflow: Option<Workflow>,
    /// Its checked inputs (source, bytes, sha256), as recorded in the run directory.
    pub inputs: Option<String>,
    pub series: Vec<SeriesPoint>,
    /// Its app metrics' values in the order printed (`loss` per epoch), by metric name.
    pub curves: BTreeMap<String, Vec<f64>>,
}

/// One target's statistics of one figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetFigure {
    pub target: String,
    /// Successful runs with this figure.
    pub n: usize,
    pub values: Vec<f64>,
    pub estimate: Option<Estimate>,
    /// Ratio of this target's median to the baseline's (absent for the baseline).
    pub ratio: Option<Estimate>,
    pub verdict: Option<Verdict>,
    /// This target or the baseline has fewer than 3 values: the verdict is indicative only.
    pub indicative: bool,
}

/// A figure across targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FigureRow {
    #[serde(flatten)]
    pub def: FigureDef,
    /// A like-for-like difference affects it.
    pub affected: bool,
    pub targets: Vec<TargetFigure>,
}

/// A phase on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub phase: String,
    pub start: f64,
    pub seconds: f64,
    pub status: atlas_spec::record::PhaseState,
}

/// One run in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    /// The group it is counted in (its target unless `--by` says otherwise).
    pub group: String,
    pub target: String,
    pub repetition: i64,
    pub status: atlas_spec::record::RunStatus,
    pub cause: Option<String>,
    /// Why it is left out of the statistics, when it is.
    pub excluded: Option<String>,
    pub values: BTreeMap<String, f64>,
    pub timeline: Vec<Span>,
    /// The run's samples over time, downsampled.
    pub series: Vec<Point>,
    /// Each host's share of a multi-node run (its sampler's figures); empty for one host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<atlas_store::HostRow>,
    /// Its app metrics' values in the order printed, by name (at most [`CURVE_POINTS`] each).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub curves: BTreeMap<String, Vec<f64>>,
    /// Where its working directory and inputs lay, as its agent saw them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<atlas_spec::record::StoragePlace>,
    /// Its labels (`--label KEY=VALUE`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The `--NAME VALUE` parameters of its commands.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// The most values of one app metric a report keeps per run (evenly picked beyond it).
pub const CURVE_POINTS: usize = 200;
/// The most metric values read per run for the curves.
const METRIC_VALUES_READ: usize = 100_000;

/// A run's app metrics as curves: each metric's values in order, thinned to [`CURVE_POINTS`].
fn curves_of(points: &[atlas_store::MetricPoint]) -> BTreeMap<String, Vec<f64>> {
    let mut curves: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in points {
        curves.entry(p.name.clone()).or_default().push(p.value);
    }
    for values in curves.values_mut() {
        if values.len() > CURVE_POINTS {
            let step = values.len() as f64 / CURVE_POINTS as f64;
            *values = (0..CURVE_POINTS)
                .map(|i| values[((i as f64 * step) as usize).min(values.len() - 1)])
                .collect();
        }
    }
    curves
}

/// One point of a run over time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Seconds since the run started.
    pub seconds: f64,
    /// Cores in use since the previous point.
    pub cores: f64,
    pub rss_bytes: i64,
    pub gpu_percent: Option<f64>,
}

/// The runs to compare, with what `atlas run` recorded with their experiment.
pub struct Loaded {
    pub runs: Vec<RunInput>,
    pub experiment: Option<String>,
    /// The like-for-like warnings of the experiment.
    pub recorded: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema_version: u32,
    pub experiment: Option<String>,
    pub workflow: String,
    pub baseline: String,
    /// One sentence per group against the baseline: time, cost, quality (`headline.rs`).
    pub headline: Vec<String>,
    /// What the runs are grouped by (`target`, `label:KEY`, `param:NAME`, `run`).
    pub by: String,
    /// The groups compared (the targets, unless grouped by something else), in run order.
    pub targets: Vec<String>,
    /// Fewer than 3 successful runs for some target: the statistics are indicative only.
    pub indicative: bool,
    pub differences: Vec<alike::Difference>,
    pub notes: Vec<String>,
    pub figures: Vec<FigureRow>,
    pub scaling: Vec<scaling::ScalingPoint>,
    pub runs: Vec<RunSummary>,
    pub price_sheet_date: String,
    pub currency: String,
    pub prices: BTreeMap<String, String>,
    /// The targets' references and thresholds, judged (`checks`; absent when none are set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<checks::CheckResult>,
}

/// Loads the selected runs with what the report needs from their run directories.
pub fn load(store: &dyn Store, selection: &Selection) -> Result<Loaded, ReportError> {
    let (ids, experiment, recorded) = match selection {
        Selection::Experiment(id) => {
            let e = store.experiment(id).map_err(|e| match e {
                atlas_store::StoreError::NoSuchExperiment(_) => {
                    ReportError::Input(format!("no experiment `{id}` (see `atlas experiments`)"))
                }
                atlas_store::StoreError::AmbiguousExperiment(_) => {
                    ReportError::Input(e.to_string())
                }
                other => ReportError::Store(other),
            })?;
            let ids = e.run_list.iter().map(|r| r.id.clone()).collect();
            (
                ids,
                Some(e.experiment.id.clone()),
                e.experiment.differences.clone(),
            )
        }
        // A run named twice is counted once.
        Selection::Runs(ids) => {
            let mut unique: Vec<String> = Vec::new();
            for id in ids {
                if !unique.contains(id) {
                    unique.push(id.clone());
                }
            }
            (unique, None, Vec::new())
        }
    };
    let mut runs = Vec::new();
    for id in ids {
        runs.push(load_run(store, &id)?);
    }
    if runs.is_empty() {
        return Err(ReportError::Input("nothing to compare: no runs".into()));
    }
    let mut workflows: Vec<&str> = runs
        .iter()
        .map(|r| r.detail.run.workflow.as_str())
        .collect();
    workflows.dedup();
    if workflows.len() > 1 {
        return Err(ReportError::Input(format!(
            "the runs are of different workflows ({}): compare runs of one workflow",
            workflows.join(", ")
        )));
    }
    Ok(Loaded {
        runs,
        experiment,
        recorded,
    })
}

/// One run as the report reads it: its detail, the workflow and inputs it was started with,
/// and its series.
pub fn load_run(store: &dyn Store, id: &str) -> Result<RunInput, ReportError> {
    let detail = store.run(id).map_err(|e| match e {
        atlas_store::StoreError::AmbiguousRun(_) => ReportError::Input(e.to_string()),
        atlas_store::StoreError::NoSuchRun(_) => {
            ReportError::Input(format!("no run `{id}` (see `atlas runs`)"))
        }
        other => ReportError::Store(other),
    })?;
    // What the run was started with, from the store; from its run directory for runs the
    // store did not keep it for (before schema 7).
    let spec = store.run_spec(&detail.run.id).map_err(ReportError::Store)?;
    let dir = detail.run.run_dir.as_deref().map(atlas_spec::RunDir::new);
    let workflow = spec
        .workflow
        .or_else(|| {
            dir.as_ref()
                .and_then(|d| std::fs::read_to_string(d.workflow()).ok())
        })
        .and_then(|text| atlas_spec::parse_workflow("workflow.yaml", &text).ok());
    let inputs = spec
        .inputs
        .or_else(|| {
            dir.as_ref()
                .and_then(|d| std::fs::read_to_string(d.inputs()).ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        })
        .map(|v| {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    format!(
                        "{}={}",
                        i["path"].as_str().unwrap_or("?"),
                        i["sha256"].as_str().unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        });
    let series = store.series(&detail.run.id, SERIES_POINTS)?;
    let metrics = store.metrics_after(&detail.run.id, 0, METRIC_VALUES_READ)?;
    Ok(RunInput {
        detail,
        workflow,
        inputs,
        series,
        curves: curves_of(&metrics),
    })
}

/// Cores in use between consecutive points of the same phase (CPU seconds restart with each
/// phase, so a pair across phases says nothing and is left out).
fn cores_over_time(series: &[SeriesPoint], start: f64) -> Vec<Point> {
    series
        .windows(2)
        .filter(|w| w[0].phase == w[1].phase && w[1].time > w[0].time)
        .map(|w| Point {
            seconds: w[1].time - start,
            cores: ((w[1].cpu_seconds - w[0].cpu_seconds) / (w[1].time - w[0].time)).max(0.0),
            rss_bytes: w[1].rss_bytes,
            gpu_percent: w[1].gpu_percent,
        })
        .collect()
}

/// Builds the comparison of `runs`.
pub fn compare(loaded: Loaded, options: &Options) -> Result<Report, ReportError> {
    let Loaded {
        runs,
        experiment,
        recorded,
    } = loaded;
    let recorded = &recorded;
    let runs = &runs[..];
    let mut targets: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for r in runs {
        if !targets.contains(&r.detail.run.target) {
            targets.push(r.detail.run.target.clone());
        }
        let group = options.by.key(r);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let baseline = match &options.baseline {
        Some(b) if groups.contains(b) => b.clone(),
        Some(b) => {
            return Err(ReportError::Input(format!(
                "baseline `{b}` is not among the compared groups ({})",
                groups.join(", ")
            )))
        }
        None => groups[0].clone(),
    };
    if matches!(options.by, GroupBy::Label(_) | GroupBy::Param(_))
        && groups.iter().all(|g| g.ends_with(" unset"))
    {
        return Err(ReportError::Input(format!(
            "no run has {}: nothing to group by",
            match &options.by {
                GroupBy::Label(key) => format!("the label `{key}`"),
                GroupBy::Param(name) => format!("`--{name}` in its commands"),
                _ => String::new(),
            }
        )));
    }
    let differences = alike::differences(runs, recorded);
    if options.strict && !differences.is_empty() {
        let lines: Vec<String> = differences
            .iter()
            .map(|d| format!("  {}: {}", d.aspect, d.detail))
            .collect();
        return Err(ReportError::NotLikeForLike(lines.join("\n")));
    }
    let mut notes = Vec::new();
    let mut prices = BTreeMap::new();
    for t in &targets {
        match options.target_prices.get(t) {
            Some(name) => match options.prices.entries.get(name) {
                Some(p) => {
                    prices.insert(
                        t.clone(),
                        format!(
                            "{name}: {} ({})",
                            p.rates(&options.prices.currency),
                            p.source()
                        ),
                    );
                }
                None => {
                    return Err(ReportError::Input(format!(
                        "target `{t}` names price `{name}`, which the price sheet does not have (known: {})",
                        options.prices.entries.keys().cloned().collect::<Vec<_>>().join(", ")
                    )))
                }
            },
            None => notes.push(format!(
                "target `{t}` has no price (set `price = \"…\"` in atlas.toml): no cost figures for it"
            )),
        }
    }
    let mut defs: Vec<FigureDef> = Vec::new();
    let mut summaries = Vec::new();
    for r in runs {
        let run = &r.detail.run;
        let price = options
            .target_prices
            .get(&run.target)
            .and_then(|n| options.prices.entries.get(n));
        let data = RunData {
            detail: &r.detail,
            request: figures::Request::of(r.workflow.as_ref()),
            price,
            unit: options.unit.as_deref(),
        };
        let (run_defs, values) = figures::of_run(&data);
        for d in run_defs {
            if !defs.iter().any(|x| x.key == d.key) {
                defs.push(d);
            }
        }
        let excluded = match run.status {
            atlas_spec::record::RunStatus::Succeeded => None,
            other => Some(format!("{other}: left out of the statistics")),
        };
        if excluded.is_some() {
            notes.push(format!(
                "run {} on {} {}: shown, not counted{}",
                run.id,
                run.target,
                run.status,
                run.cause
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ));
        } else if r.series.is_empty() {
            notes.push(format!(
                "run {} on {} has no samples: no time series for it",
                run.id, run.target
            ));
        }
        let start = run.started_at.unwrap_or(run.submitted_at);
        summaries.push(RunSummary {
            id: run.id.clone(),
            group: options.by.key(r),
            target: run.target.clone(),
            repetition: run.repetition,
            status: run.status,
            cause: run.cause.clone(),
            excluded,
            values,
            timeline: r
                .detail
                .phases
                .iter()
                .filter_map(|p| {
                    Some(Span {
                        phase: p.name.clone(),
                        start: p.started_at? - start,
                        seconds: p.wall_seconds.unwrap_or(0.0),
                        status: p.status,
                    })
                })
                .collect(),
            series: cores_over_time(&r.series, start),
            hosts: r.detail.hosts.clone(),
            curves: r.curves.clone(),
            storage: run.storage.clone(),
            labels: group::labels(&run.labels),
            parameters: group::parameters(r),
        });
    }
    defs.sort_by_key(|d| d.dimension);
    let values_of = |key: &str, target: &str| -> Vec<f64> {
        summaries
            .iter()
            .filter(|s| s.group == target && s.excluded.is_none())
            .filter_map(|s| s.values.get(key).copied())
            .collect()
    };
    let figures: Vec<FigureRow> = defs
        .into_iter()
        .map(|def| {
            let base = values_of(&def.key, &baseline);
            let base_n = base.len();
            let targets = groups
                .iter()
                .map(|t| {
                    let values = values_of(&def.key, t);
                    let ratio = (t != &baseline)
                        .then(|| stats::ratio(&values, &base))
                        .flatten();
                    TargetFigure {
                        target: t.clone(),
                        n: values.len(),
                        indicative: values.len().min(base_n) < 3,
                        estimate: stats::estimate(&values),
                        verdict: if t == &baseline {
                            Some(stats::Verdict::Baseline)
                        } else {
                            ratio.as_ref().map(|r| stats::verdict(r, def.better))
                        },
                        ratio,
                        values,
                    }
                })
                .collect();
            FigureRow {
                affected: alike::affected(&def.key, &differences),
                def,
                targets,
            }
        })
        .collect();
    let indicative = groups.iter().any(|t| {
        summaries
            .iter()
            .filter(|s| &s.group == t && s.excluded.is_none())
            .count()
            < 3
    });
    let baseline_counted = summaries
        .iter()
        .any(|s| s.group == baseline && s.excluded.is_none());
    if !baseline_counted {
        notes.push(format!(
            "the baseline `{baseline}` has no successful run: no ratios or verdicts (choose another with --baseline)"
        ));
    }
    if let Some(wall) = figures.iter().find(|f| f.def.key == "wallSeconds") {
        let values: Vec<&[f64]> = wall.targets.iter().map(|t| t.values.as_slice()).collect();
        if let Some((n, cv)) = stats::runs_to_detect(&values, 0.02) {
            notes.push(format!(
                "to tell a 2 % difference in wall time apart with this spread (up to {:.1} % from run to run), about {n} runs per {} are needed (two-sided 5 %, power 80 %)",
                cv * 100.0,
                if options.by == GroupBy::Target { "target" } else { "group" }
            ));
        }
    }
    let dropped: Vec<(String, bool)> = runs
        .iter()
        .filter_map(|r| {
            let figure = r.detail.run.figures.get("pageCacheDropped")?;
            Some((options.by.key(r), *figure > 0.5))
        })
        .collect();
    notes.extend(storage::note(&summaries, &groups, &dropped));
    if indicative {
        notes.push(format!("fewer than 3 successful runs for some {}: the result is indicative only (with --repeat 5 or more each gets a bootstrap interval)", if options.by == GroupBy::Target { "target" } else { "group" }));
    }
    let headline = headline::lines(&figures, &groups, &baseline);
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        experiment,
        workflow: runs[0].detail.run.workflow.clone(),
        headline,
        baseline,
        scaling: scaling::points(runs, &summaries),
        by: options.by.to_string(),
        targets: groups,
        indicative,
        differences,
        notes,
        figures,
        runs: summaries,
        price_sheet_date: options.prices.date.clone(),
        currency: options.prices.currency.clone(),
        prices,
        checks: Vec::new(),
    })
}
