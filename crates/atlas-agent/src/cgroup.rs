//! The job's cgroup, when it has one of its own (a Slurm job, or when the launcher made one
//! for it and says so with `ATLAS_OWN_CGROUP=1`; a container's cgroup may hold more than the
//! job, so being in a container is not enough): memory use and the kernel's OOM-kill count.
//! cgroup v2 (`memory.current`, `memory.events`) and v1 (`memory.usage_in_bytes`,
//! `memory.oom_control`).

use std::path::PathBuf;

/// The job's memory cgroup.
#[derive(Debug, Clone)]
pub struct JobCgroup {
    dir: PathBuf,
    v2: bool,
}

impl JobCgroup {
    /// Finds the agent's own memory cgroup, if it belongs to the job alone.
    pub fn detect() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let told = std::env::var("ATLAS_OWN_CGROUP").is_ok_and(|v| v == "1");
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let own = told || path.contains("/job_");
            if !own {
                continue;
            }
            let rel = path.trim_start_matches('/');
            let (mount, file, v2) = if controllers.split(',').any(|c| c == "memory") {
                ("/sys/fs/cgroup/memory", "memory.usage_in_bytes", false)
            } else if controllers.is_empty() {
                ("/sys/fs/cgroup", "memory.current", true)
            } else {
                continue;
            };
            // Inside a container (podman on cgroup v1) /proc shows the host's path while the
            // mount shows only the container's own subtree: then the mount root is the cgroup.
            let inside_container = told.then(|| PathBuf::from(mount));
            let found = std::iter::once(PathBuf::from(mount).join(rel))
                .chain(inside_container)
                .find(|dir| dir.join(file).exists());
            if let Some(dir) = found {
                return Some(JobCgroup { dir, v2 });
            }
        }
        None
    }

    /// `cgroup v2` or `cgroup v1`.
    pub fn describe(&self) -> &'static str {
        if self.v2 {
            "cgroup v2"
        } else {
            "cgroup v1"
        }
    }

    /// Memory in use, bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
    }
}
