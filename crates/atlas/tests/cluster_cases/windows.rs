//! After-hours windows on the real cluster (Kubernetes 1.20: no Job `suspend`): a run frozen by
//! `atlas windows freeze k8s` saves its checkpoint, its Job is deleted (its pods gone, its
//! ConfigMap and the run's claim kept), and `atlas windows wake k8s` creates it again: the new
//! pod's agent resumes the run from its spool on the claim, and the phase from the checkpoint
//! the agent kept there (the pod's own /work is the image's, new at every start).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::project::{metric, Project};
use crate::{kubeconfig, project, Namespace};

/// Writes the count's limit (a file an earlier phase leaves in the working directory), then
/// runs count.sh (below): the checkpoint signal goes to the commands a phase's shell runs.
const COUNTER: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-window}\nspec:\n  checkpoint: {signal: USR1, path: ck, grace: 20s}\n  phases:\n  - {name: prepare, run: 'echo 120 > limit'}\n  - name: count\n    run: bash count.sh\n    patterns: ['start=(?P<start>[0-9]+)', 'step=(?P<step>[0-9]+)', 'total=(?P<total>[0-9]+)']\n  - {name: after, run: 'echo done'}\n";

/// Counts to the limit (120) in steps of a quarter second, from `ck` (its count) when resumed;
/// saves the count on SIGUSR1.
const COUNT_SH: &str = "i=0\nif [ \"${ATLAS_RESUME:-}\" = 1 ]; then i=$(cat ck); fi\necho start=$i\ntrap 'echo $i > ck' USR1\nwhile [ $i -lt $(cat limit) ]; do i=$((i+1)); echo step=$i; sleep 0.25; done\necho total=$i\n";

