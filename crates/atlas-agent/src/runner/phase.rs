//! One phase of the run: its shell started, watched (samples, output, walltime, stop signals
//! and freezes for after-hours windows) and ended.
//!
//! A freeze (`atlas windows freeze`: SIGUSR2 with `freeze` in the run directory's `control`
//! file) sends the workflow's checkpoint signal to the phase's processes (not to its shell,
//! which the signal would end), waits for the
//! checkpoint to land within its grace ([`crate::freeze`]), stops the processes (SIGTERM, then
//! SIGKILL after the agent's grace) and records `frozen`; the agent then waits, with nothing of
//! the job running, for a wake (or a stop signal, which cancels the run). At the wake the phase
//! starts again with `ATLAS_RESUME=1`, its logs appended to; its CPU figures add up over its
//! stretches, its wall time leaves the frozen time out, and the walltime limit moves by it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use atlas_spec::record::{FailureCause, PhaseIo, PhaseStatus, RecordBody};
use atlas_spec::{Phase, Stream};

use super::frozen::Stop;
use super::resume::Resumed;
use super::{Agent, Msg};
use crate::cgroup::JobCgroup;
use crate::freeze::{self, Control, Freezing, Quiesced};
use crate::output::{pump, Recognisers};
use crate::process::{classify, reap};
use crate::signals;
use crate::spool::SpoolWriter;
use crate::warning::AgentWarning;

/// What a phase needs to start (again).
struct Start {
    recognisers: Arc<Recognisers>,
    out_log: PathBuf,
    err_log: PathBuf,
    dir: PathBuf,
    script: String,
}

/// How one stretch of a phase ended.
struct Stretch {
    status_word: i32,
    usage: (f64, f64, u64),
    /// What the stretch's processes read and wrote (the shell's `/proc/PID/io` at its end).
    io: Option<PhaseIo>,
    stopping: Option<FailureCause>,
    /// Frozen: how the checkpoint went, and seconds from the signal to the processes gone.
    frozen: Option<(Quiesced, f64)>,
    /// A freeze was asked but the phase ended first (when the signal went).
    pending: Option<Instant>,
}

