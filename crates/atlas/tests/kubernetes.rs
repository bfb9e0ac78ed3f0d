//! The kubernetes backend (kube-rs) against a stand-in API server on 127.0.0.1
//! (tests/support/kube_stub.rs): no real API server can run on these machines, so the stub
//! speaks the REST paths, reads every object into its k8s-openapi type and runs each pod's
//! real `atlas agent` here. What a real cluster adds (scheduling, images, volumes) is not
//! covered; the README and docs/kubernetes.md say so.

mod support {
    pub mod interrupt;
    pub mod kube_stub;
    pub mod project;
}

use serde_json::Value;
use support::kube_stub::{write_kubeconfig, Behaviour, KubeStub};
use support::project::Project;

const TARGETS: &str = "[targets.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"kubeconfig\"\ncontext = \"stub-ctx\"\nimage = \"registry.example/atlas/check:1\"\n";

const WORKFLOW: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-api}\nspec:\n  resources: {cpusPerTask: 1, memoryPerNode: 512Mi}\n  phases:\n  - name: train\n    run: 'for i in 1 2 3; do echo loss=0.$i; sleep 0.4; done'\n    patterns: ['loss=(?P<loss>[0-9.]+)']\n  - {name: after, run: 'echo done'}\n";

/// A project with the k8s target, `w.yaml` and a kubeconfig for `stub`.
fn project(tag: &str, stub: &KubeStub, workflow: &str) -> Project {
    let p = Project::new(tag, TARGETS);
    stub.write_kubeconfig(&p.dir.join("kubeconfig"), "stub-ctx");
    std::fs::write(p.dir.join("w.yaml"), workflow).unwrap();
    p
}

fn start_stub(p: &str, behaviour: Behaviour) -> KubeStub {
    let root = std::env::temp_dir().join(format!("atlas-kube-stub-{p}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    KubeStub::start(&root, behaviour)
}

fn methods(stub: &KubeStub, method: &str, resource: &str) -> Vec<(String, u16)> {
    stub.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.split('?').next().unwrap().ends_with(resource))
        .map(|r| (r.path, r.status))
        .collect()
}

#[test]
fn a_job_is_created_watched_to_success_and_compared_with_local() {
    let stub = start_stub("ok", Behaviour::default());
    let p = project("kube-ok", &stub, WORKFLOW);
    let (code, _, stderr) = p.atlas(&[
        "run",
        "w.yaml",
        "--on",
        "k8s",
        "--on",
        "local",
        "--interval",
        "200ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let runs = p.runs();
    let k8s = runs.iter().find(|r| r["target"] == "k8s").unwrap();
    let id = k8s["id"].as_str().unwrap();
    assert_eq!(k8s["status"], "succeeded", "{k8s}");
    assert_eq!(k8s["schedulerId"], format!("atlas-test/atlas-{id}"));
    // Claims, then the Job, then its ConfigMap, all in the context's namespace.
    let posts: Vec<String> = stub
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            r.path
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(posts, ["persistentvolumeclaims", "jobs", "configmaps"]);
    assert!(stub
        .requests()
        .iter()
        .all(|r| r.path.starts_with("/version") || r.path.contains("/namespaces/atlas-test/")));
    let job = &stub.jobs()[0];
    assert_eq!(job.metadata.name.as_deref(), Some(&*format!("atlas-{id}")));
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/atlas/check:1")
    );
    assert_eq!(
        container.args.as_deref().unwrap(),
        ["--quiet", "--records-to-stdout"]
    );
    let env = container.env.as_ref().unwrap();
    assert!(env
        .iter()
        .any(|e| e.name == "ATLAS_RUN_ID" && e.value.as_deref() == Some(id)));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let map = &stub.config_maps()[0];
    let owner = &map.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Job", &*format!("atlas-{id}"))
    );
    assert_eq!(owner.uid, format!("uid-atlas-{id}"));
    assert!(map.data.as_ref().unwrap()["workflow.yaml"].contains("loss="));
    // The agent's records came through the pod log into the store.
    let detail = p.show(id);
    let phases: Vec<&str> = detail["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["train", "after"]);
    assert!(
        detail["phases"][0]["samples"].as_i64().unwrap() > 0,
        "{detail}"
    );
    assert_eq!(detail["phases"][0]["metrics"][0]["last"], 0.3);
    // Queue wait is pod scheduled − created: the stub schedules after 300 ms.
    let figures = &detail["figures"];
    let queue = figures["queueWaitSeconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{detail}"));
    assert!((0.25..30.0).contains(&queue), "{figures}");
    assert!(figures["podStartSeconds"].as_f64().is_some(), "{figures}");
    let (code, stdout, _) = p.atlas(&["show", id]);
    assert_eq!(code, 0);
    assert!(stdout.contains("pod scheduled after"), "{stdout}");
    let experiment = k8s["experimentId"].as_str().unwrap();
    let (code, stdout, stderr) = p.atlas(&["compare", experiment, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["targets"], serde_json::json!(["k8s", "local"]));
}

#[test]
fn a_failing_pod_fails_the_run_with_the_agents_cause() {
    let stub = start_stub("fail", Behaviour::default());
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-fail}\nspec:\n  phases:\n  - {name: broken, run: 'echo about to fail; exit 3'}\n  - {name: never, run: 'true'}\n";
    let p = project("kube-fail", &stub, workflow);
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "200ms"]);
    assert_eq!(code, 1, "{stderr}");
    let run = &p.runs()[0];
    assert_eq!(run["status"], "failed");
    assert!(
        run["cause"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{run}"
    );
    let detail = p.show(run["id"].as_str().unwrap());
    assert_eq!(detail["phases"][1]["status"], "skipped", "{detail}");
}

