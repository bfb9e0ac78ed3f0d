//! Reaching another machine with the system's `ssh` and `rsync` over one multiplexed
//! connection per host (`ControlMaster`, kept 60 s after the last use). Every remote command is
//! an argument vector, each word shell-quoted for the remote shell: nothing from a workflow or
//! a target reaches that shell unquoted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use atlas_emit::shell_quote;

use crate::BackendError;

/// One SSH destination (`atlas@head`, or an alias of the ssh config).
#[derive(Debug, Clone)]
pub(crate) struct Ssh {
    /// The destination as the target names it.
    pub host: String,
    config: Option<PathBuf>,
    control: PathBuf,
}

/// A destination ssh cannot mistake for an option or a path with a shell in it.
pub(crate) fn is_destination(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_'))
}

/// An absolute remote path of plain characters (no `..`, no whitespace or shell syntax).
pub(crate) fn is_remote_dir(text: &str) -> bool {
    text.starts_with('/')
        && text.len() <= 1024
        && !text.split('/').any(|part| part == "..")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'))
}

impl Ssh {
    pub(crate) fn new(host: &str, config: Option<&Path>) -> Ssh {
        // One directory per user for the control sockets (their paths must stay short).
        let control = std::env::temp_dir().join(format!("atlas-ssh-{}", unsafe_uid()));
        Ssh {
            host: host.to_string(),
            config: config.map(Path::to_path_buf),
            control,
        }
    }

    /// The options every ssh (and rsync's ssh) gets.
    fn options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(config) = &self.config {
            options.push("-F".into());
            options.push(config.display().to_string());
        }
        for option in [
            "BatchMode=yes".to_string(),
            "ControlMaster=auto".to_string(),
            format!("ControlPath={}/%C", self.control.display()),
            "ControlPersist=60".to_string(),
            "ConnectTimeout=10".to_string(),
            "ServerAliveInterval=10".to_string(),
        ] {
            options.push("-o".into());
            options.push(option);
        }
        options
    }

    /// `ssh HOST -- 'word' 'word' …`.
    pub(crate) fn command(&self, argv: &[&str]) -> Command {
        let _ = std::fs::create_dir_all(&self.control);
        let _ = std::fs::set_permissions(
            &self.control,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        let mut command = Command::new("ssh");
        command
            .args(self.options())
            .arg(&self.host)
            .arg("--")
            .arg(remote_line(argv))
            .stdin(Stdio::null());
        command
    }

    /// Runs a remote command; its stdout, or why it failed (naming the host).
    pub(crate) fn run(&self, argv: &[&str]) -> Result<String, BackendError> {
        let out = self.output(argv)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        Err(self.failure(argv, &out))
    }

    /// Runs a remote command and returns its whole output, whatever its exit status.
    pub(crate) fn output(&self, argv: &[&str]) -> Result<Output, BackendError> {
        self.command(argv)
            .output()
            .map_err(|e| BackendError::Unusable(format!("cannot run ssh to {}: {e}", self.host)))
    }

    /// A failed remote command as an error: ssh's own failure (exit 255: unreachable host,
    /// refused key) makes the target unusable; the command's failure is its message.
    pub(crate) fn failure(&self, argv: &[&str], out: &Output) -> BackendError {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if out.status.code() == Some(255) {
            return BackendError::Unusable(format!("cannot reach {} over ssh: {said}", self.host));
        }
        BackendError::Rejected(format!(
            "on {}: `{}` failed: {said}",
            self.host,
            argv.first().copied().unwrap_or_default()
        ))
    }

    /// `rsync -a` from `from` to `to` over this connection (one side is `HOST:path`, made by
    /// [`Ssh::remote`]); more options first. Its `--stats` output.
    pub(crate) fn rsync(
        &self,
        options: &[&str],
        from: &str,
        to: &str,
    ) -> Result<String, BackendError> {
        let shell: Vec<String> = std::iter::once("ssh".to_string())
            .chain(self.options())
            .map(|w| shell_quote(&w))
            .collect();
        let out = Command::new("rsync")
            .args(["-a", "--stats", "-e"])
            .arg(shell.join(" "))
            .args(options)
            .arg(from)
            .arg(to)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BackendError::Unusable(format!("cannot run rsync: {e}")))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Err(BackendError::Unusable(format!(
            "copying {from} to {to} (rsync over ssh to {}) failed: {said}",
            self.host
        )))
    }

    /// `HOST:path` for rsync (the path is plain: [`is_remote_dir`] or made from it).
    pub(crate) fn remote(&self, path: &str) -> String {
        format!("{}:{path}", self.host)
    }
}

/// The remote shell's command line for `argv`: every word quoted.
pub(crate) fn remote_line(argv: &[&str]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bytes rsync sent, from its `--stats`.
pub(crate) fn transferred(stats: &str) -> f64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix("Total transferred file size: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.replace(',', "").parse().ok())
        .unwrap_or(0.0)
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid(2) has no failure mode.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_remote_dirs_are_plain() {
        assert!(is_destination("atlas@head"));
        assert!(is_destination("login.cluster.example.org"));
        for bad in ["-oProxyCommand=x", "a b", "h;rm", "", "h/x"] {
            assert!(!is_destination(bad), "{bad}");
        }
        assert!(is_remote_dir("/scratch/atlas"));
        for bad in ["scratch", "/a/../b", "/a b", "/a;b", "/$HOME"] {
            assert!(!is_remote_dir(bad), "{bad}");
        }
    }

    #[test]
    fn every_remote_word_is_quoted() {
        assert_eq!(
            remote_line(&["sbatch", "--parsable", "/w/r 1/job.sbatch", "$(x)"]),
            "sbatch --parsable '/w/r 1/job.sbatch' '$(x)'"
        );
    }

    #[test]
    fn rsync_stats_give_the_bytes_sent() {
        let stats = "Number of files: 3\nTotal transferred file size: 12,345 bytes\n";
        assert_eq!(transferred(stats), 12345.0);
    }
}
