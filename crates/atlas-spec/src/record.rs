//! The records an agent writes (spool lines, HTTP batches) and the store ingests.
//!
//! One JSON object per line: `{"run": …, "seq": …, "time": …, "mono": …, "type": …, …}`.
//! `seq` counts from 1 per run; (run, seq) identifies a record, which is what makes ingest
//! idempotent. `time` is wall-clock Unix seconds, `mono` seconds on the agent's monotonic
//! clock since it started (durations are computed from `mono`, never from `time`).

use serde::{Deserialize, Serialize};

/// One record with its identity and timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run id.
    pub run: String,
    /// Sequence number within the run, from 1.
    pub seq: u64,
    /// Wall-clock time, Unix seconds.
    pub time: f64,
    /// Monotonic seconds since the agent started.
    pub mono: f64,
    /// What happened.
    #[serde(flatten)]
    pub body: RecordBody,
}

/// An agent's process: pid and start time (clock ticks after boot, field 22 of /proc/PID/stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProcess {
    /// Process id on the agent's host.
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start: u64,
}

/// Where a path the job uses lies, as the job saw it (`/proc/self/mountinfo`): its file
/// system's type and mount point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoragePlace {
    /// The path as the workflow names it: `.` for the working directory, an input's path.
    pub path: String,
    /// The file system's type (`ext4`, `fuse.mfs`, `overlay`, `nfs4`).
    pub filesystem: String,
    /// Where it is mounted (`/`, `/mnt/scratch`).
    pub mount: String,
}

