//! A window on the Slurm target over SSH: `atlas windows freeze cluster` reaches the run's
//! agent on the cluster (its control file written there, its job's batch step signalled),
//! gives the frozen job back (requeued and held: pending, on no node), and `wake` releases it;
//! the agent Slurm starts again resumes the run from its checkpoint.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{project, ssh, ssh_config};

#[test]
fn a_remote_slurm_run_frozen_gives_its_node_back_and_resumes_from_its_checkpoint() {
    let Some(config) = ssh_config() else {
        return;
    };
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: nightly}\nspec:\n  checkpoint: {path: ck, grace: 5s}\n  phases:\n  - {name: work, run: 'bash helper-loop.sh'}\n";
    let p = project("windows", &config, workflow);
    let project_dir = p.dir.join("project");
    std::fs::write(
        project_dir.join("helper-loop.sh"),
        "echo resume=${ATLAS_RESUME:-no}\nfrom=$(cat ck 2>/dev/null || echo 0)\ntrap 'echo $i > ck' USR1\nfor i in $(seq $from 60); do sleep 0.1; done\necho finished-from=$from\n",
    )
    .unwrap();
    let db = p.dir.join("db/atlas.db");
    let mut run = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "cluster", "--interval", "200ms"])
        .current_dir(&project_dir)
        .env("ATLAS_DB", &db)
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let atlas = |args: &[&str]| p.atlas_in(&project_dir, &db.display().to_string(), args);
    let deadline = Instant::now() + Duration::from_secs(120);
    let id = loop {
        let runs = p.runs();
        let running = runs
            .first()
            .filter(|r| r["status"] == "running")
            .map(|r| r["id"].as_str().unwrap().to_string());
        if let Some(id) = running.filter(|id| p.show(id)["phases"][0]["status"] == "running") {
            break id;
        }
        assert!(Instant::now() < deadline, "the run never started its phase");
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(1));
    let (code, out, err) = atlas(&["windows", "freeze", "cluster"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("frozen in phase work, checkpoint"), "{out}");
    assert!(out.contains("requeued and held"), "{out}");
    let job = p.show(&id)["schedulerId"]
        .as_str()
        .unwrap()
        .trim_start_matches("head:")
        .to_string();
    let state = ssh(&config, &["squeue", "-h", "-j", &job, "-o", "%T"]);
    assert_eq!(
        state.trim(),
        "PENDING",
        "the job holds no node while frozen"
    );
    let (code, out, err) = atlas(&["windows", "wake", "cluster"]);
    assert_eq!(code, 0, "{out}{err}");
    let ended = run.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(ended.success(), "{stderr}");
    let detail = p.show(&id);
    assert_eq!(detail["status"], "succeeded", "{detail}");
    assert_eq!(detail["windows"].as_array().unwrap().len(), 1, "{detail}");
    let (_, log, _) = p.atlas(&["logs", &id]);
    assert!(
        log.contains("resume=1"),
        "the new agent resumed from the checkpoint: {log}"
    );
    assert!(
        !log.contains("finished-from=0"),
        "not from the start: {log}"
    );
}
