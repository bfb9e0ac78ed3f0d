//! The comparison on a documented small data set (docs/compare.md): 5 runs per target whose
//! wall times, costs and app metrics are known, so every statistic and verdict can be checked
//! by hand; plus the like-for-like check, failed runs, bad input and the output formats.

use std::collections::BTreeMap;

use atlas_report::prices::PriceSheet;
use atlas_report::render::{render, Format};
use atlas_report::stats::Verdict;
use atlas_report::{compare, Loaded, Options, ReportError, RunInput};
use atlas_store::{MetricSummary, PhaseRow, RunDetail, RunRow};

const LOCAL: [f64; 5] = [31.5, 32.0, 31.8, 32.4, 31.9];
const PODMAN: [f64; 5] = [33.0, 33.4, 32.9, 33.8, 33.1];

fn run(id: &str, target: &str, wall: f64, imgs_per_s: f64, command: &str) -> RunInput {
    let phase = PhaseRow {
        name: "train".into(),
        position: Some(0),
        status: atlas_spec::record::PhaseState::Succeeded,
        started_at: Some(1000.5),
        wall_seconds: Some(wall),
        exit_code: Some(0),
        signal: None,
        cause: None,
        cpu_user_seconds: Some(wall * 0.9),
        cpu_system_seconds: Some(wall * 0.05),
        max_rss_bytes: Some(40 << 20),
        peak_job_rss_bytes: Some(50 << 20),
        read_bytes: Some(1 << 20),
        write_bytes: Some(2 << 20),
        samples: 10,
        peak_processes: Some(1),
        peak_processes_at: Some(1000.6),
        io: None,
        metrics: vec![MetricSummary {
            name: "imgs_per_s".into(),
            count: 3,
            first: imgs_per_s,
            last: imgs_per_s,
            min: imgs_per_s,
            max: imgs_per_s,
            mean: imgs_per_s,
        }],
        gpu: None,
    };
    let mut workflow = atlas_spec::Workflow::default();
    workflow.metadata.name = "w".into();
    workflow.spec.phases = vec![atlas_spec::Phase {
        name: "train".into(),
        run: command.into(),
        ..Default::default()
    }];
    RunInput {
        detail: RunDetail {
            run: RunRow {
                id: id.into(),
                experiment_id: Some("e-1".into()),
                workflow: "w".into(),
                target: target.into(),
                status: atlas_spec::record::RunStatus::Succeeded,
                submitted_at: 1000.0,
                started_at: Some(1000.25),
                wall_seconds: Some(wall),
                labels: serde_json::json!({}),
                agent_version: Some("0.1.0".into()),
                node: Some("Test CPU, 2 CPUs, 4.0 GiB".into()),
                ..Default::default()
            },
            phases: vec![phase],
            hosts: Vec::new(),
        },
        workflow: Some(workflow),
        inputs: None,
        series: Vec::new(),
        curves: BTreeMap::new(),
    }
}

fn data_set() -> Vec<RunInput> {
    let mut runs = Vec::new();
    for (i, (l, p)) in LOCAL.iter().zip(PODMAN).enumerate() {
        runs.push(run(
            &format!("r-l{i}"),
            "local",
            *l,
            8000.0 + i as f64,
            "train --batch 32",
        ));
        runs.push(run(
            &format!("r-p{i}"),
            "podman",
            p,
            7600.0 + i as f64,
            "train --batch 32",
        ));
    }
    runs
}

fn options() -> Options {
    Options {
        baseline: None,
        unit: None,
        strict: false,
        prices: PriceSheet::load(None).unwrap(),
        target_prices: BTreeMap::from([
            ("local".to_string(), "cluster-node".to_string()),
            ("podman".to_string(), "opencost-default".to_string()),
        ]),
        by: Default::default(),
    }
}

fn loaded(runs: Vec<RunInput>) -> Loaded {
    Loaded {
        runs,
        experiment: Some("e-1".into()),
        recorded: Vec::new(),
    }
}

