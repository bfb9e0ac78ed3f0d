//! Running a Workflow's phases in order inside the job: one `bash -c` per phase in its own
//! process group, sampled every interval, its output logged and scanned, its end classified.
//! Lifecycle: start → phases (sample, watch walltime and signals) → end record → flush.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atlas_spec::record::{FailureCause, PhaseStatus, RecordBody};
use atlas_spec::{Phase, Workflow};

use crate::cgroup::JobCgroup;
use crate::gpu::{self, GpuDevices};
use crate::process::{own_cpu_seconds, try_reap};
use crate::procfs::{sample_node, sample_tree, Kernel, NodeFigures, TreeScanner};
use crate::signals;

mod frozen;
mod phase;
mod resume;
use crate::spool::SpoolWriter;
use crate::warning::Warnings;

/// How to run.
pub struct AgentConfig {
    /// The run's id, written into every record.
    pub run_id: String,
    /// Where the spool and logs go.
    pub run_dir: PathBuf,
    /// Sampling interval.
    pub interval: Duration,
    /// Time between SIGTERM and SIGKILL when stopping a phase.
    pub grace: Duration,
    /// Copy the phases' output to the agent's own stdout/stderr.
    pub passthrough: bool,
    /// Write every record to stdout as well as to the spool (the pod log carries them out of
    /// a Kubernetes job; use with `passthrough` off).
    pub records_to_stdout: bool,
    /// Where warnings go (the agent prints nothing of its own).
    pub warnings: Warnings,
    /// Keep a copy of each checkpoint a freeze lands in the run directory, and put it back at
    /// a resume when the working directory lost it (a pod deleted and created again).
    pub keep_checkpoint: bool,
    /// A stop signal (SIGTERM) while a phase runs is a window's close: the phase is frozen
    /// with its checkpoint and the agent leaves quietly (a pod deleted by `atlas emit k8s
    /// --windows`'s close); the run resumes in the agent started at the open.
    pub freeze_on_stop: bool,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: PhaseStatus,
    pub cause: Option<FailureCause>,
    /// The agent left a frozen run for its scheduler to requeue (the run has not ended: the
    /// agent started again resumes it).
    pub released: bool,
}

/// Why the agent itself could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot write the run directory {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the spool: {0}")]
    Spool(#[from] std::io::Error),
    /// Started again (a requeued job) into a spool it cannot go on from.
    #[error("{0}")]
    NotResumable(String),
}

enum Msg {
    /// Boxed: a record is much larger than the other messages.
    Record(Box<RecordBody>),
    Exited,
    PumpDone,
    Signal,
}

/// Everything the run loop keeps between phases.
struct Agent<'a> {
    config: &'a AgentConfig,
    workflow: &'a Workflow,
    spool: SpoolWriter,
    kernel: Kernel,
    scanner: TreeScanner,
    cgroup: Option<JobCgroup>,
    gpus: Box<dyn GpuDevices>,
    visible_gpus: Vec<u32>,
    deadline: Option<Instant>,
    /// CPU seconds (user, system) of processes already reaped by the agent.
    reaped_cpu: (f64, f64),
    previous_node: Option<NodeFigures>,
    /// The freeze under way was a stop taken for a window's close (`--freeze-on-stop`): once
    /// frozen, the agent leaves quietly.
    leave_when_frozen: bool,
    self_pid: i32,
    /// The running phase's shell: reaped by `run_phase`, never as an orphan.
    phase_pid: Option<i32>,
    /// A freeze asked while the last phase was ending (when its signal went): the run freezes
    /// before the next phase starts.
    pending_freeze: Option<Instant>,
    /// Frozen, the job was taken back by its scheduler to be requeued: the agent leaves.
    released: bool,
}

