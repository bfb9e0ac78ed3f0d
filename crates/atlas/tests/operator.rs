//! The storage-service operator on this machine for real (issue 20): `atlas operator --local`
//! runs a MooseFS `StorageService` as podman containers (images from scripts/moosefs-image),
//! and the file system is mounted here with the real FUSE client. A chunk server killed is
//! restarted on its data and one lost with its data replaced and its chunks copied back to
//! their goal; scaling up and down (drained first); an upgrade one instance at a time; a
//! version that does not start rolled back; through all of it the files written first read
//! back unchanged. A workflow reads its input through the mount (a target's `data_dir`), on
//! the host and in a container, and the comparison says where each run's data lay. With
//! `ATLAS_REQUIRE_INTEGRATION=1` missing podman or MooseFS images fail.

mod support {
    pub mod project;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use support::project::Project;

const IMAGE: &str = "localhost/atlas-moosefs:3.0.117";
const NEXT: &str = "localhost/atlas-moosefs:3.0.117-2";
const BROKEN: &str = "localhost/atlas-moosefs:broken";

fn moosefs_available() -> bool {
    let images = [IMAGE, NEXT, BROKEN].iter().all(|image| {
        Command::new("podman")
            .args(["image", "exists", image])
            .status()
            .is_ok_and(|s| s.success())
    });
    let client = Command::new("mfsmount").arg("--version").output().is_ok();
    let up = images && client;
    if !up && std::env::var("ATLAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1") {
        panic!("podman, the MooseFS images and mfsmount are required (ATLAS_REQUIRE_INTEGRATION=1): run scripts/moosefs-image");
    }
    if !up {
        eprintln!("skipped: no MooseFS images or client (run scripts/moosefs-image)");
    }
    up
}

/// A service of this test, removed with its data (and unmounted) when dropped.
struct Service {
    dir: PathBuf,
    file: PathBuf,
    name: String,
    mount: PathBuf,
}

impl Service {
    fn new(tag: &str) -> Service {
        let name = format!("t-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("atlas-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let service = Service {
            file: dir.join("storage.yaml"),
            mount: dir.join("mnt"),
            dir,
            name,
        };
        service.write(3, IMAGE);
        service
    }

    fn write(&self, servers: u32, image: &str) {
        let yaml = format!(
            "apiVersion: atlas.dev/v1alpha1\nkind: StorageService\nmetadata:\n  name: {}\nspec:\n  chunkServers: {servers}\n  goal: 2\n  storagePerChunkServer: 1Gi\n  version: 3.0.117\n  image: {image}\n",
            self.name
        );
        std::fs::write(&self.file, yaml).unwrap();
    }

    /// `atlas operator --local FILE --until-healthy`: its exit code and output.
    fn until_healthy(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec![
            "600".to_string(),
            env!("CARGO_BIN_EXE_atlas").to_string(),
            "operator".into(),
            "--local".into(),
            self.file.display().to_string(),
            "--until-healthy".into(),
            "--interval".into(),
            "1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = Command::new("timeout").args(&args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn container(&self, member: &str) -> String {
        format!("atlas-mfs-{}-{member}", self.name)
    }

    fn image_of(&self, member: &str) -> String {
        podman(&[
            "inspect",
            "--format",
            "{{.ImageName}}",
            &self.container(member),
        ])
    }

    fn mount(&self, status: &Path) {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(status).unwrap()).unwrap();
        let master = json["masterAddress"].as_str().unwrap().to_string();
        let (host, port) = master.split_once(':').unwrap();
        std::fs::create_dir_all(&self.mount).unwrap();
        let out = Command::new("mfsmount")
            .arg(&self.mount)
            .args(["-H", host, "-P", port])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["operator", "--local"])
            .arg(&self.file)
            .arg("--down")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap();
    assert!(out.status.success(), "podman {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Files of random bytes on the mount, kept to compare.
fn write_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    (0..3)
        .map(|i| {
            let mut bytes = vec![0u8; (12 + i) << 20];
            std::io::Read::read_exact(&mut random, &mut bytes).unwrap();
            let path = dir.join(format!("data-{i}"));
            std::fs::write(&path, &bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

fn same_files(files: &[(PathBuf, Vec<u8>)], step: &str) {
    for (path, bytes) in files {
        let read =
            std::fs::read(path).unwrap_or_else(|e| panic!("{step}: {}: {e}", path.display()));
        assert!(read == *bytes, "{step}: {} changed", path.display());
    }
}

#[test]
fn a_storage_service_heals_scales_and_upgrades_on_podman() {
    if !moosefs_available() {
        return;
    }
    let service = Service::new("op");
    let status = service.dir.join("status.json");
    let status_arg = status.display().to_string();
    let (code, out) = service.until_healthy(&["--status-file", &status_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("start master") && out.contains("start chunkserver-2"),
        "{out}"
    );
    assert!(out.contains("Healthy"), "{out}");
    service.mount(&status);
    let files = write_files(&service.mount);

    // A chunk server killed: restarted on its data.
    podman(&["kill", &service.container("chunkserver-1")]);
    let (code, out) = service.until_healthy(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("restart chunkserver-1 on its data"), "{out}");
    same_files(&files, "after a crash");

    // A chunk server lost with its data: a new one, and the chunks copied back to their goal.
    let lost = service.container("chunkserver-0");
    podman(&["rm", "-f", &lost]);
    podman(&["volume", "rm", "-f", &lost]);
    let (code, out) = service.until_healthy(&["--status-file", &status_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("start chunkserver-0"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
    assert_eq!(json["underGoalChunks"], 0, "{json}");
    assert_eq!(json["readyChunkServers"], 3, "{json}");
    same_files(&files, "after a lost server");

    // Scale up to 4, then back down to 3: the fourth drained before it goes.
    service.write(4, IMAGE);
    let (code, out) = service.until_healthy(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("start chunkserver-3"), "{out}");
    service.write(3, IMAGE);
    let (code, out) = service.until_healthy(&[]);
    assert_eq!(code, 0, "{out}");
    let marked = out.find("mark chunkserver-3 for removal").expect(&out);
    let removed = out.find("remove chunkserver-3 and its data").expect(&out);
    assert!(marked < removed, "{out}");
    assert!(!podman(&["ps", "-a", "--format", "{{.Names}}"])
        .contains(&service.container("chunkserver-3")));
    same_files(&files, "after scaling");

    // An upgrade: every instance replaced, one at a time, the master last.
    service.write(3, NEXT);
    let (code, out) = service.until_healthy(&[]);
    assert_eq!(code, 0, "{out}");
    let order: Vec<usize> = [
        "metalogger-0",
        "chunkserver-2",
        "chunkserver-1",
        "chunkserver-0",
        "master",
    ]
    .iter()
    .map(|m| out.find(&format!("replace {m} by {NEXT}")).expect(&out))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    for member in ["master", "metalogger-0", "chunkserver-0", "chunkserver-2"] {
        assert_eq!(service.image_of(member), NEXT, "{member}");
    }
    same_files(&files, "after the upgrade");

    // A version that does not start: rolled back, the service healthy on the last good one.
    service.write(3, BROKEN);
    let (code, out) = service.until_healthy(&["--status-file", &status_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "did not start with {BROKEN}: rolled back to {NEXT}"
        )),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
    assert_eq!(json["failedImage"], BROKEN, "{json}");
    assert_eq!(json["phase"], "Healthy", "{json}");
    for member in ["metalogger-0", "chunkserver-2"] {
        assert_eq!(service.image_of(member), NEXT, "{member}");
    }
    same_files(&files, "after the rollback");

    // The master lost with its data: started again from the metalogger's copy of the
    // metadata (it copied it when the master restarted for the upgrade) and change logs; the
    // files are all there.
    let master = service.container("master");
    let _ = Command::new("umount")
        .arg("-l")
        .arg(&service.mount)
        .status();
    podman(&["rm", "-f", &master]);
    podman(&["volume", "rm", "-f", &master]);
    let (code, out) = service.until_healthy(&["--status-file", &status_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("start master"), "{out}");
    service.mount(&status);
    same_files(&files, "after the master was recovered from the metalogger");
}

#[test]
fn a_spec_the_operator_cannot_take_is_refused_before_anything_runs() {
    let dir = std::env::temp_dir().join(format!("atlas-op-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: atlas.dev/v1alpha1\nkind: StorageService\nmetadata:\n  name: few\nspec:\n  chunkServers: 1\n  goal: 2\n  storagePerChunkServer: 1Gi\n  version: 3.0.117\n  image: localhost/atlas-moosefs:3.0.117\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["operator", "--local"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chunkServers 1 is fewer than the goal 2"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("name: few", "name: ../etc")
            .replace("chunkServers: 1", "chunkServers: 2"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["operator", "--local"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metadata.name must be a DNS-1123 label"),
        "{stderr}"
    );
    // Without --local the operator works on Kubernetes: a kubeconfig that is not there is said.
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["operator", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kubeconfig /nonexistent/kubeconfig"));
    let _ = std::fs::remove_dir_all(&dir);
}

const READER: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: read-data}\nspec:\n  data:\n    inputs:\n    - {source: blob.bin, path: data/blob.bin}\n  phases:\n  - {name: read, run: 'sha256sum data/blob.bin'}\n";

#[test]
fn a_workflow_reads_its_input_through_the_mount_and_the_comparison_says_where() {
    if !moosefs_available() {
        return;
    }
    let service = Service::new("data");
    let status = service.dir.join("status.json");
    let status_arg = status.display().to_string();
    let (code, out) = service.until_healthy(&["--status-file", &status_arg]);
    assert_eq!(code, 0, "{out}");
    service.mount(&status);
    let mount = service.mount.display().to_string();
    let toml = format!(
        "[targets.mfs]\nkind = \"local\"\ndata_dir = \"{mount}\"\ndrop_caches = true\n\n[targets.podman-mfs]\nkind = \"podman\"\ndata_dir = \"{mount}\"\n"
    );
    let p = Project::new(&format!("mfs-data-{}", service.name), &toml);
    std::fs::write(p.dir.join("atlas.yaml"), READER).unwrap();
    let blob: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(p.dir.join("blob.bin"), &blob).unwrap();
    let (code, out, err) = p.atlas(&[
        "run",
        "atlas.yaml",
        "--on",
        "local",
        "--on",
        "mfs",
        "--on",
        "podman-mfs",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The copy on the mount is the input, byte for byte.
    let copies: Vec<PathBuf> = std::fs::read_dir(service.mount.join("atlas-inputs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("blob.bin"))
        .collect();
    assert_eq!(copies.len(), 1, "one copy per content: {copies:?}");
    assert!(std::fs::read(&copies[0]).unwrap() == blob);
    let runs = p.runs();
    let on = |target: &str| {
        let run = runs.iter().find(|r| r["target"] == target).unwrap();
        p.show(run["id"].as_str().unwrap())
    };
    let fs_of = |detail: &serde_json::Value, path: &str| {
        detail["storage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == path)
            .map(|s| s["filesystem"].as_str().unwrap().to_string())
    };
    assert_eq!(
        fs_of(&on("mfs"), "data/blob.bin").as_deref(),
        Some("fuse.mfs")
    );
    assert_eq!(
        fs_of(&on("podman-mfs"), "data/blob.bin").as_deref(),
        Some("fuse.mfs")
    );
    let local = fs_of(&on("local"), "data/blob.bin").unwrap();
    assert!(!local.starts_with("fuse"), "{local}");
    // The comparison: where each target's data lay, and what the job read per second.
    let experiment = runs[0]["experimentId"].as_str().unwrap().to_string();
    let (code, out, err) = p.atlas(&["compare", &experiment, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let note = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("where the data lay"))
        .unwrap_or_else(|| panic!("{}", report["notes"]))
        .to_string();
    assert!(note.contains("mfs: . on"), "{note}");
    assert!(
        note.contains(&format!("data/blob.bin on fuse.mfs ({mount})")),
        "{note}"
    );
    let rate = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "phase.read.logical.readRate")
        .unwrap_or_else(|| panic!("no read rate: {report}"));
    for t in rate["targets"].as_array().unwrap() {
        assert!(t["values"][0].as_f64().unwrap() > 0.0, "{t}");
    }
    let (code, out, _) = p.atlas(&["show", runs[0]["id"].as_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("data: . on"), "{out}");
    let _ = std::fs::remove_dir_all(&p.dir);
}
