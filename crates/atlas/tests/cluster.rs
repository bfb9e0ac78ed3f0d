//! The kubernetes target on a real cluster: the one `scripts/k8s-up` builds from Debian's
//! sources (Kubernetes 1.20.2, a kubelet on containerd, a registry on 127.0.0.1:5000). Each
//! test works in its own namespace, deleted at the end; images are built with podman and
//! pushed to the registry by the run itself. Without a cluster the tests are skipped, unless
//! ATLAS_REQUIRE_INTEGRATION=1 (the test command), where that is a failure.
//!
//! What stays on the stand-in API server (tests/kubernetes.rs): the shapes of a server newer
//! than 1.20 (an Indexed Job with independent tasks), and a Job or claim that already exists.

mod support {
    pub mod interrupt;
    pub mod project;
}

// Tenants' namespaces, quotas and roles (tests/cluster_cases/).
#[path = "cluster_cases/tenants.rs"]
mod tenants;
// After-hours windows: a Job deleted at the close, created again at the open.
#[path = "cluster_cases/windows.rs"]
mod windows;
// The storage-service operator's custom resource.
#[path = "cluster_cases/operator.rs"]
mod operator;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::project::Project;

const WORKFLOW: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-real}\nspec:\n  resources: {cpusPerTask: 1, memoryPerNode: 256Mi}\n  phases:\n  - name: train\n    run: 'for i in 1 2 3; do echo loss=0.$i; sleep 0.4; done'\n    patterns: ['loss=(?P<loss>[0-9.]+)']\n  - {name: after, run: 'echo done'}\n";

/// The admin kubeconfig `scripts/k8s-up` wrote, when a cluster is up.
fn kubeconfig() -> Option<PathBuf> {
    let path = std::env::var_os("ATLAS_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/atlas/k8s/admin.kubeconfig"));
    let up = path.exists()
        && Command::new("kubectl")
            .arg(format!("--kubeconfig={}", path.display()))
            .args(["get", "--raw", "/readyz"])
            .output()
            .is_ok_and(|o| o.status.success());
    if up {
        return Some(path);
    }
    if std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1") {
        panic!(
            "a Kubernetes cluster is required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/k8s-up \
             ({} is missing or the API server does not answer)",
            path.display()
        );
    }
    eprintln!("skipped: no cluster (scripts/k8s-up starts one)");
    None
}

/// A namespace of the test cluster, deleted when dropped.
struct Namespace {
    name: String,
    kubeconfig: PathBuf,
}

impl Namespace {
    fn new(kubeconfig: &std::path::Path, tag: &str) -> Namespace {
        let name = format!("t-{tag}-{}", std::process::id());
        let ns = Namespace {
            name,
            kubeconfig: kubeconfig.to_path_buf(),
        };
        let (ok, out) = ns.kubectl(&["create", "namespace", &ns.name]);
        assert!(ok, "{out}");
        ns
    }