/// Runs `workflow` with the GPU source `gpus`; returns how it ended.
pub fn run(
    workflow: &Workflow,
    config: &AgentConfig,
    mut gpus: Box<dyn GpuDevices>,
) -> Result<RunOutcome, AgentError> {
    let run_dir = atlas_spec::RunDir::new(&config.run_dir);
    let logs = run_dir.logs();
    std::fs::create_dir_all(&logs).map_err(|source| AgentError::RunDir {
        path: logs.clone(),
        source,
    })?;
    // Before any thread starts (the pusher's): a thread that has the stop and control signals
    // unblocked would take them, and their default action would end the agent.
    signals::install();
    signals::become_subreaper();
    let started = Instant::now();
    // A run this agent's predecessor left frozen (its job requeued) goes on where it stopped.
    let resume = resume::find(&run_dir.spool(), &config.run_id, &workflow.spec.phases)
        .map_err(AgentError::NotResumable)?;
    let last_seq = resume.as_ref().map_or(0, |r| r.last_seq);
    let mut spool = SpoolWriter::open(&run_dir.spool(), &config.run_id, last_seq, started)?;
    if config.records_to_stdout {
        let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
        spool = spool.with_mirror(Box::new(stdout));
    }
    if let Some(target) = crate::push::PushTarget::from_env() {
        spool = spool.with_mirror(Box::new(crate::push::Pusher::start(
            target,
            config.warnings.clone(),
        )));
    }
    let cuda = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let nvidia = std::env::var("NVIDIA_VISIBLE_DEVICES").ok();
    let visible_gpus = gpu::visible_devices(gpus.as_mut(), cuda.as_deref(), nvidia.as_deref());
    let mut agent = Agent {
        config,
        workflow,
        spool,
        kernel: Kernel::new(),
        scanner: TreeScanner::new(std::process::id() as i32),
        cgroup: JobCgroup::detect(),
        gpus,
        visible_gpus,
        deadline: workflow.spec.resources.walltime.and_then(|w| {
            // Resumed: the walltime left after what the run used before it froze.
            let used = resume.as_ref().map_or(0.0, |r| {
                (r.frozen_at - r.run_started - r.frozen_before).max(0.0)
            });
            let left = Duration::from(w).saturating_sub(Duration::from_secs_f64(used));
            started.checked_add(left)
        }),
        reaped_cpu: (0.0, 0.0),
        previous_node: None,
        leave_when_frozen: false,
        self_pid: std::process::id() as i32,
        phase_pid: None,
        pending_freeze: None,
        released: false,
    };
    match &resume {
        None => agent.start_record()?,
        Some(r) => agent.resumed_record(r)?,
    }
    let mut first_failure: Option<FailureCause> = None;
    let mut failed = false;
    for (index, phase) in workflow.spec.phases.iter().enumerate() {
        // Resumed: the phases before the frozen one have ended (their records say how).
        let resumed = match &resume {
            Some(r) if index < r.phase => continue,
            Some(r) if index == r.phase => r.resumed,
            _ => None,
        };
        if failed {
            agent.skip(phase)?;
            continue;
        }
        if let Some(asked) = agent.pending_freeze.take() {
            match agent.freeze_between(phase, asked)? {
                None => {}
                Some(frozen::Stop::Released) => return agent.released_outcome(),
                Some(frozen::Stop::Signal(signal)) => {
                    first_failure.get_or_insert(FailureCause::Cancelled { signal });
                    failed = true;
                    agent.skip(phase)?;
                    continue;
                }
            }
        }
        let (status, cause) = agent.run_phase(index as u32, phase, resumed)?;
        if agent.released {
            return agent.released_outcome();
        }
        if status == PhaseStatus::Failed {
            if first_failure.is_none() {
                first_failure = cause.clone();
            }
            let stop = !phase.continue_on_error
                || matches!(
                    cause,
                    Some(FailureCause::Cancelled { .. } | FailureCause::WalltimeExceeded { .. })
                );
            failed |= stop;
        }
    }
    agent.stop_leftovers();
    let status = if first_failure.is_some() {
        PhaseStatus::Failed
    } else {
        PhaseStatus::Succeeded
    };
    // From the run's start: a resumed run's counts from its first agent's.
    let wall_seconds = match &resume {
        Some(r) => (crate::spool::unix_now() - r.run_started).max(0.0),
        None => started.elapsed().as_secs_f64(),
    };
    agent.spool.append(RecordBody::RunEnd {
        status,
        cause: first_failure.clone(),
        wall_seconds,
        agent_cpu_seconds: own_cpu_seconds(),
        run_dir_bytes: crate::rundir_io::dir_bytes(&config.run_dir),
    })?;
    agent.spool.sync()?;
    Ok(RunOutcome {
        status,
        cause: first_failure,
        released: false,
    })
}

