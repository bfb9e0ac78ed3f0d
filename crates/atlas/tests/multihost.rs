//! The `slurm` target over SSH on the namespaced multi-host cluster of `scripts/cluster-up`
//! (hosts head, node1, node2; Slurm's commands run on `head` over ssh). Without the cluster the
//! tests are skipped, unless ATLAS_REQUIRE_INTEGRATION=1 (the test command): then they fail.

mod support {
    pub mod interrupt;
    pub mod project;
    pub mod server;
}

use std::path::PathBuf;
use std::process::Command;

use support::project::Project;
use support::server::{free_port, get, Db, Kind, Server};

#[path = "multihost_cases/accounts.rs"]
mod accounts;
#[path = "multihost_cases/windows.rs"]
mod windows;

/// Cancels the Slurm jobs it holds when dropped (a test that fails leaves none behind).
struct Cancel<'a>(&'a std::path::Path, Vec<String>);

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .arg("-F")
            .arg(self.0)
            .args(["head", "scancel"])
            .args(&self.1)
            .status();
    }
}

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

/// Adds `line` to the target in the project's atlas.toml (the file ends inside it).
fn add_to_target(p: &Project, line: &str) {
    let path = p.dir.join("project/atlas.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{toml}{line}\n")).unwrap();
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

/// The distributed example as it is, in a fresh project whose targets point at this cluster's
/// ssh config and a work directory of the test's own.
fn example_project(tag: &str, config: &std::path::Path) -> (Project, PathBuf) {
    let p = Project::new(tag, "");
    let project = p.dir.join("project");
    support::project::copy_example("biggan-mpi", &project, true);
    let toml = std::fs::read_to_string(project.join("atlas.toml")).unwrap();
    let toml = toml
        .replace(
            "/var/lib/atlas/cluster/ssh_config",
            &config.display().to_string(),
        )
        .replace(
            "workdir = \"/scratch/atlas\"",
            &format!(
                "workdir = \"/scratch/atlas/t-{tag}-{}\"",
                std::process::id()
            ),
        );
    std::fs::write(project.join("atlas.toml"), toml).unwrap();
    (p, project)
}

/// Phases of the example: preprocess, comm, train, predict.
const COMM: usize = 1;
const TRAIN: usize = 2;

