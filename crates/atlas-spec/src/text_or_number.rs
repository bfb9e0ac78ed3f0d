//! Deserialization shared by the value types that YAML users may write either as a string
//! (`64Gi`, `1h30m`) or as a bare number (`1048576`, `3600`).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes `T` from a string (through `FromStr`) or from a non-negative integer (its decimal
/// text, so the integer means the type's base unit). `expected` names the accepted forms.
pub(crate) fn deserialize<'de, D, T>(deserializer: D, expected: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct TextOrNumber<T>(&'static str, PhantomData<T>);

    impl<T> Visitor<'_> for TextOrNumber<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            if v < 0 {
                return Err(E::invalid_value(de::Unexpected::Signed(v), &self));
            }
            self.visit_str(&v.to_string())
        }
    }

    deserializer.deserialize_any(TextOrNumber(expected, PhantomData))
}