#[test]
fn statistics_and_verdicts_by_hand() {
    let report = compare(loaded(data_set()), &options()).unwrap();
    assert_eq!(report.baseline, "local");
    assert!(!report.indicative, "5 runs per target");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    let figure = |key: &str| report.figures.iter().find(|f| f.def.key == key).unwrap();
    let wall = figure("wallSeconds");
    assert_eq!(wall.targets[0].estimate.unwrap().median, 31.9);
    let podman = &wall.targets[1];
    assert_eq!(podman.estimate.unwrap().median, 33.1);
    assert!((podman.ratio.unwrap().median - 33.1 / 31.9).abs() < 1e-12);
    assert_eq!(podman.verdict, Some(Verdict::Worse), "slower is worse");
    // Throughput: higher is better; podman's 7600-7604 img/s are all below local's 8000-8004.
    let rate = figure("metric.imgs_per_s");
    assert_eq!(rate.targets[1].verdict, Some(Verdict::Worse));
    assert!((rate.targets[1].ratio.unwrap().median - 7602.0 / 8002.0).abs() < 1e-12);
    // Queue wait is 0.25 s everywhere: no clear difference.
    assert_eq!(
        figure("queueWaitSeconds").targets[1].verdict,
        Some(Verdict::NoClearDifference)
    );
    // Data access per phase: 1 MiB read in 31.9 s (the median local run).
    let read = figure("phase.train.readBytes").targets[0]
        .estimate
        .unwrap()
        .median;
    assert_eq!(read, 1048576.0);
    let rate = figure("phase.train.readRate").targets[0]
        .estimate
        .unwrap()
        .median;
    assert!((rate - 1048576.0 / 31.9).abs() < 1e-9);
    // CPU time has no direction: no verdict, but a ratio.
    assert_eq!(
        figure("cpuSeconds").targets[1].verdict,
        Some(Verdict::NotJudged)
    );
    // Cost by hand: OpenCost default for podman, 1 vCPU and 50 MiB of peak memory for 33.1 s.
    let cost = figure("cost").targets[1].estimate.unwrap().median;
    let expected = 33.1 / 3600.0 * (0.031611 + 50.0 / 1024.0 * 0.004237);
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    // On premises (cluster-node): node-hour * hours * share of the node (1 of 64 cores).
    let node_hour = (12000.0 / 5.0 + 3000.0) / (8760.0 * 0.7) + 0.45 * 0.15;
    let local_cost = figure("cost").targets[0].estimate.unwrap().median;
    assert!((local_cost - node_hour * 31.9 / 3600.0 / 64.0).abs() < 1e-12);
}

#[test]
fn a_changed_argument_and_a_changed_input_are_found_and_marked() {
    let mut runs = data_set();
    runs[1] = run("r-p0", "podman", 33.0, 7600.0, "train --batch 256");
    runs[3].inputs = Some("data/train.h5=aaaa".into());
    let report = compare(loaded(runs), &options()).unwrap();
    let aspects: Vec<&str> = report
        .differences
        .iter()
        .map(|d| d.aspect.as_str())
        .collect();
    assert_eq!(aspects, ["commands", "inputs"], "{:?}", report.differences);
    assert!(report.differences[0].detail.contains("--batch 256"));
    assert!(
        report.figures.iter().all(|f| f.affected),
        "a changed command affects everything"
    );
    let mut strict = options();
    strict.strict = true;
    let mut runs = data_set();
    runs[3].inputs = Some("data/train.h5=aaaa".into());
    match compare(loaded(runs), &strict) {
        Err(ReportError::NotLikeForLike(text)) => assert!(text.contains("inputs"), "{text}"),
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|r| r.figures.len())
        ),
    }
}

#[test]
fn a_failed_run_is_shown_not_counted_and_few_runs_are_indicative() {
    let mut runs = data_set();
    runs[0].detail.run.status = atlas_spec::record::RunStatus::Failed;
    runs[0].detail.run.cause = Some("exit 1 in train".into());
    let report = compare(loaded(runs), &options()).unwrap();
    let wall = report
        .figures
        .iter()
        .find(|f| f.def.key == "wallSeconds")
        .unwrap();
    assert_eq!(wall.targets[0].n, 4);
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("r-l0") && n.contains("not counted")));
    assert_eq!(
        report.runs[0].excluded.as_deref(),
        Some("failed: left out of the statistics")
    );

    let few: Vec<RunInput> = data_set().into_iter().take(4).collect();
    let report = compare(loaded(few), &options()).unwrap();
    assert!(report.indicative);
    assert!(render(&report, Format::Terminal { colour: false }).contains("indicative only"));
}

