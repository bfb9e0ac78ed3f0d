//! A phase's output: copied to its log file and passed through, and read for app metrics
//! (the phase's own regex patterns) and progress (`epoch 3/10`, `Epoch [3/10]`, tqdm's `3/10 [`).

use atlas_spec::record::RecordBody;
use regex::Regex;
use std::io::{BufRead, BufReader, Read, Write};

/// What to look for in a phase's output.
pub struct Recognisers {
    patterns: Vec<Regex>,
    progress: &'static [Regex],
}

/// The built-in progress recognisers, compiled once. ASCII-only: Unicode-aware classes make
/// compiling them cost milliseconds, which every run would pay at start.
fn progress_patterns() -> &'static [Regex] {
    static PATTERNS: std::sync::OnceLock<Vec<Regex>> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            r"(?i-u)\bepoch[ \t]*\[?[ \t]*([0-9]+)[ \t]*/[ \t]*([0-9]+)",
            r"(?-u)([0-9]+)/([0-9]+) \[",
        ]
        .iter()
        .map(|p| Regex::new(p).expect("built-in progress patterns compile"))
        .collect()
    })
}

/// A phase's output pattern that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("pattern `{pattern}`: {source}")]
pub struct BadPattern {
    /// The pattern as written in the workflow.
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

impl Recognisers {
    /// Compiles the phase's patterns; a bad one is an error naming it.
    pub fn new(patterns: &[String]) -> Result<Self, BadPattern> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|source| BadPattern {
                    pattern: p.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Recognisers {
            patterns,
            progress: progress_patterns(),
        })
    }

    /// Records found in one line of output.
    pub fn scan(&self, phase: &str, line: &str) -> Vec<RecordBody> {
        let mut out = Vec::new();
        for re in &self.patterns {
            for caps in re.captures_iter(line) {
                for name in re.capture_names().flatten() {
                    if let Some(value) =
                        caps.name(name).and_then(|m| m.as_str().parse::<f64>().ok())
                    {
                        if value.is_finite() {
                            out.push(RecordBody::Metric {
                                phase: phase.into(),
                                name: name.into(),
                                value,
                            });
                        }
                    }
                }
            }
        }
        if let Some(caps) = self.progress.iter().find_map(|re| re.captures(line)) {
            let (current, total) = (caps[1].parse::<u64>(), caps[2].parse::<u64>());
            if let (Ok(current), Ok(total)) = (current, total) {
                if total > 0 && current <= total {
                    out.push(RecordBody::Progress {
                        phase: phase.into(),
                        current,
                        total,
                    });
                }
            }
        }
        out
    }
}

/// The longest a line of output waits in the log's buffer before it is written out.
pub const LOG_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Copies `input` to `log` and `passthrough`, sending recognised records to `records`.
/// Lines are split on `\n` and `\r` (progress bars redraw with `\r`). The log is written out
/// whenever the pump has caught up with the phase's output (nothing more waiting in the pipe's
/// buffer) and at least every [`LOG_FLUSH_INTERVAL`] under a flood, so the live log follows the
/// phase line by line and a killed agent loses at most that much.
pub fn pump(
    input: impl Read,
    mut log: impl Write,
    mut passthrough: impl Write,
    phase: &str,
    recognisers: &Recognisers,
    emit: &mut dyn FnMut(RecordBody),
) {
    let mut reader = BufReader::new(input);
    let mut chunk = Vec::new();
    let mut flushed = std::time::Instant::now();
    loop {
        chunk.clear();
        match reader.read_until(b'\n', &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = log.write_all(&chunk);
                let _ = passthrough.write_all(&chunk);
                if reader.buffer().is_empty() || flushed.elapsed() >= LOG_FLUSH_INTERVAL {
                    let _ = log.flush();
                    let _ = passthrough.flush();
                    flushed = std::time::Instant::now();
                }
                let text = String::from_utf8_lossy(&chunk);
                for line in text.split('\r') {
                    for record in recognisers.scan(phase, line) {
                        emit(record);
                    }
                }
            }
        }
    }
    let _ = log.flush();
    let _ = passthrough.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(patterns: &[&str], line: &str) -> Vec<RecordBody> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Recognisers::new(&patterns).unwrap().scan("train", line)
    }

    #[test]
    fn named_groups_become_metrics() {
        let found = scan(
            &[
                r"loss=(?P<loss>[0-9.e-]+)",
                r"(?P<imgs_per_s>[0-9.]+) img/s",
            ],
            "loss=0.83 at 412.5 img/s",
        );
        assert!(found.contains(&RecordBody::Metric {
            phase: "train".into(),
            name: "loss".into(),
            value: 0.83
        }));
        assert!(found.contains(&RecordBody::Metric {
            phase: "train".into(),
            name: "imgs_per_s".into(),
            value: 412.5
        }));
    }

    #[test]
    fn progress_lines_are_recognised() {
        for line in [
            "epoch 3/10 loss=1",
            "Epoch [3/10]",
            " 30%|███ | 3/10 [00:01<00:02]",
        ] {
            let found = scan(&[], line);
            assert_eq!(
                found,
                [RecordBody::Progress {
                    phase: "train".into(),
                    current: 3,
                    total: 10
                }],
                "{line}"
            );
        }
        assert!(scan(&[], "nothing here").is_empty());
    }

    /// What reaches the log after the BufWriter in front of it (the spool tests' writer).
    use crate::spool::tests::Shared;

    #[test]
    fn output_reaches_the_log_while_the_phase_still_runs() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let log = Shared::default();
        let seen = log.clone();
        let pumping = std::thread::spawn(move || {
            let recognisers = Recognisers::new(&[]).unwrap();
            let buffered = std::io::BufWriter::new(log);
            pump(
                reader,
                buffered,
                std::io::sink(),
                "p",
                &recognisers,
                &mut |_| {},
            );
        });
        writer.write_all(b"first line\n").unwrap();
        // The writer stays open (the phase is still running): the line must arrive anyway.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while seen.0.lock().unwrap().as_slice() != b"first line\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "the line never reached the log"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(writer);
        pumping.join().unwrap();
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let err = Recognisers::new(&["(unclosed".to_string()]).err().unwrap();
        assert_eq!(err.pattern, "(unclosed");
        assert!(
            err.to_string().starts_with("pattern `(unclosed`: "),
            "{err}"
        );
    }
}
