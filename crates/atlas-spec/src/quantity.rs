//! `Quantity`: an amount of bytes written the Kubernetes way (`64Gi`, `500M`, `1048576`).
//!
//! Binary suffixes (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`) are powers of 1024, decimal ones (`k`, `M`,
//! `G`, `T`, `P`, `E`) powers of 1000; a bare number is bytes. Display picks the largest suffix
//! that divides the amount exactly, so a value prints the way a person would write it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes, parsed from and displayed as a Kubernetes-style quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(u64);

const BINARY: [(&str, u64); 6] = [
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
];
const DECIMAL: [(&str, u64); 6] = [
    ("E", 1_000_000_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("T", 1_000_000_000_000),
    ("G", 1_000_000_000),
    ("M", 1_000_000),
    ("k", 1_000),
];

/// Why a text is not a [`Quantity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a quantity: {reason} (expected a byte count like 64Gi, 500M or 1048576)")]
pub struct QuantityError {
    text: String,
    reason: &'static str,
}

/// Why a number times a unit multiplier is not a whole number of bytes
/// ([`Quantity::from_number_and_multiplier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    NoNumber,
    NotDigits,
    TooLarge,
    TooManyDecimals,
    FractionalBytes,
}

impl AmountError {
    /// The reason as a phrase, for messages that quote it.
    pub const fn reason(self) -> &'static str {
        match self {
            AmountError::NoNumber => "no number",
            AmountError::NotDigits => "the number has characters that are not digits",
            AmountError::TooLarge => "the number is too large",
            AmountError::TooManyDecimals => "too many decimal places",
            AmountError::FractionalBytes => "the fraction is not a whole number of bytes",
        }
    }
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AmountError {}

impl Quantity {
    /// A quantity of exactly `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Quantity(bytes)
    }

    /// `n` mebibytes; the unit most schedulers default to.
    pub const fn from_mebibytes(n: u64) -> Option<Self> {
        match n.checked_mul(1 << 20) {
            Some(b) => Some(Quantity(b)),
            None => None,
        }
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Multiplies, `None` on overflow.
    pub fn checked_mul(self, factor: u64) -> Option<Self> {
        self.0.checked_mul(factor).map(Quantity)
    }

    /// Parses a number with a unit multiplier that may carry a decimal fraction (`1.5` × 2^30);
    /// the result must be a whole number of bytes. Shared by the scheduler-specific parsers.
    pub fn from_number_and_multiplier(number: &str, multiplier: u64) -> Result<Self, AmountError> {
        let (whole, frac) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(AmountError::NoNumber);
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotDigits);
        }
        let whole_value: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| AmountError::TooLarge)?
        };
        let mut bytes = whole_value
            .checked_mul(multiplier)
            .ok_or(AmountError::TooLarge)?;
        if !frac.is_empty() {
            if frac.len() > 18 {
                return Err(AmountError::TooManyDecimals);
            }
            let denominator = 10u128.pow(frac.len() as u32);
            let numerator = frac.parse::<u128>().unwrap_or(0) * multiplier as u128;
            if !numerator.is_multiple_of(denominator) {
                return Err(AmountError::FractionalBytes);
            }
            let extra =
                u64::try_from(numerator / denominator).map_err(|_| AmountError::TooLarge)?;
            bytes = bytes.checked_add(extra).ok_or(AmountError::TooLarge)?;
        }
        Ok(Quantity(bytes))
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| QuantityError {
            text: text.to_string(),
            reason,
        };
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let multiplier = if suffix.is_empty() {
            1
        } else if let Some((_, m)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            *m
        } else if let Some((_, m)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
            *m
        } else if suffix == "K" {
            1_000
        } else {
            return Err(fail("unknown unit suffix"));
        };
        Quantity::from_number_and_multiplier(number, multiplier).map_err(|e| fail(e.reason()))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes != 0 {
            for (suffix, unit) in BINARY.iter().chain(DECIMAL.iter()) {
                if bytes.is_multiple_of(*unit) {
                    return write!(f, "{}{}", bytes / unit, suffix);
                }
            }
        }
        write!(f, "{bytes}")
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::text_or_number::deserialize(deserializer, "a quantity such as 64Gi, 500M or 1048576")
    }
}

impl schemars::JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Bytes: a whole number, or a number with a Kubernetes suffix (Ki Mi Gi Ti Pi Ei = powers of 1024; k M G T P E = powers of 1000), e.g. 64Gi or 500M.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]*\\.?[0-9]+([KMGTPE]i|[kKMGTPE])?$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn binary_and_decimal_suffixes_follow_kubernetes() {
        assert_eq!(
            "64Gi".parse::<Quantity>().unwrap().bytes(),
            64 * 1024 * 1024 * 1024
        );
        assert_eq!("500M".parse::<Quantity>().unwrap().bytes(), 500_000_000);
        assert_eq!("1k".parse::<Quantity>().unwrap().bytes(), 1_000);
        assert_eq!("1048576".parse::<Quantity>().unwrap().bytes(), 1_048_576);
        assert_eq!("1.5Gi".parse::<Quantity>().unwrap().bytes(), 3 << 29);
    }

    #[test]
    fn displays_with_the_largest_exact_suffix() {
        assert_eq!(Quantity::from_bytes(64 << 30).to_string(), "64Gi");
        assert_eq!(Quantity::from_bytes(500_000_000).to_string(), "500M");
        assert_eq!(Quantity::from_bytes(1536 << 20).to_string(), "1536Mi");
        assert_eq!(Quantity::from_bytes(1001).to_string(), "1001");
        assert_eq!(Quantity::from_bytes(0).to_string(), "0");
    }

    #[test]
    fn rejects_garbage_with_the_reason() {
        let err = "lots".parse::<Quantity>().unwrap_err().to_string();
        assert!(err.contains("`lots`"), "{err}");
        assert!("12Qi".parse::<Quantity>().is_err());
        assert!("".parse::<Quantity>().is_err());
        assert!("0.1".parse::<Quantity>().is_err(), "a tenth of a byte");
        assert!("99999999999Ei".parse::<Quantity>().is_err(), "overflow");
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(bytes in any::<u64>()) {
            let q = Quantity::from_bytes(bytes);
            prop_assert_eq!(q.to_string().parse::<Quantity>().unwrap(), q);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Quantity>();
        }
    }
}
