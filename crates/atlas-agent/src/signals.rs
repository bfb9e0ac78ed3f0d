//! SIGTERM and SIGINT to the agent: remembered by a minimal handler, then forwarded to the
//! job's process group by the run loop, recorded, and the spool flushed.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Installs the handlers (idempotent).
pub fn install() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = remember as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The signal received since the last call, if any.
pub fn take() -> Option<i32> {
    match RECEIVED.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Sends `signal` to process group `pgid`.
pub fn to_group(pgid: i32, signal: i32) {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Makes the agent a child subreaper: processes that daemonize inside the job are re-parented
/// to the agent instead of init, so they stay in the job's process tree.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// For the process that launches an agent in the foreground: Ctrl-C reaches the agent (same
/// process group), which stops the job and flushes; the launcher must outlive it to ingest.
pub fn ignore_interrupts() {
    // SAFETY: setting SIG_IGN has no preconditions; exec'd children reset it by installing
    // their own handlers (the agent does).
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}
