//! The podman backend for real (rootful podman with runc, base image from scripts/base-image):
//! images built from `atlas containerize`'s files, containers under a random high UID, inputs
//! bind-mounted, cancellation, a failing build, and the example workflow on local, Slurm and
//! podman as one experiment. With `ATLAS_REQUIRE_INTEGRATION=1` a missing podman (or Slurm for
//! the experiment) is a failure, not a skip.

use std::path::Path;
use std::process::Command;

mod support {
    pub mod interrupt;
    pub mod project;
}

use support::project::Project;

fn required() -> bool {
    std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1")
}

fn podman_available() -> bool {
    let up = Command::new("podman")
        .args(["image", "exists", "localhost/atlas-base:bookworm"])
        .status()
        .is_ok_and(|s| s.success());
    if !up && required() {
        panic!("podman and the base image are required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/base-image");
    }
    if !up {
        eprintln!("skipped: no podman or no base image (run scripts/base-image)");
    }
    up
}

fn slurm_available() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("idle"));
    if !up && required() {
        panic!("Slurm is required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/slurm-up");
    }
    up
}

const TARGETS: &str = "[targets.kube]\nkind = \"podman-kube\"\ngpus = false\nprice = \"opencost-default\"\n\n[targets.podman]\nkind = \"podman\"\ngpus = false\nprice = \"opencost-default\"\n\n[targets.slurm]\nkind = \"slurm\"\npartition = \"debug\"\ngpus = false\nprice = \"cluster-node\"\n\n[targets.local]\nkind = \"local\"\ngpus = false\nprice = \"cluster-node\"\n";

fn sha256(text: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

#[test]
fn the_container_runs_under_a_random_uid_and_sees_its_checked_input() {
    if !podman_available() {
        return;
    }
    let p = Project::new("uid", TARGETS);
    std::fs::create_dir_all(p.dir.join("inputs")).unwrap();
    std::fs::write(p.dir.join("inputs/set.txt"), "imagenet, in small\n").unwrap();
    let workflow = format!(
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: uid-check}}\nspec:\n  data:\n    inputs:\n    - {{source: inputs/set.txt, path: data/train.txt, sha256: {}, size: 19}}\n  phases:\n  - name: look\n    run: |\n      id -u > whoami.txt; id -g >> whoami.txt\n      cat data/train.txt\n      touch data/train.txt 2>/dev/null && echo input-writable || echo input-read-only\n      echo out > result.txt\n",
        sha256("imagenet, in small\n")
    );
    std::fs::write(p.dir.join("w.yaml"), workflow).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "podman", "--interval", "200ms"]);
    assert_eq!(code, 0, "{stderr}");
    let run = &p.runs()[0];
    let run_dir = Path::new(run["runDir"].as_str().unwrap());
    let who = std::fs::read_to_string(run_dir.join("work/whoami.txt")).unwrap();
    let ids: Vec<u64> = who.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(ids[0] >= 1_000_000_000, "a random high UID: {who}");
    assert_eq!(ids[1], 0, "group 0, as OpenShift runs it");
    assert!(
        run_dir.join("work/result.txt").exists(),
        "the UID can write its work directory"
    );
    let log = std::fs::read_to_string(run_dir.join("logs/look.out")).unwrap();
    assert!(log.contains("imagenet, in small"), "{log}");
    assert!(
        log.contains("input-read-only"),
        "inputs are mounted read-only: {log}"
    );
    assert_eq!(
        run["schedulerId"],
        format!("atlas-{}", run["id"].as_str().unwrap())
    );
    assert_eq!(run["figures"]["inputBytes"], 19.0);
    assert!(run["figures"]["imageCached"].is_number(), "{run}");
    assert!(
        run["source"].as_str().unwrap().contains("cgroup"),
        "the container's own cgroup is measured: {run}"
    );
    // The same workflow again: the image is not rebuilt.
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "podman", "--interval", "200ms"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(p.runs()[0]["figures"]["imageCached"], 1.0);
}

