//! Targets: the places a workflow can run, named in `atlas.toml` (the project's) and
//! `$XDG_CONFIG_HOME/atlas/targets.toml` (the user's); the project's file wins for a name both
//! define. `local` always exists. See docs/targets.md for the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::data::Stage;

/// What kind of place a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// This machine, bare metal.
    Local,
    /// A Slurm cluster reachable with sbatch/squeue from here.
    Slurm,
    /// Containers run with podman on this machine.
    Podman,
    /// The workflow's Kubernetes Pod, run on this machine with `podman kube play`.
    PodmanKube,
    /// A Kubernetes (or OpenShift) cluster, through its API server (kube-rs).
    Kubernetes,
}

/// One target's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The kind.
    pub kind: Kind,
    /// Slurm partition (overrides the workflow's queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Slurm account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// More sbatch options, each a whole option (`--qos=normal`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbatch_options: Vec<String>,
    /// References and thresholds for `atlas compare` (`accuracy >= 0.9`, `wall <= 60s ±10%`;
    /// `atlas_report::checks`), at most 64 of at most 200 characters each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Base image for containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// OCI runtime for podman (`runc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// More `podman run` options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_options: Vec<String>,
    /// `false`: the target has no GPUs, so GPU requests are left out of its jobs (said at submit).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub gpus: bool,
    /// podman: the containers of a multi-node run share one IPC namespace (one `/dev/shm`, as
    /// the containers of a Kubernetes pod can); by default each has its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub share_ipc: bool,
    /// Environment variables every run on this target gets (`OMPI_MCA_btl = "self,tcp"`); the
    /// workflow's own of the same name win. A comparison reports them as a difference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The price sheet entry or cost model the comparison uses for this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// How inputs reach a host job (local, Slurm): `path` (a link, the default) or `copy`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub stage: Stage,
    /// Local, Slurm here, podman: the directory the jobs read their inputs from (a parallel
    /// file system's mount, a scratch disk): each input is copied there once per content
    /// and the job reads that copy (absolute; docs/targets.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// Local, Slurm here, podman: empty the page cache before each job (root only), so its
    /// reads come from storage (cold-cache comparisons).
    #[serde(default, skip_serializing_if = "is_false")]
    pub drop_caches: bool,
    /// Slurm over SSH: the login node (`atlas@head`, or an alias of the ssh config). Without
    /// it, Slurm's commands run on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Slurm over SSH: where runs, projects and the agent go on the cluster (absolute;
    /// default /scratch/atlas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Slurm over SSH: an ssh config file (`ssh -F`), e.g. the one `scripts/cluster-up` writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<PathBuf>,
    /// Kubernetes: the kubeconfig context (default: the file's current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Kubernetes: the namespace (default: the context's, else `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes: the kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes: where the workflow's image is pushed (`127.0.0.1:5000/atlas`): with it and
    /// no `image`, each run builds the image with podman (the project inside) and pushes it
    /// there. A loopback registry is spoken to over plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Kubernetes: how many seconds a run may wait for its first pod to start (unschedulable,
    /// an image that cannot be pulled) before its Jobs are deleted and it fails with
    /// Kubernetes' reason (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_timeout: Option<u64>,
    /// `atlas nodes`: an allocated node using less than this share of what is allocated on
    /// it (percent, default 25) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_used_percent: Option<f64>,
    /// … for at least this many minutes (default 10) is under-used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_used_minutes: Option<f64>,
    /// `atlas nodes`: the port of the node agents (`atlas node-agent`) on the target's nodes
    /// (default 9101); on a Slurm target over SSH they are asked through the login node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_agent_port: Option<u16>,
    /// Kubernetes: this cluster's GPU types → the `nvidia.com/gpu.product` labels its nodes
    /// carry (`a100 = ["NVIDIA-A100-SXM4-80GB"]`), before Atlas's built-in table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_products: BTreeMap<String, Vec<String>>,
    /// After-hours windows: when this target's work may run (`atlas windows run` freezes its
    /// runs at the close and wakes them at the open; `crate::schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<crate::schedule::WindowSchedule>,
}

