//! The node agent's sampler (`atlas node-agent`): what runs on this node, from its processes.
//!
//! A node's use is the CPU its processes used, summed from each process's own user and system
//! time (`/proc/PID/stat`, without the reaped children's, which would count them twice) between
//! samples, in cores; with their resident memory, how many there are, and the share of each
//! job: a Slurm job (`SLURM_JOB_ID` in the process's environment) or a Kubernetes pod (`pod-UID`,
//! from the kubepods cgroup the process is in). Where several hosts share one kernel (the
//! namespaced test cluster), a process is on the node whose UTS namespace it is in
//! ([`Scope::Uts`]), so a node never shows the machine's counters as its own; on a Kubernetes
//! node every pod has a UTS namespace of its own, so there the agent (a DaemonSet with the
//! host's PID namespace) counts every process ([`Scope::Host`]). The kernel's own threads are
//! not counted.
//!
//! A window of samples (up to an hour) gives the average use over the last N minutes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The longest window kept.
const WINDOW: Duration = Duration::from_secs(3600);

/// The most processes one sample follows.
const MAX_PROCESSES: usize = 100_000;

/// One sample of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    /// Cores in use since the previous sample.
    pub cores: f64,
    pub rss_bytes: u64,
    pub processes: u32,
    /// Cores per Slurm job id.
    pub jobs: BTreeMap<String, f64>,
}

/// Which processes are the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Those in the agent's own UTS namespace (a host of the namespaced cluster, a plain host).
    #[default]
    Uts,
    /// Every process the agent can see (a DaemonSet pod in the host's PID namespace).
    Host,
}

/// A process seen before: its CPU seconds then, and its job.
struct Seen {
    cpu: f64,
    job: Option<String>,
}

/// Samples the node's processes and keeps the window.
pub struct NodeSampler {
    uts: Option<PathBuf>,
    ticks: f64,
    page: u64,
    seen: HashMap<i32, Seen>,
    last: Option<Instant>,
    window: VecDeque<(Instant, NodeSample)>,
    started: Instant,
}

impl Default for NodeSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeSampler {
    /// A sampler of the processes in this UTS namespace ([`Scope::Uts`]).
    pub fn new() -> NodeSampler {
        NodeSampler::with_scope(Scope::Uts)
    }

    /// A sampler of the processes `scope` takes.
    pub fn with_scope(scope: Scope) -> NodeSampler {
        let kernel = crate::procfs::Kernel::new();
        let uts = match scope {
            Scope::Uts => std::fs::read_link("/proc/self/ns/uts").ok(),
            Scope::Host => None,
        };
        NodeSampler {
            uts,
            ticks: kernel.ticks_per_second,
            page: kernel.page_size,
            seen: HashMap::new(),
            last: None,
            window: VecDeque::new(),
            started: Instant::now(),
        }
    }

