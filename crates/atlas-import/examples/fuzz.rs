//! Time-bounded fuzzing of one dialect's parser on the stable toolchain:
//! `cargo run --release -p atlas-import --example fuzz -- lsf 600`.
//! Random and mutated scripts (see tests/support/fuzz_property.rs); a failing input is
//! written to `fuzz-failure-DIALECT.txt` and the exit code is 1.

#[path = "../tests/support/fuzz_property.rs"]
mod fuzz_property;

use std::time::{Duration, Instant};

use atlas_import::Dialect;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

fn main() {
    let mut args = std::env::args().skip(1);
    let dialect: Dialect = match args.next().map(|d| d.parse()) {
        Some(Ok(d)) => d,
        _ => {
            eprintln!("usage: fuzz lsf|slurm|pbs SECONDS");
            std::process::exit(2);
        }
    };
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runner = TestRunner::new(Config::default());
    let strategy = fuzz_property::script();
    let (mut cases, mut bytes) = (0u64, 0u64);
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let text = strategy.new_tree(&mut runner).expect("strategy").current();
        cases += 1;
        bytes += text.len() as u64;
        let outcome = std::panic::catch_unwind(|| fuzz_property::check(&text, dialect));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(_) => "panic".to_string(),
        };
        let file = format!("fuzz-failure-{}.txt", dialect.display_name().to_lowercase());
        let _ = std::fs::write(&file, &text);
        eprintln!("FAILED after {cases} cases: {failure}\ninput written to {file}");
        std::process::exit(1);
    }
    println!(
        "{}: {cases} cases, {:.1} MB of scripts in {seconds} s, no failure",
        dialect.display_name(),
        bytes as f64 / 1e6
    );
}