    /// `kubectl ARGS…` against the cluster: (success, stdout and stderr).
    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Waits until nothing of `kinds` (`jobs,pods`) carries the run's label: a foreground
    /// delete removes a Job once its pods are gone (their grace period is the cluster's).
    fn wait_gone(&self, kinds: &str, run: &str) {
        let selector = format!("atlas.dev/run={run}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (ok, out) = self.in_ns(&["get", kinds, "-l", &selector, "-o", "name"]);
            assert!(ok, "{out}");
            if out.trim().is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still there after 120 s: {out}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// `kubectl -n NS ARGS…`.
    fn in_ns(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// A project whose target `k8s` is the real cluster, in namespace `ns`, with `w.yaml`.
fn project(tag: &str, ns: &Namespace, workflow: &str, extra: &str) -> Project {
    let toml = format!(
        "[targets.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"{}\"\nnamespace = \"{}\"\n\
         registry = \"127.0.0.1:5000/atlas-test\"\ngpus = false\npending_timeout = 300\n{extra}",
        ns.kubeconfig.display(),
        ns.name
    );
    let p = Project::new(tag, &toml);
    std::fs::write(p.dir.join("w.yaml"), workflow).unwrap();
    p
}

/// The project's target gives up on a pod that has not started after 15 s.
fn give_up_after_15_s(p: &Project) {
    let toml = std::fs::read_to_string(p.dir.join("atlas.toml")).unwrap();
    std::fs::write(
        p.dir.join("atlas.toml"),
        toml.replace("pending_timeout = 300", "pending_timeout = 15"),
    )
    .unwrap();
}

#[test]
fn the_workflow_runs_on_the_cluster_and_is_compared_with_local() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "ok");
    let p = project("cluster-ok", &ns, WORKFLOW, "");
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
    assert_eq!(k8s["schedulerId"], format!("{}/atlas-{id}", ns.name));
    // The real objects: the Job ran to completion (its status follows the pod's a moment
    // later), its ConfigMap is owned by it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (ok, out) = ns.in_ns(&[
            "get",
            "job",
            &format!("atlas-{id}"),
            "-o",
            "jsonpath={.status.succeeded} {.spec.template.spec.containers[0].image}",
        ]);
        assert!(ok, "{out}");
        assert!(
            out.contains(" 127.0.0.1:5000/atlas-test/atlas-kube-real:"),
            "{out}"
        );
        if out.starts_with("1 ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not succeeded: {out}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (ok, out) = ns.in_ns(&[
        "get",
        "configmap",
        &format!("atlas-{id}-workflow"),
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out, format!("Job/atlas-{id}"));
    // The agent's records came back through the pod log into the store.
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
    // Launch figures from the real scheduler and kubelet, and the image push.
    let figures = &detail["figures"];
    for name in [
        "queueWaitSeconds",
        "podStartSeconds",
        "imagePushSeconds",
        "apiConnectSeconds",
    ] {
        assert!(
            figures[name].as_f64().is_some_and(|v| v >= 0.0),
            "{name}: {figures}"
        );
    }
    let experiment = k8s["experimentId"].as_str().unwrap();
    let (code, stdout, stderr) = p.atlas(&["compare", experiment, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["targets"], serde_json::json!(["k8s", "local"]));
    let (code, stdout, _) = p.atlas(&["targets", "check", "k8s"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Kubernetes v1.20"), "{stdout}");
    assert!(stdout.contains("node localhost Ready"), "{stdout}");
}

#[test]
fn an_array_on_1_20_runs_as_independent_jobs_one_per_index() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "array");
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: sweep}\nspec:\n  scheduling: {array: {start: 1, end: 3, maxParallel: 2}}\n  environment: {schedulerVariables: [SLURM_ARRAY_TASK_ID]}\n  phases:\n  - {name: task, run: 'echo task=$SLURM_ARRAY_TASK_ID; test $SLURM_ARRAY_TASK_ID != 2', patterns: ['task=(?P<task>[0-9]+)']}\n";
    let p = project("cluster-array", &ns, workflow, "");
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "200ms"]);
    assert_eq!(code, 1, "task 2 fails: {stderr}");
    assert!(stderr.contains("3 Jobs, one per index"), "{stderr}");
    let runs = p.runs();
    let parent = runs
        .iter()
        .find(|r| !r["id"].as_str().unwrap().contains("-t"))
        .unwrap();
    let id = parent["id"].as_str().unwrap();
    let (ok, out) = ns.in_ns(&[
        "get",
        "jobs",
        "-l",
        &format!("atlas.dev/run={id}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.succeeded}{.status.failed} {end}",
    ]);
    assert!(ok, "{out}");
    let mut jobs: Vec<&str> = out.split_whitespace().collect();
    jobs.sort();
    let expected = [
        format!("atlas-{id}-0=1"),
        format!("atlas-{id}-1=1"),
        format!("atlas-{id}-2=1"),
    ];
    assert_eq!(jobs, expected, "each index its own Job, each ran once");
    // Task 2 failed alone: tasks 1 and 3 ran to the end.
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
fn a_failing_phase_fails_the_run_with_the_agents_cause() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "fail");
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-fail}\nspec:\n  phases:\n  - {name: broken, run: 'echo about to fail; exit 3'}\n  - {name: never, run: 'true'}\n";
    let p = project("cluster-fail", &ns, workflow, "");
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "200ms"]);
    assert_eq!(code, 1, "{stderr}");
    let run = &p.runs()[0];
    assert_eq!(run["status"], "failed");
    let cause = run["cause"].as_str().unwrap();
    assert!(cause.contains("exited with code 3"), "{run}");
    let detail = p.show(run["id"].as_str().unwrap());
    assert_eq!(detail["phases"][1]["status"], "skipped", "{detail}");
}

