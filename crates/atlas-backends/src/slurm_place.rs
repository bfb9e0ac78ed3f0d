//! Where a Slurm target's commands run and its runs' directories are: this machine, or the
//! login node over SSH (a target with `host`). `atlas windows` freezes, gives back and wakes a
//! Slurm run through it the same way in both places.

use crate::remote::Ssh;
use crate::target::Named;

/// The default remote work directory, as the SSH target's.
const DEFAULT_WORKDIR: &str = "/scratch/atlas";

/// A Slurm target's place.
pub struct SlurmPlace {
    ssh: Option<Ssh>,
    workdir: String,
}

impl SlurmPlace {
    /// The place of `target` (a `slurm` target).
    pub fn of(target: &Named) -> SlurmPlace {
        let t = &target.target;
        SlurmPlace {
            ssh: t
                .host
                .as_deref()
                .map(|host| Ssh::new(host, t.ssh_config.as_deref())),
            workdir: t.workdir.clone().unwrap_or_else(|| DEFAULT_WORKDIR.into()),
        }
    }

    /// Runs a command there; its standard output, or why it failed.
    pub fn run(&self, argv: &[&str]) -> Result<String, String> {
        match &self.ssh {
            Some(ssh) => ssh.run(argv).map_err(|e| e.to_string()),
            None => {
                let out = std::process::Command::new(argv[0])
                    .args(&argv[1..])
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
                if !out.status.success() {
                    return Err(format!(
                        "{}: {}",
                        argv.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
            }
        }
    }

    /// The job id in a run's stored scheduler id: `123` here, `HOST:123` over SSH.
    pub fn job_id<'a>(&self, scheduler_id: &'a str) -> Option<&'a str> {
        let id = match &self.ssh {
            Some(_) => scheduler_id.rsplit_once(':')?.1,
            None => scheduler_id,
        };
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
    }

    /// Writes `word` into run `run`'s control file: in `local_dir` here, in the run's
    /// directory on the cluster over SSH.
    pub fn write_control(&self, run: &str, local_dir: &str, word: &str) -> Result<(), String> {
        atlas_spec::check_name(run).map_err(|e| format!("run `{run}`: {e}"))?;
        match &self.ssh {
            None => {
                let path = atlas_spec::RunDir::new(local_dir).control();
                std::fs::write(&path, format!("{word}\n"))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            Some(ssh) => {
                let path = format!("{}/runs/{run}/control", self.workdir);
                let script = "printf '%s\\n' \"$1\" > \"$2\"";
                ssh.run(&["sh", "-c", script, "sh", word, &path])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}
