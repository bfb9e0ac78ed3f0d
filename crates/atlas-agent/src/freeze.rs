//! Freezing a run for an after-hours window: what `atlas windows` asks (the run directory's
//! `control` file, read on SIGUSR2), and whether the job's checkpoint has landed: the file
//! exists, is a regular file, is not empty, was modified at or after the signal, and the
//! workflow's `validate` command (if any) exits 0 within the time left.
//!
//! "Modified at or after the signal" allows [`CLOCK_SLACK`]: the kernel stamps files from a
//! coarse clock that can be a few milliseconds behind the one the agent reads, so a checkpoint
//! written right after the signal could look older than it; a file that has not changed since
//! the signal never counts.
//!
//! The run loop (`runner/phase.rs`) does the rest: it sends the checkpoint signal, polls
//! [`landed`] until the grace ends, stops the job's processes, records `frozen` (clean or not),
//! waits for a wake, and starts the phase again with `ATLAS_RESUME=1`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How far behind the signal a new checkpoint's time may look (the kernel's coarse clock).
pub const CLOCK_SLACK: Duration = Duration::from_millis(50);

/// What `atlas windows` asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Freeze,
    Wake,
    /// The scheduler is about to requeue the frozen job (Slurm): its stop signal is not a
    /// cancel.
    Release,
}

/// The control file's request, if it holds one (at most 64 bytes are read).
pub fn read_control(run_dir: &Path) -> Option<Control> {
    let file = std::fs::File::open(atlas_spec::RunDir::new(run_dir).control()).ok()?;
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    match text.trim() {
        "freeze" => Some(Control::Freeze),
        "wake" => Some(Control::Wake),
        "release" => Some(Control::Release),
        _ => None,
    }
}

/// A freeze under way: when the signal went, and until when the checkpoint may land.
#[derive(Debug, Clone)]
pub struct Freezing {
    pub signalled: Instant,
    pub signalled_wall: SystemTime,
    /// The checkpoint's modification time when the signal went (none: there was none).
    pub before: Option<SystemTime>,
    pub deadline: Instant,
    pub checkpoint: PathBuf,
    pub validate: Option<String>,
    pub dir: PathBuf,
}

/// How a freeze ended on the job's side, before its processes were stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Quiesced {
    pub clean: bool,
    pub checkpoint_bytes: Option<u64>,
    pub quiesce_seconds: f64,
    pub reason: Option<String>,
}

impl Freezing {
    /// Checks the checkpoint now: `Some` once it landed (and passed its check) or the grace
    /// is over; `None` while the job still has time.
    pub fn poll(&self, now: Instant) -> Option<Quiesced> {
        let took = now.duration_since(self.signalled).as_secs_f64();
        if let Some(bytes) = landed(&self.checkpoint, self.signalled_wall, self.before) {
            let check = match &self.validate {
                None => Ok(()),
                Some(command) => validate(
                    command,
                    &self.dir,
                    &self.checkpoint,
                    self.deadline.saturating_duration_since(now),
                ),
            };
            return Some(match check {
                Ok(()) => Quiesced {
                    clean: true,
                    checkpoint_bytes: Some(bytes),
                    quiesce_seconds: took,
                    reason: None,
                },
                Err(why) if now < self.deadline && why.starts_with("exit") => return None,
                Err(why) => Quiesced {
                    clean: false,
                    checkpoint_bytes: Some(bytes),
                    quiesce_seconds: took,
                    reason: Some(format!("the checkpoint failed its check: {why}")),
                },
            });
        }
        (now >= self.deadline).then(|| Quiesced {
            clean: false,
            checkpoint_bytes: None,
            quiesce_seconds: took,
            reason: Some(format!(
                "no new checkpoint at {} within the grace of {:.0} s",
                self.checkpoint.display(),
                self.deadline.duration_since(self.signalled).as_secs_f64()
            )),
        })
    }
}

/// Whether a checkpoint is still fit to resume from at a wake: a non-empty regular file that
/// passes the workflow's `validate` (if any, within `within`); `Err` says why not.
pub fn still_usable(
    path: &Path,
    validate_with: Option<&str>,
    dir: &Path,
    within: Duration,
) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() > 0 => {}
        Ok(_) => return Err(format!("{} is empty or not a file", path.display())),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    match validate_with {
        Some(command) => validate(command, dir, path, within)
            .map_err(|why| format!("{} fails its check ({why})", path.display())),
        None => Ok(()),
    }
}

/// Copies a checkpoint that landed to `kept` (through a temporary file, so a copy cut short
/// never replaces a good one); its size.
pub fn keep(checkpoint: &Path, kept: &Path) -> std::io::Result<u64> {
    let part = kept.with_extension("part");
    let bytes = std::fs::copy(checkpoint, &part)?;
    std::fs::File::open(&part)?.sync_all()?;
    std::fs::rename(&part, kept)?;
    Ok(bytes)
}

