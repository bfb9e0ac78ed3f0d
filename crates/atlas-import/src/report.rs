//! The `ConversionReport`: for every directive occurrence, what became of it.

use serde::Serialize;

/// The scheduler dialect of a job script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// IBM Spectrum LSF (`#BSUB`).
    Lsf,
    /// Slurm (`#SBATCH`).
    Slurm,
    /// PBS Pro / OpenPBS / Torque (`#PBS`).
    Pbs,
}

impl Dialect {
    /// Every dialect, in the order detection prefers on a tie.
    pub const ALL: [Dialect; 3] = [Dialect::Slurm, Dialect::Lsf, Dialect::Pbs];

    /// The directive prefix (`#BSUB`, `#SBATCH`, `#PBS`).
    pub fn prefix(self) -> &'static str {
        match self {
            Dialect::Lsf => "#BSUB",
            Dialect::Slurm => "#SBATCH",
            Dialect::Pbs => "#PBS",
        }
    }

    /// The name users know (`LSF`, `Slurm`, `PBS`).
    pub fn display_name(self) -> &'static str {
        match self {
            Dialect::Lsf => "LSF",
            Dialect::Slurm => "Slurm",
            Dialect::Pbs => "PBS",
        }
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lsf" | "bsub" => Ok(Dialect::Lsf),
            "slurm" | "sbatch" => Ok(Dialect::Slurm),
            "pbs" | "torque" | "qsub" => Ok(Dialect::Pbs),
            _ => Err(format!(
                "unknown dialect `{s}` (expected lsf, slurm or pbs)"
            )),
        }
    }
}

/// What became of one directive option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Carried into the Workflow (`field` says where).
    Mapped,
    /// Understood, and deliberately not carried over (`note` says why).
    Ignored,
    /// Not understood, or no portable counterpart: kept only in this report.
    Unsupported,
    /// The value is malformed; nothing was set.
    Invalid,
}

/// One directive option occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectiveEntry {
    /// 1-based line of the directive.
    pub line: u32,
    /// The whole directive line as written.
    pub text: String,
    /// The option as written (`-n`, `--mem`, `-l walltime`).
    pub option: String,
    /// The option's value, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What became of it.
    pub status: Status,
    /// Workflow fields it set, comma-separated (`spec.resources.nodes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why, and anything a reader should know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A finding that is not about one directive option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line it is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What the reader should know.
    pub message: String,
}

/// What the importer did with every directive of a script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionReport {
    /// The dialect the script was read as.
    pub dialect: Dialect,
    /// One entry per directive option occurrence, in script order.
    pub directives: Vec<DirectiveEntry>,
    /// Findings about the script as a whole.
    pub warnings: Vec<Warning>,
}

impl ConversionReport {
    /// Number of entries with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.directives
            .iter()
            .filter(|d| d.status == status)
            .count()
    }
}
