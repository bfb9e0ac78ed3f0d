//! The phase's processes as the kernel sees them: reaping them with their resource usage, the
//! agent's own CPU time, and what a phase's wait status means (succeeded, or failed and why).

use atlas_spec::record::{FailureCause, PhaseStatus};

/// CPU seconds (user + system) of the agent process itself, all its threads.
pub(crate) fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage with a valid out-pointer.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        timeval_seconds(usage.ru_utime) + timeval_seconds(usage.ru_stime)
    }
}

fn timeval_seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Reaps `pid` (blocking): its wait status and rusage (user s, system s, max RSS bytes).
pub(crate) fn reap(pid: i32) -> (i32, (f64, f64, u64)) {
    // SAFETY: wait4 on our own child with valid out-pointers.
    unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        while libc::wait4(pid, &mut status, 0, &mut usage) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        let maxrss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
        (
            status,
            (
                timeval_seconds(usage.ru_utime),
                timeval_seconds(usage.ru_stime),
                maxrss,
            ),
        )
    }
}

/// Reaps `pid` if it has ended; its (user, system) CPU seconds.
pub(crate) fn try_reap(pid: i32) -> Option<(f64, f64)> {
    // SAFETY: wait4 with WNOHANG and valid out-pointers.
    unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) == pid).then(|| {
            (
                timeval_seconds(usage.ru_utime),
                timeval_seconds(usage.ru_stime),
            )
        })
    }
}

/// Status, exit code, signal and cause of a finished phase.
pub(crate) fn classify(
    wait_status: i32,
    stopped_for: Option<FailureCause>,
    oom_in_cgroup: bool,
    has_cgroup: bool,
) -> (PhaseStatus, Option<i32>, Option<i32>, Option<FailureCause>) {
    let (exit_code, signal) = if libc::WIFEXITED(wait_status) {
        (Some(libc::WEXITSTATUS(wait_status)), None)
    } else if libc::WIFSIGNALED(wait_status) {
        (None, Some(libc::WTERMSIG(wait_status)))
    } else {
        (None, None)
    };
    if exit_code == Some(0) && stopped_for.is_none() {
        return (PhaseStatus::Succeeded, exit_code, signal, None);
    }
    let cause = if let Some(cause) = stopped_for {
        cause
    } else if oom_in_cgroup {
        FailureCause::OutOfMemory {
            evidence: "cgroup: memory.events oom_kill".into(),
        }
    } else if exit_code == Some(127) {
        FailureCause::CommandNotFound
    } else if (exit_code == Some(137) || signal == Some(libc::SIGKILL)) && !has_cgroup {
        FailureCause::OutOfMemory {
            evidence: "heuristic: SIGKILL (exit 137) with no cgroup to confirm; may also be another kill -9".into(),
        }
    } else if let Some(signal) = signal {
        FailureCause::Signal { signal }
    } else {
        FailureCause::NonZeroExit {
            code: exit_code.unwrap_or(-1),
        }
    };
    (PhaseStatus::Failed, exit_code, signal, Some(cause))
}