fn is_default(stage: &Stage) -> bool {
    *stage == Stage::default()
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Target {
    /// The built-in `local` target: this machine, the agent as a child process.
    pub fn local() -> Self {
        Target {
            kind: Kind::Local,
            partition: None,
            account: None,
            sbatch_options: Vec::new(),
            checks: Vec::new(),
            image: None,
            runtime: None,
            run_options: Vec::new(),
            gpus: true,
            share_ipc: false,
            environment: BTreeMap::new(),
            price: None,
            stage: Stage::Path,
            data_dir: None,
            drop_caches: false,
            context: None,
            namespace: None,
            kubeconfig: None,
            registry: None,
            pending_timeout: None,
            host: None,
            workdir: None,
            ssh_config: None,
            gpu_products: BTreeMap::new(),
            windows: None,
            under_used_percent: None,
            under_used_minutes: None,
            node_agent_port: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    targets: BTreeMap<String, Target>,
}

/// A target with its name and the file it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    /// The name `--on` takes.
    pub name: String,
    #[serde(flatten)]
    /// Its settings.
    pub target: Target,
    /// The file that defined it (`built-in` for `local` when no file does).
    pub source: String,
}

/// The config files, in the order they are read (a later one wins).
pub fn config_files() -> Vec<PathBuf> {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|dir| dir.join("atlas").join("targets.toml"));
    user.into_iter()
        .chain(std::iter::once(PathBuf::from("atlas.toml")))
        .collect()
}

/// A targets file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Not valid TOML, or not a targets file (the place when TOML knows it).
    #[error("{}{}: {message}", file.display(), place.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// Line and column.
        place: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
    /// A registry that is not `HOST[:PORT][/PATH]`.
    #[error("{}: target `{name}`: registry `{}` must be HOST[:PORT][/PATH] (letters, digits, `.`, `-`, `_`, `:`, `/`; no scheme), at most 200 bytes", file.display(), value.escape_debug())]
    BadRegistry {
        /// The file.
        file: PathBuf,
        /// The target.
        name: String,
        /// The value.
        value: String,
    },
    /// A login host or remote directory that is not plain.
    #[error("{}: target `{name}`: {field} `{}` {rule}", file.display(), value.escape_debug())]
    BadRemote {
        /// The file.
        file: PathBuf,
        /// The target.
        name: String,
        /// `host` or `workdir`.
        field: &'static str,
        /// The value.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// An environment variable that a shell cannot set, or too long a value.
    #[error("{}: target `{name}`: environment `{}`: {rule}", file.display(), variable.escape_debug())]
    BadVariable {
        /// The file.
        file: PathBuf,
        /// The target.
        name: String,
        /// The variable.
        variable: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A setting out of its range.
    #[error("{}: target `{name}`: {field} = {value} {rule}", file.display())]
    BadSetting {
        /// The file.
        file: PathBuf,
        /// The target.
        name: String,
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A window schedule that is malformed, empty or overlapping.
    #[error("{}: target `{name}`: windows: {why}", file.display())]
    BadWindows {
        /// The file.
        file: PathBuf,
        /// The target.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A target name that is not a DNS-1123 label.
    #[error("{}: target name `{}` must be lowercase letters, digits and `-`", file.display(), name.escape_debug())]
    BadName {
        /// The file.
        file: PathBuf,
        /// The name.
        name: String,
    },
}

/// Reads the targets from `files` (missing files are skipped). Errors name file:line:column.
/// The most bytes of a targets file read.
const MAX_TARGETS_BYTES: u64 = 1 << 20;

/// A targets file's text: a regular file of at most 1 MiB (`/dev/zero` or a FIFO is refused
/// before it is read).
fn read_bounded(file: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(file)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(MAX_TARGETS_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TARGETS_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_TARGETS_BYTES} bytes"
        )));
    }
    Ok(text)
}

