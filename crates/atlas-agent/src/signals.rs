//! SIGTERM and SIGINT to the agent: a dedicated thread waits for them (`sigwait`), remembers
//! the signal and wakes the run loop, which forwards it to the job's process group, records
//! it and flushes the spool. No polling: the run loop sleeps until a sample or a signal is due.
//! SIGUSR2 is the control signal (`atlas windows freeze|wake`): it is not forwarded; the run
//! loop reads the run directory's `control` file instead.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static CONTROL: AtomicBool = AtomicBool::new(false);
static WAKE: Mutex<Option<Box<dyn Fn() + Send>>> = Mutex::new(None);
static INSTALL: Once = Once::new();

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        set
    }
}

/// Blocks SIGTERM/SIGINT in this thread (and every thread it starts afterwards) and starts the
/// thread that waits for them. Call before starting other threads. Idempotent.
pub fn install() {
    INSTALL.call_once(|| {
        let set = stop_signals();
        // SAFETY: resetting dispositions (an inherited SIG_IGN would discard the signal) and
        // blocking them in this thread; both have no memory-safety preconditions.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGUSR2, libc::SIG_DFL);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        std::thread::spawn(move || loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: sigwait on a set blocked in every thread of the process.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                if signal == libc::SIGUSR2 {
                    CONTROL.store(true, Ordering::SeqCst);
                } else {
                    RECEIVED.store(signal, Ordering::SeqCst);
                }
                if let Some(wake) = WAKE.lock().ok().as_ref().and_then(|w| w.as_ref()) {
                    wake();
                }
            }
        });
    });
}

/// Sets what wakes the run loop when a signal arrives.
pub fn on_signal(wake: impl Fn() + Send + 'static) {
    if let Ok(mut slot) = WAKE.lock() {
        *slot = Some(Box::new(wake));
    }
}

/// The signal received since the last call, if any.
pub fn take() -> Option<i32> {
    match RECEIVED.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Whether the control signal (SIGUSR2) came since the last call.
pub fn take_control() -> bool {
    CONTROL.swap(false, Ordering::SeqCst)
}

/// For a job process between fork and exec: SIGTERM/SIGINT/SIGUSR2 unblocked again.
pub fn unblock_in_child() -> std::io::Result<()> {
    let set = stop_signals();
    // SAFETY: async-signal-safe call between fork and exec.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    Ok(())
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
    // SAFETY: setting SIG_IGN has no preconditions; the agent resets it for itself.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}
