//! The `slurm` target over SSH on the namespaced multi-host cluster of `scripts/cluster-up`
//! (hosts head, node1, node2; Slurm's commands run on `head` over ssh). Without the cluster the
//! tests are skipped, unless ATLAS_REQUIRE_INTEGRATION=1 (the test command): then they fail.

mod support {
    pub mod interrupt;
    pub mod project;
}

use std::path::PathBuf;
use std::process::Command;

use support::project::Project;

/// The ssh config `scripts/cluster-up` wrote, when its login node answers.
fn ssh_config() -> Option<PathBuf> {
    let path = std::env::var_os("ATLAS_TEST_CLUSTER_SSH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/atlas/cluster/ssh_config"));
    let up = path.exists()
        && Command::new("ssh")
            .arg("-F")
            .arg(&path)
            .args(["head", "sinfo", "-h"])
            .output()
            .is_ok_and(|o| o.status.success());
    if up {
        return Some(path);
    }
    if std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1") {
        panic!(
            "the multi-host cluster is required (ATLAS_REQUIRE_INTEGRATION=1): run \
             scripts/cluster-up ({} is missing or head does not answer)",
            path.display()
        );
    }
    eprintln!("skipped: no cluster (scripts/cluster-up starts one)");
    None
}

/// A project whose target `cluster` is Slurm on `head` over ssh, in its own remote workdir.
fn project(tag: &str, config: &std::path::Path, workflow: &str) -> Project {
    let toml = format!(
        "[targets.cluster]\nkind = \"slurm\"\nhost = \"head\"\nssh_config = \"{}\"\n\
         workdir = \"/scratch/atlas/t-{tag}-{}\"\npartition = \"batch\"\n",
        config.display(),
        std::process::id()
    );
    let p = Project::new(tag, &toml);
    std::fs::write(p.dir.join("w.yaml"), workflow).unwrap();
    // The project the job sees: the workflow, its helper and atlas.toml, without the
    // test's database (which changes with every run).
    let project = p.dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("w.yaml"), workflow).unwrap();
    std::fs::write(project.join("helper.sh"), "echo helper-ran\n").unwrap();
    std::fs::write(project.join("atlas.toml"), toml).unwrap();
    p
}

/// `atlas run w.yaml --on cluster` in the project's directory.
fn run_in_project(p: &Project) -> (i32, String, String) {
    let db = p.dir.join("db/atlas.db").display().to_string();
    p.atlas_in(
        &p.dir.join("project"),
        &db,
        &["run", "w.yaml", "--on", "cluster", "--interval", "200ms"],
    )
}

fn ssh(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .arg("head")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_two_node_job_runs_over_ssh_and_an_unchanged_project_is_not_sent_again() {
    let Some(config) = ssh_config() else {
        return;
    };
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: hosts}\nspec:\n  resources: {nodes: 2, tasksPerNode: 1}\n  phases:\n  - name: spread\n    run: 'srun bash -c \"hostname; sleep 1.5\" | sort | tr \"\\n\" \" \"; echo; bash helper.sh; for i in 1 2 3; do echo step=$i; sleep 0.4; done'\n    patterns: ['step=(?P<step>[0-9]+)']\n";
    let p = project("hosts", &config, workflow);
    let (code, _, stderr) = run_in_project(&p);
    assert_eq!(code, 0, "{stderr}");
    let run = &p.runs()[0];
    let id = run["id"].as_str().unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        run["schedulerId"].as_str().unwrap().starts_with("head:"),
        "{run}"
    );
    let detail = p.show(id);
    assert!(
        detail["phases"][0]["samples"].as_i64().unwrap() > 0,
        "{detail}"
    );
    assert_eq!(detail["phases"][0]["metrics"][0]["last"], 3.0, "{detail}");
    // The job ran on two hosts, with the project's helper; its log came back here.
    let (code, log, _) = p.atlas(&["logs", id]);
    assert_eq!(code, 0);
    let hosts: std::collections::BTreeSet<&str> = log
        .split_whitespace()
        .filter(|w| *w == "head" || w.starts_with("node"))
        .collect();
    assert!(hosts.len() >= 2, "srun ran on two hosts: {log}");
    assert!(log.contains("helper-ran"), "{log}");
    // Each host's sampler saw the job's processes there.
    let hosts = detail["hosts"].as_array().unwrap();
    let busy: Vec<&str> = hosts
        .iter()
        .filter(|h| h["samples"].as_i64() > Some(0) && h["peakProcesses"].as_i64() > Some(0))
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert!(
        busy.len() >= 2,
        "two hosts sent samples of the job: {hosts:?}"
    );
    let (code, text, _) = p.atlas(&["show", id]);
    assert_eq!(code, 0);
    assert!(text.contains("hosts: "), "{text}");
    let figures = &detail["figures"];
    assert!(figures["projectBytes"].as_f64().unwrap() > 0.0, "{figures}");
    // A second run sends nothing of the unchanged project, and not the agent again.
    let (code, _, stderr) = run_in_project(&p);
    assert_eq!(code, 0, "{stderr}");
    let second = p.show(p.runs()[0]["id"].as_str().unwrap());
    assert_eq!(second["figures"]["projectBytes"], 0.0, "{second}");
    assert!(
        second["figures"].get("agentCopySeconds").is_none(),
        "{second}"
    );
    let (code, stdout, _) = p.atlas(&["targets", "check", "cluster"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("head over ssh: slurm"), "{stdout}");
    assert!(stdout.contains("batch up: 3 node(s)"), "{stdout}");
}