pub fn load(files: &[PathBuf]) -> Result<Vec<Named>, TargetError> {
    let mut all: BTreeMap<String, Named> = BTreeMap::new();
    all.insert(
        "local".into(),
        Named {
            name: "local".into(),
            target: Target::local(),
            source: "built-in".into(),
        },
    );
    for file in files.iter().filter(|f| f.exists()) {
        let text = read_bounded(file).map_err(|source| TargetError::Unreadable {
            file: file.clone(),
            source,
        })?;
        let parsed: File = toml::from_str(&text).map_err(|e| describe(file, &text, &e))?;
        for (name, target) in parsed.targets {
            if !atlas_spec::is_dns1123_label(&name) {
                return Err(TargetError::BadName {
                    file: file.clone(),
                    name,
                });
            }
            if let Some(registry) = target.registry.as_deref().filter(|r| !is_registry(r)) {
                return Err(TargetError::BadRegistry {
                    file: file.clone(),
                    name,
                    value: registry.to_string(),
                });
            }
            check_remote(file, &name, &target)?;
            if let Some(Err(why)) = target.windows.as_ref().map(|w| w.parse()) {
                return Err(TargetError::BadWindows {
                    file: file.clone(),
                    name,
                    why,
                });
            }
            all.insert(
                name.clone(),
                Named {
                    name,
                    target,
                    source: file.display().to_string(),
                },
            );
        }
    }
    Ok(all.into_values().collect())
}

/// A login host and remote directory that cannot turn into an ssh option or shell syntax.
fn check_remote(file: &Path, name: &str, target: &Target) -> Result<(), TargetError> {
    let bad = |field, value: &str, rule| TargetError::BadRemote {
        file: file.to_path_buf(),
        name: name.to_string(),
        field,
        value: value.to_string(),
        rule,
    };
    if let Some(host) = target
        .host
        .as_deref()
        .filter(|h| !crate::remote::is_destination(h))
    {
        return Err(bad(
            "host",
            host,
            "must be [USER@]HOST or an ssh config alias (letters, digits, `@`, `.`, `-`, `_`)",
        ));
    }
    let setting = |field, value: String, rule| TargetError::BadSetting {
        file: file.to_path_buf(),
        name: name.to_string(),
        field,
        value,
        rule,
    };
    if let Some(m) = target
        .under_used_minutes
        .filter(|m| !(m.is_finite() && *m > 0.0 && *m <= 60.0))
    {
        return Err(setting(
            "under_used_minutes",
            m.to_string(),
            "must be above 0 and at most 60 (the node agent keeps an hour)",
        ));
    }
    if let Some(p) = target
        .under_used_percent
        .filter(|p| !(p.is_finite() && (0.0..=100.0).contains(p)))
    {
        return Err(setting(
            "under_used_percent",
            p.to_string(),
            "must be from 0 to 100",
        ));
    }
    if target.checks.len() > 64
        || target
            .checks
            .iter()
            .any(|c| c.len() > 200 || c.chars().any(char::is_control))
    {
        return Err(setting(
            "checks",
            format!("{} check(s)", target.checks.len()),
            "at most 64 checks of at most 200 characters, one line each",
        ));
    }
    if target.node_agent_port == Some(0) {
        return Err(setting(
            "node_agent_port",
            "0".into(),
            "must be a port from 1 to 65535",
        ));
    }
    for (variable, value) in &target.environment {
        let rule = if !atlas_spec::is_variable_name(variable) {
            "not a variable name a shell can set (A-Z, a-z, 0-9 and `_`, not starting with a digit)"
        } else if value.len() > atlas_spec::MAX_VALUE_LEN || value.contains('\0') {
            "the value is too long or holds a NUL byte"
        } else {
            continue;
        };
        return Err(TargetError::BadVariable {
            file: file.to_path_buf(),
            name: name.to_string(),
            variable: variable.clone(),
            rule,
        });
    }
    if let Some(dir) = target
        .workdir
        .as_deref()
        .filter(|d| !crate::remote::is_remote_dir(d))
    {
        return Err(bad(
            "workdir",
            dir,
            "must be an absolute path of letters, digits, `/`, `.`, `-` and `_`, without `..`",
        ));
    }
    if let Some(dir) = target.data_dir.as_deref() {
        if !crate::remote::is_remote_dir(dir) {
            return Err(bad(
                "data_dir",
                dir,
                "must be an absolute path of letters, digits, `/`, `.`, `-` and `_`, without `..`",
            ));
        }
    }
    let here = matches!(target.kind, Kind::Local | Kind::Podman)
        || (target.kind == Kind::Slurm && target.host.is_none());
    if (target.data_dir.is_some() || target.drop_caches) && !here {
        let (field, value) = match &target.data_dir {
            Some(dir) => ("data_dir", format!("{dir:?}")),
            None => ("drop_caches", "true".to_string()),
        };
        return Err(setting(
            field,
            value,
            "is for targets that run on this machine (local, podman, Slurm without `host`)",
        ));
    }
    Ok(())
}

