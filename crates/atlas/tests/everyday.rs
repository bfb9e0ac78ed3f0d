//! Everyday CLI behaviour (issue 21, item 7): completions, stderr in `atlas logs`, the phases
//! named on a wrong `--phase`, and `atlas runs` filters.

mod support {
    pub mod project;
}

use support::project::Project;

const HEAD: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n";

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let p = Project::new("completions", "");
    let (code, bash, _) = p.atlas(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        bash.contains("complete -F _atlas") && bash.contains("logs"),
        "{bash}"
    );
    for shell in ["zsh", "fish"] {
        let (code, script, _) = p.atlas(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(script.contains("atlas"), "{shell}");
    }
    let (code, _, stderr) = p.atlas(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn logs_show_what_a_phase_wrote_to_stderr_and_name_the_phases() {
    let p = Project::new("logs-stderr", "");
    let w = format!("{HEAD}  phases:\n  - {{name: one, run: 'echo an-output-line; echo an-error-line >&2'}}\n  - {{name: two, run: 'true'}}\n");
    std::fs::write(p.dir.join("w.yaml"), w).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (code, out, _) = p.atlas(&["logs", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("an-output-line") && out.contains("an-error-line"),
        "{out}"
    );
    let (_, only_err, _) = p.atlas(&["logs", &id, "--stream", "stderr"]);
    assert!(
        only_err.contains("an-error-line") && !only_err.contains("an-output-line"),
        "{only_err}"
    );
    let (code, _, stderr) = p.atlas(&["logs", &id, "--phase", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("its phases: one, two"), "{stderr}");
}

#[test]
fn runs_are_listed_by_status_label_target_and_limit() {
    let p = Project::new("runs-filter", "");
    std::fs::write(
        p.dir.join("ok.yaml"),
        format!("{HEAD}  phases: [{{name: a, run: 'true'}}]\n"),
    )
    .unwrap();
    std::fs::write(
        p.dir.join("bad.yaml"),
        format!("{HEAD}  phases: [{{name: a, run: 'false'}}]\n"),
    )
    .unwrap();
    for (file, lr) in [
        ("ok.yaml", "0.5"),
        ("bad.yaml", "0.05"),
        ("ok.yaml", "0.05"),
    ] {
        p.atlas(&["run", file, "--on", "local", "--label", &format!("lr={lr}")]);
    }
    let list = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["runs", "--format", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = p.atlas(&all);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(list(&[]).len(), 3);
    assert_eq!(list(&["--status", "failed"]).len(), 1);
    assert_eq!(list(&["--label", "lr=0.05"]).len(), 2);
    assert_eq!(
        list(&["--label", "lr=0.05", "--status", "succeeded"]).len(),
        1
    );
    assert_eq!(list(&["--target", "local", "--limit", "2"]).len(), 2);
    assert_eq!(list(&["--target", "slurm"]).len(), 0);
    assert_eq!(list(&["--since", "1d"]).len(), 3);
    let (code, _, err) = p.atlas(&["runs", "--status", "done"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = p.atlas(&["show", "r-"]);
    assert_eq!(code, 2);
    assert!(err.contains("more than one run"), "{err}");
    let (_, table, _) = p.atlas(&["runs"]);
    assert!(
        table.contains("STARTED") && table.contains("lr=0.5"),
        "{table}"
    );
}

#[test]
fn comparing_runs_that_all_failed_exits_1_with_their_causes() {
    let p = Project::new("compare-failed", "");
    std::fs::write(
        p.dir.join("bad.yaml"),
        format!("{HEAD}  phases: [{{name: a, run: 'exit 4'}}]\n"),
    )
    .unwrap();
    p.atlas(&["run", "bad.yaml", "--on", "local", "--repeat", "2"]);
    let ids: Vec<String> = p
        .runs()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let (code, _, stderr) = p.atlas(&["compare", &ids[0], &ids[1]]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no run succeeded") && stderr.contains("exited with code 4"),
        "{stderr}"
    );
}

#[test]
fn runs_are_compared_by_a_label_and_by_a_parameter() {
    let p = Project::new("compare-by", "");
    std::fs::write(
        p.dir.join("w.yaml"),
        format!("{HEAD}  phases: [{{name: a, run: 'echo train --lr $LR'}}]\n"),
    )
    .unwrap();
    for lr in ["0.5", "0.05"] {
        let (code, _, err) = p.atlas(&[
            "run",
            "w.yaml",
            "--on",
            "local",
            "--label",
            &format!("lr={lr}"),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let ids: Vec<String> = p
        .runs()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let (code, out, err) = p.atlas(&[
        "compare", &ids[0], &ids[1], "--by", "label:lr", "--format", "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut groups: Vec<&str> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, ["lr=0.05", "lr=0.5"], "{report}");
    assert_eq!(report["by"], "label:lr");
    // The figures are per group too (one run each).
    let first = &report["figures"][0]["targets"];
    let mut named: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    named.sort();
    assert_eq!(named, ["lr=0.05", "lr=0.5"], "{first}");
    assert!(
        first.as_array().unwrap().iter().all(|t| t["n"] == 1),
        "{first}"
    );
    // One run per group: ratios, never a verdict or an interval.
    let verdicts = report["figures"].as_array().unwrap().iter().flat_map(|f| {
        f["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["verdict"].clone())
            .collect::<Vec<_>>()
    });
    assert!(verdicts
        .into_iter()
        .all(|v| v == "too-few-runs" || v == "baseline" || v == "not-judged" || v.is_null()));
    let (_, text, _) = p.atlas(&["compare", &ids[0], &ids[1], "--by", "label:lr"]);
    assert!(text.contains("one run, so ratios only"), "{text}");
    assert!(text.contains("Method: medians"), "{text}");
    let (code, _, err) = p.atlas(&["compare", &ids[0], "--by", "colour"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn show_says_what_a_run_used_of_what_it_asked_for() {
    let p = Project::new(
        "seff",
        "[targets.priced]\nkind = \"local\"\nprice = \"opencost-default\"\n",
    );
    std::fs::write(
        p.dir.join("w.yaml"),
        format!("{HEAD}  resources: {{cpusPerTask: 2, memoryPerNode: 1Gi}}\n  phases: [{{name: a, run: 'true'}}]\n"),
    )
    .unwrap();
    let (code, _, err) = p.atlas(&["run", "w.yaml", "--on", "local"]);
    assert_eq!(code, 0, "{err}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (code, out, _) = p.atlas(&["show", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("efficiency: CPU") && out.contains("of 2 core(s)"),
        "{out}"
    );
    assert!(out.contains("requested"), "{out}");
    // Unused capacity is priced only where the target names a price, and each phase is shown.
    assert!(out.contains("no price for this target"), "{out}");
    assert!(out.contains("\n  a "), "the phase's own line: {out}");
    let (code, _, err) = p.atlas(&["run", "w.yaml", "--on", "priced"]);
    assert_eq!(code, 0, "{err}");
    let priced = p
        .runs()
        .into_iter()
        .find(|r| r["target"] == "priced")
        .unwrap();
    let (_, out, _) = p.atlas(&["show", priced["id"].as_str().unwrap()]);
    let unused = out
        .lines()
        .find(|l| l.starts_with("unused: "))
        .unwrap_or_default();
    assert!(
        unused.contains("core-hours") && unused.contains("USD at opencost-default's rates"),
        "{out}"
    );
    // The same figures in JSON, beside the run's detail.
    let (_, json, _) = p.atlas(&["show", priced["id"].as_str().unwrap(), "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&json).unwrap();
    let e = &shown["efficiency"];
    assert_eq!(e["price"], "opencost-default", "{json}");
    assert_eq!(e["cores"], 2.0, "{json}");
    assert!(
        e["run"]["unusedCoreHours"].as_f64().unwrap() >= 0.0,
        "{json}"
    );
    assert!(e["wastedCost"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(e["phases"][0]["name"], "a", "{json}");
    assert_eq!(
        shown["target"], "priced",
        "the detail is still there: {json}"
    );
}

#[test]
fn second_look_fixes_hold() {
    let p = Project::new("second-look", "");
    std::fs::write(
        p.dir.join("w.yaml"),
        format!("{HEAD}  phases:\n  - {{name: a, run: 'printf no-newline'}}\n  - {{name: b, run: 'echo second'}}\n"),
    )
    .unwrap();
    for lr in ["0.5", "0.1"] {
        let (code, _, err) = p.atlas(&[
            "run",
            "w.yaml",
            "--on",
            "local",
            "--label",
            &format!("lr={lr}"),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let ids: Vec<String> = p
        .runs()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // A phase's output without a final line end does not run into the next header.
    let (_, logs, _) = p.atlas(&["logs", &ids[0]]);
    assert!(logs.contains("no-newline\n==> b <=="), "{logs}");
    // A run named twice is one run.
    let (_, out, _) = p.atlas(&[
        "compare", &ids[0], &ids[0], "--by", "run", "--format", "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 1);
    // A label no run has is an input error.
    let (code, _, err) = p.atlas(&["compare", &ids[0], &ids[1], "--by", "label:missing"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no run has the label `missing`"), "{err}");
    // The CSV says each run's group.
    let (_, csv, _) = p.atlas(&[
        "compare", &ids[0], &ids[1], "--by", "label:lr", "--format", "csv",
    ]);
    assert!(
        csv.starts_with("experiment,run,target,group,") && csv.contains(",lr=0.1,"),
        "{csv}"
    );
    // An experiment prefix that starts more than one is named ambiguous.
    let (code, _, err) = p.atlas(&["show", "e-"]);
    assert_eq!(code, 2);
    assert!(err.contains("more than one experiment"), "{err}");
}

/// Issue 21, item 1: a phase that reads a file the page cache holds read 8 MiB by its calls and
/// (next to) nothing from storage; the report lists both figures, each under its own name.
#[test]
fn a_cached_read_counts_as_read_by_the_job_not_from_storage() {
    let p = Project::new("logical-io", "");
    let w = format!(
        "{HEAD}  phases:\n  - {{name: write, run: 'head -c 4194304 /dev/zero > blob'}}\n  - {{name: read, run: 'cat blob > /dev/null; cat blob > /dev/null'}}\n"
    );
    std::fs::write(p.dir.join("w.yaml"), w).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let detail = p.show(&id);
    let read = &detail["phases"][1];
    let logical = read["io"]["readChars"].as_u64().unwrap();
    assert!(logical >= 8 << 20, "{read}");
    let storage = read["readBytes"].as_i64().unwrap_or(0);
    assert!(storage < 1 << 20, "a cached file came from storage: {read}");
    let written = detail["phases"][0]["io"]["writeChars"].as_u64().unwrap();
    assert!(written >= 4 << 20, "{detail}");
    let (code, report, _) = p.atlas(&["compare", &id, "--format", "json"]);
    assert_eq!(code, 0);
    assert!(report.contains("bytes read by the job"), "{report}");
    assert!(report.contains("storage bytes read"), "{report}");
}

/// Issue 21, item 4: a target's references and thresholds are judged in the comparison, and
/// `--check` exits 1 when one fails.
#[test]
fn checks_pass_and_fail_with_the_exit_code() {
    let p = Project::new(
        "checks",
        "[targets.local]\nkind = \"local\"\ngpus = false\nchecks = [\"accuracy >= 0.5\", \"wall <= 0.001s\", \"wall <= 1h ±10%\"]\n",
    );
    let w = format!("{HEAD}  phases:\n  - {{name: one, run: 'echo accuracy=0.9', patterns: ['accuracy=(?P<accuracy>[0-9.]+)']}}\n");
    std::fs::write(p.dir.join("w.yaml"), w).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (code, out, _) = p.atlas(&["compare", &id]);
    assert_eq!(code, 0, "without --check the report only says");
    assert!(
        out.contains("Check: local: accuracy >= 0.5: pass (0.9 against 0.5)"),
        "{out}"
    );
    assert!(out.contains("Check: local: wall <= 0.001s: FAIL"), "{out}");
    assert!(out.contains("Check: local: wall <= 1h ±10%: pass"), "{out}");
    let (code, json, _) = p.atlas(&["compare", &id, "--format", "json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["checks"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(report["checks"][2]["limit"], 3960.0);
    let (code, _, stderr) = p.atlas(&["compare", &id, "--check"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("1 check(s) failed: local: wall <= 0.001s"),
        "{stderr}"
    );
    std::fs::write(
        p.dir.join("atlas.toml"),
        "[targets.local]\nkind = \"local\"\ngpus = false\nchecks = [\"accuracy => 0.5\"]\n",
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&["compare", &id]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("target `local`: checks:"), "{stderr}");
}

/// Issue 21, item 4: references and thresholds written in the workflow itself (`*` for every
/// target, or one target's), with atlas.toml's added; `atlas run --check` gates on them.
#[test]
fn the_workflows_own_checks_are_judged_with_the_targets() {
    let p = Project::new(
        "workflow-checks",
        "[targets.local]\nkind = \"local\"\ngpus = false\nchecks = [\"accuracy <= 0.95\"]\n",
    );
    let w = format!("{HEAD}  checks:\n    '*': ['accuracy >= 0.5']\n    local: ['wall <= 0.001s']\n  phases:\n  - {{name: one, run: 'echo accuracy=0.9', patterns: ['accuracy=(?P<accuracy>[0-9.]+)']}}\n");
    std::fs::write(p.dir.join("w.yaml"), &w).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "local", "--check"]);
    assert_eq!(code, 1, "the wall check fails: {stderr}");
    assert!(
        stderr.contains("check: local: accuracy >= 0.5: pass"),
        "{stderr}"
    );
    assert!(
        stderr.contains("check: local: accuracy <= 0.95: pass"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 check(s) failed: local: wall <= 0.001s"),
        "{stderr}"
    );
    // A check the comparison cannot read names where it was written.
    let bad = w.replace("accuracy >= 0.5", "accuracy => 0.5");
    std::fs::write(p.dir.join("w.yaml"), bad).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (code, _, stderr) = p.atlas(&["compare", &id]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("spec.checks.*"), "{stderr}");
    // A key that is neither `*` nor a target's name is refused with the file's line.
    let (code, _, stderr) = p.atlas(&["validate", "w.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(
        p.dir.join("w.yaml"),
        w.replace("local: [", "Not_A_Target: ["),
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&["validate", "w.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("spec.checks.Not_A_Target"), "{stderr}");
}

#[test]
fn diff_names_what_differs_between_two_runs_word_by_word() {
    let p = Project::new("diff", "");
    for (file, lr) in [("a.yaml", "0.5"), ("b.yaml", "0.05")] {
        std::fs::write(
            p.dir.join(file),
            format!(
                "{HEAD}  phases: [{{name: train, run: 'echo train.py --lr {lr} --epochs 3'}}]\n"
            ),
        )
        .unwrap();
        let (code, _, err) =
            p.atlas(&["run", file, "--on", "local", "--label", &format!("lr={lr}")]);
        assert_eq!(code, 0, "{err}");
    }
    let runs = p.runs();
    let (b, a) = (
        runs[0]["id"].as_str().unwrap(),
        runs[1]["id"].as_str().unwrap(),
    );
    let (code, out, err) = p.atlas(&["diff", a, b]);
    assert_eq!(code, 0, "{err}");
    // Not a terminal: the differing words in brackets, the same ones left out.
    assert!(out.contains("echo train.py --lr [0.5] --epochs 3"), "{out}");
    assert!(
        out.contains("echo train.py --lr [0.05] --epochs 3"),
        "{out}"
    );
    assert!(
        out.contains("param lr") && out.contains("label lr"),
        "{out}"
    );
    assert!(!out.contains("param epochs"), "{out}");
    let (code, out, _) = p.atlas(&["diff", a, b, "--all"]);
    assert_eq!(code, 0);
    let epochs = out
        .split("param epochs\n")
        .nth(1)
        .and_then(|r| r.lines().next());
    assert!(
        epochs.is_some_and(|l| l.trim_start().starts_with("both") && l.ends_with(" 3")),
        "{out}"
    );
    let (code, out, _) = p.atlas(&["diff", a, b, "--format", "json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lr = json["aspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["aspect"] == "param lr")
        .unwrap();
    assert_eq!(
        (lr["a"].as_str(), lr["b"].as_str()),
        (Some("0.5"), Some("0.05"))
    );
    assert_eq!(lr["same"], false);
    // A run that is not there is named, exit 2.
    let (code, _, err) = p.atlas(&["diff", a, "r-nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no run `r-nope`"), "{err}");
}

#[test]
fn operator_check_takes_a_good_storage_service_and_names_what_is_wrong_with_a_bad_one() {
    let p = Project::new("operator-check", "");
    let good = "apiVersion: atlas.dev/v1alpha1\nkind: StorageService\nmetadata: {name: scratch}\nspec:\n  chunkServers: 3\n  goal: 2\n  storagePerChunkServer: 10Gi\n  version: 3.0.117\n  image: moosefs:3.0.117\n";
    std::fs::write(p.dir.join("good.yaml"), good).unwrap();
    let (code, out, err) = p.atlas(&["operator", "check", "good.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 chunk servers of 10Gi each, goal 2"),
        "{out}"
    );
    std::fs::write(
        p.dir.join("few.yaml"),
        good.replace("chunkServers: 3", "chunkServers: 1"),
    )
    .unwrap();
    let (code, _, err) = p.atlas(&["operator", "check", "few.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("chunkServers 1 is fewer than the goal 2"),
        "{err}"
    );
    std::fs::write(
        p.dir.join("typo.yaml"),
        good.replace("goal: 2", "goal: two"),
    )
    .unwrap();
    let (code, _, err) = p.atlas(&["operator", "check", "typo.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("typo.yaml:6:"), "{err}");
    let (code, out, _) = p.atlas(&["operator", "crd"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("name: storageservices.atlas.dev") && out.ends_with('\n'),
        "{out}"
    );
}

#[test]
fn the_comparison_carries_each_runs_metric_curve_from_the_store() {
    let p = Project::new("curves", "");
    std::fs::write(
        p.dir.join("w.yaml"),
        format!("{HEAD}  phases:\n  - name: train\n    run: 'for l in 0.9 0.5 0.2; do echo loss=$l; done'\n    patterns: ['loss=(?P<loss>[0-9.]+)']\n"),
    )
    .unwrap();
    for _ in 0..2 {
        let (code, _, err) = p.atlas(&["run", "w.yaml", "--on", "local"]);
        assert_eq!(code, 0, "{err}");
    }
    let runs = p.runs();
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let (code, out, err) = p.atlas(&["compare", ids[0], ids[1], "--by", "run", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    for run in report["runs"].as_array().unwrap() {
        assert_eq!(
            run["curves"]["loss"],
            serde_json::json!([0.9, 0.5, 0.2]),
            "{run}"
        );
    }
    let (code, html, _) = p.atlas(&["compare", ids[0], ids[1], "--by", "run", "--format", "html"]);
    assert_eq!(code, 0);
    assert!(html.contains("id=\"chart-metric-loss\""));
}
