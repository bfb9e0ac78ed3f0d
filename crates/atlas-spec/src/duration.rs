//! `Duration`: a span of whole seconds written `24h`, `1h30m`, `90s`, `2d` or `HH:MM:SS`.
//!
//! Display uses hours as the largest unit (`36h`, `1h30m`, `45s`), because walltimes are thought of
//! in hours. Scheduler-specific spellings (Slurm's `days-hours`, LSF's `hour:minute`, PBS's plain
//! seconds) are parsed by the importer, which knows each scheduler's rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds, such as a walltime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

/// Why a text is not a [`Duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {reason} (expected e.g. 24h, 1h30m, 90s or HH:MM:SS)")]
pub struct DurationError {
    text: String,
    reason: &'static str,
}

impl Duration {
    /// A duration of `seconds` seconds.
    pub const fn from_secs(seconds: u64) -> Self {
        Duration(seconds)
    }

    /// The number of seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// Builds a duration from days, hours, minutes and seconds; `None` on overflow.
    pub fn from_parts(days: u64, hours: u64, minutes: u64, seconds: u64) -> Option<Self> {
        let total = days
            .checked_mul(86_400)?
            .checked_add(hours.checked_mul(3_600)?)?
            .checked_add(minutes.checked_mul(60)?)?
            .checked_add(seconds)?;
        Some(Duration(total))
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        std::time::Duration::from_secs(d.0)
    }
}

fn parse_number(digits: &str) -> Result<u64, &'static str> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected digits");
    }
    digits.parse().map_err(|_| "the number is too large")
}

/// `H:MM:SS`, `MM:SS` style clock text; every field after the first must be below 60.
fn parse_clock(text: &str) -> Result<Duration, &'static str> {
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() > 3 {
        return Err("more than three `:`-separated fields");
    }
    let mut seconds: u64 = 0;
    for (i, field) in fields.iter().enumerate() {
        let value = parse_number(field)?;
        if i > 0 && value >= 60 {
            return Err("minutes and seconds must be below 60");
        }
        seconds = seconds
            .checked_mul(60)
            .and_then(|s| s.checked_add(value))
            .ok_or("the number is too large")?;
    }
    Ok(Duration(seconds))
}

/// `2d12h30m15s` with any subset of units, largest first.
fn parse_units(text: &str) -> Result<Duration, &'static str> {
    let mut total: u64 = 0;
    let mut rest = text;
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or("a number without a unit")?;
        let value = parse_number(&rest[..digits_end])?;
        let unit = match rest[digits_end..].chars().next() {
            Some('d') => 86_400,
            Some('h') => 3_600,
            Some('m') => 60,
            Some('s') => 1,
            _ => return Err("unknown unit (use d, h, m or s)"),
        };
        if unit >= last_unit {
            return Err("units must go from largest to smallest, each once");
        }
        last_unit = unit;
        total = value
            .checked_mul(unit)
            .and_then(|v| v.checked_add(total))
            .ok_or("the number is too large")?;
        rest = &rest[digits_end + 1..];
    }
    Ok(Duration(total))
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = if text.is_empty() {
            Err("empty")
        } else if text.bytes().all(|b| b.is_ascii_digit()) {
            parse_number(text).map(Duration)
        } else if text.contains(':') {
            parse_clock(text)
        } else {
            parse_units(text)
        };
        parsed.map_err(|reason| DurationError {
            text: text.to_string(),
            reason,
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hours, minutes, seconds) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        if self.0 == 0 {
            return f.write_str("0s");
        }
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if seconds > 0 {
            write!(f, "{seconds}s")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::text_or_number::deserialize(
            deserializer,
            "a duration such as 24h, 1h30m or 01:30:00",
        )
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Whole seconds: a number of seconds, units largest first (2d, 24h, 1h30m, 90s), or H:MM:SS.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$|^[0-9]+(:[0-5]?[0-9]){0,2}$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(text: &str) -> u64 {
        text.parse::<Duration>().unwrap().as_secs()
    }

    #[test]
    fn unit_spellings() {
        assert_eq!(secs("24h"), 86_400);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("2d"), 172_800);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("3600"), 3_600);
    }

    #[test]
    fn clock_spellings() {
        assert_eq!(secs("01:30:00"), 5_400);
        assert_eq!(secs("48:00:00"), 172_800);
        assert_eq!(secs("10:05"), 605);
    }

    #[test]
    fn displays_in_hours_minutes_seconds() {
        assert_eq!(Duration::from_secs(86_400).to_string(), "24h");
        assert_eq!(Duration::from_secs(5_400).to_string(), "1h30m");
        assert_eq!(Duration::from_secs(3_605).to_string(), "1h5s");
        assert_eq!(Duration::from_secs(0).to_string(), "0s");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", "abc", "1x", "1:60:00", "1:2:3:4", "30m1h", "h", "1h1h"] {
            assert!(
                bad.parse::<Duration>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(s in any::<u64>()) {
            let d = Duration::from_secs(s);
            prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }

        #[test]
        fn clock_and_units_agree(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let clock: Duration = format!("{h}:{m:02}:{s:02}").parse().unwrap();
            prop_assert_eq!(clock, Duration::from_parts(0, h, m, s).unwrap());
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Duration>();
        }
    }
}
