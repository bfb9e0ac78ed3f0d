//! `atlas targets` and `atlas targets check`, from a project's atlas.toml, against the real
//! Slurm started by scripts/slurm-up.

mod support {
    pub mod project;
}

use support::project::Project;

const TARGETS: &str = "[targets.slurm]\nkind = \"slurm\"\npartition = \"debug\"\n\n[targets.gpu]\nkind = \"slurm\"\npartition = \"no-such-partition\"\n\n[targets.podman]\nkind = \"podman\"\nimage = \"localhost/atlas-does-not-exist:never\"\n";

#[test]
fn targets_are_listed_with_local_always_there() {
    let p = Project::new("list", TARGETS);
    let (code, stdout, _) = p.atlas(&["targets", "--format", "json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gpu", "local", "podman", "slurm"]);
    assert_eq!(list[3]["partition"], "debug");
}

#[test]
fn check_says_what_works_and_exits_3_when_something_does_not() {
    let p = Project::new("check", TARGETS);
    let (code, stdout, stderr) = p.atlas(&["targets", "check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stdout.contains("gpu          FAIL partition `no-such-partition` does not exist"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("podman") && l.contains("FAIL")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("local") && l.contains(" ok ")),
        "{stdout}"
    );
    let (code, stdout, stderr) = p.atlas(&["targets", "check", "slurm"]);
    let slurm_required = std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1");
    if code != 0 && !slurm_required {
        eprintln!("skipped the Slurm part: {stdout}{stderr}");
        return;
    }
    assert_eq!(
        code, 0,
        "Slurm is required here (scripts/slurm-up): {stdout}{stderr}"
    );
    assert!(stdout.contains("partition debug up"), "{stdout}");
}

#[test]
fn bad_config_and_unknown_names_are_input_errors() {
    let p = Project::new("bad", "[targets.x]\nkind = \"k8s\"\n");
    let (code, _, stderr) = p.atlas(&["targets"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("atlas.toml:2:8") && stderr.contains("unknown variant `k8s`"),
        "{stderr}"
    );
    let p = Project::new("unknown", TARGETS);
    let (code, _, stderr) = p.atlas(&["targets", "check", "mars"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown target `mars` (known: gpu, local, podman, slurm)"),
        "{stderr}"
    );
    let (code, _, stderr) = p.atlas(&["run", "workflow.yaml", "--on", "mars"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown target `mars`"), "{stderr}");
}

#[test]
fn a_target_whose_tool_is_missing_fails_its_run_and_exits_3() {
    let p = Project::new("missing-tool", TARGETS);
    std::fs::write(
        p.dir.join("w.yaml"),
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  phases:\n  - {name: a, run: 'true'}\n",
    )
    .unwrap();
    // A PATH with bash (for the local run) and no podman.
    let empty = p.dir.join("path-without-podman");
    std::fs::create_dir_all(&empty).unwrap();
    std::os::unix::fs::symlink("/bin/bash", empty.join("bash")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "podman", "--on", "local"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("atlas.db"))
        .env("XDG_CONFIG_HOME", p.dir.join("none"))
        .env("PATH", &empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("podman is not installed"), "{stderr}");
    assert!(
        stderr.contains("1 of 2 run(s) succeeded"),
        "the experiment goes on with local: {stderr}"
    );
}
