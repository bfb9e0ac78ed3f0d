//! Running a Workflow's phases in order inside the job: one `bash -c` per phase in its own
//! process group, sampled every interval, its output logged and scanned, its end classified.
//! Lifecycle: start → phases (sample, watch walltime and signals) → end record → flush.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use atlas_spec::record::{FailureCause, PhaseStatus, RecordBody};
use atlas_spec::{Phase, Stream, Workflow};

use crate::cgroup::JobCgroup;
use crate::gpu::{self, GpuDevices};
use crate::output::{pump, Recognisers};
use crate::process::{classify, own_cpu_seconds, reap, try_reap};
use crate::procfs::{sample_node, sample_tree, Kernel, NodeFigures, TreeScanner};
use crate::signals;
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
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: PhaseStatus,
    pub cause: Option<FailureCause>,
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
    self_pid: i32,
    /// The running phase's shell: reaped by `run_phase`, never as an orphan.
    phase_pid: Option<i32>,
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
    let started = Instant::now();
    let mut spool = SpoolWriter::open(&run_dir.spool(), &config.run_id, 0, started)?;
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
    signals::install();
    signals::become_subreaper();
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
        deadline: workflow
            .spec
            .resources
            .walltime
            .and_then(|w| started.checked_add(Duration::from(w))),
        reaped_cpu: (0.0, 0.0),
        previous_node: None,
        self_pid: std::process::id() as i32,
        phase_pid: None,
    };
    agent.start_record()?;
    let mut first_failure: Option<FailureCause> = None;
    let mut failed = false;
    for (index, phase) in workflow.spec.phases.iter().enumerate() {
        if failed {
            agent.skip(phase)?;
            continue;
        }
        let (status, cause) = agent.run_phase(index as u32, phase)?;
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
    let wall_seconds = started.elapsed().as_secs_f64();
    agent.spool.append(RecordBody::RunEnd {
        status,
        cause: first_failure.clone(),
        wall_seconds,
        agent_cpu_seconds: own_cpu_seconds(),
    })?;
    agent.spool.sync()?;
    Ok(RunOutcome {
        status,
        cause: first_failure,
    })
}