/// Why a line is not a record that may be stored.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or not a record's shape.
    #[error("not a record: {0}")]
    Syntax(#[from] serde_json::Error),
    /// A record, but one with a field that may not be stored.
    #[error("refused: {0}")]
    Refused(#[from] crate::record_check::RecordError),
}

impl Record {
    /// Checks what a record may carry before it is stored; the error names the field.
    pub fn check(&self) -> Result<(), crate::record_check::RecordError> {
        crate::record_check::check(self)
    }

    /// Reads one spool line (with or without its newline) and checks it: the one place a
    /// record is read, for spools, pushed batches and pod logs alike.
    pub fn parse_line(line: &[u8]) -> Result<Record, LineError> {
        let record: Record = serde_json::from_slice(line)?;
        record.check()?;
        Ok(record)
    }

    /// Appends the record as one spool line (JSON and a newline) to `out`: the one place a
    /// record is written.
    pub fn to_line(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }
}

/// The kinds of record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RecordBody {
    /// The agent started the run.
    #[serde(rename_all = "camelCase")]
    RunStart {
        /// `metadata.name` of the workflow.
        workflow: String,
        /// Host name of the machine the agent runs on.
        host: String,
        /// Atlas version of the agent.
        agent_version: String,
        /// Phase names, in order.
        phases: Vec<String>,
        /// Sampling interval, milliseconds.
        interval_ms: u64,
        /// CPUs the job may use (its affinity mask).
        cpus: u32,
        /// What the agent found about GPUs (`none visible`, `2 of 4 devices`).
        gpu: String,
        /// Where the job's figures come from (`process tree`, `process tree + cgroup v2`).
        source: String,
        /// The node's type: CPU model, CPUs online and memory (empty from older agents).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        node: String,
        /// The agent's process on `host`: its pid and its start time (clock ticks since boot,
        /// from /proc), so a dead agent can be told from a reused pid (absent from older agents).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentProcess>,
        /// Where the working directory and each input lie (absent from older agents).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        storage: Vec<StoragePlace>,
    },
    /// A phase started.
    #[serde(rename_all = "camelCase")]
    PhaseStart {
        /// Phase name.
        phase: String,
        /// 0-based position.
        index: u32,
    },
    /// A phase ended (or was skipped).
    #[serde(rename_all = "camelCase")]
    PhaseEnd {
        /// Phase name.
        phase: String,
        /// How it ended.
        status: PhaseStatus,
        /// Exit code, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Signal that ended it, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<FailureCause>,
        /// Wall seconds, from the monotonic clock.
        wall_seconds: f64,
        /// User CPU seconds of the phase's processes (from the kernel's rusage).
        cpu_user_seconds: f64,
        /// System CPU seconds.
        cpu_system_seconds: f64,
        /// Largest resident set of one process, bytes (rusage `ru_maxrss`).
        max_rss_bytes: u64,
        /// What the phase's processes read and wrote through system calls (absent from older
        /// agents, and where the kernel does not say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        io: Option<PhaseIo>,
    },
    /// Figures of the job's own processes.
    #[serde(rename_all = "camelCase")]
    Sample {
        /// The phase running when sampled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
        /// CPU seconds (user) of the job so far, all processes, including reaped children.
        cpu_user_seconds: f64,
        /// CPU seconds (system).
        cpu_system_seconds: f64,
        /// Resident memory of all the job's processes, bytes.
        rss_bytes: u64,
        /// Bytes read from storage.
        read_bytes: u64,
        /// Bytes written to storage.
        write_bytes: u64,
        /// Threads.
        threads: u32,
        /// Processes.
        processes: u32,
        /// The job's cgroup memory, when the job has its own cgroup.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup_memory_bytes: Option<u64>,
        /// Per GPU the job was given.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gpus: Vec<GpuSample>,
    },
    /// Figures of the whole node (other users included): labelled as such, never the job's.
    #[serde(rename_all = "camelCase")]
    NodeSample {
        /// 1-minute load average.
        load1: f64,
        /// Total memory, bytes.
        memory_total_bytes: u64,
        /// Available memory, bytes.
        memory_available_bytes: u64,
        /// Fraction of all CPUs busy since the previous node sample (everyone's work).
        cpu_busy_fraction: f64,
    },
    /// The job's processes on one host of a multi-node job, from that host's sampler
    /// (`atlas agent-host`): its seq numbers are in a range of their own (the host's index ×
    /// 2^40 onwards), so they never meet the main agent's.
    #[serde(rename_all = "camelCase")]
    HostSample {
        /// The host's name.
        host: String,
        /// The phase the main agent was running, as far as the sampler saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
        /// CPU seconds (user) of the job's processes on this host so far (live ones only).
        cpu_user_seconds: f64,
        /// CPU seconds (system).
        cpu_system_seconds: f64,
        /// Resident memory of those processes, bytes.
        rss_bytes: u64,
        /// Processes.
        processes: u32,
    },
    /// A value matched in the job's output.
    #[serde(rename_all = "camelCase")]
    Metric {
        /// Phase whose output it came from.
        phase: String,
        /// The named group.
        name: String,
        /// The value.
        value: f64,
    },
    /// Progress recognised in the job's output (`epoch 3/10`).
    #[serde(rename_all = "camelCase")]
    Progress {
        /// Phase.
        phase: String,
        /// Steps done.
        current: u64,
        /// Steps in all.
        total: u64,
    },
    /// The agent received a signal and passed it on to the job.
    #[serde(rename_all = "camelCase")]
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// The agent asked the job to save its state (a window closed, `atlas windows freeze`).
    #[serde(rename_all = "camelCase")]
    Freeze {
        /// The phase that was running.
        phase: String,
        /// The signal sent to its processes.
        signal: i32,
    },
    /// The job's processes are stopped until a wake.
    #[serde(rename_all = "camelCase")]
    Frozen {
        phase: String,
        /// A checkpoint landed (and passed its check) before the job was stopped; `false`:
        /// frozen without checkpoint (`reason` says why), never a clean freeze.
        clean: bool,
        /// The checkpoint's size, when one landed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint_bytes: Option<u64>,
        /// Seconds from the signal to the checkpoint landing (or to the grace's end).
        quiesce_seconds: f64,
        /// Seconds from the signal to the job's processes gone.
        stop_seconds: f64,
        /// Why the freeze was not clean.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Seconds of the job's work the freeze lost: what it computed after its checkpoint
        /// landed, or, frozen without one, the whole stretch since it last started (the phase
        /// starts again from its beginning).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lost_seconds: Option<f64>,
    },
    /// Woken after a freeze: the phase starts again, from its checkpoint (`ATLAS_RESUME=1`).
    #[serde(rename_all = "camelCase")]
    Wake {
        phase: String,
        /// How long it was frozen.
        frozen_seconds: f64,
        /// Where the agent runs now, when it is not the one that froze (a Slurm job requeued
        /// while frozen starts a new agent, possibly on another node).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// That agent's process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentProcess>,
    },
    /// The run ended.
    #[serde(rename_all = "camelCase")]
    RunEnd {
        /// How.
        status: PhaseStatus,
        /// Why it failed, from the first failed phase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<FailureCause>,
        /// Wall seconds of the whole run.
        wall_seconds: f64,
        /// CPU seconds the agent itself used (its overhead), user + system.
        #[serde(default)]
        agent_cpu_seconds: f64,
        /// Bytes in the run's directory when it ended (what a tenant's storage quota counts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_dir_bytes: Option<u64>,
    },
}