#[test]
fn cancelling_deletes_the_job_and_its_pod() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "cancel");
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-wait}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 300'}\n  - {name: after, run: 'true'}\n";
    let p = project("cluster-cancel", &ns, workflow, "");
    let (code, stderr) = support::interrupt::interrupt_during_phase(
        &p.dir.join("db/atlas.db"),
        &p.dir,
        &["run", "w.yaml", "--on", "k8s", "--interval", "200ms"],
    );
    assert_eq!(code, 1, "{stderr}");
    let run = &p.runs()[0];
    let id = run["id"].as_str().unwrap();
    assert!(
        run["cause"].as_str().unwrap().starts_with("cancelled"),
        "{run}"
    );
    ns.wait_gone("jobs,pods", id);
}

#[test]
fn a_pod_that_cannot_start_fails_the_run_with_kubernetes_reason() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "pending");
    // More CPUs than the node has: the scheduler says why, and the run gives up in time.
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-big}\nspec:\n  resources: {cpusPerTask: 64}\n  phases:\n  - {name: never, run: 'true'}\n";
    let p = project("cluster-pending", &ns, workflow, "");
    give_up_after_15_s(&p);
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s"]);
    assert_eq!(code, 1, "{stderr}");
    let run = &p.runs()[0];
    let cause = run["cause"].as_str().unwrap();
    assert!(cause.contains("no pod started within 15 s"), "{cause}");
    assert!(cause.contains("Insufficient cpu"), "{cause}");
    ns.wait_gone("jobs,pods", run["id"].as_str().unwrap());

    // An image the registry does not have.
    let p = project(
        "cluster-pull",
        &ns,
        WORKFLOW,
        "image = \"127.0.0.1:5000/atlas-test/missing:1\"\n",
    );
    give_up_after_15_s(&p);
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s"]);
    assert_eq!(code, 1, "{stderr}");
    let cause = p.runs()[0]["cause"].as_str().unwrap().to_string();
    assert!(
        cause.contains("ImagePull") || cause.contains("ErrImage"),
        "{cause}"
    );
    assert!(cause.contains("missing"), "{cause}");
    ns.wait_gone("jobs,pods", p.runs()[0]["id"].as_str().unwrap());

    // A claim whose volume cannot be mounted (its directory does not exist): the pod is
    // scheduled but never starts, and the reason is in the kubelet's events.
    let p = project(
        "cluster-mount",
        &ns,
        &WORKFLOW.replace("name: kube-real", "name: kube-mount"),
        "",
    );
    give_up_after_15_s(&p);
    let volume = format!("atlas-test-missing-{}", std::process::id());
    let claim = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {volume}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteMany]\n  hostPath: {{path: /nonexistent/{volume}, type: Directory}}\n  claimRef: {{namespace: {ns}, name: kube-mount-atlas-runs}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: kube-mount-atlas-runs, namespace: {ns}}}\nspec:\n  accessModes: [ReadWriteMany]\n  volumeName: {volume}\n  resources: {{requests: {{storage: 1Gi}}}}\n",
        ns = ns.name
    );
    let file = p.dir.join("claim.yaml");
    std::fs::write(&file, claim).unwrap();
    let (ok, said) = ns.kubectl(&["create", "-f", &file.display().to_string()]);
    assert!(ok, "{said}");
    // Bound before the run: the scheduler would otherwise wait on the binding first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ns
        .in_ns(&[
            "get",
            "pvc",
            "kube-mount-atlas-runs",
            "-o",
            "jsonpath={.status.phase}",
        ])
        .1
        != "Bound"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the claim did not bind"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s"]);
    let _ = ns.kubectl(&["delete", "pv", &volume, "--wait=false"]);
    assert_eq!(code, 1, "{stderr}");
    let cause = p.runs()[0]["cause"].as_str().unwrap().to_string();
    assert!(cause.contains("FailedMount"), "{cause}");
}

#[test]
fn a_refusal_by_the_api_server_names_the_object_and_the_quota() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "quota");
    let (ok, out) = ns.in_ns(&["create", "quota", "no-jobs", "--hard=count/jobs.batch=0"]);
    assert!(ok, "{out}");
    let p = project("cluster-quota", &ns, WORKFLOW, "");
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s"]);
    assert_ne!(code, 0, "{stderr}");
    let cause = p.runs()[0]["cause"].as_str().unwrap().to_string();
    assert!(cause.contains("refused Job atlas-"), "{cause}");
    assert!(cause.contains("exceeded quota: no-jobs"), "{cause}");
}

