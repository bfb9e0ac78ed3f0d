//! Each scheduler's own spelling of memory sizes, time limits and output-file patterns.

use atlas_spec::{AmountError, Duration, Quantity};

const KI: u64 = 1024;

/// What a bare LSF memory number counts: the site's `LSF_UNIT_FOR_LIMITS` (lsf.conf), which
/// applies to `-M`, `rusage[mem=]` and the like; KB unless the site set another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LsfUnit {
    #[default]
    Kb,
    Mb,
    Gb,
    Tb,
    Pb,
    Eb,
}

impl LsfUnit {
    /// `KB`, `MB`, `GB`, `TB`, `PB` or `EB` (any case), as lsf.conf spells it.
    pub fn parse(text: &str) -> Option<LsfUnit> {
        match text.trim().to_ascii_uppercase().as_str() {
            "KB" => Some(LsfUnit::Kb),
            "MB" => Some(LsfUnit::Mb),
            "GB" => Some(LsfUnit::Gb),
            "TB" => Some(LsfUnit::Tb),
            "PB" => Some(LsfUnit::Pb),
            "EB" => Some(LsfUnit::Eb),
            _ => None,
        }
    }

    /// The unit's name, as lsf.conf spells it.
    pub fn name(self) -> &'static str {
        match self {
            LsfUnit::Kb => "KB",
            LsfUnit::Mb => "MB",
            LsfUnit::Gb => "GB",
            LsfUnit::Tb => "TB",
            LsfUnit::Pb => "PB",
            LsfUnit::Eb => "EB",
        }
    }

    fn bytes(self) -> u64 {
        match self {
            LsfUnit::Kb => KI,
            LsfUnit::Mb => KI.pow(2),
            LsfUnit::Gb => KI.pow(3),
            LsfUnit::Tb => KI.pow(4),
            LsfUnit::Pb => KI.pow(5),
            LsfUnit::Eb => KI.pow(6),
        }
    }
}

/// Why a directive's value cannot be read. Its text becomes the report's `invalid` note, so
/// it names the value as written and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("`{0}` is not a whole number")]
    NotWholeNumber(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error("the time is too large")]
    TimeTooLarge,
    #[error("too many fields")]
    TooManyFields,
    /// A time limit that does not read: the value, why, and the forms the scheduler takes.
    #[error("`{text}`: {why}; {expected}")]
    Time {
        text: String,
        why: Box<ValueError>,
        expected: &'static str,
    },
    #[error("`{text}` has an unknown unit; expected {expected}")]
    UnknownUnit {
        text: String,
        expected: &'static str,
    },
    #[error("`{text}` is not a size ({why}); expected {expected}")]
    NotASize {
        text: String,
        why: AmountError,
        expected: &'static str,
    },
    /// An LSF resource requirement string with a `[` that is never closed.
    #[error("`{0}`: a `[` is not closed")]
    Unclosed(String),
    /// A Slurm `--gres` item that is not `gpu[:type]:count`.
    #[error("`{0}` is not gpu[:type]:count")]
    NotGpuCount(String),
}

impl ValueError {
    /// This error as the reason a time limit `text` does not read.
    fn in_time(self, text: &str, expected: &'static str) -> ValueError {
        ValueError::Time {
            text: text.to_string(),
            why: Box::new(self),
            expected,
        }
    }
}

/// The unit a scheduler assumes when a memory value has no suffix.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MemoryDialect {
    /// Slurm: `K|M|G|T`, powers of 1024, default megabytes.
    Slurm,
    /// LSF: `KB|MB|GB|TB|PB|EB`, powers of 1024; a bare number in the site's unit
    /// (`LSF_UNIT_FOR_LIMITS`, KB unless the site changed it).
    Lsf(LsfUnit),
    /// PBS: `b|kb|mb|gb|tb|pb` and words `w|kw|mw|gw|tw` (8 bytes), powers of 1024, default
    /// bytes; the `b` after a multiplier may be left out (`16g`, as OpenPBS's size parser
    /// reads it).
    Pbs,
}