#[test]
fn a_failing_image_build_fails_the_run_with_the_end_of_its_log() {
    if !podman_available() {
        return;
    }
    let p = Project::new("badbuild", TARGETS);
    std::fs::write(
        p.dir.join("w.yaml"),
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: bad-build}\nspec:\n  image:\n    packages: [atlas-no-such-package]\n  phases:\n  - {name: a, run: 'true'}\n",
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "podman", "--on", "local"]);
    assert_eq!(code, 1, "{stderr}");
    let runs = p.runs();
    let podman = runs.iter().find(|r| r["target"] == "podman").unwrap();
    let cause = podman["cause"].as_str().unwrap();
    assert!(cause.contains("the image build failed"), "{cause}");
    assert!(
        cause.contains("atlas-no-such-package"),
        "the log's tail: {cause}"
    );
    let local = runs.iter().find(|r| r["target"] == "local").unwrap();
    assert_eq!(local["status"], "succeeded", "the experiment goes on");
}

#[test]
fn ctrl_c_during_a_podman_run_stops_the_container_and_records_the_cancellation() {
    if !podman_available() {
        return;
    }
    let p = Project::new("cancel", TARGETS);
    std::fs::write(
        p.dir.join("wait.yaml"),
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: wait}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 120'}\n  - {name: after, run: 'true'}\n",
    )
    .unwrap();
    let (code, stderr) = support::interrupt::interrupt_during_phase(
        &p.dir.join("db/atlas.db"),
        &p.dir,
        &["run", "wait.yaml", "--on", "podman", "--interval", "200ms"],
    );
    assert_eq!(code, 1, "{stderr}");
    let run = &p.runs()[0];
    assert!(
        run["cause"].as_str().unwrap().starts_with("cancelled"),
        "{run}"
    );
    let detail = p.show(run["id"].as_str().unwrap());
    assert_eq!(detail["phases"][1]["status"], "skipped", "{detail}");
    let left = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("name={}", run["schedulerId"].as_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "the container is gone"
    );
}

/// The example (examples/biggan-mini/atlas.yaml, imported from job.lsf) on this machine, on
/// Slurm, in a container and as its Kubernetes Pod (podman-kube), as one experiment: the same
/// phases and app metrics from all four.
#[test]
fn the_example_runs_on_local_slurm_podman_and_podman_kube_as_one_experiment() {
    if !podman_available() || !slurm_available() {
        return;
    }
    let p = Project::new("example", TARGETS);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/biggan-mini");
    for file in ["atlas.yaml", "preprocess.py", "train.py", "predict.py"] {
        std::fs::copy(example.join(file), p.dir.join(file)).unwrap();
    }
    let (code, _, stderr) = p.atlas(&[
        "run",
        "atlas.yaml",
        "--on",
        "local",
        "--on",
        "slurm",
        "--on",
        "podman",
        "--on",
        "kube",
        "--parallel",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the runs differ only in target"),
        "{stderr}"
    );
    let runs = p.runs();
    assert_eq!(runs.len(), 4);
    let experiment = runs[0]["experimentId"].as_str().unwrap();
    assert!(runs.iter().all(|r| r["experimentId"] == experiment));
    let mut accuracies = Vec::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        let detail = p.show(run["id"].as_str().unwrap());
        let phases: Vec<&str> = detail["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            phases,
            ["preprocess", "train", "predict"],
            "{}",
            run["target"]
        );
        assert!(detail["phases"][1]["samples"].as_i64().unwrap() > 0);
        let metrics = detail["phases"][1]["metrics"].as_array().unwrap();
        assert!(metrics.iter().any(|m| m["name"] == "loss"), "{detail}");
        accuracies.push(detail["phases"][2]["metrics"][0]["last"].as_f64().unwrap());
    }
    assert!(
        accuracies.windows(2).all(|w| w[0] == w[1]),
        "the same deterministic model everywhere: {accuracies:?}"
    );
    report_of_the_experiment(&p, experiment);
}