/// Waits until the run's count has passed `step` while it runs; its id.
fn wait_for_step(p: &Project, step: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(run) = p.runs().first() {
            let id = run["id"].as_str().unwrap().to_string();
            let detail = p.show(&id);
            let at = metric(&detail, 1, "step").unwrap_or(0.0);
            if detail["status"] == "running" && at >= step {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "the count never passed {step}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_job_deleted_at_the_close_is_created_again_at_the_open_and_resumes_from_the_claim() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "window");
    let p = project("cluster-window", &ns, COUNTER, "");
    std::fs::write(p.dir.join("count.sh"), COUNT_SH).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "k8s", "--interval", "500ms"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for round in 1..=2 {
        let id = wait_for_step(&p, 8.0 * round as f64);
        let (code, stdout, stderr) = p.atlas(&["windows", "freeze", "k8s"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains("frozen in phase count, checkpoint"),
            "{stdout}"
        );
        assert!(stdout.contains("deleted"), "{stdout}");
        let detail = p.show(&id);
        assert_eq!(detail["status"], "frozen", "{detail}");
        assert_eq!(detail["windows"][round - 1]["clean"], true, "{detail}");
        // Nothing of it runs; its ConfigMap stays for the wake.
        ns.wait_gone("jobs,pods", &id);
        let (ok, out) = ns.in_ns(&["get", "configmap", &format!("atlas-{id}-workflow")]);
        assert!(ok, "{out}");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            p.show(&id)["status"],
            "frozen",
            "the run ended while its Job was away"
        );
        let (code, stdout, stderr) = p.atlas(&["windows", "wake", "k8s"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("from its checkpoint"), "{stdout}");
    }
    let ended = run.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(ended.success(), "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let detail = p.show(&id);
    assert_eq!(detail["status"], "succeeded", "{detail}");
    assert_eq!(detail["windows"].as_array().unwrap().len(), 2, "{detail}");
    // The count went on from the checkpoint both times (a new pod's /work has none: it came
    // from the claim), and ended where an uninterrupted one does.
    assert!(metric(&detail, 1, "start").unwrap() >= 16.0, "{detail}");
    // The limit the first phase wrote was still there in the new pods' working directory.
    assert_eq!(metric(&detail, 1, "total"), Some(120.0), "{detail}");
}

/// `atlas emit k8s --windows` on the real 1.20 server: every object accepted (the CronJobs as
/// `batch/v1beta1`); then the windows worked by hand as the CronJobs would: the close's
/// command deletes the running Job (its agent freezes it on the pod's SIGTERM), a Job made from
/// the open's CronJob resumes the run from the claim and ends it. (The CronJobs' own pods
/// cannot reach the API server here: the test cluster has no service proxy, so the close runs
/// from this host with the kubeconfig.)
#[test]
fn emitted_windows_are_accepted_and_a_job_deleted_at_the_close_resumes_at_the_open() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "cron");
    let windows = "[targets.k8s.windows]\nopen = \"19:00\"\nclose = \"07:00\"\n";
    let p = project("cluster-cron", &ns, COUNTER, windows);
    std::fs::write(p.dir.join("count.sh"), COUNT_SH).unwrap();
    // One run through Atlas builds and pushes the workflow's image.
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "500ms"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (ok, image) = ns.in_ns(&[
        "get",
        "job",
        &format!("atlas-{id}"),
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert!(ok, "{image}");
    let dir = p.dir.join("emitted");
    let (code, _, stderr) = p.atlas(&[
        "emit",
        "k8s",
        "w.yaml",
        "--windows",
        "k8s",
        "--image",
        &image,
        "--server-version",
        "1.20",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("opens `0 19 * * *`, closes `0 7 * * *`"),
        "{stderr}"
    );
    let (ok, out) = ns.in_ns(&["apply", "-f", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    for created in [
        "cronjob.batch/kube-window-windows-open created",
        "cronjob.batch/kube-window-windows-close created",
        "role.rbac.authorization.k8s.io/kube-window-windows created",
        "job.batch/kube-window created",
    ] {
        assert!(out.contains(created), "{created} not in {out}");
    }
    // The close's account may list and delete Jobs, and nothing else.
    let account = format!("system:serviceaccount:{}:kube-window-windows", ns.name);
    for (verb, what, allowed) in [
        ("delete", "jobs", "yes"),
        ("list", "jobs", "yes"),
        ("create", "jobs", "no"),
        ("get", "secrets", "no"),
    ] {
        let (_, said) = ns.in_ns(&["auth", "can-i", verb, what, "--as", &account]);
        assert_eq!(said.trim(), allowed, "{verb} {what}");
    }
    let selector = "atlas.dev/window=kube-window";
    wait_for_running_pod(&ns, selector);
    std::thread::sleep(Duration::from_secs(6));
    let (code, out, stderr) = p.atlas(&[
        "windows",
        "close-jobs",
        "--selector",
        selector,
        "--namespace",
        &ns.name,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("Job kube-window deleted"), "{out}");
    wait_gone_by(&ns, "jobs,pods", selector);
    // What the CronJob controller does at the open: a Job from the open's jobTemplate (this
    // kubectl's `create job --from=cronjob/…` does not know batch/v1beta1 CronJobs).
    let (ok, cron) = ns.in_ns(&["get", "cronjob", "kube-window-windows-open", "-o", "json"]);
    assert!(ok, "{cron}");
    let cron: serde_json::Value = serde_json::from_str(&cron).unwrap();
    let template = &cron["spec"]["jobTemplate"];
    let job = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "kube-window-open-1", "labels": template["metadata"]["labels"] },
        "spec": template["spec"],
    });
    let file = p.dir.join("open-job.json");
    std::fs::write(&file, job.to_string()).unwrap();
    let (ok, out) = ns.in_ns(&["create", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = ns.in_ns(&[
        "wait",
        "--for=condition=complete",
        "job/kube-window-open-1",
        "--timeout=240s",
    ]);
    assert!(ok, "{out}");
    // The run's spool, on the claim (a hostPath volume on this machine).
    let (_, volume) = ns.in_ns(&[
        "get",
        "pvc",
        "kube-window-atlas-runs",
        "-o",
        "jsonpath={.spec.volumeName}",
    ]);
    let (_, path) = ns.kubectl(&["get", "pv", &volume, "-o", "jsonpath={.spec.hostPath.path}"]);
    let spool = std::fs::read_to_string(format!("{path}/kube-window/spool.jsonl")).unwrap();
    let after_wake = spool
        .split("\"type\":\"wake\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no wake: {spool}"));
    assert!(
        spool.contains("\"type\":\"frozen\"") && spool.contains("\"clean\":true"),
        "{spool}"
    );
    let started: f64 = after_wake
        .split("\"name\":\"start\",\"value\":")
        .nth(1)
        .and_then(|t| t.split(['}', ',']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no start metric after the wake: {after_wake}"));
    assert!(
        started > 0.0,
        "the open did not resume from the checkpoint: {after_wake}"
    );
    assert!(
        after_wake.contains("\"name\":\"total\",\"value\":120.0"),
        "{after_wake}"
    );
    assert!(after_wake.contains("\"type\":\"runEnd\""), "{after_wake}");
}

fn wait_for_running_pod(ns: &Namespace, selector: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, out) = ns.in_ns(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        if out.contains("Running") {
            return;
        }
        assert!(Instant::now() < deadline, "no pod running: {out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_gone_by(ns: &Namespace, kinds: &str, selector: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (ok, out) = ns.in_ns(&["get", kinds, "-l", selector, "-o", "name"]);
        assert!(ok, "{out}");
        if out.trim().is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still there: {out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