impl Agent<'_> {
    /// Leaves a frozen run to its scheduler: what was recorded is on disk; nothing ends.
    fn released_outcome(&mut self) -> Result<RunOutcome, AgentError> {
        self.spool.sync()?;
        // Not an end: the status says nothing (the agent started again will end the run).
        Ok(RunOutcome {
            status: PhaseStatus::Succeeded,
            cause: None,
            released: true,
        })
    }

    /// The wake of a run this agent resumes: how long it was frozen, and where it runs now.
    fn resumed_record(&mut self, resume: &resume::Resume) -> std::io::Result<()> {
        let phase = &self.workflow.spec.phases[resume.phase];
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string();
        let agent = crate::procfs::process_start(self.self_pid as u32).map(|start| {
            atlas_spec::record::AgentProcess {
                pid: self.self_pid as u32,
                start,
            }
        });
        self.spool.append(RecordBody::Wake {
            phase: phase.name.clone(),
            frozen_seconds: (crate::spool::unix_now() - resume.frozen_at).max(0.0),
            host: Some(host),
            agent,
        })?;
        self.spool.flush()
    }

    fn start_record(&mut self) -> std::io::Result<()> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string();
        let gpu = match (self.gpus.count(), self.visible_gpus.len()) {
            (0, _) => "no GPU visible (no NVML)".to_string(),
            (all, given) => format!("{given} of {all} devices"),
        };
        let source = match &self.cgroup {
            Some(c) => format!("process tree + {}", c.describe()),
            None => "process tree".to_string(),
        };
        // SAFETY: CPU_COUNT-style query through sched_getaffinity on a zeroed set.
        let cpus = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                libc::CPU_COUNT(&set) as u32
            } else {
                1
            }
        };
        self.spool.append(RecordBody::RunStart {
            workflow: self.workflow.metadata.name.clone(),
            host,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            phases: self
                .workflow
                .spec
                .phases
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            interval_ms: self.config.interval.as_millis() as u64,
            cpus,
            gpu,
            source,
            node: crate::procfs::node_type(),
            agent: crate::procfs::process_start(self.self_pid as u32).map(|start| {
                atlas_spec::record::AgentProcess {
                    pid: self.self_pid as u32,
                    start,
                }
            }),
            storage: crate::mounts::storage(self.workflow, &self.job_directory()),
        })?;
        self.spool.flush()
    }

    fn skip(&mut self, phase: &Phase) -> std::io::Result<()> {
        self.spool.append(RecordBody::PhaseEnd {
            phase: phase.name.clone(),
            status: PhaseStatus::Skipped,
            exit_code: None,
            signal: None,
            cause: None,
            wall_seconds: 0.0,
            cpu_user_seconds: 0.0,
            cpu_system_seconds: 0.0,
            max_rss_bytes: 0,
            io: None,
        })?;
        Ok(())
    }

    fn end_failed_to_start(
        &mut self,
        phase: &Phase,
        message: String,
    ) -> std::io::Result<(PhaseStatus, Option<FailureCause>)> {
        let cause = FailureCause::StartFailed { message };
        self.spool.append(RecordBody::PhaseEnd {
            phase: phase.name.clone(),
            status: PhaseStatus::Failed,
            exit_code: None,
            signal: None,
            cause: Some(cause.clone()),
            wall_seconds: 0.0,
            cpu_user_seconds: 0.0,
            cpu_system_seconds: 0.0,
            max_rss_bytes: 0,
            io: None,
        })?;
        self.spool.flush()?;
        Ok((PhaseStatus::Failed, Some(cause)))
    }

    fn working_directory(&self, phase: &Phase) -> PathBuf {
        match &phase.working_directory {
            Some(dir) => PathBuf::from(dir),
            None => self.job_directory(),
        }
    }

    /// The job's working directory (a phase may name its own).
    fn job_directory(&self) -> PathBuf {
        self.workflow
            .spec
            .scheduling
            .working_directory
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    /// One job sample (and one node sample, labelled as such).
    fn sample(&mut self, phase: Option<&str>) -> std::io::Result<()> {
        let tree = sample_tree(&mut self.scanner, &self.kernel);
        self.reap_orphans(&tree.direct_children);
        let f = tree.figures;
        let gpus = gpu::sample(self.gpus.as_mut(), &self.visible_gpus, &tree.pids);
        self.spool.append(RecordBody::Sample {
            phase: phase.map(str::to_string),
            cpu_user_seconds: self.reaped_cpu.0 + f.cpu_user,
            cpu_system_seconds: self.reaped_cpu.1 + f.cpu_system,
            rss_bytes: f.rss_bytes,
            read_bytes: f.read_bytes,
            write_bytes: f.write_bytes,
            threads: f.threads,
            processes: f.processes,
            cgroup_memory_bytes: self.cgroup.as_ref().and_then(JobCgroup::memory_bytes),
            gpus,
        })?;
        let node = sample_node();
        let busy = match self.previous_node {
            Some(prev) if node.cpu_jiffies.1 > prev.cpu_jiffies.1 => {
                (node.cpu_jiffies.0 - prev.cpu_jiffies.0) as f64
                    / (node.cpu_jiffies.1 - prev.cpu_jiffies.1) as f64
            }
            _ => 0.0,
        };
        self.previous_node = Some(node);
        self.spool.append(RecordBody::NodeSample {
            load1: node.load1,
            memory_total_bytes: node.memory_total,
            memory_available_bytes: node.memory_available,
            cpu_busy_fraction: busy,
        })?;
        Ok(())
    }

    /// Daemonized processes re-parented to the agent: reap them when they end, keeping their CPU.
    fn reap_orphans(&mut self, direct_children: &[i32]) {
        for &pid in direct_children
            .iter()
            .filter(|p| Some(**p) != self.phase_pid)
        {
            if let Some(usage) = try_reap(pid) {
                self.reaped_cpu.0 += usage.0;
                self.reaped_cpu.1 += usage.1;
            }
        }
    }

    /// At the end of the run, processes left behind (daemons) are stopped, as a scheduler would.
    fn stop_leftovers(&mut self) {
        let left = crate::procfs::descendants(self.self_pid);
        if left.is_empty() {
            return;
        }
        for &pid in &left {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        std::thread::sleep(Duration::from_millis(200));
        for pid in crate::procfs::descendants(self.self_pid) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for pid in left {
            try_reap(pid);
        }
    }
}