#[test]
fn the_distributed_example_scales_across_hosts_and_containers_in_one_experiment() {
    let Some(config) = ssh_config() else {
        return;
    };
    let (p, project) = example_project("mpi", &config);
    let db = p.dir.join("db/atlas.db").display().to_string();
    let (code, _, stderr) = p.atlas_in(
        &project,
        &db,
        &[
            "run",
            "job.sbatch",
            "--on",
            "cluster",
            "--on",
            "podman",
            "--nodes",
            "1,2",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let runs = p.runs();
    assert_eq!(runs.len(), 4, "two sizes on two targets");
    for nodes in [1.0, 2.0] {
        let mut losses = Vec::new();
        for target in ["cluster", "podman"] {
            let run = runs
                .iter()
                .find(|r| {
                    r["target"] == target && r["labels"]["nodes"] == nodes.to_string().as_str()
                })
                .unwrap_or_else(|| panic!("{target} at {nodes}: {runs:?}"));
            let detail = p.show(run["id"].as_str().unwrap());
            let metric = |phase, name: &str| support::project::metric(&detail, phase, name);
            // One rank per node, each on its own host (a container is a host on podman).
            assert_eq!(metric(TRAIN, "ranks"), Some(nodes), "{target}: {detail}");
            assert_eq!(metric(TRAIN, "hosts"), Some(nodes), "{target}: {detail}");
            losses.push(metric(TRAIN, "loss").unwrap());
            if nodes == 1.0 {
                assert_eq!(metric(COMM, "comm_tcp_latency_us"), None, "{detail}");
                continue;
            }
            // Every host's sampler saw the job there.
            let hosts: Vec<&serde_json::Value> = detail["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| {
                    h["samples"].as_i64() > Some(0) && h["peakProcesses"].as_i64() > Some(0)
                })
                .collect();
            assert!(hosts.len() >= 2, "{target}: {detail}");
            // Ranks on two hosts talk over the network: MPI and TCP measured, not /dev/shm
            // (each host and each container has its own IPC namespace).
            for name in [
                "comm_mpi_latency_us",
                "comm_tcp_latency_us",
                "comm_allreduce_time_ms",
            ] {
                assert!(
                    metric(COMM, name).is_some_and(|v| v > 0.0),
                    "{target} {name}: {detail}"
                );
            }
            assert_eq!(
                metric(COMM, "comm_shm_latency_us"),
                None,
                "{target}: {detail}"
            );
        }
        // Where the ranks run does not change what is computed (the all-reduce's summing
        // order may move the last digits).
        assert!((losses[0] - losses[1]).abs() < 1e-3, "{nodes}: {losses:?}");
    }
    let experiment = runs[0]["experimentId"].as_str().unwrap();
    let (code, stdout, stderr) = p.atlas(&["compare", experiment, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for target in ["cluster", "podman"] {
        let sizes: Vec<f64> = report["scaling"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["target"] == target && s["resource"] == "hosts")
            .map(|s| s["size"].as_f64().unwrap())
            .collect();
        assert_eq!(sizes, [1.0, 2.0], "{target}: {}", report["scaling"]);
    }
    assert!(
        report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "cluster (2 hosts)"),
        "{}",
        report["targets"]
    );
    let comm = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "metric.comm_tcp_latency_us")
        .unwrap_or_else(|| panic!("no communication figure: {stdout}"));
    assert_eq!(comm["dimension"], "dataAccess", "{comm}");
}

#[test]
fn co_located_containers_that_share_ipc_talk_through_shared_memory_like_host_processes() {
    let Some(config) = ssh_config() else {
        return;
    };
    let (p, project) = example_project("shm", &config);
    let db = p.dir.join("db/atlas.db").display().to_string();
    let (code, _, stderr) = p.atlas_in(
        &project,
        &db,
        &["run", "job.sbatch", "--on", "podman-shm", "--on", "host"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("one IPC namespace"), "{stderr}");
    for run in p.runs() {
        let detail = p.show(run["id"].as_str().unwrap());
        let metric = |name: &str| support::project::metric(&detail, COMM, name);
        for name in [
            "comm_shm_latency_us",
            "comm_shm_mb_per_s",
            "comm_tcp_latency_us",
            "comm_mpi_latency_us",
        ] {
            assert!(
                metric(name).is_some_and(|v| v > 0.0),
                "{} {name}: {detail}",
                run["target"]
            );
        }
    }
}

/// Restarts what `scripts/cluster-up` runs (a killed host's daemons) when dropped.
struct Revive;

impl Drop for Revive {
    fn drop(&mut self) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster-up");
        let _ = Command::new(script).arg("3").output();
    }
}

#[test]
fn a_host_killed_mid_job_is_named_in_the_cause() {
    let Some(config) = ssh_config() else {
        return;
    };
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: dies}\nspec:\n  resources: {nodes: 2, tasksPerNode: 1}\n  phases:\n  - {name: work, run: 'srun sleep 300'}\n";
    let p = project("dies", &config, workflow);
    let _revive = Revive;
    let db = p.dir.join("db/atlas.db");
    let child = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "cluster", "--interval", "200ms"])
        .current_dir(p.dir.join("project"))
        .env("ATLAS_DB", &db)
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The job's other host, once both run it: every process in its namespace dies at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let victim = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never ran on two hosts"
        );
        let nodes = ssh(
            &config,
            &["squeue", "-h", "-n", "dies", "-t", "R", "-o", "%N"],
        );
        if let Some(node) = nodes.trim().split(',').find(|n| n.starts_with("node")) {
            break node.to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let pids = Command::new("ip")
        .args(["netns", "pids", &format!("atlas-{victim}")])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let run = &p.runs()[0];
    let cause = run["cause"].as_str().unwrap();
    assert!(cause.contains(&format!("{victim} is down")), "{cause}");
    assert!(cause.contains("NODE_FAIL"), "{cause}");
    // One attempt: Slurm did not run the job again after the failure.
    assert_eq!(run["status"], "failed", "{run}");
}