#[test]
fn cancelling_a_remote_run_scancels_the_job() {
    let Some(config) = ssh_config() else {
        return;
    };
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: wait}\nspec:\n  phases:\n  - {name: wait, run: 'sleep 300'}\n  - {name: after, run: 'true'}\n";
    let p = project("cancel", &config, workflow);
    let (code, stderr) = support::interrupt::interrupt_during_phase(
        &p.dir.join("db/atlas.db"),
        &p.dir,
        &["run", "w.yaml", "--on", "cluster", "--interval", "200ms"],
    );
    assert_eq!(code, 1, "{stderr}");
    let run = &p.runs()[0];
    assert!(
        run["cause"].as_str().unwrap().starts_with("cancelled"),
        "{run}"
    );
    let job = run["schedulerId"]
        .as_str()
        .unwrap()
        .trim_start_matches("head:")
        .to_string();
    assert_eq!(
        ssh(&config, &["squeue", "-h", "-j", &job]).trim(),
        "",
        "the job is gone"
    );
}

#[test]
fn an_unreachable_login_node_is_named_and_the_other_targets_go_on() {
    let Some(config) = ssh_config() else {
        return;
    };
    let p = project("unreachable", &config, "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: t}\nspec:\n  phases: [{name: main, run: 'true'}]\n");
    // The same login node on a port nothing listens on.
    let bad = p.dir.join("bad_ssh_config");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&bad, text.replace("Host head\n", "Host head\n  Port 1\n")).unwrap();
    let toml = std::fs::read_to_string(p.dir.join("atlas.toml")).unwrap();
    std::fs::write(
        p.dir.join("atlas.toml"),
        toml.replace(&config.display().to_string(), &bad.display().to_string()),
    )
    .unwrap();
    let (code, _, stderr) = p.atlas(&["run", "w.yaml", "--on", "cluster", "--on", "local"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach head over ssh"), "{stderr}");
    let runs = p.runs();
    let local = runs.iter().find(|r| r["target"] == "local").unwrap();
    assert_eq!(local["status"], "succeeded");
}

#[test]
fn the_distributed_example_runs_across_hosts_and_in_a_container_as_one_experiment() {
    let Some(config) = ssh_config() else {
        return;
    };
    // The example as it is, with its targets pointed at this cluster's ssh config.
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/biggan-mpi");
    let p = Project::new("mpi", "");
    let project = p.dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    for file in [
        "job.sbatch",
        "preprocess.py",
        "train_mpi.py",
        "predict.py",
        "atlas.toml",
    ] {
        std::fs::copy(example.join(file), project.join(file)).unwrap();
    }
    let toml = std::fs::read_to_string(project.join("atlas.toml")).unwrap();
    let toml = toml
        .replace(
            "/var/lib/atlas/cluster/ssh_config",
            &config.display().to_string(),
        )
        .replace(
            "workdir = \"/scratch/atlas\"",
            &format!("workdir = \"/scratch/atlas/t-mpi-{}\"", std::process::id()),
        );
    std::fs::write(project.join("atlas.toml"), toml).unwrap();
    let db = p.dir.join("db/atlas.db").display().to_string();
    let (code, _, stderr) = p.atlas_in(
        &project,
        &db,
        &["run", "job.sbatch", "--on", "cluster", "--on", "podman"],
    );
    assert_eq!(code, 0, "{stderr}");
    let runs = p.runs();
    let mut losses = Vec::new();
    for target in ["cluster", "podman"] {
        let run = runs.iter().find(|r| r["target"] == target).unwrap();
        let detail = p.show(run["id"].as_str().unwrap());
        let metric = |name: &str| support::project::metric(&detail, 1, name);
        assert_eq!(metric("ranks"), Some(2.0), "{target}: {detail}");
        let hosts = if target == "cluster" { 2.0 } else { 1.0 };
        assert_eq!(metric("hosts"), Some(hosts), "{target}: {detail}");
        let accuracy = detail["phases"][2]["metrics"][0]["last"].as_f64().unwrap();
        assert!(accuracy > 0.5, "{target}: {detail}");
        losses.push(metric("loss").unwrap());
        if target == "cluster" {
            assert!(detail["hosts"].as_array().unwrap().len() >= 2, "{detail}");
        }
    }
    // The same training on both: where the ranks run does not change what is computed (the
    // all-reduce's summing order may move the last digits).
    assert!((losses[0] - losses[1]).abs() < 1e-3, "{losses:?}");
    let experiment = runs[0]["experimentId"].as_str().unwrap();
    let (code, stdout, stderr) = p.atlas(&["compare", experiment, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"cluster\""), "{stdout}");
}