impl Agent<'_> {
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
        })?;
        self.spool.flush()?;
        Ok((PhaseStatus::Failed, Some(cause)))
    }

    fn working_directory(&self, phase: &Phase) -> PathBuf {
        phase
            .working_directory
            .as_ref()
            .or(self.workflow.spec.scheduling.working_directory.as_ref())
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    fn run_phase(
        &mut self,
        index: u32,
        phase: &Phase,
    ) -> std::io::Result<(PhaseStatus, Option<FailureCause>)> {
        self.spool.append(RecordBody::PhaseStart {
            phase: phase.name.clone(),
            index,
        })?;
        let recognisers = match Recognisers::new(&phase.patterns) {
            Ok(r) => r,
            Err(e) => return self.end_failed_to_start(phase, e.to_string()),
        };
        let run_dir = atlas_spec::RunDir::new(&self.config.run_dir);
        let (out_log, err_log) = match (
            run_dir.log(&phase.name, Stream::Stdout),
            run_dir.log(&phase.name, Stream::Stderr),
        ) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(e), _) | (_, Err(e)) => {
                return self.end_failed_to_start(phase, format!("phase name: {e}"));
            }
        };
        if phase.run.trim().is_empty() {
            return self.end_failed_to_start(phase, "the phase has no command".into());
        }
        let dir = self.working_directory(phase);
        if !dir.is_dir() {
            return self.end_failed_to_start(
                phase,
                format!("the working directory {} does not exist", dir.display()),
            );
        }
        let oom_before = self.cgroup.as_ref().and_then(JobCgroup::oom_kills);
        let script = match &self.workflow.spec.environment.setup {
            Some(setup) => format!("{setup}\n{}", phase.run),
            None => phase.run.clone(),
        };
        let mut child = Command::new("bash");
        child
            .arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .envs(&self.workflow.spec.environment.variables)
            .env("ATLAS_RUN_ID", &self.config.run_id)
            .env("ATLAS_PHASE", &phase.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure only calls pthread_sigmask, which is async-signal-safe.
        let child = unsafe { child.pre_exec(signals::unblock_in_child) }.spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return self.end_failed_to_start(phase, format!("cannot start bash: {e}")),
        };
        let pid = child.id() as i32;
        self.phase_pid = Some(pid);
        let phase_started = Instant::now();
        let (tx, rx) = channel();
        let recognisers = std::sync::Arc::new(recognisers);
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        self.spawn_pump(out, out_log, false, &phase.name, &recognisers, &tx);
        self.spawn_pump(err, err_log, true, &phase.name, &recognisers, &tx);
        spawn_waiter(pid, tx.clone());
        let wake = std::sync::Mutex::new(tx);
        signals::on_signal(move || {
            if let Ok(tx) = wake.lock() {
                let _ = tx.send(Msg::Signal);
            }
        });

        let mut next_sample = Instant::now();
        let mut stopping: Option<(FailureCause, Instant)> = None;
        let mut killed = false;
        let mut pumps_done = 0;
        loop {
            let now = Instant::now();
            let mut wake = next_sample;
            if let Some((_, kill_at)) = stopping.as_ref().filter(|_| !killed) {
                wake = wake.min(*kill_at);
            }
            if let Some(deadline) = self.deadline.filter(|_| stopping.is_none()) {
                wake = wake.min(deadline);
            }
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Msg::Record(body)) => {
                    self.spool.append(*body)?;
                }
                Ok(Msg::Exited) => break,
                Ok(Msg::PumpDone) => pumps_done += 1,
                Ok(Msg::Signal) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_sample {
                self.sample(Some(&phase.name))?;
                next_sample += self.config.interval;
                if next_sample < now {
                    next_sample = now + self.config.interval;
                }
            }
            if let Some(signal) = signals::take() {
                signals::to_group(pid, signal);
                self.spool.append(RecordBody::Signal { signal })?;
                self.spool.flush()?;
                stopping
                    .get_or_insert((FailureCause::Cancelled { signal }, now + self.config.grace));
            }
            if let Some(deadline) = self.deadline {
                if now >= deadline && stopping.is_none() {
                    signals::to_group(pid, libc::SIGTERM);
                    let limit_seconds = self
                        .workflow
                        .spec
                        .resources
                        .walltime
                        .map_or(0, |w| w.as_secs());
                    stopping = Some((
                        FailureCause::WalltimeExceeded { limit_seconds },
                        now + self.config.grace,
                    ));
                }
            }
            if let Some((_, kill_at)) = &stopping {
                if now >= *kill_at && !killed {
                    signals::to_group(pid, libc::SIGKILL);
                    killed = true;
                }
            }
            self.spool.sync_if_due()?;
        }
        let wall_seconds = phase_started.elapsed().as_secs_f64();
        // The phase's shell is a zombie now: its figures are final. Sample, then reap.
        self.sample(Some(&phase.name))?;
        let (status_word, usage) = reap(pid);
        self.phase_pid = None;
        self.reaped_cpu.0 += usage.0;
        self.reaped_cpu.1 += usage.1;
        drain_pumps(&rx, &mut self.spool, pumps_done)?;
        let oom_after = self.cgroup.as_ref().and_then(JobCgroup::oom_kills);
        let oom_in_cgroup = matches!((oom_before, oom_after), (Some(b), Some(a)) if a > b);
        let (status, exit_code, signal, cause) = classify(
            status_word,
            stopping.map(|s| s.0),
            oom_in_cgroup,
            self.cgroup.is_some(),
        );
        self.spool.append(RecordBody::PhaseEnd {
            phase: phase.name.clone(),
            status,
            exit_code,
            signal,
            cause: cause.clone(),
            wall_seconds,
            cpu_user_seconds: usage.0,
            cpu_system_seconds: usage.1,
            max_rss_bytes: usage.2,
        })?;
        self.spool.flush()?;
        Ok((status, cause))
    }

    fn spawn_pump(
        &self,
        input: impl std::io::Read + Send + 'static,
        log: PathBuf,
        is_stderr: bool,
        phase: &str,
        recognisers: &std::sync::Arc<Recognisers>,
        tx: &Sender<Msg>,
    ) {
        let (phase, recognisers, tx) = (phase.to_string(), recognisers.clone(), tx.clone());
        let passthrough = self.config.passthrough;
        std::thread::spawn(move || {
            // Never through a link planted where the log goes.
            let log = std::os::unix::fs::OpenOptionsExt::custom_flags(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true),
                libc::O_NOFOLLOW,
            )
            .open(&log)
            .map(std::io::BufWriter::new);
            let mut sink: Box<dyn std::io::Write> = match (passthrough, is_stderr) {
                (false, _) => Box::new(std::io::sink()),
                (true, false) => Box::new(std::io::stdout()),
                (true, true) => Box::new(std::io::stderr()),
            };
            let mut emit = |body| {
                let _ = tx.send(Msg::Record(Box::new(body)));
            };
            match log {
                Ok(log) => pump(input, log, &mut sink, &phase, &recognisers, &mut emit),
                Err(_) => pump(
                    input,
                    std::io::sink(),
                    &mut sink,
                    &phase,
                    &recognisers,
                    &mut emit,
                ),
            }
            let _ = tx.send(Msg::PumpDone);
        });
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

/// Waits (without reaping) for `pid` to exit, then says so.
fn spawn_waiter(pid: i32, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        // SAFETY: waitid with WNOWAIT leaves the child a zombie for the agent to sample and reap.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            while libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            ) != 0
            {
                if *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
        }
        let _ = tx.send(Msg::Exited);
    });
}

/// Output still in the pipes after the shell ended (up to 2 s, in case a daemon keeps them open).
fn drain_pumps(
    rx: &std::sync::mpsc::Receiver<Msg>,
    spool: &mut SpoolWriter,
    already_done: u32,
) -> std::io::Result<()> {
    let until = Instant::now() + Duration::from_secs(2);
    let mut done = already_done;
    while done < 2 {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Msg::Record(body)) => {
                spool.append(*body)?;
            }
            Ok(Msg::PumpDone) => done += 1,
            Ok(Msg::Exited | Msg::Signal) => {}
            Err(_) => break,
        }
    }
    Ok(())
}