#[test]
fn every_emitted_object_is_accepted_by_the_server() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "emit");
    let p = project("cluster-emit", &ns, WORKFLOW, "");
    let sweep = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: sweep}\nspec:\n  scheduling: {array: {start: 0, end: 4, maxParallel: 2}}\n  resources: {walltime: 10m}\n  phases:\n  - {name: task, run: 'echo $JOB_COMPLETION_INDEX'}\n";
    std::fs::write(p.dir.join("sweep.yaml"), sweep).unwrap();
    let config = kubeconfig.display().to_string();
    for (file, kinds) in [("w.yaml", 3), ("sweep.yaml", 7)] {
        let out = p.dir.join(format!("out-{file}"));
        let (code, _, stderr) = p.atlas(&[
            "emit",
            "k8s",
            file,
            "--context",
            "atlas-test",
            "--kubeconfig",
            &config,
            "-o",
            &out.display().to_string(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("for Kubernetes 1.20"), "{stderr}");
        let (ok, said) = ns.in_ns(&[
            "apply",
            "--dry-run=server",
            "-f",
            &out.display().to_string(),
        ]);
        assert!(ok, "{file}: {said}");
        assert_eq!(said.matches("(server dry run)").count(), kinds, "{said}");
    }
    // The custom resources, through the CRDs Atlas generates from its own types (their
    // operators are not installed here): the server takes the emitted objects and refuses one
    // that breaks the schema.
    let crds = p.dir.join("crds.yaml");
    let (code, stdout, stderr) = p.atlas(&["emit", "crds"]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(&crds, stdout).unwrap();
    let crds = crds.display().to_string();
    let (created, said) = ns.kubectl(&["create", "-f", &crds]);
    if !created {
        assert!(said.contains("AlreadyExists"), "{said}");
        let (ok, said) = ns.kubectl(&["replace", "-f", &crds]);
        assert!(ok, "{said}");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixture = |f: &str| root.join(f).display().to_string();
    let torchrun = fixture("tests/fixtures/slurm/torchrun_multinode.sbatch");
    let mpi = fixture("tests/fixtures/lsf/biggan128_imagenet.lsf");
    for (args, kinds) in [
        (vec![torchrun.as_str()], vec!["pytorchjob.kubeflow.org"]),
        (
            vec![torchrun.as_str(), "--flavor", "jobset"],
            vec!["jobset.jobset.x-k8s.io"],
        ),
        (
            vec![mpi.as_str(), "--openshift"],
            vec![
                "mpijob.kubeflow.org",
                "imagestream.image.openshift.io",
                "buildconfig.build.openshift.io",
            ],
        ),
    ] {
        let out = p.dir.join(format!("cr-{}", kinds[0]));
        let mut all = vec!["emit", "k8s"];
        all.extend(&args);
        let out_dir = out.display().to_string();
        all.extend(["--server-version", "1.20", "-o", &out_dir]);
        let (code, _, stderr) = p.atlas(&all);
        assert_eq!(code, 0, "{stderr}");
        let (ok, said) = ns.in_ns(&["apply", "--dry-run=server", "-f", &out_dir]);
        assert!(ok, "{args:?}: {said}");
        for kind in kinds {
            assert!(said.contains(&format!("{kind}/")), "{kind}: {said}");
        }
    }
    let broken = std::fs::read_dir(p.dir.join("cr-pytorchjob.kubeflow.org"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("pytorchjob"))
        .unwrap();
    let text = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(&broken, text.replace("replicas: 1\n", "replicas: one\n")).unwrap();
    let (ok, said) = ns.in_ns(&[
        "create",
        "--dry-run=server",
        "--validate=false",
        "-f",
        &broken.display().to_string(),
    ]);
    assert!(
        !ok,
        "a string where the schema has an integer is refused: {said}"
    );
    assert!(said.contains("replicas"), "{said}");
}

#[test]
fn inputs_reach_the_pods_through_a_persistent_volume() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "inputs");
    let p = project("cluster-inputs", &ns, "", "");
    std::fs::create_dir_all(p.dir.join("inputs/set")).unwrap();
    let text = "imagenet, in small\n";
    std::fs::write(p.dir.join("inputs/train.txt"), text).unwrap();
    std::fs::write(p.dir.join("inputs/set/a.txt"), "shard a\n").unwrap();
    let sum = Command::new("sha256sum")
        .arg(p.dir.join("inputs/train.txt"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    let sum = sum.split_whitespace().next().unwrap();
    let workflow = format!(
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: kube-inputs}}\nspec:\n  data:\n    inputs:\n    - {{source: inputs/train.txt, path: data/train.txt, sha256: {sum}, size: {}}}\n    - {{source: inputs/set, path: data/set}}\n  phases:\n  - name: look\n    run: 'echo train=$(wc -c < data/train.txt) shard=$(wc -c < data/set/a.txt) same=$(grep -c imagenet data/train.txt); touch data/train.txt 2>/dev/null && echo readonly=0 || echo readonly=1'\n    patterns: ['train=(?P<train>[0-9]+) shard=(?P<shard>[0-9]+) same=(?P<same>[0-9]+)', 'readonly=(?P<readonly>[0-9])']\n",
        text.len()
    );
    std::fs::write(p.dir.join("w.yaml"), workflow).unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "k8s", "--interval", "200ms"]);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    // The pod read both inputs whole, and could not change them.
    let detail = p.show(&id);
    let metric = |name: &str| support::project::metric(&detail, 0, name);
    assert_eq!(metric("train"), Some(text.len() as f64), "{detail}");
    assert_eq!(metric("shard"), Some(8.0), "{detail}");
    assert_eq!(metric("same"), Some(1.0), "{detail}");
    assert_eq!(metric("readonly"), Some(1.0), "{detail}");
    let figures = &detail["figures"];
    assert!(figures["stageInBytes"].as_f64().unwrap() > 0.0, "{figures}");
    // The stage pod goes (deleted at once: it holds nothing).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (ok, pods) = ns.in_ns(&["get", "pods", "-o", "name"]);
        assert!(ok, "{pods}");
        if !pods.contains("-stage") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{pods}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn a_node_that_goes_not_ready_mid_job_ends_the_run_naming_it() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let kubelet_pid = std::path::Path::new("/run/atlas-k8s/kubelet.pid");
    let Ok(pid) = std::fs::read_to_string(kubelet_pid) else {
        // A cluster this project did not start: its kubelet is not ours to stop.
        eprintln!("skipped: no kubelet of scripts/k8s-up to stop");
        return;
    };
    let ns = Namespace::new(&kubeconfig, "node");
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-node}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 600'}\n";
    let p = project("cluster-node", &ns, workflow, "");
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "k8s", "--interval", "200ms"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the phase runs, the node's kubelet goes away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let started = p.runs().first().and_then(|r| {
            let dir = r["runDir"].as_str()?.to_string();
            std::fs::read_to_string(std::path::Path::new(&dir).join("spool.jsonl")).ok()
        });
        if started.is_some_and(|s| s.contains("\"phaseStart\"")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the phase never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let pid: i32 = pid.trim().parse().unwrap();
    // SAFETY: kill(2) on the kubelet scripts/k8s-up started (its own PID file).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    // The node controller marks the node not Ready after 40 s; the run gives up 30 s later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let ended = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    // Whatever the outcome, the node comes back for the other tests.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let up = Command::new(repo.join("scripts/k8s-up")).output().unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(ended.is_some(), "atlas run did not end in 240 s: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let cause = p.runs()[0]["cause"].as_str().unwrap().to_string();
    assert!(cause.contains("node localhost is not Ready"), "{cause}");
}

