//! The kubernetes backend (kube-rs) against a stand-in API server on 127.0.0.1
//! (tests/support/kube_stub.rs), for what the real test cluster (tests/cluster.rs, Kubernetes
//! 1.20 from scripts/k8s-up) cannot show on demand: a newer server's shapes (an Indexed Job
//! with independent tasks, 1.29+), a Job or claim that already exists when the run starts, and
//! the exact requests made. The stub speaks the REST paths, reads every object into its
//! k8s-openapi type and runs each pod's real `atlas agent` here.

mod support {
    pub mod kube_stub;
    pub mod project;
}

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
    let map = &stub.config_maps()[0];
    assert!(map.data.as_ref().unwrap()["workflow.yaml"].contains("task="));
    // A 1.33 server: the tasks are independent and the walltime is each task's.
    assert_eq!(
        (spec.backoff_limit_per_index, spec.backoff_limit),
        (Some(0), None)
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

    // A kubeconfig that is not a file (or is too large) is refused before it is read.
    std::os::unix::fs::symlink("/dev/zero", p.dir.join("kubeconfig")).unwrap();
    let (code, stdout, _) = p.atlas(&["nodes", "--target", "k8s"]);
    assert_eq!(code, 3);
    let (code, stdout2, stderr) = p.atlas(&["targets", "check", "k8s"]);
    assert_eq!(code, 3, "{stdout}{stdout2}{stderr}");
    assert!(stdout2.contains("not a regular file"), "{stdout2}");
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