#[test]
fn bad_input_is_named() {
    let mut options = options();
    options.baseline = Some("mars".into());
    let err = compare(loaded(data_set()), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("baseline `mars` is not among"), "{err}");
    let mut options = self::options();
    options
        .target_prices
        .insert("local".into(), "no-such-node".into());
    let err = compare(loaded(data_set()), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`no-such-node`"), "{err}");
}

#[test]
fn json_and_csv_have_their_documented_shape() {
    let report = compare(loaded(data_set()), &options()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    for key in [
        "schemaVersion",
        "experiment",
        "workflow",
        "baseline",
        "targets",
        "indicative",
        "differences",
        "notes",
        "figures",
        "scaling",
        "runs",
        "priceSheetDate",
        "currency",
        "prices",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    assert_eq!(json["schemaVersion"], 1);
    let figure = &json["figures"][0];
    for key in [
        "key",
        "dimension",
        "label",
        "unit",
        "better",
        "affected",
        "targets",
    ] {
        assert!(figure.get(key).is_some(), "figure.{key} missing: {figure}");
    }
    for key in [
        "target",
        "n",
        "values",
        "estimate",
        "ratio",
        "verdict",
        "indicative",
    ] {
        assert!(
            figure["targets"][1].get(key).is_some(),
            "target.{key} missing"
        );
    }
    let csv = render(&report, Format::Csv);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "experiment,run,target,group,repetition,status,counted,dimension,figure,unit,value"
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().all(|r| r.split(',').count() == 11), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with(
        "e-1,r-p0,podman,podman,0,succeeded,true,performance,wallSeconds,seconds,33"
    )));
    // runs[1] is r-p0 (podman): one row per figure it has.
    let per_run = rows.iter().filter(|r| r.contains(",r-p0,")).count();
    assert_eq!(
        per_run,
        report.runs[1].values.len(),
        "one row per run and figure"
    );
    let md = render(&report, Format::Markdown);
    assert!(md.contains("| Performance | time to completion |"), "{md}");
}

#[test]
fn several_tasks_give_a_time_to_scale_out_and_a_node_change_is_found() {
    let mut runs = data_set();
    for r in &mut runs {
        r.workflow.as_mut().unwrap().spec.resources.tasks = Some(4);
        let phase = &mut r.detail.phases[0];
        phase.peak_processes = Some(4);
        phase.peak_processes_at = Some(1000.5 + 1.25);
    }
    runs[1].detail.run.node = Some("Other CPU, 8 CPUs, 32.0 GiB".into());
    let report = compare(loaded(runs), &options()).unwrap();
    let scale = report
        .figures
        .iter()
        .find(|f| f.def.key == "scaleOutSeconds")
        .expect("a scale-out figure");
    assert_eq!(scale.targets[0].estimate.unwrap().median, 1.25);
    let node = report
        .differences
        .iter()
        .find(|d| d.aspect == "nodeType")
        .unwrap();
    assert!(node.detail.contains("Other CPU"), "{}", node.detail);
    // One task: no scale-out figure.
    let report = compare(loaded(data_set()), &options()).unwrap();
    assert!(report
        .figures
        .iter()
        .all(|f| f.def.key != "scaleOutSeconds"));
}

#[test]
fn runs_at_two_sizes_give_a_speedup_and_an_efficiency() {
    let mut runs = Vec::new();
    for (i, (cores, wall)) in [(1, 10.0), (1, 10.2), (2, 6.0), (2, 6.1)]
        .into_iter()
        .enumerate()
    {
        let mut r = run(&format!("r-{i}"), "local", wall, 100.0, "train");
        r.workflow.as_mut().unwrap().spec.resources.cpus_per_task = Some(cores);
        runs.push(r);
    }
    let report = compare(loaded(runs), &options()).unwrap();
    assert_eq!(report.scaling.len(), 2, "{:?}", report.scaling);
    let two = &report.scaling[1];
    assert_eq!(
        (two.resource.as_str(), two.size, two.runs),
        ("cores", 2.0, 2)
    );
    // Medians 10.1 s at 1 core and 6.05 s at 2: speed-up 1.669, efficiency 0.835.
    assert!((two.speedup - 10.1 / 6.05).abs() < 1e-12);
    assert!((two.efficiency - 10.1 / 6.05 / 2.0).abs() < 1e-12);
    assert!(render(&report, Format::Html).contains("id=\"chart-scaling\""));
}

#[test]
fn each_runs_metric_curve_is_drawn_in_one_chart_with_a_legend_entry_per_run() {
    let mut runs = data_set();
    runs[0]
        .curves
        .insert("loss".into(), vec![1.0, 0.5, 0.25, 0.125]);
    runs[1].curves.insert("loss".into(), vec![1.0, 0.6, 0.4]);
    // A metric printed once makes no curve.
    runs[2].curves.insert("accuracy".into(), vec![0.98]);
    let report = compare(loaded(runs), &options()).unwrap();
    let html = render(&report, Format::Html);
    let chart = html
        .split("id=\"chart-metric-loss\"")
        .nth(1)
        .and_then(|rest| rest.split("</figure>").next())
        .expect("a loss chart");
    for legend in ["r-l0 (local)", "r-p0 (podman)"] {
        assert!(chart.contains(legend), "{legend} not in the chart's legend");
    }
    assert!(chart.contains("value printed (epoch, step)"));
    assert!(!html.contains("chart-metric-accuracy"));
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    assert_eq!(
        json["runs"][0]["curves"]["loss"],
        serde_json::json!([1.0, 0.5, 0.25, 0.125])
    );
}
