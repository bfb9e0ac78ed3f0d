//! Workflow → a container build context: Containerfile, entrypoint and Apptainer definition that
//! run the workflow under `atlas agent` inside the image.
//!
//! OpenShift's rules are followed: the image runs under any UID with group 0 (no fixed `USER`;
//! HOME and the work directory group-writable; a passwd entry for the UID added at start), and
//! GPUs come only through the runtime's device flags, never `NVIDIA_VISIBLE_DEVICES=all`.

use atlas_spec::Workflow;

use crate::quote::shell_quote;

/// The default base image, made offline by `scripts/base-image` (no registry here).
pub const DEFAULT_BASE: &str = "localhost/atlas-base:bookworm";

/// The files of a build context, and what could not be carried into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFiles {
    pub containerfile: String,
    pub entrypoint: String,
    pub apptainer: String,
    /// What the image does not carry over from the cluster, and what Atlas did instead.
    pub notes: Vec<String>,
}

/// Why a workflow cannot be containerized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// A package name that apt would not accept (and that must not reach a shell).
    #[error("`{0}` is not a Debian package name (letters, digits, and . + - : = only)")]
    BadPackage(String),
    /// A base image reference with characters an image name cannot have.
    #[error("`{0}` is not an image reference")]
    BadImage(String),
}

fn check_package(name: &str) -> Result<(), ContainerError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".+-:=~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ContainerError::BadPackage(name.into()))
    }
}

fn check_image(image: &str) -> Result<(), ContainerError> {
    let ok = !image.is_empty()
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ContainerError::BadImage(image.into()))
    }
}

/// What the cluster provided that an image does not, said plainly.
fn notes(workflow: &Workflow) -> Vec<String> {
    let env = &workflow.spec.environment;
    let mut notes = vec![
        "the project's own files (the scripts next to the workflow) are not copied into the image: mount the project directory at /work (the podman backend will) or add COPY lines".to_string(),
    ];
    if !env.modules.is_empty() {
        notes.push(format!(
            "environment modules ({}) do not exist in the image: their `module load` lines will fail there; install the software with spec.image.packages or spec.image.pip",
            env.modules.join(", ")
        ));
    }
    if let Some(conda) = &env.conda {
        notes.push(format!(
            "the conda environment `{conda}` lives on the cluster's shared filesystem and is not in the image: list its packages in spec.image.pip (or build a conda image as the base)"
        ));
    }
    if let Some(venv) = &env.venv {
        notes.push(format!("the virtual environment `{venv}` is not in the image: list its packages in spec.image.pip"));
    }
    let r = &workflow.spec.resources;
    if r.gpus_per_node.or(r.gpus_per_task).or(r.gpus).is_some() {
        notes.push("GPUs are requested through the runtime's device flags at run time (podman --device, Kubernetes nvidia.com/gpu), never NVIDIA_VISIBLE_DEVICES=all in the image".into());
    }
    if !workflow.spec.data.inputs.is_empty() {
        notes.push("inputs are mounted at run time, not copied into the image".into());
    }
    let base = workflow
        .spec
        .image
        .as_ref()
        .and_then(|i| i.base.as_deref())
        .unwrap_or(DEFAULT_BASE);
    if base.starts_with("localhost/") {
        notes.push(format!("warning: the base image {base} exists only on this machine: another machine, a cluster or an OpenShift BuildConfig cannot pull it; give --base-image REGISTRY/IMAGE (or spec.image.base)"));
    }
    notes
}

/// The shell commands that install the image's software, shared by the Containerfile and the
/// Apptainer definition. Package names are checked by the caller; pip specs are quoted here.
fn install_commands(packages: &[String], pip: &[String]) -> Vec<String> {
    let mut commands = vec![
        "apt-get update".to_string(),
        format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
            packages.join(" ")
        ),
        "rm -rf /var/lib/apt/lists/*".to_string(),
    ];
    if !pip.is_empty() {
        let specs: Vec<String> = pip.iter().map(|p| shell_quote(p)).collect();
        commands.push(format!(
            "pip3 install --no-cache-dir --break-system-packages {}",
            specs.join(" ")
        ));
    }
    commands
}

