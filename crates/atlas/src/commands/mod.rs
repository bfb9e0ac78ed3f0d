//! One module per `atlas` subcommand.

pub mod import;
pub mod schema;
pub mod validate;

use std::path::Path;

use crate::exit::Failure;

/// Reads a text file the user named; binary data and unreadable files are input errors.
/// Bytes that are not UTF-8 become U+FFFD, so a stray byte never stops a conversion.
pub fn read_text(path: &Path) -> Result<String, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Writes `text` to `path`, or to stdout when there is no path. The file is written whole
/// (temporary file, then rename), so an interrupted write never leaves half a file.
pub fn write_output(path: Option<&Path>, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let Some(path) = path else {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Failure::environment(format!("cannot write to stdout: {e}")));
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.atlas-tmp"));
    std::fs::write(&temp, text)
        .and_then(|_| std::fs::rename(&temp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Failure::environment(format!("cannot write {}: {e}", path.display()))
        })
}