/// `atlas compare` of the real local+slurm+podman+podman-kube experiment: every dimension in the JSON, and
/// the HTML report opened in a real headless Chromium, its charts present in the DOM.
fn report_of_the_experiment(p: &Project, experiment: &str) {
    let (code, stdout, stderr) = p.atlas(&[
        "compare", experiment, "--format", "json", "--unit", "samples",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["targets"],
        serde_json::json!(["local", "slurm", "podman", "kube"])
    );
    let dimensions: std::collections::BTreeSet<&str> = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["dimension"].as_str().unwrap())
        .collect();
    for d in ["performance", "elasticity", "dataAccess", "economics"] {
        assert!(dimensions.contains(d), "{d} missing: {dimensions:?}");
    }
    let cost = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "costPer1000Units")
        .expect("a cost per 1,000 samples");
    assert!(cost["targets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["n"] == 1));
    let html = p.dir.join("report.html");
    let (code, _, stderr) = p.atlas(&[
        "compare",
        experiment,
        "--format",
        "html",
        "--unit",
        "samples",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let chromium = |args: &[&str]| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(args)
            .arg(format!("file://{}", html.display()))
            .output();
        match out {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) if required() => {
                panic!("chromium is required (ATLAS_REQUIRE_INTEGRATION=1): {e}")
            }
            Err(_) => String::new(),
        }
    };
    let dom = chromium(&["--dump-dom"]);
    if dom.is_empty() && !required() {
        eprintln!("skipped: no chromium");
        return;
    }
    for chart in [
        "chart-timeline",
        "chart-cpu",
        "chart-memory",
        "chart-wallSeconds",
        "chart-cost",
        "chart-costPer1000Units",
    ] {
        let at = dom
            .find(&format!("id=\"{chart}\""))
            .unwrap_or_else(|| panic!("{chart} not in the page"));
        let figure = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        assert!(figure.contains("<svg"), "{chart} has no SVG");
        assert!(
            figure.contains("<rect") || figure.contains("<polyline"),
            "{chart} draws nothing"
        );
    }
    assert!(
        dom.contains("Verdict") && dom.contains("podman vs local"),
        "the verdict is on the page"
    );
    let shot = p.dir.join("report.png");
    chromium(&[
        "--window-size=1200,2400",
        &format!("--screenshot={}", shot.display()),
    ]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real picture: {} bytes",
        png.len()
    );
}

/// The Pod `atlas emit k8s` describes, run for real with `podman kube play` (no API server can
/// run here), next to a local run of the same workflow, and compared.
#[test]
fn the_workflows_pod_runs_with_podman_kube_play_and_is_compared_with_local() {
    if !podman_available() {
        return;
    }
    let p = Project::new("kube", TARGETS);
    std::fs::write(
        p.dir.join("w.yaml"),
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-check}\nspec:\n  phases:\n  - name: train\n    run: 'id -u > whoami.txt; for i in 1 2 3; do echo loss=0.$i; sleep 0.4; done'\n    patterns: ['loss=(?P<loss>[0-9.]+)']\n  - {name: after, run: 'test -s whoami.txt'}\n",
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&[
        "run",
        "w.yaml",
        "--on",
        "kube",
        "--on",
        "local",
        "--interval",
        "200ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let runs = p.runs();
    let kube = runs.iter().find(|r| r["target"] == "kube").unwrap();
    assert_eq!(kube["status"], "succeeded", "{kube}");
    let pod = kube["schedulerId"].as_str().unwrap().to_string();
    assert_eq!(pod, format!("atlas-{}", kube["id"].as_str().unwrap()));
    let run_dir = Path::new(kube["runDir"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("pod.yaml")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "Pod");
    assert_eq!(
        manifest["spec"]["containers"][0]["imagePullPolicy"],
        "Never"
    );
    assert_eq!(manifest["spec"]["securityContext"]["runAsGroup"], 0);
    let uid: u64 = std::fs::read_to_string(run_dir.join("work/whoami.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(uid >= 1_000_000_000, "a random high UID in the pod: {uid}");
    let detail = p.show(kube["id"].as_str().unwrap());
    assert!(
        detail["phases"][0]["samples"].as_i64().unwrap() > 0,
        "{detail}"
    );
    assert_eq!(detail["phases"][0]["metrics"][0]["last"], 0.3);
    let left = Command::new("podman")
        .args(["pod", "ps", "--format", "{{.Name}}", "--filter"])
        .arg(format!("name={pod}"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "the pod is removed"
    );
    let experiment = kube["experimentId"].as_str().unwrap();
    let (code, stdout, stderr) = p.atlas(&["compare", experiment, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["targets"], serde_json::json!(["kube", "local"]));
}