/// `HOST[:PORT][/PATH]` as image references spell a registry: it reaches podman's command line
/// and the pods' image field, so nothing else gets through.
fn is_registry(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !text.ends_with('/')
        && !text.contains("//")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'))
}

/// A TOML error with its place (`file:line:column: message`).
fn describe(file: &Path, text: &str, err: &toml::de::Error) -> TargetError {
    let place = err.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    });
    TargetError::Syntax {
        file: file.to_path_buf(),
        place,
        message: err.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_project_file_wins_and_local_always_exists() {
        let dir = std::env::temp_dir().join(format!("atlas-targets-{}", std::process::id()));
        let user = write(
            &dir,
            "user.toml",
            "[targets.slurm]\nkind = \"slurm\"\npartition = \"old\"\n",
        );
        let project = write(&dir, "atlas.toml", "[targets.slurm]\nkind = \"slurm\"\npartition = \"debug\"\n[targets.podman]\nkind = \"podman\"\nruntime = \"runc\"\n");
        let targets = load(&[user, project]).unwrap();
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["local", "podman", "slurm"]);
        assert_eq!(targets[2].target.partition.as_deref(), Some("debug"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mistakes_are_reported_with_file_line_and_column() {
        let dir = std::env::temp_dir().join(format!("atlas-targets-bad-{}", std::process::id()));
        let bad = write(&dir, "atlas.toml", "[targets.k8s]\nkind = \"openstack\"\n");
        let err = load(&[bad]).unwrap_err();
        assert!(
            matches!(
                err,
                TargetError::Syntax {
                    place: Some((2, 8)),
                    ..
                }
            ),
            "{err}"
        );
        let err = err.to_string();
        assert!(err.contains("atlas.toml:2:8"), "{err}");
        assert!(err.contains("openstack"), "{err}");
        let typo = write(
            &dir,
            "typo.toml",
            "[targets.slurm]\nkind = \"slurm\"\npartiton = \"debug\"\n",
        );
        assert!(load(&[typo]).unwrap_err().to_string().contains("partiton"));
        for bad in ["http://r", "r/ x", "-r", "r;rm", ""] {
            let file = write(
                &dir,
                "registry.toml",
                &format!("[targets.k]\nkind = \"kubernetes\"\nregistry = \"{bad}\"\n"),
            );
            let err = load(&[file]).unwrap_err().to_string();
            assert!(err.contains("registry"), "{bad}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_targets_environment_must_be_settable_by_a_shell() {
        let dir = std::env::temp_dir().join(format!("atlas-targets-env-{}", std::process::id()));
        let good = write(
            &dir,
            "good.toml",
            "[targets.h]\nkind = \"local\"\nenvironment = { OMPI_MCA_btl = \"self,tcp\" }\n",
        );
        let targets = load(&[good]).unwrap();
        assert_eq!(targets[0].target.environment["OMPI_MCA_btl"], "self,tcp");
        for bad in ["\"1X\"", "\"A B\"", "\"PATH;rm\"", "\"\""] {
            let file = write(
                &dir,
                "bad.toml",
                &format!("[targets.h]\nkind = \"local\"\nenvironment = {{ {bad} = \"v\" }}\n"),
            );
            let err = load(&[file]).unwrap_err().to_string();
            assert!(
                err.contains("environment") && err.contains("variable name"),
                "{bad}: {err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
