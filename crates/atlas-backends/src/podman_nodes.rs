//! `podman`, one container per node: a job that asks for several nodes and starts its ranks
//! with `mpirun` runs as that many containers of the workflow's image on a podman network of
//! its own (`atlas-RUN`), as the MPI Operator runs an MPIJob: `node0` runs the agent and the
//! phases; `node1` … run sshd (the image's `--sshd` mode) under the same random UID, with a
//! key made for the run. Open MPI finds the others through `RUN_DIR/hostfile`
//! (`OMPI_MCA_orte_default_hostfile`) and passes `ATLAS_RUN_ID` to its ranks, so every
//! container's host sampler (`ATLAS_HOST_INDEX`) finds the job's processes on its node.
//!
//! With `share_ipc = true` on the target, every container joins the first worker's IPC
//! namespace (one `/dev/shm`), as the containers of one Kubernetes pod can; by default each has
//! its own and the ranks talk over the network alone.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use atlas_spec::Workflow;

use crate::podman::{unusable, IN_CONTAINER_RUN_DIR};
use crate::{process, BackendError, Job};

/// How long a worker's sshd may take to start.
const SSHD_START: Duration = Duration::from_secs(30);

/// How long the workers get, after the main container ended, to take their last sample.
const WORKER_GRACE: Duration = Duration::from_secs(3);

/// The home of the image's user (`atlas containerize` makes it group-writable).
const HOME: &str = "/home/atlas";

/// The containers and network of one multi-node run.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    pub network: String,
    pub workers: Vec<String>,
}

/// How many containers the workflow runs as on podman: its node count when it starts its
/// ranks with an MPI launcher (its image then has sshd), else 1.
pub(crate) fn count(workflow: &Workflow) -> u32 {
    use atlas_emit::k8s::{auto_flavor, Flavor, ServerVersion};
    let nodes = workflow.spec.resources.nodes.unwrap_or(1);
    if nodes > 1 && auto_flavor(workflow, ServerVersion::NEWEST) == Flavor::Mpijob {
        nodes
    } else {
        1
    }
}

/// The name of node `index`'s container.
pub(crate) fn container(main: &str, index: u32) -> String {
    if index == 0 {
        main.to_string()
    } else {
        format!("{main}-node{index}")
    }
}

/// Makes the run's key, hostfile and network and starts the workers; the arguments the main
/// container adds before its image. `base` is the `podman run` arguments every container shares
/// (its `--name` is replaced per worker).
pub(crate) fn start(
    job: &Job<'_>,
    workflow: &Workflow,
    main: &str,
    base: &[String],
    image: &str,
    uid: u32,
    share_ipc: bool,
) -> Result<(Nodes, Vec<String>), BackendError> {
    let count = count(workflow);
    let ssh = job.run_dir.join("ssh");
    make_key(&ssh, Some(uid))
        .map_err(|e| unusable(format!("cannot make the run's ssh key: {e}")))?;
    let slots = slots(workflow);
    let hostfile: String = (0..count)
        .map(|i| format!("node{i} slots={slots}\n"))
        .collect();
    std::fs::write(job.run_dir.join("hostfile"), hostfile)
        .map_err(|e| unusable(format!("cannot write the hostfile: {e}")))?;
    let mut nodes = Nodes {
        network: main.to_string(),
        workers: Vec::new(),
    };
    process::output("podman", &["network", "create", main]).map_err(unusable)?;
    let shared = |index: u32| {
        let mut args = vec![
            "--network".to_string(),
            main.to_string(),
            "--network-alias".into(),
            format!("node{index}"),
            "--hostname".into(),
            format!("node{index}"),
            // An entry of its own for the random UID, with the home the key is mounted in.
            "--passwd-entry".into(),
            format!("atlas:*:$UID:0:atlas:{HOME}:/bin/bash"),
            "--volume".into(),
            format!("{}:{HOME}/.ssh", ssh.display()),
            "--env".into(),
            format!("ATLAS_HOST_INDEX={index}"),
        ];
        if share_ipc {
            args.push(match index {
                1 => "--ipc=shareable".into(),
                _ => format!("--ipc=container:{}", container(main, 1)),
            });
        }
        args
    };
    for index in 1..count {
        let name = container(main, index);
        let mut args = renamed(base, &name);
        args.insert(1, "--detach".into());
        args.extend(shared(index));
        args.extend([image.to_string(), "--sshd".into()]);
        if let Err(why) = run_detached(&args) {
            stop(&nodes);
            return Err(unusable(format!("cannot start {name}: {why}")));
        }
        nodes.workers.push(name);
    }
    if let Err(why) = wait_for_sshd(&nodes.workers) {
        stop(&nodes);
        return Err(unusable(why));
    }
    let mut extra = shared(0);
    extra.extend([
        "--env".into(),
        format!("OMPI_MCA_orte_default_hostfile={IN_CONTAINER_RUN_DIR}/hostfile"),
        // Open MPI passes only its own variables to ranks it starts over ssh: add the run's.
        "--env".into(),
        "OMPI_MCA_mca_base_env_list=ATLAS_RUN_ID;ATLAS_RUN_DIR;ATLAS_INTERVAL".into(),
    ]);
    Ok((nodes, extra))
}

