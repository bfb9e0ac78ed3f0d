//! A throw-away project directory with an atlas.toml, and `atlas` run inside it with its own
//! database (`DIR/db/atlas.db`) and no user config; shared by the target and podman tests.

use std::path::PathBuf;
use std::process::Command;

pub struct Project {
    pub dir: PathBuf,
    /// A directory searched before `PATH` for the programs `atlas` runs (a slowed podman).
    pub path_first: Option<PathBuf>,
}

impl Project {
    /// A fresh directory for `tag` holding `atlas_toml`.
    pub fn new(tag: &str, atlas_toml: &str) -> Project {
        let dir = std::env::temp_dir().join(format!("atlas-project-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("atlas.toml"), atlas_toml).unwrap();
        Project {
            dir,
            path_first: None,
        }
    }

    /// `atlas ARGS…` in the project: (exit code, stdout, stderr).
    pub fn atlas(&self, args: &[&str]) -> (i32, String, String) {
        self.atlas_on(&self.dir.join("db/atlas.db").display().to_string(), args)
    }

    /// `atlas ARGS…` in the project over database `db` (a file or a URL), with run directories
    /// under the project's `data/`: (exit code, stdout, stderr).
    pub fn atlas_on(&self, db: &str, args: &[&str]) -> (i32, String, String) {
        self.atlas_in(&self.dir, db, args)
    }

    /// `atlas ARGS…` started in `cwd` over database `db`: (exit code, stdout, stderr).
    pub fn atlas_in(
        &self,
        cwd: &std::path::Path,
        db: &str,
        args: &[&str],
    ) -> (i32, String, String) {
        let out = self
            .command()
            .args(args)
            .current_dir(cwd)
            .env("ATLAS_DB", db)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `atlas` with the project's data and no user config (and `path_first` before `PATH`).
    pub fn command(&self) -> Command {
        let mut atlas = Command::new(env!("CARGO_BIN_EXE_atlas"));
        atlas
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("XDG_CONFIG_HOME", self.dir.join("no-user-config"));
        if let Some(first) = &self.path_first {
            let path = std::env::var("PATH").unwrap_or_default();
            atlas.env("PATH", format!("{}:{path}", first.display()));
        }
        atlas
    }

    /// `atlas runs --format json`, newest first.
    #[allow(dead_code)] // not every test binary lists runs
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let (code, stdout, stderr) = self.atlas(&["runs", "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// `atlas show RUN --format json`.
    #[allow(dead_code)]
    pub fn show(&self, run: &str) -> serde_json::Value {
        let (code, stdout, stderr) = self.atlas(&["show", run, "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    }
}

/// Copies the files of `examples/NAME` (not its subdirectories, nor `atlas.toml` unless
/// `with_targets`) into `dest`.
#[allow(dead_code)] // not every test binary runs an example
pub fn copy_example(name: &str, dest: &std::path::Path, with_targets: bool) {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap();
        if path.is_file() && (with_targets || file != "atlas.toml") {
            std::fs::copy(&path, dest.join(file)).unwrap();
        }
    }
}

/// The last value of metric `name` of phase `phase` in `atlas show RUN --format json`.
#[allow(dead_code)] // not every test binary reads metrics
pub fn metric(detail: &serde_json::Value, phase: usize, name: &str) -> Option<f64> {
    detail["phases"][phase]["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)?["last"]
        .as_f64()
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