impl RecordBody {
    /// Whether the record changes the run's or a phase's state (rather than adding a
    /// measurement): start, phases, end, freezes and wakes.
    pub fn is_lifecycle(&self) -> bool {
        matches!(
            self,
            RecordBody::RunStart { .. }
                | RecordBody::PhaseStart { .. }
                | RecordBody::PhaseEnd { .. }
                | RecordBody::RunEnd { .. }
                | RecordBody::Frozen { .. }
                | RecordBody::Wake { .. }
        )
    }
}

/// A phase's reads and writes as its processes made them (`/proc/PID/io` of the phase's shell
/// when it ended, which holds every process it waited for): the job's data volume, whether the
/// bytes came from storage or the page cache. Storage bytes (`read_bytes`/`write_bytes`) are the
/// samples'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseIo {
    /// Bytes read (`rchar`: read(2), pread(2) and the like, files, pipes and sockets alike).
    pub read_chars: u64,
    /// Bytes written (`wchar`).
    pub write_chars: u64,
    /// Read system calls (`syscr`).
    pub read_calls: u64,
    /// Write system calls (`syscw`).
    pub write_calls: u64,
}

/// Where a run stands, as the store keeps it: registered, its agent running, or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    /// Registered; its agent has not started (or not reported) yet.
    Submitted,
    /// Its agent started.
    Running,
    /// Stopped by a window's close (or `atlas windows freeze`) until a wake.
    Frozen,
    /// Ended, every phase succeeded.
    Succeeded,
    /// Ended otherwise (a phase failed, the run was refused, cancelled or lost).
    Failed,
}

/// Where a phase stands, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PhaseState {
    /// Not started yet.
    Pending,
    /// Started, not ended.
    Running,
    /// Exit code 0.
    Succeeded,
    /// Anything else.
    Failed,
    /// Not run because an earlier phase failed.
    Skipped,
}

/// A status word that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known status")]
pub struct UnknownStatus(pub String);

macro_rules! status_words {
    ($ty:ident { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $ty {
            /// The lowercase word used in tables, JSON and the store.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $word),* }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownStatus;
            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $($word => Ok($ty::$variant),)*
                    other => Err(UnknownStatus(other.chars().take(32).collect())),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, word: &&str) -> bool {
                self.as_str() == *word
            }
        }
    };
}

status_words!(RunStatus {
    Submitted => "submitted",
    Running => "running",
    Frozen => "frozen",
    Succeeded => "succeeded",
    Failed => "failed",
});

/// A run begins as submitted.
impl Default for RunStatus {
    fn default() -> Self {
        RunStatus::Submitted
    }
}