    /// Takes a sample (the first only sets the baseline and returns none).
    pub fn sample(&mut self) -> Option<NodeSample> {
        let now = Instant::now();
        let me = std::process::id() as i32;
        let mut next: HashMap<i32, Seen> = HashMap::new();
        let (mut rss, mut cores_cpu) = (0u64, 0.0f64);
        let mut jobs: BTreeMap<String, f64> = BTreeMap::new();
        let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        for pid in pids.filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
            if pid == me || next.len() >= MAX_PROCESSES {
                continue;
            }
            if self.uts.is_some()
                && std::fs::read_link(format!("/proc/{pid}/ns/uts")).ok() != self.uts
            {
                continue;
            }
            let Some((cpu, pages)) = self.stat(pid) else {
                continue;
            };
            let (before, job) = match self.seen.remove(&pid) {
                Some(seen) => (Some(seen.cpu), seen.job),
                None => (None, slurm_job(pid).or_else(|| pod_of(pid))),
            };
            // A process first seen after the baseline counts from its start.
            let used = match (before, self.last) {
                (Some(before), _) => (cpu - before).max(0.0),
                (None, Some(_)) => cpu,
                (None, None) => 0.0,
            };
            cores_cpu += used;
            if let Some(job) = &job {
                *jobs.entry(job.clone()).or_default() += used;
            }
            rss += pages * self.page;
            next.insert(pid, Seen { cpu, job });
        }
        self.seen = next;
        let elapsed = self.last.map(|t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        let elapsed = elapsed.filter(|e| *e > 0.0)?;
        let sample = NodeSample {
            cores: cores_cpu / elapsed,
            rss_bytes: rss,
            processes: self.seen.len() as u32,
            jobs: jobs.into_iter().map(|(j, c)| (j, c / elapsed)).collect(),
        };
        self.window.push_back((now, sample.clone()));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.window.pop_front();
        }
        Some(sample)
    }

    /// User + system seconds of the process itself, and its resident pages.
    fn stat(&self, pid: i32) -> Option<(f64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command may hold spaces and parentheses: the fields start after the last ')'.
        let fields: Vec<&str> = text
            .get(text.rfind(')')? + 2..)?
            .split_whitespace()
            .collect();
        let number = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // After the command: state is field 0; utime 11, stime 12, rss 21.
        let cpu = (number(11)? + number(12)?) / self.ticks;
        Some((cpu, number(21)? as u64))
    }

    /// The average cores over the last `minutes` (or over what the window holds, if less), with
    /// how many minutes that covers.
    pub fn average(&self, minutes: f64) -> Option<(f64, f64)> {
        let now = self.last?;
        let since = Duration::from_secs_f64(minutes.max(0.0) * 60.0);
        let recent: Vec<f64> = self
            .window
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= since)
            .map(|(_, s)| s.cores)
            .collect();
        if recent.is_empty() {
            return None;
        }
        let covered = now
            .duration_since(self.started)
            .as_secs_f64()
            .min(since.as_secs_f64())
            / 60.0;
        Some((recent.iter().sum::<f64>() / recent.len() as f64, covered))
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<&NodeSample> {
        self.window.back().map(|(_, s)| s)
    }
}

/// The Slurm job a process belongs to, from its environment (when this user may read it).
fn slurm_job(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0).find_map(|v| {
        let id = v.strip_prefix(b"SLURM_JOB_ID=")?;
        let id = std::str::from_utf8(id).ok()?;
        (!id.is_empty()
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| id.to_string())
    })
}

/// The Kubernetes pod a process runs in (`pod-UID`), from its cgroup path: the kubelet puts
/// each pod under `kubepods…/pod<UID>` (cgroupfs driver) or `kubepods-…-pod<UID>.slice`
/// (systemd driver, with `_` for `-`).
fn pod_of(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    pod_in_cgroups(&text)
}

fn pod_in_cgroups(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .filter(|path| path.contains("kubepods"))
        .flat_map(|path| path.split('/'))
        .find_map(|part| {
            let uid = match part.rfind("-pod") {
                Some(at) => part[at + 4..].strip_suffix(".slice")?,
                None => part.strip_prefix("pod")?,
            };
            let uid = uid.replace('_', "-");
            (uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
                .then(|| format!("pod-{uid}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_in_a_kubepods_cgroup_belongs_to_its_pod() {
        let uid = "0b6f3a8e-6c2e-4c1a-9f0e-2d3c4b5a6978";
        let cgroupfs = format!("12:cpu,cpuacct:/kubepods/besteffort/pod{uid}/4f5e\n0::/\n");
        assert_eq!(pod_in_cgroups(&cgroupfs), Some(format!("pod-{uid}")));
        let systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-1.scope\n",
            uid.replace('-', "_")
        );
        assert_eq!(pod_in_cgroups(&systemd), Some(format!("pod-{uid}")));
        assert_eq!(pod_in_cgroups("0::/user.slice/session-1.scope\n"), None);
        assert_eq!(pod_in_cgroups("4:memory:/kubepods/podnot-a-uid/x\n"), None);
    }

    #[test]
    fn a_busy_process_shows_as_cores_and_the_window_averages() {
        let mut sampler = NodeSampler::new();
        assert!(
            sampler.sample().is_none(),
            "the first sample is the baseline"
        );
        // Burn CPU in this process's thread for a while; the sampler skips only itself, and
        // this test runs in the test binary (a separate process from nothing: it is `me`), so
        // spawn a busy child instead.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let sample = sampler.sample().expect("a second sample");
        let _ = child.kill();
        let _ = child.wait();
        assert!(sample.processes >= 1);
        assert!(sample.cores > 0.05, "{sample:?}");
        let (average, covered) = sampler.average(10.0).unwrap();
        assert!(average > 0.0 && covered < 1.0, "{average} {covered}");
    }
}