/// The build context for `workflow`. The context directory also gets `atlas` (the binary) and
/// `workflow.yaml`, which the caller writes.
pub fn container_files(workflow: &Workflow) -> Result<ContainerFiles, ContainerError> {
    let image = workflow.spec.image.clone().unwrap_or_default();
    let base = image.base.as_deref().unwrap_or(DEFAULT_BASE);
    check_image(base)?;
    let mut packages: Vec<String> = vec!["bash".into(), "ca-certificates".into()];
    for p in &image.packages {
        check_package(p)?;
        packages.push(p.clone());
    }
    if !image.pip.is_empty() {
        packages.extend(["python3".to_string(), "python3-pip".to_string()]);
    }
    // An MPI job's ranks start over ssh (the MPI Operator's workers run sshd).
    let ssh = crate::k8s::auto_flavor(workflow, crate::k8s::ServerVersion::NEWEST)
        == crate::k8s::Flavor::Mpijob;
    if ssh {
        packages.extend(["openssh-server".to_string(), "openssh-client".to_string()]);
    }
    let mut install = install_commands(&packages, &image.pip);
    if ssh {
        install.push("mkdir -p /run/sshd".into());
        install.push("printf 'Host *\\n  Port 2222\\n  StrictHostKeyChecking no\\n  UserKnownHostsFile /dev/null\\n' >> /etc/ssh/ssh_config".into());
    }
    let mut containerfile = format!(
        "# Written by `atlas containerize` for workflow {name}.\n\
         # Build: podman build -t {name} .   (the base image comes from scripts/base-image)\n\
         FROM {base}\n\
         RUN {install}\n",
        name = workflow.metadata.name,
        install = install.join(" \\\n    && "),
    );
    containerfile += "COPY atlas /usr/local/bin/atlas\n\
         COPY workflow.yaml /opt/atlas/workflow.yaml\n\
         COPY entrypoint.sh /opt/atlas/entrypoint.sh\n\
         # Any UID, group 0 (OpenShift): group-writable home and work directory, passwd writable\n\
         # by group 0 so the entrypoint can add the UID; no USER line.\n\
         RUN mkdir -p /home/atlas /work /atlas/run \\\n    && chgrp -R 0 /home/atlas /work /atlas /opt/atlas \\\n    && chmod -R g=u /home/atlas /work /atlas /opt/atlas \\\n    && chmod g=u /etc/passwd \\\n    && chmod 0755 /usr/local/bin/atlas /opt/atlas/entrypoint.sh\n\
         ENV HOME=/home/atlas\n\
         WORKDIR /work\n\
         ENTRYPOINT [\"/opt/atlas/entrypoint.sh\"]\n";
    let entrypoint = "#!/bin/bash\n\
         # Runs the workflow under the Atlas agent. Under an arbitrary UID (OpenShift) there is no\n\
         # passwd entry; some programs (ssh, Python's getpass, conda) need one, so add it.\n\
         set -euo pipefail\n\
         if ! whoami >/dev/null 2>&1 && [ -w /etc/passwd ]; then\n  \
           echo \"atlas:x:$(id -u):0:atlas:${HOME:-/home/atlas}:/bin/bash\" >> /etc/passwd\n\
         fi\n\
         # One node of a multi-node run (podman, one container per node): this node's sampler.\n\
         if [ -n \"${ATLAS_HOST_INDEX:-}\" ]; then\n  \
           /usr/local/bin/atlas agent-host --run-id \"${ATLAS_RUN_ID:?set ATLAS_RUN_ID}\" \\\n    \
             --run-dir \"${ATLAS_RUN_DIR:-/atlas/run}\" --index \"$ATLAS_HOST_INDEX\" \\\n    \
             --interval \"${ATLAS_INTERVAL:-1s}\" &\n  \
           sampler=$!\n\
         fi\n\
         # An MPI worker (MPIJob): sshd as this UID on port 2222 with the keys the MPI Operator\n\
         # mounts at $HOME/.ssh (sshAuthMountPath), instead of the agent.\n\
         if [ \"${1:-}\" = --sshd ]; then\n  \
           config=\"$HOME/.sshd_config\"\n  \
           printf 'Port 2222\\nHostKey %s/.ssh/id_rsa\\nPidFile %s/sshd.pid\\nStrictModes no\\nUsePAM no\\n' \"$HOME\" \"$HOME\" > \"$config\"\n  \
           if [ -z \"${sampler:-}\" ]; then exec /usr/sbin/sshd -De -f \"$config\"; fi\n  \
           # A worker of a run: serve until its sampler has seen the run end.\n  \
           /usr/sbin/sshd -De -f \"$config\" &\n  \
           wait \"$sampler\" || true\n  \
           exit 0\n\
         fi\n\
         exec /usr/local/bin/atlas agent /opt/atlas/workflow.yaml \\\n  \
           --run-id \"${ATLAS_RUN_ID:?set ATLAS_RUN_ID}\" \\\n  \
           --run-dir \"${ATLAS_RUN_DIR:-/atlas/run}\" \\\n  \
           --interval \"${ATLAS_INTERVAL:-1s}\" \"$@\"\n"
        .to_string();
    let mut apptainer = format!(
        "# Apptainer/Singularity definition written by `atlas containerize` (Apptainer is not packaged\n\
         # for Debian 12; build where it is installed: apptainer build {name}.sif atlas.def).\n\
         Bootstrap: docker\nFrom: {base}\n\n%files\n    atlas /usr/local/bin/atlas\n    workflow.yaml /opt/atlas/workflow.yaml\n\n%post\n",
        name = workflow.metadata.name,
    );
    for command in &install {
        apptainer += &format!("    {command}\n");
    }
    apptainer += "    chmod 0755 /usr/local/bin/atlas\n\n%runscript\n    exec /usr/local/bin/atlas agent /opt/atlas/workflow.yaml \\\n        --run-id \"${ATLAS_RUN_ID:?set ATLAS_RUN_ID}\" --run-dir \"${ATLAS_RUN_DIR:-$PWD/atlas-run}\" \"$@\"\n";
    Ok(ContainerFiles {
        containerfile,
        entrypoint,
        apptainer,
        notes: notes(workflow),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_spec::{Image, Resources};

    fn workflow() -> Workflow {
        let mut w = Workflow::default();
        w.metadata.name = "demo".into();
        w.spec.image = Some(Image {
            base: None,
            packages: vec!["python3-numpy".into()],
            pip: vec!["numpy>=1.24".into()],
        });
        w.spec.resources = Resources {
            gpus_per_node: Some(2),
            ..Default::default()
        };
        w.spec.environment.modules = vec!["cuda/11.8".into()];
        w.spec.environment.conda = Some("wmlce-1.6.2".into());
        w
    }

    #[test]
    fn the_image_runs_under_any_uid_with_group_0() {
        let f = container_files(&workflow()).unwrap();
        assert!(
            !f.containerfile
                .lines()
                .any(|l| l.trim_start().starts_with("USER")),
            "no fixed USER"
        );
        assert!(f.containerfile.contains("chgrp -R 0") && f.containerfile.contains("chmod -R g=u"));
        assert!(f.containerfile.contains("chmod g=u /etc/passwd"));
        assert!(f.entrypoint.contains(">> /etc/passwd"));
        assert!(f.containerfile.contains(&format!("FROM {DEFAULT_BASE}")));
    }

    #[test]
    fn gpus_never_come_from_nvidia_visible_devices_all() {
        let f = container_files(&workflow()).unwrap();
        for text in [&f.containerfile, &f.entrypoint, &f.apptainer] {
            assert!(!text.contains("NVIDIA_VISIBLE_DEVICES"), "{text}");
        }
        assert!(f.notes.iter().any(|n| n.contains("device flags")));
    }

    #[test]
    fn what_cannot_be_carried_over_is_said() {
        let f = container_files(&workflow()).unwrap();
        assert!(f.notes.iter().any(|n| n.contains("cuda/11.8")));
        assert!(f.notes.iter().any(|n| n.contains("wmlce-1.6.2")));
    }

    #[test]
    fn packages_are_checked_and_pip_specs_quoted() {
        let f = container_files(&workflow()).unwrap();
        assert!(
            f.containerfile.contains("python3-numpy") && f.containerfile.contains("'numpy>=1.24'"),
            "the `>` would redirect"
        );
        let mut bad = workflow();
        bad.spec.image.as_mut().unwrap().packages = vec!["vim; rm -rf /".into()];
        assert!(matches!(
            container_files(&bad),
            Err(ContainerError::BadPackage(_))
        ));
    }

    #[test]
    fn the_entrypoint_is_valid_bash() {
        let f = container_files(&workflow()).unwrap();
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", &f.entrypoint])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
