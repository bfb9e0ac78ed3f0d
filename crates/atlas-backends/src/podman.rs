//! `podman`: the workflow in a container built from `atlas containerize`'s files.
//!
//! The image is tagged by a hash of its build context (Containerfile, entrypoint, workflow and
//! the atlas binary), so an unchanged workflow is not rebuilt; the build time is its own figure.
//! The container runs under a random high UID with group 0 (OpenShift's rule), with `--cpus`,
//! `--memory` and GPU `--device`s from the workflow's resources, the run directory bind-mounted
//! at /atlas/run for the spool, a copy of the project at /work (group-writable, so any UID
//! can write its outputs there) and the inputs bind-mounted read-only.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use atlas_emit::{container_files, DEFAULT_BASE};
use sha2::{Digest, Sha256};

use crate::target::Named;
use crate::{data, process, Backend, BackendError, Collected, Figures, Job, JobEnd};

/// Where the project is seen inside the container (the image's WORKDIR).
const WORK: &str = "/work";

/// Where the run directory is seen inside the container (the image makes it group-writable).
pub(crate) const IN_CONTAINER_RUN_DIR: &str = atlas_emit::k8s::pod::RUN_DIR;

/// Directories of the project that are not copied into the container's /work.
const NOT_COPIED: &[&str] = &[".git", "target", "node_modules"];

/// Builds images and runs containers with podman on this machine.
pub(crate) struct Podman {
    target: Named,
    tag: Option<String>,
    container: Option<String>,
    child: Option<Child>,
    /// A multi-node run's workers and network (`podman_nodes`).
    nodes: Option<crate::podman_nodes::Nodes>,
    /// The run's control file, when its container can be frozen and stopped (kept, not
    /// `--rm`): a stop while it says `release` is a window's close, not the job's end.
    control: Option<std::path::PathBuf>,
    /// When a stopped container's state was last asked (once a second).
    asked: Option<Instant>,
    /// The inputs as the container sees them: their copies in the target's `data_dir`.
    staged: Option<Vec<data::VerifiedInput>>,
}

impl Podman {
    pub(crate) fn new(target: Named) -> Self {
        Podman {
            target,
            tag: None,
            container: None,
            child: None,
            nodes: None,
            control: None,
            asked: None,
            staged: None,
        }
    }
}

pub(crate) fn unusable(what: impl std::fmt::Display) -> BackendError {
    BackendError::Unusable(what.to_string())
}

/// What a container backend (podman, podman-kube) submits: the image tag `prepare` made, the
/// container's (or pod's) name `atlas-RUN`, and the workflow as it runs on the target.
pub(crate) fn submission(
    tag: Option<&str>,
    target: &Named,
    job: &Job<'_>,
) -> Result<(String, String, atlas_spec::Workflow), BackendError> {
    let tag = tag.ok_or_else(|| unusable("submit before prepare"))?;
    let workflow = crate::alike::effective_workflow(target, job.workflow);
    Ok((tag.to_string(), format!("atlas-{}", job.run_id), workflow))
}

impl Backend for Podman {
    fn prepare(&mut self, job: &Job<'_>) -> Result<Figures, BackendError> {
        let (tag, mut figures) = prepare_image_and_project(&self.target, job)?;
        self.tag = Some(tag);
        let target = &self.target.target;
        if let Some(dir) = target.data_dir.as_deref() {
            let started = Instant::now();
            let (staged, copied) =
                crate::data_dir::stage_into(std::path::Path::new(dir), job.run_id, job.inputs)?;
            figures.extend(data::figures(job.inputs, started, copied));
            self.staged = Some(staged);
        }
        if target.drop_caches {
            crate::data_dir::drop_caches(&mut figures, job.notes);
        }
        Ok(figures)
    }