/// Parses a memory size as `dialect` spells it.
pub(crate) fn memory(text: &str, dialect: MemoryDialect) -> Result<Quantity, ValueError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let suffix = suffix.to_ascii_lowercase();
    let power = |letter: &str| match letter {
        "k" => Some(KI),
        "m" => Some(KI.pow(2)),
        "g" => Some(KI.pow(3)),
        "t" => Some(KI.pow(4)),
        "p" => Some(KI.pow(5)),
        "e" => Some(KI.pow(6)),
        _ => None,
    };
    let multiplier = match (dialect, suffix.as_str()) {
        (MemoryDialect::Slurm, "") => Some(KI.pow(2)),
        (MemoryDialect::Lsf(unit), "") => Some(unit.bytes()),
        (MemoryDialect::Pbs, "" | "b") => Some(1),
        (MemoryDialect::Pbs, "w") => Some(8),
        (MemoryDialect::Pbs, s) if s.len() == 2 && s.ends_with('w') => {
            power(&s[..1]).map(|p| p * 8)
        }
        (_, s) if s.len() == 2 && s.ends_with('b') => power(&s[..1]),
        (_, s) => power(s),
    };
    let expected = match dialect {
        MemoryDialect::Slurm => "a size like 4096 (MB), 500M or 64G",
        MemoryDialect::Lsf(_) => {
            "a size like 4096 (the site's LSF_UNIT_FOR_LIMITS, KB by default), 500MB or 64GB"
        }
        MemoryDialect::Pbs => "a size like 4gb, 500mb or 1048576 (bytes)",
    };
    let multiplier = multiplier.ok_or_else(|| ValueError::UnknownUnit {
        text: text.to_string(),
        expected,
    })?;
    Quantity::from_number_and_multiplier(number, multiplier).map_err(|why| ValueError::NotASize {
        text: text.to_string(),
        why,
        expected,
    })
}

fn digits(text: &str) -> Result<u64, ValueError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::NotWholeNumber(text.to_string()));
    }
    text.parse()
        .map_err(|_| ValueError::TooLarge(text.to_string()))
}

fn seconds(d: u64, h: u64, m: u64, s: u64) -> Result<Duration, ValueError> {
    Duration::from_parts(d, h, m, s).ok_or(ValueError::TimeTooLarge)
}

/// Slurm `--time`: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; `None` for `UNLIMITED`.
pub(crate) fn slurm_time(text: &str) -> Result<Option<Duration>, ValueError> {
    let expected = "expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS";
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("infinite") {
        return Ok(None);
    }
    let fail = |e: ValueError| e.in_time(t, expected);
    let (days, clock) = match t.split_once('-') {
        Some((d, rest)) => (Some(digits(d).map_err(fail)?), rest),
        None => (None, t),
    };
    let parts = clock
        .split(':')
        .map(digits)
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let duration = match (days, parts.as_slice()) {
        (None, [m]) => seconds(0, 0, *m, 0),
        (None, [m, s]) => seconds(0, 0, *m, *s),
        (None, [h, m, s]) => seconds(0, *h, *m, *s),
        (Some(d), [h]) => seconds(d, *h, 0, 0),
        (Some(d), [h, m]) => seconds(d, *h, *m, 0),
        (Some(d), [h, m, s]) => seconds(d, *h, *m, *s),
        _ => Err(ValueError::TooManyFields),
    };
    duration.map(Some).map_err(fail)
}

/// LSF `-W`: `[hour:]minute[/host_name|/host_model]`. Returns the host part when there is one.
pub(crate) fn lsf_time(text: &str) -> Result<(Duration, Option<&str>), ValueError> {
    let expected = "expected [hour:]minute, e.g. 90 or 1:30";
    let (clock, host) = match text.trim().split_once('/') {
        Some((c, h)) => (c, Some(h)),
        None => (text.trim(), None),
    };
    let fail = |e: ValueError| e.in_time(text, expected);
    let duration = match clock.split_once(':') {
        Some((h, m)) => seconds(0, digits(h).map_err(fail)?, digits(m).map_err(fail)?, 0),
        None => seconds(0, 0, digits(clock).map_err(fail)?, 0),
    };
    Ok((duration.map_err(fail)?, host))
}