impl Agent<'_> {
    /// Runs `phase`; `resumed`: it had started under an agent that left it frozen (its start
    /// is recorded, its figures carry over).
    pub(super) fn run_phase(
        &mut self,
        index: u32,
        phase: &Phase,
        resumed: Option<Resumed>,
    ) -> std::io::Result<(PhaseStatus, Option<FailureCause>)> {
        if resumed.is_none() {
            self.spool.append(RecordBody::PhaseStart {
                phase: phase.name.clone(),
                index,
            })?;
        }
        let start = match self.prepare(phase) {
            Ok(start) => start,
            Err(message) => return self.end_failed_to_start(phase, message),
        };
        let oom_before = self.cgroup.as_ref().and_then(JobCgroup::oom_kills);
        // The wall time is counted from here, less the time frozen, plus what came before.
        let started = Instant::now();
        let carried = resumed.map_or(Duration::ZERO, |r| r.wall);
        let mut frozen_for = Duration::ZERO;
        let mut usage = resumed.map_or((0.0, 0.0, 0u64), |r| (r.cpu.0, r.cpu.1, 0));
        let mut io: Option<PhaseIo> = None;
        let (mut resume, mut again) = resumed.map_or((false, false), |r| (r.from_checkpoint, true));
        loop {
            if resume {
                resume = self.checkpoint_still_usable(&start);
            }
            let stretch_started = Instant::now();
            let stretch = match self.run_stretch(phase, &start, resume, again)? {
                Ok(stretch) => stretch,
                Err(message) => return self.end_failed_to_start(phase, message),
            };
            usage = (
                usage.0 + stretch.usage.0,
                usage.1 + stretch.usage.1,
                usage.2.max(stretch.usage.2),
            );
            io = add_io(io, stretch.io);
            // A phase that ended on the checkpoint signal (it does not catch it: a default
            // action ends the process) was not asked to end: it is frozen, without a checkpoint,
            // and starts again from its beginning at the wake.
            let stretch = self.ended_on_the_signal(stretch);
            if stretch.frozen.is_none() {
                self.pending_freeze = stretch.pending;
            }
            let Some((quiesced, stop_seconds)) = stretch.frozen else {
                let oom_after = self.cgroup.as_ref().and_then(JobCgroup::oom_kills);
                let oom = matches!((oom_before, oom_after), (Some(b), Some(a)) if a > b);
                let (status, exit_code, signal, cause) = classify(
                    stretch.status_word,
                    stretch.stopping,
                    oom,
                    self.cgroup.is_some(),
                );
                let wall = started.elapsed().saturating_sub(frozen_for) + carried;
                let ended = (status, exit_code, signal, cause);
                return self.end_phase(phase, ended, wall, (usage, io));
            };
            // Only a checkpoint that landed (and passed its check) is resumed from; without one
            // the phase starts again from the start.
            let from_checkpoint = quiesced.clean && quiesced.checkpoint_bytes.is_some();
            let lost_seconds = if from_checkpoint {
                (stop_seconds - quiesced.quiesce_seconds).max(0.0)
            } else {
                stretch_started.elapsed().as_secs_f64()
            };
            if from_checkpoint {
                self.keep_checkpoint(self.checkpoint_path(&start).as_deref());
            }
            let record = RecordBody::Frozen {
                phase: phase.name.clone(),
                clean: quiesced.clean,
                checkpoint_bytes: quiesced.checkpoint_bytes,
                quiesce_seconds: quiesced.quiesce_seconds,
                stop_seconds,
                reason: quiesced.reason,
                lost_seconds: Some(lost_seconds),
            };
            match self.frozen_until_woken(record, &phase.name)? {
                Ok(frozen) => {
                    frozen_for += frozen;
                    resume = from_checkpoint;
                    again = true;
                }
                Err(Stop::Released) => {
                    // The job is requeued: the agent started again resumes this phase.
                    self.released = true;
                    return Ok((PhaseStatus::Failed, None));
                }
                Err(Stop::Signal(signal)) => {
                    let cause = FailureCause::Cancelled { signal };
                    let ended = (PhaseStatus::Failed, None, None, Some(cause));
                    let wall = started.elapsed().saturating_sub(frozen_for) + carried;
                    return self.end_phase(phase, ended, wall, (usage, io));
                }
            }
        }
    }

    /// `stretch`, made a freeze without checkpoint when the freeze's signal ended it.
    fn ended_on_the_signal(&self, mut stretch: Stretch) -> Stretch {
        let Some(signalled) = stretch.pending else {
            return stretch;
        };
        let signal = self
            .workflow
            .spec
            .checkpoint
            .as_ref()
            .and_then(|c| c.signal_number())
            .unwrap_or(libc::SIGUSR1);
        let word = stretch.status_word;
        let by_signal = (libc::WIFSIGNALED(word) && libc::WTERMSIG(word) == signal)
            || (libc::WIFEXITED(word) && libc::WEXITSTATUS(word) == 128 + signal);
        if !by_signal || stretch.stopping.is_some() {
            return stretch;
        }
        let took = signalled.elapsed().as_secs_f64();
        let quiesced = Quiesced {
            clean: false,
            checkpoint_bytes: None,
            quiesce_seconds: took,
            reason: Some(format!(
                "the phase ended on the checkpoint signal ({signal}): it does not catch it, so it saved nothing; it starts again from its beginning at the wake"
            )),
        };
        stretch.frozen = Some((quiesced, took));
        stretch.pending = None;
        stretch
    }

    /// Whether the phase's checkpoint is still fit to resume from (it may have been removed or
    /// spoiled while frozen); when not, the agent says why and the phase starts from its
    /// beginning.
    fn checkpoint_still_usable(&self, start: &Start) -> bool {
        let (Some(path), Some(checkpoint)) = (
            self.checkpoint_path(start),
            self.workflow.spec.checkpoint.as_ref(),
        ) else {
            return false;
        };
        self.restore_checkpoint(&path);
        let check = freeze::still_usable(
            &path,
            checkpoint.validate.as_deref(),
            &start.dir,
            checkpoint.grace(),
        );
        match check {
            Ok(()) => true,
            Err(why) => {
                (self.config.warnings)(AgentWarning::CannotFreeze {
                    why: format!("not resumed from its checkpoint: {why}; the phase starts again from its beginning"),
                });
                false
            }
        }
    }

    /// Records the phase's end.
    fn end_phase(
        &mut self,
        phase: &Phase,
        (status, exit_code, signal, cause): (
            PhaseStatus,
            Option<i32>,
            Option<i32>,
            Option<FailureCause>,
        ),
        wall: Duration,
        (usage, io): ((f64, f64, u64), Option<PhaseIo>),
    ) -> std::io::Result<(PhaseStatus, Option<FailureCause>)> {
        self.spool.append(RecordBody::PhaseEnd {
            phase: phase.name.clone(),
            status,
            exit_code,
            signal,
            cause: cause.clone(),
            wall_seconds: wall.as_secs_f64(),
            cpu_user_seconds: usage.0,
            cpu_system_seconds: usage.1,
            max_rss_bytes: usage.2,
            io,
        })?;
        self.spool.flush()?;
        Ok((status, cause))
    }

    /// The phase's patterns, logs, directory and script, or why it cannot start.
    fn prepare(&self, phase: &Phase) -> Result<Start, String> {
        let recognisers = Recognisers::new(&phase.patterns).map_err(|e| e.to_string())?;
        let run_dir = atlas_spec::RunDir::new(&self.config.run_dir);
        let (out_log, err_log) = match (
            run_dir.log(&phase.name, Stream::Stdout),
            run_dir.log(&phase.name, Stream::Stderr),
        ) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(e), _) | (_, Err(e)) => return Err(format!("phase name: {e}")),
        };
        if phase.run.trim().is_empty() {
            return Err("the phase has no command".into());
        }
        let dir = self.working_directory(phase);
        if !dir.is_dir() {
            return Err(format!(
                "the working directory {} does not exist",
                dir.display()
            ));
        }
        let script = match &self.workflow.spec.environment.setup {
            Some(setup) => format!("{setup}\n{}", phase.run),
            None => phase.run.clone(),
        };
        Ok(Start {
            recognisers: Arc::new(recognisers),
            out_log,
            err_log,
            dir,
            script,
        })
    }

    /// The checkpoint's path for this phase (relative to its working directory).
    fn checkpoint_path(&self, start: &Start) -> Option<PathBuf> {
        let checkpoint = self.workflow.spec.checkpoint.as_ref()?;
        Some(start.dir.join(&checkpoint.path))
    }

    /// Starts the phase's shell (`resume`: from its checkpoint; `again`: after a freeze, its
    /// logs appended to) and watches it until it exits; `Err` with a message when it cannot
    /// start.
    fn run_stretch(
        &mut self,
        phase: &Phase,
        start: &Start,
        resume: bool,
        again: bool,
    ) -> std::io::Result<Result<Stretch, String>> {
        let mut child = Command::new("bash");
        child
            .arg("-c")
            .arg(&start.script)
            .current_dir(&start.dir)
            .envs(&self.workflow.spec.environment.variables)
            .env("ATLAS_RUN_ID", &self.config.run_id)
            .env("ATLAS_PHASE", &phase.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(path) = self.checkpoint_path(start) {
            child.env("ATLAS_CHECKPOINT", path);
        }
        if resume {
            child.env("ATLAS_RESUME", "1");
        }
        // SAFETY: the closure only calls pthread_sigmask, which is async-signal-safe.
        let child = unsafe { child.pre_exec(signals::unblock_in_child) }.spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("cannot start bash: {e}"))),
        };
        let pid = child.id() as i32;
        self.phase_pid = Some(pid);
        let (tx, rx) = channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let logs = [(&start.out_log, false), (&start.err_log, true)];
        self.spawn_pump(out, logs[0], again, &phase.name, &start.recognisers, &tx);
        self.spawn_pump(err, logs[1], again, &phase.name, &start.recognisers, &tx);
        spawn_waiter(pid, tx.clone());
        let wake = std::sync::Mutex::new(tx);
        signals::on_signal(move || {
            if let Ok(tx) = wake.lock() {
                let _ = tx.send(Msg::Signal);
            }
        });
        let watched = self.watch(pid, phase, start, &rx)?;
        // The phase's shell is a zombie now: its figures are final. Sample, then reap.
        self.sample(Some(&phase.name))?;
        // What the shell and every process it waited for read and wrote: the kernel adds it
        // to the agent's own counts when the agent reaps the shell (a zombie's own /proc/PID/io
        // is closed to an unprivileged parent), so the difference across the reap is the phase's.
        let before = crate::procfs::io_of(self.self_pid);
        let (status_word, usage) = reap(pid);
        let io = before
            .zip(crate::procfs::io_of(self.self_pid))
            .map(|(b, a)| PhaseIo {
                read_chars: a.read_chars.saturating_sub(b.read_chars),
                write_chars: a.write_chars.saturating_sub(b.write_chars),
                read_calls: a.read_calls.saturating_sub(b.read_calls),
                write_calls: a.write_calls.saturating_sub(b.write_calls),
            });
        self.phase_pid = None;
        self.reaped_cpu.0 += usage.0;
        self.reaped_cpu.1 += usage.1;
        drain_pumps(&rx, &mut self.spool, watched.pumps_done)?;
        Ok(Ok(Stretch {
            status_word,
            usage,
            io,
            stopping: watched.stopping,
            frozen: watched.frozen,
            pending: watched.pending,
        }))
    }
}

