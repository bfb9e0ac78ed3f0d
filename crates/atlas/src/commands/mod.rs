//! One module per `atlas` subcommand.

pub mod agent;
pub mod agent_host;
pub mod backfill;
pub mod compare;
pub mod completions;
pub mod containerize;
pub mod db;
pub mod diff;
pub mod emit;
pub mod experiments;
pub mod format;
pub mod import;
pub mod ingest;
pub mod liveness;
pub mod logs;
pub mod node_agent;
pub mod nodes;
pub mod operator;
pub mod operator_cluster;
pub mod operator_local;
pub mod operator_push;
pub mod run;
pub mod runs;
pub mod schema;
pub mod serve;
pub mod show;
pub mod slurm_window;
pub mod targets;
pub mod tenant;
pub mod token;
pub mod user;
pub mod validate;
pub mod window_schedule;
pub mod windows;

use std::path::Path;

use crate::exit::Failure;

/// The largest file Atlas reads as a job script or a Workflow (bytes).
pub const MAX_INPUT_BYTES: usize = 4 << 20;

/// Reads at most [`MAX_INPUT_BYTES`] of a regular file the user named. A FIFO, a device
/// (`/dev/zero`) or a directory is refused at once rather than read forever.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let cannot = |e: std::io::Error| Failure::input(format!("cannot read {}: {e}", path.display()));
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so opening a FIFO with no writer returns at once to be refused below.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let kind = file.metadata().map_err(cannot)?.file_type();
    if !kind.is_file() {
        return Err(Failure::input(format!(
            "{} is not a regular file (a directory, a FIFO or a device); give a file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(Failure::input(format!(
            "{} is larger than {MAX_INPUT_BYTES} bytes, the most Atlas reads",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Reads a job script. Bytes that are not UTF-8 become U+FFFD, so a stray byte never stops a
/// conversion (the importer warns about them).
pub fn read_text(path: &Path) -> Result<String, Failure> {
    Ok(String::from_utf8_lossy(&read_bytes(path)?).into_owned())
}

/// Reads a Workflow file: it must be UTF-8, and the first byte that is not is named by line.
pub fn read_utf8(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read_bytes(path)?).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        Failure::input(format!(
            "{}:{line}: not UTF-8 (byte {at}); a Workflow file is UTF-8 text",
            path.display()
        ))
    })
}

/// Writes `text` to `path`, or to stdout when there is no path (see [`write_file`]).
pub fn write_output(path: Option<&Path>, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let Some(path) = path else {
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            // The reader went away (`| head`): nothing more to say.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => {
                other.map_err(|e| Failure::environment(format!("cannot write to stdout: {e}")))
            }
        };
    };
    write_file(path, 0o644, |file| file.write_all(text.as_bytes()))
}

/// Writes a file whole: into a temporary file of a fresh name made exclusively (so a link
/// planted in a shared directory is never written through), then renamed over `path`; an
/// interrupted write never leaves half a file. A `path` that exists and is not a regular file
/// (`/dev/null`, a FIFO) is written in place, never replaced.
pub fn write_file(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed =
        |e: std::io::Error| Failure::environment(format!("cannot write {}: {e}", path.display()));
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Err(Failure::input(format!("{} is a directory", path.display())));
        }
        if !meta.is_file() {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(failed)?;
            return fill(&mut file).map_err(failed);
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temp = dir.join(format!(".{name}.{}-{nanos}.atlas-tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| fill(&mut file))
        .and_then(|_| std::fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        failed(e)
    })
}

/// Parses a `key=value` label (`--label`, shared by `run` and `runs`).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    // Labels are printed back (runs, diff, the dashboard): no control or direction characters.
    let printable = |c: char| !c.is_control() && !('\u{202a}'..='\u{202e}').contains(&c);
    if text.len() > 256 || !text.chars().all(printable) {
        return Err("a label is at most 256 printable characters (no control characters)".into());
    }
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

/// Parses an interval such as `1s`, `500ms`, `0.5s` or `2m` (at least 100 ms).
pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = if let Some(ms) = text.strip_suffix("ms") {
        ms.trim()
            .parse::<u64>()
            .map(std::time::Duration::from_millis)
            .map_err(|_| format!("`{text}` is not a number of milliseconds"))?
    } else if let Some(s) = text.strip_suffix('s').filter(|s| s.contains('.')) {
        let secs: f64 = s
            .parse()
            .map_err(|_| format!("`{text}` is not a number of seconds"))?;
        std::time::Duration::from_secs_f64(secs.max(0.0))
    } else {
        text.parse::<atlas_spec::Duration>()
            .map(Into::into)
            .map_err(|e| e.to_string())?
    };
    if d < std::time::Duration::from_millis(100) {
        return Err(format!("`{text}` is below the shortest interval, 100ms"));
    }
    Ok(d)
}

/// Reads a Workflow file, or imports a job script.
pub fn load_workflow_or_script(path: &Path) -> Result<atlas_spec::Workflow, Failure> {
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let text = if is_yaml {
        read_utf8(path)?
    } else {
        read_text(path)?
    };
    let name = path.display().to_string();
    let looks_like_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    ) || text.lines().any(|l| l.starts_with("apiVersion:"));
    if looks_like_yaml {
        return atlas_spec::parse_workflow(&name, &text)
            .map_err(|e| Failure::Diagnostic(miette::Report::new(*e)));
    }
    let options = atlas_import::ImportOptions {
        dialect: None,
        fallback_name: path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        lsf_unit: import::lsf_unit(None)?,
    };
    let imported = atlas_import::import(&text, &options)
        .map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let r = &imported.report;
    eprintln!(
        "imported {} script {name}: {} mapped, {} ignored, {} unsupported, {} invalid (see `atlas import {name}`)",
        r.dialect.display_name(),
        r.count(atlas_import::Status::Mapped),
        r.count(atlas_import::Status::Ignored),
        r.count(atlas_import::Status::Unsupported),
        r.count(atlas_import::Status::Invalid)
    );
    Ok(imported.workflow)
}

/// Where `--server URL` pushes, as the user whose token is in `ATLAS_TOKEN`: the URL checked,
/// the token required.
pub fn push_target(server: &str) -> Result<atlas_agent::push::PushTarget, Failure> {
    if !is_http_url(server) {
        return Err(Failure::input(format!(
            "--server `{}` is not an http(s) URL",
            server.escape_debug()
        )));
    }
    let token = std::env::var("ATLAS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure::input(
                "--server needs the user's token in ATLAS_TOKEN (`atlas user add NAME` or `atlas token add` prints one)",
            )
        })?;
    Ok(atlas_agent::push::PushTarget {
        server: server.trim_end_matches('/').to_string(),
        token,
    })
}

/// Whether `text` is an `http://` or `https://` URL with a host, without spaces or control
/// characters, at most 2 KiB (a server to push to).
pub fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && text.len() <= 2048
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}