/// PBS `walltime`: `[[hours:]minutes:]seconds[.milliseconds]`; milliseconds are dropped.
/// Torque's time parser also takes days in front (`DD:HH:MM:SS`).
pub(crate) fn pbs_time(text: &str) -> Result<Duration, ValueError> {
    let expected = "expected seconds, MM:SS, HH:MM:SS or (Torque) DD:HH:MM:SS";
    let t = text.trim();
    let whole = t.split_once('.').map_or(t, |(w, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            w
        } else {
            t
        }
    });
    let fail = |e: ValueError| e.in_time(t, expected);
    let parts = whole
        .split(':')
        .map(digits)
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    match parts.as_slice() {
        [s] => seconds(0, 0, 0, *s),
        [m, s] => seconds(0, 0, *m, *s),
        [h, m, s] => seconds(0, *h, *m, *s),
        [d, h, m, s] => seconds(*d, *h, *m, *s),
        _ => Err(ValueError::TooManyFields),
    }
    .map_err(fail)
}

/// Rewrites a scheduler's output-file pattern with Atlas placeholders. `tokens` maps the
/// letter after `%` to a placeholder; `%%` is a literal `%`. Returns the path and what changed.
pub(crate) fn output_pattern(text: &str, tokens: &[(char, &str)]) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut notes = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(*d);
            chars.next();
        }
        match chars.next() {
            Some('%') if width.is_empty() => out.push('%'),
            Some(letter) => match tokens.iter().find(|(l, _)| *l == letter) {
                Some((_, placeholder)) => {
                    out.push_str(placeholder);
                    let padded = if width.is_empty() {
                        String::new()
                    } else {
                        format!(" (zero-padding {width} dropped)")
                    };
                    notes.push(format!("%{width}{letter} -> {placeholder}{padded}"));
                }
                None => {
                    out.push('%');
                    out.push_str(&width);
                    out.push(letter);
                    notes.push(format!(
                        "%{width}{letter} kept as written (no portable placeholder)"
                    ));
                }
            },
            None => out.push('%'),
        }
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(text: &str, d: MemoryDialect) -> u64 {
        memory(text, d).unwrap().bytes()
    }

    // sbatch(1): "Default units are megabytes. Different units can be specified using the
    // suffix [K|M|G|T]."
    #[test]
    fn slurm_memory_defaults_to_megabytes() {
        assert_eq!(mem("4096", MemoryDialect::Slurm), 4096 << 20);
        assert_eq!(mem("64G", MemoryDialect::Slurm), 64 << 30);
        assert_eq!(mem("500k", MemoryDialect::Slurm), 500 << 10);
        assert!(memory("lots", MemoryDialect::Slurm).is_err());
        assert!(memory("4X", MemoryDialect::Slurm).is_err());
    }

    // bsub(1) -M: "the default unit is KB" (LSF_UNIT_FOR_LIMITS in lsf.conf).
    #[test]
    fn lsf_memory_defaults_to_kilobytes() {
        let lsf = MemoryDialect::Lsf(LsfUnit::Kb);
        assert_eq!(mem("4096", lsf), 4096 << 10);
        assert_eq!(mem("5GB", lsf), 5 << 30);
        assert_eq!(mem("500MB", lsf), 500 << 20);
        // lsf.conf: LSF_UNIT_FOR_LIMITS=MB makes a bare number megabytes; a suffix still wins.
        let site = MemoryDialect::Lsf(LsfUnit::Mb);
        assert_eq!(mem("4096", site), 4096 << 20);
        assert_eq!(mem("5GB", site), 5 << 30);
        assert_eq!(LsfUnit::parse("gb"), Some(LsfUnit::Gb));
        assert_eq!(LsfUnit::parse("PB"), Some(LsfUnit::Pb));
        assert_eq!(LsfUnit::parse("ZB"), None);
    }

    // pbs_resources(7): size = integer with suffix b, kb, mb, gb, tb or w, kw, ...; 1024-based.
    // OpenPBS's to_size() reads the multiplier letter and then an optional b or w, so `16g`
    // is 16 gigabytes; a letter it does not know is an error.
    #[test]
    fn pbs_memory_understands_bytes_and_words() {
        assert_eq!(mem("4gb", MemoryDialect::Pbs), 4 << 30);
        assert_eq!(mem("16GB", MemoryDialect::Pbs), 16 << 30);
        assert_eq!(mem("100", MemoryDialect::Pbs), 100);
        assert_eq!(mem("2kw", MemoryDialect::Pbs), 2 * 1024 * 8);
        assert_eq!(mem("4G", MemoryDialect::Pbs), 4 << 30);
        assert_eq!(mem("512m", MemoryDialect::Pbs), 512 << 20);
        assert!(memory("4X", MemoryDialect::Pbs).is_err());
        assert!(memory("4gbw", MemoryDialect::Pbs).is_err());
    }

    fn slurm(t: &str) -> u64 {
        slurm_time(t).unwrap().unwrap().as_secs()
    }

    // sbatch(1) --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
    // "days-hours:minutes" and "days-hours:minutes:seconds".
    #[test]
    fn every_slurm_time_format() {
        assert_eq!(slurm("30"), 30 * 60);
        assert_eq!(slurm("30:15"), 30 * 60 + 15);
        assert_eq!(slurm("24:00:00"), 86_400);
        assert_eq!(slurm("2-12"), 2 * 86_400 + 12 * 3600);
        assert_eq!(slurm("1-0:30"), 86_400 + 30 * 60);
        assert_eq!(slurm("1-02:03:04"), 86_400 + 2 * 3600 + 3 * 60 + 4);
        assert_eq!(slurm_time("UNLIMITED").unwrap(), None);
        assert!(slurm_time("abc").is_err());
        assert!(slurm_time("1:2:3:4").is_err());
    }

    // bsub(1) -W: "[hour:]minute[/host_name | /host_model]".
    #[test]
    fn lsf_time_is_hours_and_minutes() {
        assert_eq!(lsf_time("90").unwrap().0.as_secs(), 90 * 60);
        assert_eq!(lsf_time("12:00").unwrap().0.as_secs(), 12 * 3600);
        assert_eq!(
            lsf_time("1:30/hostA").unwrap(),
            (Duration::from_secs(5400), Some("hostA"))
        );
        assert!(lsf_time("abc").is_err());
    }

    // pbs_resources(7) walltime: "[[hours:]minutes:]seconds[.milliseconds]".
    #[test]
    fn pbs_time_is_seconds_based() {
        assert_eq!(pbs_time("3600").unwrap().as_secs(), 3600);
        assert_eq!(pbs_time("10:00").unwrap().as_secs(), 600);
        assert_eq!(pbs_time("02:00:00").unwrap().as_secs(), 7200);
        assert_eq!(pbs_time("01:00:00.500").unwrap().as_secs(), 3600);
        // Torque's decode_time takes up to three colons: days first.
        assert_eq!(pbs_time("1:00:00:00").unwrap().as_secs(), 86400);
        assert!(pbs_time("1:1:00:00:00").is_err());
        assert!(pbs_time("abc").is_err());
    }

    #[test]
    fn errors_name_the_value_and_what_was_expected() {
        assert_eq!(
            slurm_time("1:2:3:4").unwrap_err().to_string(),
            "`1:2:3:4`: too many fields; expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
        );
        assert_eq!(
            lsf_time("1:xx").unwrap_err().to_string(),
            "`1:xx`: `xx` is not a whole number; expected [hour:]minute, e.g. 90 or 1:30"
        );
        assert_eq!(
            memory("4X", MemoryDialect::Slurm).unwrap_err().to_string(),
            "`4X` has an unknown unit; expected a size like 4096 (MB), 500M or 64G"
        );
        assert_eq!(
            memory("1.5.5G", MemoryDialect::Slurm).unwrap_err().to_string(),
            "`1.5.5G` is not a size (the number has characters that are not digits); expected a size like 4096 (MB), 500M or 64G"
        );
    }

    #[test]
    fn output_patterns_become_placeholders() {
        let tokens = [('j', "{jobId}"), ('a', "{arrayIndex}")];
        let (path, notes) = output_pattern("out-%j_%4a-%Q-100%%.log", &tokens);
        assert_eq!(path, "out-{jobId}_{arrayIndex}-%Q-100%.log");
        assert_eq!(notes.len(), 3);
    }
}