/// Puts a kept checkpoint back where the job reads it when it is missing there or older than
/// the kept one; whether it did.
pub fn restore(checkpoint: &Path, kept: &Path) -> std::io::Result<bool> {
    let Some(copy) = modified(kept) else {
        return Ok(false);
    };
    if modified(checkpoint).is_some_and(|at| at >= copy) {
        return Ok(false);
    }
    if let Some(dir) = checkpoint.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let part = checkpoint.with_extension("atlas-part");
    std::fs::copy(kept, &part)?;
    std::fs::rename(&part, checkpoint)?;
    Ok(true)
}

/// When the file was last modified, if it exists.
pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// The checkpoint's size when it is a non-empty regular file modified at or after `since`
/// (less [`CLOCK_SLACK`]) and not the one that was there at the signal (`before`).
pub fn landed(path: &Path, since: SystemTime, before: Option<SystemTime>) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    let at = meta.modified().ok()?;
    let fresh = at >= since.checked_sub(CLOCK_SLACK).unwrap_or(since) && Some(at) != before;
    (meta.is_file() && meta.len() > 0 && fresh).then_some(meta.len())
}

/// Runs the validation command (`bash -c`, in `dir`, `ATLAS_CHECKPOINT` set) for at most
/// `within`; `Ok` when it exits 0.
fn validate(command: &str, dir: &Path, checkpoint: &Path, within: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("ATLAS_CHECKPOINT", checkpoint)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    // Its last line on stderr says why, bounded.
    let said = |child: &mut std::process::Child| {
        let mut text = String::new();
        if let Some(err) = child.stderr.take() {
            let _ = err.take(4096).read_to_string(&mut text);
        }
        text.lines()
            .last()
            .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
            .unwrap_or_default()
    };
    let until = Instant::now() + within.max(Duration::from_secs(1));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let why = said(&mut child);
                return Err(format!("exit {}{why}", status.code().unwrap_or(-1)));
            }
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("it did not finish within the grace".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_checkpoint_comes_back_only_where_the_job_lost_it() {
        let dir = std::env::temp_dir().join(format!("atlas-keep-{}", std::process::id()));
        let (ck, kept) = (dir.join("w/ck.npz"), dir.join("kept"));
        std::fs::create_dir_all(dir.join("w")).unwrap();
        std::fs::write(&ck, b"epoch 3").unwrap();
        assert_eq!(keep(&ck, &kept).unwrap(), 7);
        assert!(!kept.with_extension("part").exists());
        // The pod created again: the working directory has no checkpoint.
        std::fs::remove_dir_all(dir.join("w")).unwrap();
        assert!(restore(&ck, &kept).unwrap());
        assert_eq!(std::fs::read(&ck).unwrap(), b"epoch 3");
        // The job's own, newer than the kept copy, is left alone.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&ck, b"epoch 4").unwrap();
        assert!(!restore(&ck, &kept).unwrap());
        assert_eq!(std::fs::read(&ck).unwrap(), b"epoch 4");
        // Nothing kept: nothing to restore.
        assert!(!restore(&ck, &dir.join("none")).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_checkpoint_lands_when_new_non_empty_and_valid() {
        let dir = std::env::temp_dir().join(format!("atlas-freeze-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.ckpt");
        let before = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(landed(&path, before, None), None, "missing");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(landed(&path, before, None), None, "empty");
        std::fs::write(&path, b"weights").unwrap();
        assert_eq!(landed(&path, before, None), Some(7));
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(
            landed(&path, later, None),
            None,
            "stale: older than the signal"
        );
        let unchanged = modified(&path);
        assert_eq!(
            landed(&path, before, unchanged),
            None,
            "the one there at the signal"
        );
        let now = Instant::now();
        let freezing = |validate: Option<&str>, grace: u64| Freezing {
            signalled: now,
            signalled_wall: before,
            before: None,
            deadline: now + Duration::from_secs(grace),
            checkpoint: path.clone(),
            validate: validate.map(str::to_string),
            dir: dir.clone(),
        };
        let clean = freezing(Some("test -s \"$ATLAS_CHECKPOINT\""), 5)
            .poll(now)
            .unwrap();
        assert!(
            clean.clean && clean.checkpoint_bytes == Some(7),
            "{clean:?}"
        );
        assert_eq!(
            freezing(Some("exit 3"), 5).poll(now),
            None,
            "may still pass"
        );
        let late = freezing(Some("exit 3"), 0).poll(now).unwrap();
        assert!(!late.clean && late.reason.unwrap().contains("exit 3"));
        std::fs::write(dir.join("control"), "freeze\n").unwrap();
        assert_eq!(read_control(&dir), Some(Control::Freeze));
        std::fs::write(dir.join("control"), "thaw").unwrap();
        assert_eq!(read_control(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