/// One container of a job that starts `mpirun`: a hostfile of `localhost` with the job's
/// ranks per node, so Open MPI starts what the job asked for rather than one rank per core it
/// sees (a container's CPU quota does not hide the machine's cores). The arguments to add.
pub(crate) fn one_node(job: &Job<'_>, workflow: &Workflow) -> Result<Vec<String>, BackendError> {
    if workflow.spec.launcher.kind != atlas_spec::LauncherKind::Mpirun {
        return Ok(Vec::new());
    }
    std::fs::write(
        job.run_dir.join("hostfile"),
        format!("localhost slots={}\n", slots(workflow)),
    )
    .map_err(|e| unusable(format!("cannot write the hostfile: {e}")))?;
    Ok(vec![
        "--env".into(),
        format!("OMPI_MCA_orte_default_hostfile={IN_CONTAINER_RUN_DIR}/hostfile"),
    ])
}

/// Ranks per node: the job's tasks per node, as every target counts them.
fn slots(workflow: &Workflow) -> u32 {
    atlas_emit::k8s::pod::PerNode::of(workflow).tasks
}

/// `base` with its `--name` value replaced.
fn renamed(base: &[String], name: &str) -> Vec<String> {
    let mut args = base.to_vec();
    if let Some(i) = args.iter().position(|a| a == "--name") {
        if let Some(value) = args.get_mut(i + 1) {
            *value = name.to_string();
        }
    }
    args
}

/// A key pair for the run (`id_rsa` is the name the image's sshd and ssh look for; the key is
/// ed25519), its public half authorized, owned by the containers' UID when one is given.
pub(crate) fn make_key(dir: &Path, uid: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let key = dir.join("id_rsa");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(dir.join("id_rsa.pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "atlas-run", "-f"])
        .arg(&key)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::copy(dir.join("id_rsa.pub"), dir.join("authorized_keys"))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if uid.is_some() {
            std::os::unix::fs::chown(&path, uid, Some(0))?;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    if uid.is_some() {
        std::os::unix::fs::chown(dir, uid, Some(0))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn run_detached(args: &[String]) -> Result<(), String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    process::output("podman", &args).map(|_| ())
}

/// Waits until every worker's sshd has written its pid file.
fn wait_for_sshd(workers: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let pid_file = format!("{HOME}/sshd.pid");
    for worker in workers {
        loop {
            if process::output("podman", &["exec", worker, "test", "-s", &pid_file]).is_ok() {
                break;
            }
            if started.elapsed() > SSHD_START {
                let logs =
                    process::output("podman", &["logs", "--tail", "5", worker]).unwrap_or_default();
                return Err(format!(
                    "{worker}: sshd did not start within {} s (is openssh-server in the image?) {logs}",
                    SSHD_START.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Stops the workers (after a short grace for their last sample: each stops by itself once
/// the run has ended) and removes the network. Idempotent.
pub(crate) fn stop(nodes: &Nodes) {
    let deadline = Instant::now() + WORKER_GRACE;
    for worker in &nodes.workers {
        while Instant::now() < deadline
            && process::output("podman", &["container", "exists", worker]).is_ok()
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = process::output("podman", &["rm", "--force", "--time", "0", worker]);
    }
    if !nodes.network.is_empty() {
        let _ = process::output("podman", &["network", "rm", "--force", &nodes.network]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_tasks_per_node_or_spread_tasks() {
        let mut w = Workflow::default();
        w.spec.resources.nodes = Some(3);
        w.spec.resources.tasks = Some(7);
        assert_eq!(slots(&w), 3);
        w.spec.resources.tasks_per_node = Some(2);
        assert_eq!(slots(&w), 2);
        w.spec.resources = Default::default();
        assert_eq!(slots(&w), 1);
    }

    #[test]
    fn a_worker_gets_its_own_name_and_the_rest_is_kept() {
        let base: Vec<String> = ["run", "--rm", "--name", "atlas-r1", "--cpus=1"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            renamed(&base, &container("atlas-r1", 2)),
            ["run", "--rm", "--name", "atlas-r1-node2", "--cpus=1"]
        );
        assert_eq!(container("atlas-r1", 0), "atlas-r1");
    }

    #[test]
    fn only_mpi_jobs_of_several_nodes_get_several_containers() {
        let mut w = Workflow::default();
        w.spec.resources.nodes = Some(2);
        assert_eq!(count(&w), 1, "no launcher: one container");
        w.spec.launcher.kind = atlas_spec::LauncherKind::Mpirun;
        assert_eq!(count(&w), 2);
        w.spec.resources.nodes = Some(1);
        assert_eq!(count(&w), 1);
    }
}
