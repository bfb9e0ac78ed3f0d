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
                say(format_args!("error: {message}"));
                2
            }
            Failure::Diagnostic(report) => {
                say(format_args!("{report:?}"));
                2
            }
            Failure::Environment(message) => {
                say(format_args!("error: {message}"));
                3
            }
            Failure::JobFailed(cause) => {
                if !cause.is_empty() {
                    say(format_args!("failed: {cause}"));
                }
                1
            }
        }
    }
}

/// Writes one line to stderr; a closed stderr (`atlas … 2>&1 | head -1`) is not a reason to
/// panic, so an error writing it is ignored and the exit code still says what happened.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
