//! After-hours windows on the real cluster (Kubernetes 1.20: no Job `suspend`): a run frozen by
//! `atlas windows freeze k8s` saves its checkpoint, its Job is deleted (its pods gone, its
//! ConfigMap and the run's claim kept), and `atlas windows wake k8s` creates it again: the new
//! pod's agent resumes the run from its spool on the claim, and the phase from the checkpoint
//! the agent kept there (the pod's own /work is the image's, new at every start).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::project::{metric, Project};
use crate::{kubeconfig, project, Namespace};

/// Runs count.sh (below): the checkpoint signal goes to the commands a phase's shell runs.
const COUNTER: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: kube-window}\nspec:\n  checkpoint: {signal: USR1, path: ck, grace: 20s}\n  phases:\n  - name: count\n    run: bash count.sh\n    patterns: ['start=(?P<start>[0-9]+)', 'step=(?P<step>[0-9]+)', 'total=(?P<total>[0-9]+)']\n  - {name: after, run: 'echo done'}\n";

/// Counts to 120 in steps of a quarter second, from `ck` (its count) when resumed; saves the
/// count on SIGUSR1.
const COUNT_SH: &str = "i=0\nif [ \"${ATLAS_RESUME:-}\" = 1 ]; then i=$(cat ck); fi\necho start=$i\ntrap 'echo $i > ck' USR1\nwhile [ $i -lt 120 ]; do i=$((i+1)); echo step=$i; sleep 0.25; done\necho total=$i\n";

/// Waits until the run's count has passed `step` while it runs; its id.
fn wait_for_step(p: &Project, step: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(run) = p.runs().first() {
            let id = run["id"].as_str().unwrap().to_string();
            let detail = p.show(&id);
            let at = metric(&detail, 0, "step").unwrap_or(0.0);
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
    assert!(metric(&detail, 0, "start").unwrap() >= 16.0, "{detail}");
    assert_eq!(metric(&detail, 0, "total"), Some(120.0), "{detail}");
}