status_words!(PhaseState {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
});

impl RunStatus {
    /// Whether the run has ended (nothing more will change it).
    pub fn is_over(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed)
    }
}

impl PhaseState {
    /// Whether the phase has ended (or was skipped).
    pub fn is_over(self) -> bool {
        matches!(
            self,
            PhaseState::Succeeded | PhaseState::Failed | PhaseState::Skipped
        )
    }
}

impl From<PhaseStatus> for RunStatus {
    /// A run's end from its agent's `runEnd` status.
    fn from(status: PhaseStatus) -> Self {
        match status {
            PhaseStatus::Succeeded => RunStatus::Succeeded,
            PhaseStatus::Failed | PhaseStatus::Skipped => RunStatus::Failed,
        }
    }
}

impl From<PhaseStatus> for PhaseState {
    fn from(status: PhaseStatus) -> Self {
        match status {
            PhaseStatus::Succeeded => PhaseState::Succeeded,
            PhaseStatus::Failed => PhaseState::Failed,
            PhaseStatus::Skipped => PhaseState::Skipped,
        }
    }
}

/// How a phase or run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PhaseStatus {
    /// Exit code 0.
    Succeeded,
    /// Anything else.
    Failed,
    /// Not run because an earlier phase failed.
    Skipped,
}

impl PhaseStatus {
    /// The lowercase word used in tables and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStatus::Succeeded => "succeeded",
            PhaseStatus::Failed => "failed",
            PhaseStatus::Skipped => "skipped",
        }
    }
}

/// Why a phase failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FailureCause {
    /// The command exited with a non-zero code.
    NonZeroExit {
        /// The code.
        code: i32,
    },
    /// The shell could not find the command (exit 127).
    CommandNotFound,
    /// A signal ended it.
    Signal {
        /// The signal.
        signal: i32,
    },
    /// Out of memory: `evidence` is `cgroup` (memory.events oom_kill) or `heuristic`
    /// (SIGKILL / exit 137 with no cgroup to ask).
    OutOfMemory {
        /// How the agent knows.
        evidence: String,
    },
    /// It ran past `spec.resources.walltime` and the agent stopped it.
    WalltimeExceeded {
        /// The limit, seconds.
        limit_seconds: u64,
    },
    /// The agent was told to stop (SIGTERM/SIGINT) and passed it on.
    Cancelled {
        /// The signal the agent received.
        signal: i32,
    },
    /// The phase could not be started at all (missing working directory, …).
    StartFailed {
        /// What went wrong.
        message: String,
    },
}

impl std::fmt::Display for FailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureCause::NonZeroExit { code } => write!(f, "exited with code {code}"),
            FailureCause::CommandNotFound => write!(f, "command not found (exit 127)"),
            FailureCause::Signal { signal } => write!(f, "killed by signal {signal}"),
            FailureCause::OutOfMemory { evidence } => write!(f, "out of memory ({evidence})"),
            FailureCause::WalltimeExceeded { limit_seconds } => {
                write!(
                    f,
                    "walltime exceeded ({})",
                    crate::Duration::from_secs(*limit_seconds)
                )
            }
            FailureCause::Cancelled { signal } => write!(f, "cancelled (signal {signal})"),
            FailureCause::StartFailed { message } => write!(f, "could not start: {message}"),
        }
    }
}

/// One GPU's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuSample {
    /// Device index as the job sees it.
    pub index: u32,
    /// SM utilisation, percent.
    pub sm_percent: u32,
    /// Device memory in use, bytes (all processes).
    pub memory_used_bytes: u64,
    /// Device memory used by the job's processes, bytes, when the driver tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_memory_bytes: Option<u64>,
    /// Power draw, milliwatts.
    pub power_milliwatts: u32,
    /// Energy counter, millijoules since the driver loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_millijoules: Option<u64>,
}
