//! Quick fuzzing in the test suite: random and mutated scripts through every dialect.
//! The long run is `cargo run --release -p atlas-import --example fuzz -- DIALECT SECONDS`.

mod support {
    pub mod fuzz_property;
}

use atlas_import::Dialect;
use proptest::prelude::*;
use support::fuzz_property::{check, script};

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn lsf_never_panics_and_round_trips(text in script()) {
        prop_assert_eq!(check(&text, Dialect::Lsf), Ok(()));
    }

    #[test]
    fn slurm_never_panics_and_round_trips(text in script()) {
        prop_assert_eq!(check(&text, Dialect::Slurm), Ok(()));
    }

    #[test]
    fn pbs_never_panics_and_round_trips(text in script()) {
        prop_assert_eq!(check(&text, Dialect::Pbs), Ok(()));
    }
}
