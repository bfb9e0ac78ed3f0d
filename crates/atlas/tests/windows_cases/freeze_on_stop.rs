//! `atlas agent --freeze-on-stop`, as a pod of `atlas emit k8s --windows` runs it: the SIGTERM
//! of the window's close freezes the phase with its checkpoint (kept in the run directory) and
//! the agent leaves quietly; an agent started at the open, in a working directory without the
//! checkpoint (a new pod), resumes from the kept copy; one started after the end has nothing to
//! do and exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WORKFLOW: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: stop}\nspec:\n  checkpoint: {path: ck, grace: 10s}\n  phases:\n  - {name: count, run: bash count.sh}\n";
const COUNT: &str = "i=0\nif [ \"${ATLAS_RESUME:-}\" = 1 ]; then i=$(cat ck); fi\necho start=$i\ntrap 'echo $i > ck' USR1\nwhile [ $i -lt 40 ]; do i=$((i+1)); sleep 0.1; done\necho total=$i\n";

fn agent(work: &std::path::Path, run_dir: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args([
            "agent",
            "w.yaml",
            "--run-id",
            "r-stop",
            "--quiet",
            "--freeze-on-stop",
        ])
        .arg("--run-dir")
        .arg(run_dir)
        .current_dir(work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn spool(run_dir: &std::path::Path) -> String {
    std::fs::read_to_string(run_dir.join("spool.jsonl")).unwrap_or_default()
}

#[test]
fn a_stop_freezes_with_the_checkpoint_and_a_new_agent_resumes_from_the_kept_copy() {
    let root = std::env::temp_dir().join(format!("atlas-freeze-on-stop-{}", std::process::id()));
    let (work, run_dir) = (root.join("work"), root.join("run"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("w.yaml"), WORKFLOW).unwrap();
    std::fs::write(work.join("count.sh"), COUNT).unwrap();
    let mut first = agent(&work, &run_dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spool(&run_dir).contains("\"phaseStart\"") {
        assert!(Instant::now() < deadline, "the phase never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    let ended = first.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(first.stderr.as_mut().unwrap(), &mut said).unwrap();
    assert!(ended.success(), "{said}");
    let records = spool(&run_dir);
    assert!(
        records.contains("\"type\":\"frozen\"") && records.contains("\"clean\":true"),
        "{records}"
    );
    assert!(
        !records.contains("\"runEnd\""),
        "a stop taken for a window ended the run: {records}"
    );
    assert!(run_dir.join("checkpoint.kept").exists());
    // The open: a new pod, whose working directory has no checkpoint.
    std::fs::remove_file(work.join("ck")).unwrap();
    let second = agent(&work, &run_dir).wait_with_output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let records = spool(&run_dir);
    assert!(records.contains("\"type\":\"wake\""), "{records}");
    assert!(records.contains("\"status\":\"succeeded\""), "{records}");
    let out = std::fs::read_to_string(run_dir.join("logs/count.out")).unwrap();
    let start: Vec<u32> = out
        .lines()
        .filter_map(|l| l.strip_prefix("start=")?.parse().ok())
        .collect();
    assert_eq!(start.len(), 2, "{out}");
    assert!(
        start[1] > 0,
        "it did not resume from the kept checkpoint: {out}"
    );
    assert!(out.contains("total=40"), "{out}");
    // A later open: nothing to resume, and no failure.
    let third = agent(&work, &run_dir).wait_with_output().unwrap();
    assert!(third.status.success());
    assert!(String::from_utf8_lossy(&third.stderr).contains("nothing to resume"));
    std::fs::remove_dir_all(&root).unwrap();
}