#[test]
fn a_full_remote_disk_is_named_and_nothing_of_the_run_stays_there() {
    let Some(config) = ssh_config() else {
        return;
    };
    // A 2 MiB filesystem as the work directory: the agent binary cannot fit.
    let full = PathBuf::from(format!("/scratch/atlas-full-{}", std::process::id()));
    std::fs::create_dir_all(&full).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m,mode=1777", "tmpfs"])
        .arg(&full)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a small tmpfs (needs root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unmount = Unmount(full.clone());
    let p = project("full", &config, "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: t}\nspec:\n  phases: [{name: main, run: 'true'}]\n");
    let toml = std::fs::read_to_string(p.dir.join("project/atlas.toml")).unwrap();
    let toml = toml
        .lines()
        .map(|l| {
            if l.starts_with("workdir") {
                format!("workdir = \"{}\"", full.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(p.dir.join("project/atlas.toml"), toml + "\n").unwrap();
    let (code, _, stderr) = run_in_project(&p);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("to head"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(full.join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the run's remote directory is removed: {left:?}"
    );
    let bin: Vec<_> = std::fs::read_dir(full.join("bin"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(bin.is_empty(), "no half-copied agent: {bin:?}");
}

#[test]
fn nodes_lists_every_host_with_its_allocation_and_class() {
    let Some(config) = ssh_config() else {
        return;
    };
    // A job holding one whole host (exclusive) that uses next to nothing of it.
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: holds}\nspec:\n  phases: [{name: main, run: 'true'}]\n";
    let p = project("nodes", &config, workflow);
    // A node counts as under-used after 3 s here (10 minutes by default).
    add_to_target(&p, "under_used_minutes = 0.05");
    // A dashboard the hosts reach through the bridge, and a node agent on every host, this
    // build's, pushing to it.
    let port = free_port();
    let bridge = format!("10.231.0.1:{port}");
    let server = Server::start_with(
        &p.dir,
        &Db::new(Kind::Sqlite, &p.dir),
        port,
        &["--addr", &bridge],
    );
    let token = server.add_user("admin");
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let up = Command::new(scripts.join("node-agents-up"))
        .arg(env!("CARGO_BIN_EXE_atlas"))
        .env("ATLAS_SERVER", &server.url)
        .env("ATLAS_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // ssh joins its words for the remote shell: the wrapped command is quoted for it.
    let held = ssh(
        &config,
        &[
            "sbatch",
            "--parsable",
            "--exclusive",
            "-N",
            "1",
            "-J",
            "holds",
            "--wrap",
            "'sleep 60'",
        ],
    );
    let job = held.trim().to_string();
    assert!(!job.is_empty(), "sbatch gave no job id");
    let _cancel = Cancel(&config, vec![job.clone()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ssh(&config, &["squeue", "-h", "-j", &job, "-o", "%T"]).trim() != "RUNNING" {
        assert!(
            std::time::Instant::now() < deadline,
            "the holding job never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // Long enough for the window that decides.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (code, stdout, stderr) = p.atlas_in(
        &p.dir.join("project"),
        &p.dir.join("db/atlas.db").display().to_string(),
        &["nodes", "--target", "cluster", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let nodes = out["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 3, "{stdout}");
    let held_on = ssh(&config, &["squeue", "-h", "-j", &job, "-o", "%N"]);
    let held_on = held_on.trim();
    for node in nodes {
        let name = node["name"].as_str().unwrap();
        assert!(
            node["state"].is_string() && node["class"].is_string(),
            "{node}"
        );
        // Every host's agent answered with its own use.
        assert!(node["used"]["cores"].is_number(), "{node}");
        if name == held_on {
            // Held whole by a job that sleeps: allocated, measured, under-used.
            assert_eq!(node["cpus"]["allocated"], node["cpus"]["total"], "{node}");
            assert_eq!(node["class"], "under-used", "{node}");
            assert!(
                node["reason"].as_str().unwrap().contains("cores used"),
                "{node}"
            );
        } else {
            assert_eq!(node["class"], "idle", "{node}");
        }
    }
    // The node's Prometheus metrics name the job.
    let held = nodes.iter().find(|n| n["name"] == held_on).unwrap();
    let address = held["address"].as_str().unwrap();
    let metrics = ssh(
        &config,
        &["curl", "-fsS", &format!("http://{address}:9101/metrics")],
    );
    let line = format!("atlas_node_job_cpu_cores{{host=\"{held_on}\",job=\"{job}\"}}");
    assert!(metrics.contains(&line), "{line} not in {metrics}");
    // The node's own slurmd log, read on the node; the kernel's says why it cannot be read.
    let (code, logs, stderr) = p.atlas_in(
        &p.dir.join("project"),
        &p.dir.join("db/atlas.db").display().to_string(),
        &["nodes", "logs", held_on, "--lines", "20"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(logs.contains(&format!("slurmd-{held_on}.log")), "{logs}");
    assert!(
        logs.contains(&format!("job {job}")) || logs.contains(&format!("StepId={job}")),
        "{logs}"
    );
    assert!(logs.contains("kernel (dmesg"), "{logs}");
    // The agents pushed to the dashboard: every host, the held one with its job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, body) = get(&server, "/api/v1/nodes?minutes=5", Some(&token));
        assert_eq!(code, 200, "{body}");
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        let pushed = seen["nodes"].as_array().unwrap();
        let with_job = pushed
            .iter()
            .any(|n| n["node"] == held_on && n["jobs"].get(&job).is_some());
        if pushed.len() >= 3 && pushed.iter().all(|n| n["target"] == "cluster") && with_job {
            assert_eq!(pushed[0]["capacity"], 2.0, "slurm.conf's CPUs: {body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node agents did not push: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn backfill_fits_a_short_job_before_a_reservation_and_not_a_long_one() {
    let Some(config) = ssh_config() else {
        return;
    };
    let short = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: short}\nspec:\n  resources: {nodes: 1, walltime: 1m}\n  phases: [{name: main, run: 'true'}]\n";
    let p = project("backfill", &config, short);
    let long = short
        .replace("short", "long")
        .replace("walltime: 1m", "walltime: 1h");
    std::fs::write(p.dir.join("project/long.yaml"), long).unwrap();
    // Two hosts busy for up to 3 minutes, and a 3-host job waiting for them: Slurm reserves
    // all three hosts for it at the first one's end. The third host is free until then.
    let submit = |args: &[&str]| {
        ssh(&config, &[&["sbatch", "--parsable"], args].concat())
            .trim()
            .to_string()
    };
    let busy = submit(&[
        "-N",
        "2",
        "--exclusive",
        "-t",
        "3",
        "-J",
        "bf-busy",
        "--wrap",
        "'sleep 170'",
    ]);
    let waiting = submit(&[
        "-N",
        "3",
        "--exclusive",
        "-t",
        "5",
        "-J",
        "bf-wait",
        "--wrap",
        "true",
    ]);
    let _cancel = Cancel(&config, vec![busy.clone(), waiting.clone()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let start = ssh(
            &config,
            &["squeue", "-h", "--start", "-j", &waiting, "-o", "%S"],
        );
        if start.trim().starts_with("20") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm never planned the waiting job: {start}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (code, stdout, stderr) = p.atlas_in(
        &p.dir.join("project"),
        &p.dir.join("db/atlas.db").display().to_string(),
        &[
            "backfill",
            "suggest",
            "--target",
            "cluster",
            "w.yaml",
            "long.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let plan = &out["targets"][0];
    assert!(
        plan["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["job"] == waiting.as_str()),
        "{plan}"
    );
    let suggestions = plan["suggestions"].as_array().unwrap();
    assert_eq!(suggestions[0]["candidate"]["name"], "short");
    assert_eq!(suggestions[0]["fits"], true, "{plan}");
    assert!(suggestions[0]["until"].as_f64().unwrap() <= 180.0, "{plan}");
    assert_eq!(suggestions[1]["fits"], false, "{plan}");
    assert!(
        suggestions[1]["reason"]
            .as_str()
            .unwrap()
            .contains("walltime"),
        "{plan}"
    );
    // Without workflows, the queue's own pending job is the candidate.
    let (code, stdout, _) = p.atlas_in(
        &p.dir.join("project"),
        &p.dir.join("db/atlas.db").display().to_string(),
        &[
            "backfill", "suggest", "--target", "cluster", "--format", "json",
        ],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("job {waiting}")), "{stdout}");
    // Launched, the short one runs on the free host and ends before the reservation starts.
    let until = suggestions[0]["until"].as_f64().unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = p.atlas_in(
        &p.dir.join("project"),
        &p.dir.join("db/atlas.db").display().to_string(),
        &[
            "backfill",
            "launch",
            "--target",
            "cluster",
            "w.yaml",
            "long.yaml",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("long.yaml: not launched"), "{stderr}");
    assert!(started.elapsed().as_secs_f64() < until, "{stderr}");
    let runs = p.runs();
    assert_eq!(runs.len(), 1, "only the short one ran");
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    let host = suggestions[0]["nodes"][0].as_str().unwrap();
    assert_eq!(runs[0]["labels"]["backfill"], host, "{}", runs[0]);
    // The reserved job is still waiting: nothing started in its place.
    let state = ssh(&config, &["squeue", "-h", "-j", &waiting, "-o", "%T"]);
    assert_eq!(state.trim(), "PENDING");
}

#[test]
fn a_targets_environment_reaches_the_job_over_ssh_verbatim() {
    let Some(config) = ssh_config() else {
        return;
    };
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: env}\nspec:\n  phases:\n  - {name: main, run: 'printf \"[%s]\\n\" \"$ATLAS_T_ENV\"'}\n";
    let p = project("env", &config, workflow);
    let value = "two words $(touch /tmp/atlas-env-pwned) ;|&";
    add_to_target(&p, &format!("environment = {{ ATLAS_T_ENV = '{value}' }}"));
    let _ = std::fs::remove_file("/tmp/atlas-env-pwned");
    let (code, _, stderr) = run_in_project(&p);
    assert_eq!(code, 0, "{stderr}");
    let id = p.runs()[0]["id"].as_str().unwrap().to_string();
    let (_, log, _) = p.atlas(&["logs", &id]);
    assert!(log.contains(&format!("[{value}]")), "{log}");
    assert!(!std::path::Path::new("/tmp/atlas-env-pwned").exists());
}

#[test]
fn the_backfill_plan_agrees_with_slurms_expected_starts() {
    let Some(config) = ssh_config() else {
        return;
    };
    let p = project("plan", &config, "");
    // Three jobs hold the hosts; a queue of mixed shapes waits behind them.
    let mut jobs = Vec::new();
    for (i, minutes) in ["2", "3", "4"].iter().enumerate() {
        let name = format!("plan-hold{i}");
        jobs.push(ssh(
            &config,
            &[
                "sbatch",
                "--parsable",
                "-N",
                "1",
                "--exclusive",
                "-t",
                minutes,
                "-J",
                &name,
                "--wrap",
                "'sleep 600'",
            ],
        ));
    }
    let shapes = [
        ("1", "--ntasks-per-node=1", "10"),
        ("1", "--exclusive", "2"),
        ("2", "--ntasks-per-node=1", "8"),
        ("1", "--exclusive", "8"),
        ("2", "--ntasks-per-node=1", "7"),
        ("3", "--exclusive", "8"),
        ("1", "--ntasks-per-node=2", "10"),
        ("1", "--exclusive", "1"),
        ("2", "--ntasks-per-node=2", "1"),
        ("3", "--ntasks-per-node=1", "4"),
    ];
    for (i, (nodes, shape, minutes)) in shapes.iter().enumerate() {
        let name = format!("plan-{i}");
        jobs.push(ssh(
            &config,
            &[
                "sbatch",
                "--parsable",
                "-N",
                nodes,
                shape,
                "-t",
                minutes,
                "-J",
                &name,
                "--wrap",
                "'sleep 600'",
            ],
        ));
    }
    let _cancel = Cancel(&config, jobs.iter().map(|j| j.trim().to_string()).collect());
    // Slurm's backfill runs in cycles and may move its estimates between two readings (its
    // own and Atlas's), so each try waits for two readings of Slurm's starts that agree, then
    // plans; Atlas must agree with Slurm on every job in one of three tries.
    let mut plans = Vec::new();
    for _ in 0..3 {
        wait_for_stable_starts(&config, shapes.len());
        let (code, stdout, stderr) = p.atlas_in(
            &p.dir.join("project"),
            &p.dir.join("db/atlas.db").display().to_string(),
            &[
                "backfill", "plan", "--target", "cluster", "--format", "json",
            ],
        );
        assert_eq!(code, 0, "{stderr}");
        let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        if plan["compared"] == shapes.len() && plan["agree"] == plan["compared"] {
            return;
        }
        plans.push(stdout);
    }
    panic!(
        "Atlas's plan disagreed with Slurm's starts three times:\n{}",
        plans.join("\n")
    );
}

/// Waits until Slurm's backfill has given each of the `count` pending jobs a start and two
/// readings two seconds apart are the same.
fn wait_for_stable_starts(config: &std::path::Path, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut previous = String::new();
    loop {
        let starts = ssh(
            config,
            &["squeue", "-h", "-t", "PD", "--start", "-o", "'%i|%S'"],
        );
        let known = starts.lines().count() == count && starts.lines().all(|l| !l.ends_with("N/A"));
        if known && starts == previous {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm gave no starts: {starts}"
        );
        previous = starts;
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}
