//! `atlas run --on local` and the commands that look at runs, on real processes and real
//! SQLite files; and what they say about bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

mod support {
    pub mod interrupt;
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("atlas-run-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.join("atlas.db")
    }

    /// Runs atlas with `--db` pointing into the sandbox (through ATLAS_DB, as users do).
    fn atlas(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(args)
            .current_dir(root())
            .env("ATLAS_DB", self.db())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn workflow(&self, phases: &str) -> String {
        let path = self.dir.join("workflow.yaml");
        let text = format!("apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: t\nspec:\n  phases:\n{phases}");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn run_repeat_and_look_at_the_runs() {
    let s = Sandbox::new("repeat");
    let (code, _, stderr) = s.atlas(&[
        "run",
        "examples/atlas.yaml",
        "--on",
        "local",
        "--repeat",
        "2",
        "--label",
        "purpose=test",
        "--interval",
        "100ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = s.atlas(&["runs", "--format", "json"]);
    assert_eq!(code, 0);
    let runs = json(&stdout);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"
        && r["target"] == "local"
        && r["labels"]["purpose"] == "test"));
    assert_eq!(runs[0]["experimentId"], runs[1]["experimentId"]);

    let id = runs[0]["id"].as_str().unwrap();
    let (code, stdout, _) = s.atlas(&["show", id, "--format", "json"]);
    assert_eq!(code, 0);
    let detail = json(&stdout);
    let phases: Vec<&str> = detail["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["preprocess", "train"]);
    let loss = &detail["phases"][1]["metrics"][0];
    assert_eq!(
        (loss["name"].as_str(), loss["last"].as_f64()),
        (Some("loss"), Some(0.5))
    );
    assert!(detail["phases"][0]["wallSeconds"].as_f64().unwrap() > 0.0);

    let (code, stdout, _) = s.atlas(&["show", &id[..6]]);
    assert_eq!(code, 0, "a unique prefix is enough");
    assert!(
        stdout.contains("train") && stdout.contains("loss 0.5"),
        "{stdout}"
    );

    let (code, stdout, _) = s.atlas(&["experiments", "--format", "json"]);
    assert_eq!(code, 0);
    let experiments = json(&stdout);
    assert_eq!(experiments.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            experiments[0]["runs"].as_i64(),
            experiments[0]["succeeded"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(experiments[0]["targets"], "local");
    let exp = experiments[0]["id"].as_str().unwrap();
    let (code, stdout, _) = s.atlas(&["show", exp]);
    assert_eq!(code, 0);
    assert!(
        runs.iter()
            .all(|r| stdout.contains(r["id"].as_str().unwrap())),
        "{stdout}"
    );
    let (code, _, stderr) = s.atlas(&["show", "e-nothing"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no experiment `e-nothing`"), "{stderr}");

    let (code, stdout, _) = s.atlas(&["logs", id, "--phase", "train"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("epoch 1/1 loss=0.5"), "{stdout}");
}

#[test]
fn a_failing_run_exits_1_with_its_cause() {
    let s = Sandbox::new("fail");
    let wf = s.workflow("  - name: one\n    run: exit 4\n  - name: two\n    run: echo never\n");
    let (code, _, stderr) = s.atlas(&["run", &wf, "--on", "local"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("exited with code 4"), "{stderr}");
    let (_, stdout, _) = s.atlas(&["runs", "--format", "json"]);
    assert_eq!(json(&stdout)[0]["status"], "failed");
}

#[test]
fn a_job_script_is_imported_and_run() {
    let s = Sandbox::new("script");
    let script = s.dir.join("job.sbatch");
    std::fs::write(
        &script,
        "#!/bin/bash\n#SBATCH -J scripted -t 5\n# atlas: phase hello\necho hello\n",
    )
    .unwrap();
    let (code, _, stderr) = s.atlas(&["run", script.to_str().unwrap(), "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("imported Slurm script"), "{stderr}");
    let (_, stdout, _) = s.atlas(&["runs", "--format", "json"]);
    assert_eq!(json(&stdout)[0]["workflow"], "scripted");
}

#[test]
fn bad_input_gets_a_message_and_the_right_exit_code() {
    let s = Sandbox::new("bad");
    let wf = s.workflow("  - name: one\n    run: echo hi\n");
    let (code, _, stderr) = s.atlas(&["run", &wf, "--on", "mars"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown target `mars`"), "{stderr}");

    let (code, _, stderr) = s.atlas(&["show", "r-doesnotexist"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no run `r-doesnotexist`"), "{stderr}");

    let empty = s.workflow("  - name: one\n    run: '  '\n");
    let (code, _, stderr) = s.atlas(&["run", &empty, "--on", "local"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("the phase has no command"), "{stderr}");

    let nowhere =
        s.workflow("  - name: one\n    run: pwd\n    workingDirectory: /does/not/exist\n");
    let (code, _, stderr) = s.atlas(&["run", &nowhere, "--on", "local"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/does/not/exist does not exist"),
        "{stderr}"
    );

    // An invalid pattern is refused before anything runs (it used to fail only at run time).
    let bad_pattern = s.workflow("  - name: one\n    run: echo hi\n    patterns: ['(unclosed']\n");
    let (code, _, stderr) = s.atlas(&["run", &bad_pattern, "--on", "local"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("patterns[0]"), "{stderr}");
    assert!(stderr.contains("regular expression"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let s = Sandbox::new("notdb");
    std::fs::write(
        s.db(),
        "certainly not SQLite, but long enough to have a header of sorts",
    )
    .unwrap();
    let before = std::fs::read(s.db()).unwrap();
    let (code, _, stderr) = s.atlas(&["runs"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("is not an Atlas database"), "{stderr}");
    assert_eq!(
        std::fs::read(s.db()).unwrap(),
        before,
        "the file is left as it was"
    );
}

#[test]
fn ingest_skips_garbage_lines_and_repeats_add_nothing() {
    let s = Sandbox::new("ingest");
    let spool = s.dir.join("spool.jsonl");
    let good = r#"{"run":"r-x","seq":1,"time":1.0,"mono":0.0,"type":"runStart","workflow":"w","host":"h","agentVersion":"0","phases":["a"],"intervalMs":1000,"cpus":1,"gpu":"none","source":"process tree"}"#;
    let metric = r#"{"run":"r-x","seq":2,"time":2.0,"mono":1.0,"type":"metric","phase":"a","name":"loss","value":0.25}"#;
    std::fs::write(
        &spool,
        format!("{good}\nnot json at all\n{metric}\n{{\"torn"),
    )
    .unwrap();
    let (code, _, stderr) = s.atlas(&["ingest", spool.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(":2: not a record"), "{stderr}");
    assert!(stderr.contains(":4: an incomplete last line"), "{stderr}");
    assert!(stderr.contains("2 new records, 0 already"), "{stderr}");
    let (_, _, stderr) = s.atlas(&["ingest", spool.to_str().unwrap()]);
    assert!(stderr.contains("0 new records, 2 already"), "{stderr}");
}

#[test]
fn the_examples_atlas_yaml_is_what_import_makes_of_its_job_script() {
    let dir = root().join("examples/biggan-mini");
    let committed = std::fs::read_to_string(dir.join("atlas.yaml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["import", "job.lsf"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "re-run `atlas import job.lsf -o atlas.yaml` in examples/biggan-mini"
    );
}

#[test]
fn ctrl_c_cancels_the_local_run_and_starts_no_more() {
    let s = Sandbox::new("ctrl-c");
    let wf = s.workflow("  - name: wait\n    run: sleep 30\n");
    let started = std::time::Instant::now();
    let (code, stderr) = support::interrupt::interrupt_during_phase(
        &s.db(),
        &s.dir,
        &["run", &wf, "--on", "local", "--repeat", "3"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "did not wait for the sleep"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    let (_, stdout, _) = s.atlas(&["runs", "--format", "json"]);
    let runs = json(&stdout);
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "no further runs were started"
    );
    assert!(
        runs[0]["cause"].as_str().unwrap().starts_with("cancelled"),
        "{}",
        runs[0]
    );
}

/// A static HTTP server on 127.0.0.1 serving `dir` (Python's http.server); killed on drop.
struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    fn serve(dir: &Path) -> HttpServer {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 43521 (http://127.0.0.1:43521/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn inputs_are_checked_before_submission_and_staged_for_the_job() {
    // sha256 of "hello\n", as sha256sum prints it.
    const HELLO: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let s = Sandbox::new("inputs");
    let served = s.dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("set.bin"), "hello\n").unwrap();
    std::fs::write(s.dir.join("local.bin"), "hello\n").unwrap();
    let server = HttpServer::serve(&served);
    let write = |local_sha: &str| {
        let text = format!(
            "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: inputs}}\nspec:\n  scheduling: {{workingDirectory: '{dir}'}}\n  data:\n    inputs:\n    - {{source: 'file://{dir}/local.bin', path: in/local.bin, sha256: {local_sha}, size: 6}}\n    - {{source: 'http://127.0.0.1:{port}/set.bin', path: in/remote.bin, sha256: {HELLO}}}\n  phases:\n  - {{name: read, run: 'cat in/local.bin in/remote.bin'}}\n",
            dir = s.dir.display(),
            port = server.port
        );
        std::fs::write(s.dir.join("w.yaml"), text).unwrap();
        s.dir.join("w.yaml").display().to_string()
    };
    let workflow = write(HELLO);
    let (code, _, stderr) = s.atlas(&["run", &workflow, "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let runs = json(&s.atlas(&["runs", "--format", "json"]).1);
    let run = &runs[0];
    assert_eq!(run["figures"]["inputBytes"], 12.0, "{run}");
    assert!(run["figures"]["stageInSeconds"].is_number(), "{run}");
    let (_, log, _) = s.atlas(&["logs", run["id"].as_str().unwrap()]);
    assert_eq!(log.matches("hello").count(), 2, "{log}");
    assert!(
        std::fs::symlink_metadata(s.dir.join("in/local.bin"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "`path` staging links the input"
    );

    // A changed input stops the run before anything is submitted.
    let workflow = write(&HELLO.replace('5', "6"));
    let (code, _, stderr) = s.atlas(&["run", &workflow, "--on", "local"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");
    let runs = json(&s.atlas(&["runs", "--format", "json"]).1);
    assert_eq!(runs.as_array().unwrap().len(), 1, "no run was made");
}

#[test]
fn compare_names_what_is_wrong_with_its_input() {
    let s = Sandbox::new("compare-bad");
    let (code, _, stderr) = s.atlas(&["compare", "e-nope"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no experiment `e-nope`"), "{stderr}");
    let prices = s.dir.join("prices.toml");
    std::fs::write(&prices, "[cloud.x]\nvcpu_hour = \"cheap\"\n").unwrap();
    let (code, _, stderr) = s.atlas(&["compare", "e-nope", "--prices", prices.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("prices.toml:2:13"), "{stderr}");
    // Runs of two different workflows are not compared.
    let one = s.workflow("  - {name: a, run: 'true'}\n");
    let (code, _, stderr) = s.atlas(&["run", &one, "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let other = s.dir.join("other.yaml");
    std::fs::write(&other, "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: other}\nspec:\n  phases:\n  - {name: a, run: 'true'}\n").unwrap();
    let (code, _, stderr) = s.atlas(&["run", other.to_str().unwrap(), "--on", "local"]);
    assert_eq!(code, 0, "{stderr}");
    let runs = json(&s.atlas(&["runs", "--format", "json"]).1);
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let (code, _, stderr) = s.atlas(&["compare", ids[0], ids[1]]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("different workflows"), "{stderr}");
}

#[test]
fn a_job_with_several_tasks_has_a_time_to_scale_out_in_its_comparison() {
    let s = Sandbox::new("scale-out");
    let path = s.dir.join("tasks.yaml");
    std::fs::write(
        &path,
        "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: tasks}\nspec:\n  resources: {tasks: 4}\n  phases:\n  - {name: ranks, run: 'for i in 1 2 3 4; do sleep 2 & sleep 0.4; done; wait'}\n",
    )
    .unwrap();
    let (code, _, stderr) = s.atlas(&[
        "run",
        path.to_str().unwrap(),
        "--on",
        "local",
        "--interval",
        "100ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let runs = json(&s.atlas(&["runs", "--format", "json"]).1);
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let detail = json(&s.atlas(&["show", &run, "--format", "json"]).1);
    assert!(
        detail["phases"][0]["peakProcesses"].as_i64().unwrap() >= 4,
        "{detail}"
    );
    assert!(
        detail["node"].as_str().is_some_and(|n| n.contains("CPUs")),
        "{detail}"
    );
    let (code, report, stderr) = s.atlas(&["compare", &run, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report = json(&report);
    let scale = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "scaleOutSeconds")
        .unwrap_or_else(|| panic!("no scale-out figure: {report}"));
    let seconds = scale["targets"][0]["values"][0].as_f64().unwrap();
    let wall = detail["wallSeconds"].as_f64().unwrap();
    assert!(
        seconds > 0.0 && seconds < wall,
        "{seconds} within the run's {wall} s"
    );
}
