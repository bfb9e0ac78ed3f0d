//! `ArraySpec`: a job array's indices, written the way all three schedulers share:
//! `1-10`, `0-15:4`, `1,3,5-7`, each optionally followed by `%N` (at most N tasks at once).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `start-end:step` range of array indices (`start` alone is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexRange {
    /// First index.
    pub start: u32,
    /// Last index (inclusive); equal to `start` for a single index.
    pub end: u32,
    /// Distance between indices; at least 1.
    #[serde(default = "one")]
    pub step: u32,
}

fn one() -> u32 {
    1
}

/// A job array: the first range inline (`start`, `end`, `step`), more ranges in
/// `additionalRanges`, and an optional limit on tasks running at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArraySpec {
    /// First index.
    pub start: u32,
    /// Last index (inclusive).
    pub end: u32,
    /// Distance between indices; at least 1.
    #[serde(default = "one")]
    pub step: u32,
    /// At most this many array tasks run at the same time (`%N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Further ranges, for lists such as `1,3,5-7`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_ranges: Vec<IndexRange>,
}

/// Why a text is not an [`ArraySpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not an array specification: {reason} (expected e.g. 1-10, 0-15:4%2 or 1,3,5-7)"
)]
pub struct ArrayError {
    text: String,
    reason: &'static str,
}

/// An invariant of [`ArraySpec`] that a value read from YAML breaks ([`ArraySpec::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArrayRuleError {
    #[error("step must be at least 1")]
    ZeroStep,
    #[error("a range must not end before it starts")]
    Backwards,
    #[error("maxParallel must be at least 1")]
    ZeroMaxParallel,
}

impl ArraySpec {
    /// All ranges, the inline one first.
    pub fn ranges(&self) -> impl Iterator<Item = IndexRange> + '_ {
        std::iter::once(IndexRange {
            start: self.start,
            end: self.end,
            step: self.step,
        })
        .chain(self.additional_ranges.iter().copied())
    }

    /// Number of array tasks.
    /// Whether `index` is one of the array's task indices.
    pub fn contains(&self, index: u32) -> bool {
        self.ranges().any(|r| {
            (r.start..=r.end).contains(&index) && (index - r.start).is_multiple_of(r.step.max(1))
        })
    }

    /// The number of tasks.
    pub fn task_count(&self) -> u64 {
        self.ranges()
            .map(|r| u64::from((r.end - r.start) / r.step.max(1)) + 1)
            .sum()
    }

    /// Checks the invariants the parser guarantees; for values read from YAML.
    pub fn check(&self) -> Result<(), ArrayRuleError> {
        for range in self.ranges() {
            if range.step == 0 {
                return Err(ArrayRuleError::ZeroStep);
            }
            if range.start > range.end {
                return Err(ArrayRuleError::Backwards);
            }
        }
        if self.max_parallel == Some(0) {
            return Err(ArrayRuleError::ZeroMaxParallel);
        }
        Ok(())
    }
}

fn number(text: &str) -> Result<u32, &'static str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a non-negative whole number");
    }
    text.parse().map_err(|_| "index too large")
}

fn parse_range(text: &str) -> Result<IndexRange, &'static str> {
    let (span, step) = match text.split_once(':') {
        Some((span, step)) => (span, number(step)?),
        None => (text, 1),
    };
    let (start, end) = match span.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(span)?;
            (n, n)
        }
    };
    let range = IndexRange { start, end, step };
    if step == 0 {
        return Err("step must be at least 1");
    }
    if start > end {
        return Err("a range must not end before it starts");
    }
    Ok(range)
}

impl FromStr for ArraySpec {
    type Err = ArrayError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ArrayError {
            text: text.to_string(),
            reason,
        };
        let (list, max_parallel) = match text.split_once('%') {
            Some((list, max)) => (list, Some(number(max).map_err(fail)?)),
            None => (text, None),
        };
        if max_parallel == Some(0) {
            return Err(fail("the %limit must be at least 1"));
        }
        let mut ranges = list.split(',').map(parse_range);
        let first = ranges.next().ok_or("empty").and_then(|r| r).map_err(fail)?;
        let additional_ranges = ranges.collect::<Result<Vec<_>, _>>().map_err(fail)?;
        Ok(ArraySpec {
            start: first.start,
            end: first.end,
            step: first.step,
            max_parallel,
            additional_ranges,
        })
    }
}

impl fmt::Display for IndexRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start)?;
        if self.end != self.start {
            write!(f, "-{}", self.end)?;
        }
        if self.step != 1 {
            write!(f, ":{}", self.step)?;
        }
        Ok(())
    }
}

impl fmt::Display for ArraySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        if let Some(max) = self.max_parallel {
            write!(f, "%{max}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_range_step_and_limit() {
        let a: ArraySpec = "0-15:4%2".parse().unwrap();
        assert_eq!(
            (a.start, a.end, a.step, a.max_parallel),
            (0, 15, 4, Some(2))
        );
        assert_eq!(a.task_count(), 4); // 0, 4, 8, 12
        assert!(a.contains(8) && !a.contains(9) && !a.contains(16));
        let list: ArraySpec = "1,3,5-7".parse().unwrap();
        assert!(list.contains(3) && list.contains(6) && !list.contains(4));
    }

    #[test]
    fn parses_lists() {
        let a: ArraySpec = "1,3,5-7".parse().unwrap();
        assert_eq!((a.start, a.end), (1, 1));
        assert_eq!(a.additional_ranges.len(), 2);
        assert_eq!(a.task_count(), 5);
        assert_eq!(a.to_string(), "1,3,5-7");
    }

    #[test]
    fn rejects_bad_arrays() {
        for bad in [
            "", "a-b", "5-1", "1-10:0", "1-10%0", "1-", "-3", "1,,2", "1-10%",
        ] {
            assert!(
                bad.parse::<ArraySpec>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    fn arb_range() -> impl Strategy<Value = IndexRange> {
        (0u32..100_000, 0u32..1000, 1u32..50).prop_map(|(start, len, step)| IndexRange {
            start,
            end: start + len,
            step,
        })
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(
            first in arb_range(),
            more in proptest::collection::vec(arb_range(), 0..4),
            max in proptest::option::of(1u32..64),
        ) {
            let a = ArraySpec {
                start: first.start, end: first.end, step: first.step,
                max_parallel: max, additional_ranges: more,
            };
            let parsed: ArraySpec = a.to_string().parse().unwrap();
            prop_assert_eq!(parsed.task_count(), a.task_count());
            prop_assert_eq!(parsed.to_string(), a.to_string());
        }

        #[test]
        fn parsing_never_panics(text in "[0-9,:%-]{0,20}") {
            let _ = text.parse::<ArraySpec>();
        }
    }
}
