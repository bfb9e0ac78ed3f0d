//! Output formats and small formatting helpers for tables: sizes, durations, times.

/// How a listing is printed.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for people.
    Table,
    /// Stable JSON for programs.
    Json,
}

/// Bytes as `412 MiB`, `3.1 GiB`.
pub fn bytes(b: i64) -> String {
    let b = b.max(0) as f64;
    match b {
        b if b >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0)),
        b if b >= 1024.0 * 1024.0 => format!("{:.0} MiB", b / (1024.0 * 1024.0)),
        b if b >= 1024.0 => format!("{:.0} KiB", b / 1024.0),
        b => format!("{b:.0} B"),
    }
}

/// Seconds as `1m23.4s` / `4.20s`.
pub fn seconds(s: f64) -> String {
    if s >= 60.0 {
        format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.2}s")
    }
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time(unix: f64) -> String {
    let secs = unix as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(412 * 1024 * 1024), "412 MiB");
        assert_eq!(seconds(83.44), "1m23.4s");
        assert_eq!(time(0.0), "1970-01-01 00:00:00");
        // Reference: `date -u -d @1795000000`.
        assert_eq!(time(1_795_000_000.0), "2026-11-18 11:06:40");
    }
}