#[test]
fn cancelling_deletes_the_job_with_foreground_propagation() {
    let stub = start_stub("cancel", Behaviour::default());
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-wait}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 120'}\n  - {name: after, run: 'true'}\n";
    let p = project("kube-cancel", &stub, workflow);
    let (code, stderr) = support::interrupt::interrupt_during_phase(
        &p.dir.join("db/atlas.db"),
        &p.dir,
        &["run", "w.yaml", "--on", "k8s", "--interval", "200ms"],
    );
    assert_eq!(code, 1, "{stderr}");
    let deletes: Vec<_> = stub
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let options: Value = serde_json::from_str(&deletes[0].body).unwrap();
    assert_eq!(options["propagationPolicy"], "Foreground", "{options}");
    let run = &p.runs()[0];
    assert!(
        run["cause"].as_str().unwrap().starts_with("cancelled"),
        "{run}"
    );
    let detail = p.show(run["id"].as_str().unwrap());
    assert_eq!(detail["phases"][1]["status"], "skipped", "{detail}");
}

#[test]
fn an_existing_claim_is_reused_and_an_existing_job_is_refused() {
    let stub = start_stub(
        "claims",
        Behaviour {
            claims_exist: true,
            ..Default::default()
        },
    );
    let p = project("kube-claims", &stub, WORKFLOW);
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "200ms"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(methods(&stub, "POST", "persistentvolumeclaims")[0].1, 409);
    assert_eq!(p.runs()[0]["status"], "succeeded");

    let stub = start_stub(
        "jobs",
        Behaviour {
            jobs_exist: true,
            ..Default::default()
        },
    );
    let p = project("kube-jobs", &stub, WORKFLOW);
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--on", "local"]);
    assert_eq!(code, 1, "{stderr}");
    let runs = p.runs();
    let k8s = runs.iter().find(|r| r["target"] == "k8s").unwrap();
    let cause = k8s["cause"].as_str().unwrap();
    assert!(
        cause.contains("already exists in namespace atlas-test"),
        "{cause}"
    );
    assert!(cause.contains("stub-ctx"), "{cause}");
    assert!(
        methods(&stub, "POST", "configmaps").is_empty(),
        "nothing after the refusal"
    );
    let local = runs.iter().find(|r| r["target"] == "local").unwrap();
    assert_eq!(local["status"], "succeeded", "the other target goes on");
}

#[test]
fn an_indexed_job_gives_a_run_per_task_from_the_completion_index() {
    let stub = start_stub("array", Behaviour::default());
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: sweep}\nspec:\n  scheduling: {array: {start: 1, end: 3}}\n  environment: {schedulerVariables: [SLURM_ARRAY_TASK_ID]}\n  phases:\n  - {name: task, run: 'echo task=$SLURM_ARRAY_TASK_ID; test $SLURM_ARRAY_TASK_ID != 2', patterns: ['task=(?P<task>[0-9]+)']}\n";
    let p = project("kube-array", &stub, workflow);
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "200ms"]);
    assert_eq!(code, 1, "task 2 fails: {stderr}");
    let job = &stub.jobs()[0];
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(
        (spec.completions, spec.completion_mode.as_deref()),
        (Some(3), Some("Indexed"))
    );
    let runs = p.runs();
    assert_eq!(runs.len(), 4, "the array's run and one per task: {runs:?}");
    let parent = runs
        .iter()
        .find(|r| !r["id"].as_str().unwrap().contains("-t"))
        .unwrap();
    assert!(
        parent["cause"].as_str().unwrap().contains("task"),
        "{parent}"
    );
    let mut seen = Vec::new();
    for task in runs
        .iter()
        .filter(|r| r["id"].as_str().unwrap().contains("-t"))
    {
        let detail = p.show(task["id"].as_str().unwrap());
        seen.push((
            detail["phases"][0]["metrics"][0]["last"].as_f64().unwrap(),
            task["status"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        seen,
        [
            (1.0, "succeeded".into()),
            (2.0, "failed".into()),
            (3.0, "succeeded".into())
        ]
    );
}

#[test]
fn an_unreachable_server_or_missing_kubeconfig_exits_3_naming_the_context() {
    let p = Project::new("kube-down", TARGETS);
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write_kubeconfig(
        &p.dir.join("kubeconfig"),
        "stub-ctx",
        &format!("http://127.0.0.1:{closed}"),
    );
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--on", "local"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("context `stub-ctx`"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{closed}")), "{stderr}");
    let runs = p.runs();
    assert_eq!(
        runs.iter().find(|r| r["target"] == "local").unwrap()["status"],
        "succeeded"
    );
    let (code, stdout, _) = p.atlas(&["targets", "check", "k8s"]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("stub-ctx"), "{stdout}");

    std::fs::remove_file(p.dir.join("kubeconfig")).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("context `stub-ctx`"), "{stderr}");
    assert!(stderr.contains("kubeconfig"), "{stderr}");
}

#[test]
fn targets_check_reports_the_server_version_and_namespace() {
    let stub = start_stub("check", Behaviour::default());
    let p = project("kube-check", &stub, WORKFLOW);
    let (code, stdout, stderr) = p.atlas(&["targets", "check", "k8s"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("context stub-ctx"), "{stdout}");
    assert!(stdout.contains("v1.33.0+atlas-stub"), "{stdout}");
    assert!(stdout.contains("namespace atlas-test"), "{stdout}");
}
