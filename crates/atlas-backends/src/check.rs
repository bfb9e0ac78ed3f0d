//! `atlas targets check`: whether each target's tools are installed and reachable.

use crate::process::{installed, output};
use crate::target::{Kind, Named};

/// Whether the target can be used from here: (usable, what was found).
pub fn check(target: &Named) -> (bool, String) {
    let t = &target.target;
    match t.kind {
        Kind::Local => match installed("bash") {
            true => (true, "bash, /proc".into()),
            false => (false, "bash is not installed".into()),
        },
        Kind::Slurm if t.host.is_some() => {
            crate::slurm_ssh::check(target, t.host.as_deref().unwrap_or_default())
        }
        Kind::Slurm => {
            if let Some(missing) = ["sbatch", "squeue", "scancel", "sinfo"]
                .into_iter()
                .find(|p| !installed(p))
            {
                return (false, format!("{missing} is not installed (Debian: slurm-client; a local cluster: scripts/slurm-up)"));
            }
            match output("sinfo", &["-h", "-o", "%P|%a|%D|%T|%C"]) {
                Err(why) => (false, format!("the controller is unreachable: {why}")),
                Ok(table) => {
                    let rows: Vec<Vec<&str>> =
                        table.lines().map(|l| l.split('|').collect()).collect();
                    let wanted = t.partition.as_deref();
                    let row = rows
                        .iter()
                        .find(|r| wanted.is_none_or(|p| r[0].trim_end_matches('*') == p));
                    match row {
                        None => (
                            false,
                            format!("partition `{}` does not exist", wanted.unwrap_or("?")),
                        ),
                        Some(r) if r.len() == 5 => {
                            let cpus: Vec<&str> = r[4].split('/').collect();
                            let idle = cpus.get(1).copied().unwrap_or("?");
                            let usable = r[1] == "up";
                            (
                                usable,
                                format!(
                                    "partition {} {}, {} node(s) {}, {idle} CPUs idle",
                                    r[0].trim_end_matches('*'),
                                    r[1],
                                    r[2],
                                    r[3]
                                ),
                            )
                        }
                        Some(_) => (false, format!("unexpected sinfo output: {table}")),
                    }
                }
            }
        }
        Kind::Kubernetes => crate::kubernetes::check(target),
        Kind::Podman | Kind::PodmanKube => {
            if !installed("podman") {
                return (
                    false,
                    "podman is not installed (Debian: podman runc)".into(),
                );
            }
            let image = t.image.as_deref().unwrap_or(atlas_emit::DEFAULT_BASE);
            match output("podman", &["info", "--format", "{{.Host.OCIRuntime.Name}}"]) {
                Err(why) => (false, why),
                Ok(_) if output("podman", &["image", "exists", image]).is_err() => (
                    false,
                    format!("the base image {image} is missing (scripts/base-image builds it)"),
                ),
                Ok(runtime) => (true, format!("runtime {runtime}, base image {image}")),
            }
        }
    }
}