    fn submit(&mut self, job: &Job<'_>) -> Result<String, BackendError> {
        let (tag, name, workflow) = submission(self.tag.as_deref(), &self.target, job)?;
        let uid = random_uid();
        let inputs = self.staged.as_deref().unwrap_or(job.inputs);
        let mut args = run_arguments(job, inputs, &workflow, &name, uid);
        if workflow.spec.checkpoint.is_some() {
            // Kept when it stops: a window's close stops it, its open starts it again.
            args.retain(|a| a != "--rm");
            self.control = Some(atlas_spec::RunDir::new(job.run_dir).control());
        }
        args.extend(self.target.target.run_options.iter().cloned());
        if crate::podman_nodes::count(&workflow) > 1 {
            let share_ipc = self.target.target.share_ipc;
            let (nodes, extra) =
                crate::podman_nodes::start(job, &workflow, &name, &args, &tag, uid, share_ipc)?;
            job.notes.say(format!(
                "{} containers on network {} (one per node{})",
                nodes.workers.len() + 1,
                nodes.network,
                if share_ipc { ", one IPC namespace" } else { "" }
            ));
            self.nodes = Some(nodes);
            args.extend(extra);
        } else {
            args.extend(crate::podman_nodes::one_node(job, &workflow)?);
        }
        args.push(tag);
        // The entrypoint passes these to the agent; the workflow is the image's own copy.
        args.push("--quiet".into());
        let log = std::fs::File::create(job.run_dir.join("container.log"))
            .map_err(|e| unusable(format!("cannot write the container log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| unusable(format!("cannot write the container log: {e}")))?;
        std::fs::write(job.run_dir.join("podman-run.args"), args.join("\n") + "\n")
            .map_err(|e| unusable(format!("cannot write the run arguments: {e}")))?;
        let child = Command::new("podman")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| unusable(format!("cannot run podman: {e}")))?;
        self.child = Some(child);
        self.container = Some(name.clone());
        Ok(name)
    }

    fn watch(&mut self) -> Option<JobEnd> {
        if self.child.is_none() && self.control.is_some() {
            return self.watch_stopped();
        }
        let mut end = process::child_ended(&mut self.child);
        if end.is_some() && self.control.is_some() {
            if self.windowed()
                || crate::podman_window::state(self.container.as_deref()?).as_deref()
                    == Ok("running")
            {
                // Stopped by a window's close (or already started again by its open).
                return None;
            }
            end = self.exit_state().map(|state| JobEnd { state }).or(end);
        }
        if end.is_some() {
            if let Some(nodes) = self.nodes.take() {
                crate::podman_nodes::stop(&nodes);
            }
        }
        end
    }

    fn cancel(&mut self) -> Result<(), BackendError> {
        if let Some(name) = &self.container {
            if self.child.is_none() && self.control.is_some() {
                // Stopped while frozen: nothing runs to record the cancel.
                process::output("podman", &["rm", "--force", name]).map_err(unusable)?;
                return Ok(());
            }
            // The agent is the container's PID 1 and handles SIGTERM like everywhere else.
            process::output("podman", &["kill", "--signal", "TERM", name]).map_err(unusable)?;
        }
        Ok(())
    }

    fn collect(&mut self, job: &Job<'_>) -> Collected {
        if let Some(nodes) = self.nodes.take() {
            crate::podman_nodes::stop(&nodes);
        }
        let mut output_tail = crate::tail(&job.run_dir.join("container.log"), 10);
        if let (Some(name), Some(_)) = (&self.container, &self.control) {
            // Kept for its windows: its log holds every start's output.
            if let Ok(log) = process::output("podman", &["logs", "--tail", "10", name]) {
                output_tail = Some(log);
            }
            let _ = process::output("podman", &["rm", "--force", name]);
        }
        Collected {
            output_tail,
            ..Default::default()
        }
    }
}

impl Podman {
    /// Whether the container, stopped, was stopped for a window (see
    /// [`crate::podman_window::stopped_for_window`]).
    fn windowed(&self) -> bool {
        self.control
            .as_deref()
            .is_some_and(crate::podman_window::stopped_for_window)
    }

    /// A kept container stopped by a window waits for its open: started again (`podman
    /// start`) → waited on again; removed → the job's end; stopped again with the run no longer
    /// frozen (woken, it ended between two looks, as a short rest of the job can) → the job's
    /// end.
    fn watch_stopped(&mut self) -> Option<JobEnd> {
        let name = self.container.clone()?;
        if self
            .asked
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
        {
            return None;
        }
        self.asked = Some(Instant::now());
        match crate::podman_window::state(&name) {
            Ok(state) if state == "running" => {
                let waiter = Command::new("podman")
                    .args(["wait", &name])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                match waiter {
                    Ok(child) => self.child = Some(child),
                    Err(e) => {
                        return Some(JobEnd {
                            state: format!("lost: cannot run podman wait: {e}"),
                        })
                    }
                }
                None
            }
            Ok(_) if self.windowed() => None,
            Ok(_) => self.exit_state().map(|state| JobEnd { state }),
            Err(why) => Some(JobEnd {
                state: format!("container gone while frozen: {why}"),
            }),
        }
    }

    /// The container's own exit code (`podman wait`'s status says only that it waited).
    fn exit_state(&self) -> Option<String> {
        let name = self.container.as_deref()?;
        process::output(
            "podman",
            &[
                "container",
                "inspect",
                "--format",
                "{{.State.ExitCode}}",
                name,
            ],
        )
        .ok()
        .map(|code| format!("exit {code}"))
    }
}

/// The base image must exist before a build (there is no registry to pull it from).
fn check_base(base: &str) -> Result<(), BackendError> {
    if let Err(why) = process::output("podman", &["image", "exists", base]) {
        let hint = if base == DEFAULT_BASE {
            "run scripts/base-image to build it offline"
        } else {
            "build or pull it first"
        };
        return Err(unusable(format!(
            "the base image {base} is missing ({why}); {hint}"
        )));
    }
    Ok(())
}

/// What every podman-based backend does before a run: the image (built unless an image with
/// the same inputs exists) and the project's copy; the image's tag and the launch figures.
pub(crate) fn prepare_image_and_project(
    target: &Named,
    job: &Job<'_>,
) -> Result<(String, Figures), BackendError> {
    if !process::installed("podman") {
        return Err(unusable(
            "podman is not installed (Debian: podman runc; or run scripts/base-image)",
        ));
    }
    let workflow = crate::without_gpus_if_none(target, job);
    let base = workflow
        .spec
        .image
        .as_ref()
        .and_then(|i| i.base.clone())
        .unwrap_or_else(|| DEFAULT_BASE.into());
    let files = container_files(&workflow)
        .map_err(|e| BackendError::Rejected(format!("cannot containerize: {e}")))?;
    let context = job.run_dir.join("image");
    write_context(&context, &files, &workflow, job.agent)
        .map_err(|e| unusable(format!("cannot write {}: {e}", context.display())))?;
    let tag = format!(
        "localhost/atlas-{}:{}",
        workflow.metadata.name,
        context_hash(&context, job.agent)
            .map_err(|e| unusable(format!("cannot read {}: {e}", context.display())))?
    );
    let mut figures = Figures::new();
    if process::output("podman", &["image", "exists", &tag]).is_ok() {
        figures.insert("imageCached".into(), 1.0);
    } else {
        check_base(&base)?;
        job.notes.say(format!("building image {tag}"));
        let started = Instant::now();
        build(
            &context.join("Containerfile"),
            &context,
            &tag,
            &job.run_dir.join("image-build.log"),
        )?;
        figures.insert("imageCached".into(), 0.0);
        figures.insert("imageBuildSeconds".into(), started.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    let copied = stage_project(job).map_err(|e| {
        unusable(format!(
            "cannot copy the project into {}: {e}",
            job.run_dir.join("work").display()
        ))
    })?;
    figures.insert("projectBytes".into(), copied as f64);
    figures.insert("projectCopySeconds".into(), started.elapsed().as_secs_f64());
    // Inputs are bind-mounted at run time: nothing is copied.
    figures.extend(data::figures(job.inputs, Instant::now(), 0));
    Ok((tag, figures))
}

/// The `podman run` arguments before the image.
fn run_arguments(
    job: &Job<'_>,
    inputs: &[data::VerifiedInput],
    workflow: &atlas_spec::Workflow,
    name: &str,
    uid: u32,
) -> Vec<String> {
    let run_dir = job.run_dir.display().to_string();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--name".into(),
        name.into(),
        // Any UID with group 0, as OpenShift assigns it: proves the image does not need root.
        "--user".into(),
        format!("{uid}:0"),
        "--volume".into(),
        // At a fixed path: the run directory's own may lie under a home (/root) that the
        // container's random UID cannot traverse.
        format!("{run_dir}:{IN_CONTAINER_RUN_DIR}"),
        "--volume".into(),
        format!("{}:{WORK}", job.run_dir.join("work").display()),
        "--env".into(),
        format!("ATLAS_RUN_ID={}", job.run_id),
        "--env".into(),
        format!("ATLAS_RUN_DIR={IN_CONTAINER_RUN_DIR}"),
        "--env".into(),
        format!("ATLAS_INTERVAL={}ms", job.interval.as_millis()),
        // The container's cgroup holds the job alone.
        "--env".into(),
        "ATLAS_OWN_CGROUP=1".into(),
    ];
    for input in inputs {
        let inside = Path::new(WORK).join(&input.path);
        args.push("--volume".into());
        args.push(format!(
            "{}:{}:ro",
            input.source.display(),
            inside.display()
        ));
    }
    let r = &workflow.spec.resources;
    let cpus = r.tasks_per_node.or(r.tasks).unwrap_or(1) * r.cpus_per_task.unwrap_or(1);
    let available = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if cpus > available {
        job.notes.say(format!(
            "the job asks for {cpus} CPUs; this machine has {available}: --cpus {available}"
        ));
    }
    args.push(format!("--cpus={}", cpus.min(available)));
    let memory = r.memory_per_node.or_else(|| {
        r.memory_per_cpu
            .and_then(|m| m.checked_mul(u64::from(cpus)))
    });
    if let Some(memory) = memory {
        args.push(format!("--memory={}", memory.bytes()));
    }
    let gpus = r.gpus_per_node.or(r.gpus).or_else(|| {
        r.gpus_per_task
            .map(|g| g * r.tasks_per_node.or(r.tasks).unwrap_or(1))
    });
    for index in 0..gpus.unwrap_or(0) {
        // CDI device names (nvidia-ctk cdi generate): one device per GPU the job asked for.
        args.push(format!("--device=nvidia.com/gpu={index}"));
    }
    args
}

/// A UID in OpenShift's style of range (1000000000 and up), different for every run.
pub(crate) fn random_uid() -> u32 {
    1_000_000_000 + (RandomState::new().hash_one(std::process::id()) % 1_000_000_000) as u32
}

/// Writes the build context: the containerize files, the workflow and the atlas binary.
fn write_context(
    context: &Path,
    files: &atlas_emit::ContainerFiles,
    workflow: &atlas_spec::Workflow,
    agent: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(context)?;
    std::fs::write(context.join("Containerfile"), &files.containerfile)?;
    std::fs::write(context.join("entrypoint.sh"), &files.entrypoint)?;
    std::fs::write(context.join("workflow.yaml"), atlas_spec::to_yaml(workflow))?;
    let binary = context.join("atlas");
    let _ = std::fs::remove_file(&binary);
    if std::fs::hard_link(agent, &binary).is_err() {
        std::fs::copy(agent, &binary)?;
    }
    Ok(())
}

/// The first 16 hex digits of a SHA-256 over the context: the small files by content, the
/// atlas binary (tens of MB; hashing it would cost a third of a second per run) by its identity
/// as a file (device, inode, size, modification time), which any rebuild changes.
fn context_hash(context: &Path, agent: &Path) -> Result<String, data::DataError> {
    use std::os::unix::fs::MetadataExt;
    let mut hasher = Sha256::new();
    for name in ["Containerfile", "entrypoint.sh", "workflow.yaml"] {
        hasher.update(name.as_bytes());
        hasher.update(data::sha256_of(&context.join(name))?.as_bytes());
    }
    let meta = std::fs::metadata(agent).map_err(|source| data::DataError::Unreadable {
        path: agent.to_path_buf(),
        source,
    })?;
    hasher.update(
        format!(
            "atlas {} {} {} {}.{}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        )
        .as_bytes(),
    );
    Ok(data::hex(&hasher.finalize())[..16].to_string())
}

/// `podman build`; on failure the tail of its log is the reason.
pub(crate) fn build(
    containerfile: &Path,
    context: &Path,
    tag: &str,
    log_path: &Path,
) -> Result<(), BackendError> {
    let log = std::fs::File::create(log_path)
        .map_err(|e| unusable(format!("cannot write {}: {e}", log_path.display())))?;
    let err = log
        .try_clone()
        .map_err(|e| unusable(format!("cannot write {}: {e}", log_path.display())))?;
    let status = Command::new("podman")
        .args(["build", "--tag", tag, "--file"])
        .arg(containerfile)
        .arg(context)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .status()
        .map_err(|e| unusable(format!("cannot run podman build: {e}")))?;
    if status.success() {
        return Ok(());
    }
    Err(BackendError::Rejected(format!(
        "the image build failed; the end of {}:\n{}",
        log_path.display(),
        crate::tail(log_path, 15).unwrap_or_default()
    )))
}

/// Copies the project into `RUN_DIR/work`, group 0 and group-writable so the container's
/// arbitrary UID can write there; the bytes copied. The run directory is made group-writable
/// too (the agent's spool). Version-control and build directories are left out, and so is the
/// run directory itself when it lives inside the project.
pub(crate) fn stage_project(job: &Job<'_>) -> std::io::Result<u64> {
    let work = job.run_dir.join("work");
    std::fs::create_dir_all(&work)?;
    let skip = std::fs::canonicalize(job.run_dir)?;
    // The inputs are bound in at run time: neither they nor a link a host run left at their
    // path are copied (a bind mount onto a copied link would land where the link points).
    let sources: Vec<_> = job
        .inputs
        .iter()
        .filter_map(|i| std::fs::canonicalize(&i.source).ok())
        .collect();
    let mut total = 0;
    for entry in std::fs::read_dir(job.project_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if NOT_COPIED.iter().any(|n| name == *n) {
            continue;
        }
        let path = entry.path();
        let real = std::fs::canonicalize(&path);
        if real
            .as_ref()
            .is_ok_and(|p| skip.starts_with(p) || sources.contains(p))
        {
            continue;
        }
        total += data::copy_tree(&path, &work.join(&name))?;
    }
    for input in job.inputs {
        let at = work.join(&input.path);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&at)?;
        }
    }
    group_writable(job.run_dir)?;
    Ok(total)
}

/// chgrp 0 and g+rwX, recursively (symbolic links are left alone).
fn group_writable(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, None, Some(0))?;
    let mode = meta.permissions().mode();
    let group = (mode & 0o700) >> 3 | 0o060 | if meta.is_dir() { 0o010 } else { 0 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | group))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            group_writable(&entry?.path())?;
        }
    }
    Ok(())
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(nodes) = self.nodes.take() {
            crate::podman_nodes::stop(&nodes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_spec::{Quantity, Resources, Workflow};
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn resources_become_cpu_memory_and_device_flags() {
        let mut workflow = Workflow::default();
        workflow.spec.resources = Resources {
            tasks: Some(1),
            cpus_per_task: Some(1),
            memory_per_cpu: Some(Quantity::from_bytes(1 << 30)),
            gpus_per_node: Some(2),
            ..Default::default()
        };
        let input = data::VerifiedInput {
            source: PathBuf::from("/data/imagenet.h5"),
            path: "data/in.h5".into(),
            bytes: 1,
            sha256: None,
        };
        let job = Job {
            run_id: "r-1",
            run_dir: Path::new("/runs/r-1"),
            workflow: &workflow,
            workflow_file: Path::new("/runs/r-1/workflow.yaml"),
            project_dir: Path::new("/p"),
            interval: Duration::from_millis(500),
            agent: Path::new("/bin/atlas"),
            inputs: std::slice::from_ref(&input),
            notes: &crate::Notes::default(),
        };
        let args = run_arguments(&job, job.inputs, &workflow, "atlas-r-1", 1_000_870_000);
        let joined = args.join(" ");
        for expected in [
            "--user 1000870000:0",
            "--volume /runs/r-1:/atlas/run",
            "--volume /runs/r-1/work:/work",
            "--volume /data/imagenet.h5:/work/data/in.h5:ro",
            "--cpus=1",
            "--memory=1073741824",
            "--device=nvidia.com/gpu=0 --device=nvidia.com/gpu=1",
            "ATLAS_INTERVAL=500ms",
        ] {
            assert!(joined.contains(expected), "{expected} not in {joined}");
        }
        assert!(!joined.contains("NVIDIA_VISIBLE_DEVICES"));
    }

    #[test]
    fn random_uids_are_high_and_vary() {
        let uids: std::collections::BTreeSet<u32> = (0..20).map(|_| random_uid()).collect();
        assert!(uids.iter().all(|u| *u >= 1_000_000_000));
        assert!(uids.len() > 1);
    }
}