/// What watching a stretch found.
struct Watched {
    pumps_done: u32,
    stopping: Option<FailureCause>,
    frozen: Option<(Quiesced, f64)>,
    pending: Option<Instant>,
}

impl Agent<'_> {
    /// Samples, logs and watches the shell until it exits: stop signals are passed on, the
    /// walltime is enforced, and a freeze asked for is carried out.
    fn watch(
        &mut self,
        pid: i32,
        phase: &Phase,
        start: &Start,
        rx: &std::sync::mpsc::Receiver<Msg>,
    ) -> std::io::Result<Watched> {
        let mut next_sample = Instant::now();
        let mut stopping: Option<(FailureCause, Instant)> = None;
        let mut freezing: Option<Freezing> = None;
        let mut quiesced: Option<Quiesced> = None;
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
            if freezing.is_some() && quiesced.is_none() {
                wake = wake.min(now + Duration::from_millis(100));
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
            let stop = signals::take();
            if stop == Some(libc::SIGTERM) && self.stop_is_a_freeze(freezing.is_some(), &stopping) {
                // A window's close (--freeze-on-stop): checkpoint, then leave quietly.
                self.leave_when_frozen = true;
                freezing = self.begin_freeze(pid, phase, start)?;
            } else if let Some(signal) = stop {
                signals::to_group(pid, signal);
                self.spool.append(RecordBody::Signal { signal })?;
                self.spool.flush()?;
                quiesced = None;
                freezing = None;
                stopping
                    .get_or_insert((FailureCause::Cancelled { signal }, now + self.config.grace));
            }
            if signals::take_control()
                && freeze::read_control(&self.config.run_dir) == Some(Control::Freeze)
                && freezing.is_none()
                && stopping.is_none()
            {
                freezing = self.begin_freeze(pid, phase, start)?;
            }
            if let (Some(f), None) = (&freezing, &quiesced) {
                if let Some(q) = f.poll(now) {
                    signals::to_group(pid, libc::SIGTERM);
                    let cause = FailureCause::Cancelled {
                        signal: libc::SIGTERM,
                    };
                    stopping = Some((cause, now + self.config.grace));
                    quiesced = Some(q);
                }
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
        let (frozen, pending) = match (freezing, quiesced) {
            (Some(f), Some(q)) => (Some((q, f.signalled.elapsed().as_secs_f64())), None),
            (Some(f), None) => (None, Some(f.signalled)),
            _ => (None, None),
        };
        Ok(Watched {
            pumps_done,
            stopping: stopping.map(|s| s.0),
            frozen,
            pending,
        })
    }

    /// Sends the checkpoint signal and records it; a workflow without `spec.checkpoint` is not
    /// frozen (a warning says so) and keeps running.
    fn begin_freeze(
        &mut self,
        pid: i32,
        phase: &Phase,
        start: &Start,
    ) -> std::io::Result<Option<Freezing>> {
        let (Some(checkpoint), Some(path)) = (
            self.workflow.spec.checkpoint.as_ref(),
            self.checkpoint_path(start),
        ) else {
            (self.config.warnings)(AgentWarning::CannotFreeze {
                why: "the workflow has no spec.checkpoint: it keeps running".into(),
            });
            return Ok(None);
        };
        let signal = checkpoint.signal_number().unwrap_or(libc::SIGUSR1);
        let before = freeze::modified(&path);
        let signalled_wall = SystemTime::now();
        let signalled = Instant::now();
        // To the commands the phase's shell runs, not to the shell, which a USR1 would end (as
        // Slurm's `--signal` without `B:` reaches the job's steps, not the batch script), nor
        // to their own children (a script's `sleep` or `tee`), which would die of it. A shell
        // that ran its last command in its own place (bash execs it) is that command now.
        let targets = if is_phase_shell(pid, &start.script) {
            crate::procfs::children(pid)
        } else {
            vec![pid]
        };
        for process in targets {
            // SAFETY: plain kill(2) on a process of the job.
            unsafe { libc::kill(process, signal) };
        }
        self.spool.append(RecordBody::Freeze {
            phase: phase.name.clone(),
            signal,
        })?;
        self.spool.flush()?;
        Ok(Some(Freezing {
            signalled,
            signalled_wall,
            before,
            deadline: signalled + checkpoint.grace(),
            checkpoint: path,
            validate: checkpoint.validate.clone(),
            dir: start.dir.clone(),
        }))
    }

    fn spawn_pump(
        &self,
        input: impl std::io::Read + Send + 'static,
        (log, is_stderr): (&PathBuf, bool),
        append: bool,
        phase: &str,
        recognisers: &Arc<Recognisers>,
        tx: &Sender<Msg>,
    ) {
        let (phase, recognisers, tx) = (phase.to_string(), recognisers.clone(), tx.clone());
        let (log, passthrough) = (log.clone(), self.config.passthrough);
        std::thread::spawn(move || {
            // Never through a link planted where the log goes; a resumed phase appends.
            let log = std::os::unix::fs::OpenOptionsExt::custom_flags(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .append(append)
                    .truncate(!append),
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
}

/// Two stretches' reads and writes together (none when neither was read).
fn add_io(a: Option<PhaseIo>, b: Option<PhaseIo>) -> Option<PhaseIo> {
    match (a, b) {
        (Some(a), Some(b)) => Some(PhaseIo {
            read_chars: a.read_chars + b.read_chars,
            write_chars: a.write_chars + b.write_chars,
            read_calls: a.read_calls + b.read_calls,
            write_calls: a.write_calls + b.write_calls,
        }),
        (a, b) => a.or(b),
    }
}

/// Whether `pid` is still the phase's own shell (`bash -c SCRIPT`), rather than a command it
/// exec'd in its place (which may be another bash, running the user's script).
fn is_phase_shell(pid: i32, script: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline.split(|b| *b == 0);
    let (_, dash_c, text) = (args.next(), args.next(), args.next());
    dash_c == Some(b"-c".as_slice()) && text == Some(script.as_bytes())
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
