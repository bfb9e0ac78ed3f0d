//! Failures of a command, the message printed for each, and the exit code it gives.

use std::fmt::Display;

/// Why a command failed; each kind has its exit code (see DESIGN.md).
pub enum Failure {
    /// Bad input or usage: exit 2.
    Input(String),
    /// A Workflow file that does not parse, shown with its source span: exit 2.
    Diagnostic(miette::Report),
    /// The environment (a file that cannot be written, a tool missing): exit 3.
    Environment(String),
    /// The job ran and failed (the cause): exit 1.
    JobFailed(String),
}

impl Failure {
    pub fn input(message: impl Display) -> Self {
        Failure::Input(message.to_string())
    }

    pub fn environment(message: impl Display) -> Self {
        Failure::Environment(message.to_string())
    }

    /// Prints the failure to stderr and returns the exit code.
    pub fn report(self) -> i32 {
        match self {
            Failure::Input(message) => {
                eprintln!("error: {message}");
                2
            }
            Failure::Diagnostic(report) => {
                eprintln!("{report:?}");
                2
            }
            Failure::Environment(message) => {
                eprintln!("error: {message}");
                3
            }
            Failure::JobFailed(cause) => {
                if !cause.is_empty() {
                    eprintln!("failed: {cause}");
                }
                1
            }
        }
    }
}