#[test]
fn the_distributed_example_runs_as_mpi_ranks_in_two_pods() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "mpi");
    let p = project("cluster-mpi", &ns, "", "");
    support::project::copy_example("biggan-mpi", &p.dir, false);
    let (code, _, stderr) = p.atlas(&["run", "job.sbatch", "--on", "k8s"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 worker pod(s)"), "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let detail = p.show(&id);
    // Phases: preprocess, comm, train, predict. Rank 0 in the launcher, rank 1 in a worker:
    // two hosts, talking over the pod network; the worker read what preprocess wrote.
    let metric = |phase, name: &str| support::project::metric(&detail, phase, name);
    assert_eq!(metric(2, "ranks"), Some(2.0), "{detail}");
    assert_eq!(metric(2, "hosts"), Some(2.0), "{detail}");
    assert!(
        metric(1, "comm_tcp_latency_us").is_some_and(|v| v > 0.0),
        "{detail}"
    );
    assert!(metric(3, "accuracy").is_some_and(|a| a > 0.5), "{detail}");
    // The workers, their key and the hostfile go with the run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (ok, left) = ns.in_ns(&["get", "jobs,secrets,configmaps", "-o", "name"]);
        assert!(ok, "{left}");
        let left: Vec<&str> = left
            .lines()
            .filter(|l| l.contains("-workers") || l.contains("-ssh") || l.contains("-hostfile"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn nodes_lists_the_kubernetes_node_with_its_allocatable_and_requests() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "nodes");
    let p = project("cluster-nodes", &ns, WORKFLOW, "");
    let (code, stdout, stderr) = p.atlas(&["nodes", "--target", "k8s", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let nodes = out["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{stdout}");
    let node = &nodes[0];
    assert_eq!(node["name"], "localhost");
    assert_eq!(node["schedulerState"], "Ready", "{node}");
    assert!(node["cpus"]["total"].as_f64().unwrap() >= 1.0, "{node}");
    assert!(
        node["memoryMib"]["total"].as_f64().unwrap() > 100.0,
        "{node}"
    );
    let class = node["class"].as_str().unwrap();
    assert!(["idle", "unknown"].contains(&class), "{node}");
}

/// An image holding this build's `atlas` (on the base image), pushed to the test registry.
fn node_agent_image() -> String {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let base = "localhost/atlas-base:bookworm";
    if !Command::new("podman")
        .args(["image", "exists", base])
        .status()
        .unwrap()
        .success()
    {
        assert!(Command::new(scripts.join("base-image"))
            .status()
            .unwrap()
            .success());
    }
    let dir = std::env::temp_dir().join(format!("atlas-node-agent-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_atlas"), dir.join("atlas")).unwrap();
    std::fs::write(
        dir.join("Containerfile"),
        format!("FROM {base}\nCOPY atlas /usr/local/bin/atlas\n"),
    )
    .unwrap();
    let tag = format!(
        "127.0.0.1:5000/atlas-test/atlas-node-agent:{}",
        std::process::id()
    );
    let run = |args: &[&str]| {
        let out = Command::new("podman").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["build", "-q", "-t", &tag, &dir.display().to_string()]);
    run(&["push", "-q", "--tls-verify=false", &tag]);
    let _ = std::fs::remove_dir_all(&dir);
    tag
}

#[test]
fn the_node_agent_runs_as_a_daemon_set_and_measures_the_node_and_its_pods() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "agent");
    let p = project(
        "cluster-node-agent",
        &ns,
        WORKFLOW,
        "under_used_minutes = 0.05\n",
    );
    let image = node_agent_image();
    let (code, yaml, stderr) = p.atlas(&[
        "emit",
        "k8s",
        "--node-agent",
        "--image",
        &image,
        "--namespace",
        &ns.name,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let file = p.dir.join("node-agent.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (ok, out) = ns.kubectl(&["apply", "-f", &file.display().to_string()]);
    assert!(ok, "the server takes the objects as emitted: {out}");
    // A pod whose processes the agent should find by their cgroup.
    let (ok, out) = ns.in_ns(&[
        "run",
        "sleeper",
        "--image",
        &image,
        "--restart=Never",
        "--command",
        "--",
        "sleep",
        "300",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = ns.in_ns(&[
        "rollout",
        "status",
        "daemonset/atlas-node-agent",
        "--timeout=180s",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = ns.in_ns(&[
        "wait",
        "pod/sleeper",
        "--for=condition=Ready",
        "--timeout=180s",
    ]);
    assert!(ok, "{out}");
    let (_, uid) = ns.in_ns(&["get", "pod", "sleeper", "-o", "jsonpath={.metadata.uid}"]);
    // Measured on the node, through the node's address.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (code, stdout, stderr) = p.atlas(&["nodes", "--target", "k8s", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let node = &out["nodes"][0];
    assert!(node["used"]["cores"].is_number(), "{node}");
    let address = node["address"].as_str().unwrap();
    let metrics = ureq::get(&format!("http://{address}:9101/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let line = format!("job=\"pod-{}\"", uid.trim());
    assert!(metrics.contains(&line), "{line} not in {metrics}");
    assert!(
        metrics.contains("atlas_node_cpu_cores{host=\"localhost\"}"),
        "the node's name from the downward API: {metrics}"
    );
}
