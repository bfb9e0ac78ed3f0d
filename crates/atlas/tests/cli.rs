//! The `atlas` command as users run it: output pinned with snapshots, exit codes, and the
//! JSON Schema checked against real documents.

use assert_cmd::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn atlas() -> Command {
    let mut cmd = Command::cargo_bin("atlas").unwrap();
    cmd.current_dir(root());
    cmd
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = atlas().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn import_json_is_one_object_with_workflow_and_report() {
    let (code, stdout, _) = run(&[
        "import",
        "tests/fixtures/lsf/biggan128_imagenet.lsf",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value.as_object().unwrap().len(), 2);
    assert_eq!(value["report"]["dialect"], "lsf");
    insta::assert_snapshot!("biggan_json", stdout);
}

#[test]
fn import_yaml_prints_the_workflow_and_the_report_table() {
    for fixture in ["slurm/rules.sbatch", "pbs/select.pbs", "lsf/rules.lsf"] {
        let (code, stdout, stderr) = run(&["import", &format!("tests/fixtures/{fixture}")]);
        assert_eq!(code, 0, "{stderr}");
        let name = fixture.replace(['/', '.'], "_");
        insta::assert_snapshot!(format!("{name}_yaml"), stdout);
        insta::assert_snapshot!(format!("{name}_report"), stderr);
    }
}

#[test]
fn import_writes_to_a_file_with_o() {
    let dir = temp_dir("import");
    let out = dir.join("atlas.yaml");
    let (code, stdout, _) = run(&[
        "import",
        "tests/fixtures/pbs/jobwide.pbs",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    let (code, _, stderr) = run(&["validate", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_exits_2_with_a_message() {
    for (args, expected) in [
        (
            vec!["import", "tests/fixtures/bad/binary.bin"],
            "binary data",
        ),
        (
            vec!["import", "tests/fixtures/bad/no_directives.sh"],
            "no #BSUB, #SBATCH or #PBS directive",
        ),
        (
            vec!["import", "does/not/exist.lsf"],
            "cannot read does/not/exist.lsf",
        ),
        (
            vec!["import", "tests/fixtures/lsf/rules.lsf", "--dialect", "sge"],
            "invalid value 'sge'",
        ),
    ] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_plain_script_imports_with_an_explicit_dialect() {
    let (code, stdout, stderr) = run(&[
        "import",
        "tests/fixtures/bad/no_directives.sh",
        "--dialect",
        "slurm",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("name: no-directives"), "{stdout}");
    assert!(stderr.contains("no #SBATCH directives"), "{stderr}");
}

#[test]
fn validate_points_at_file_line_column() {
    let dir = temp_dir("validate");
    let file = dir.join("broken.yaml");
    let text = std::fs::read_to_string(root().join("examples/atlas.yaml"))
        .unwrap()
        .replace("2Gi", "lots");
    std::fs::write(&file, text).unwrap();
    let (code, _, stderr) = run(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("broken.yaml:11:20"), "{stderr}");
    assert!(stderr.contains("memoryPerNode"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn errors(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_schema_validates_the_examples_and_every_import() {
    let (code, stdout, _) = run(&["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let example_text = std::fs::read_to_string(root().join("examples/atlas.yaml")).unwrap();
    let example: serde_json::Value = serde_yaml_ng::from_str(&example_text).unwrap();
    assert!(
        validator.is_valid(&example),
        "{:?}",
        errors(&validator, &example)
    );
    for dir in ["lsf", "slurm", "pbs"] {
        for entry in std::fs::read_dir(root().join("tests/fixtures").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let (code, stdout, _) = run(&["import", path.to_str().unwrap(), "--format", "json"]);
            assert_eq!(code, 0);
            let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let workflow = &value["workflow"];
            assert!(
                validator.is_valid(workflow),
                "{}: {:?}",
                path.display(),
                errors(&validator, workflow)
            );
        }
    }
    // It rejects what the reader rejects.
    let mut wrong = example.clone();
    wrong["spec"]["resources"]["memoryPerNode"] = "lots".into();
    assert!(!validator.is_valid(&wrong));
    let mut unknown = example;
    unknown["spec"]["resources"]["wallclock"] = "1h".into();
    assert!(!validator.is_valid(&unknown));
}

#[test]
fn containerize_writes_a_build_context() {
    let dir = temp_dir("containerize");
    let out = dir.join("ctx");
    let (code, _, stderr) = run(&[
        "containerize",
        "examples/biggan-mini/job.lsf",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("never NVIDIA_VISIBLE_DEVICES=all"),
        "{stderr}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("entrypoint.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "entrypoint.sh is executable");
    let version = std::process::Command::new(out.join("atlas"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success(), "the copied binary runs");
    let workflow = std::fs::read_to_string(out.join("workflow.yaml")).unwrap();
    assert!(atlas_spec_parse(&workflow), "workflow.yaml reads back");
    insta::assert_snapshot!(
        "containerfile",
        std::fs::read_to_string(out.join("Containerfile")).unwrap()
    );
    insta::assert_snapshot!(
        "entrypoint",
        std::fs::read_to_string(out.join("entrypoint.sh")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn atlas_spec_parse(text: &str) -> bool {
    let dir = temp_dir("containerize-read");
    let file = dir.join("w.yaml");
    std::fs::write(&file, text).unwrap();
    let ok = run(&["validate", file.to_str().unwrap()]).0 == 0;
    std::fs::remove_dir_all(&dir).unwrap();
    ok
}

#[test]
fn an_unreachable_postgres_store_exits_3_naming_host_port_and_database_never_the_password() {
    let secret = "Sekr1t-Passw0rd";
    let url = format!("postgres://atlas:{secret}@127.0.0.1:1/atlas_nowhere");
    for args in [
        vec!["runs", "--db", url.as_str()],
        vec!["user", "add", "ada", "--db", url.as_str()],
    ] {
        let out = atlas()
            .args(&args)
            .env("XDG_DATA_HOME", temp_dir("pg-down"))
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("host 127.0.0.1, port 1, database atlas_nowhere"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{stderr}"
        );
    }
}
