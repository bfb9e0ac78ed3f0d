//! The API server the objects are for. What a server version has decides the shapes Atlas
//! emits, one rule each (docs/kubernetes.md has the table):
//!
//! | feature                              | since | without it                          |
//! |--------------------------------------|-------|-------------------------------------|
//! | Indexed Job (`completionMode`)       | 1.21  | one Job per array index             |
//! | `backoffLimitPerIndex` (independent  | 1.29  | one Job per array index (a failed   |
//! |  array tasks, as Slurm's)            |       |  task never stops the others)       |
//! | `ttlSecondsAfterFinished` on by default | 1.21 | said in the gaps (alpha gate)     |
//! | Job `suspend` (beta: on by default)  | 1.22  | (windows: delete and re-create)     |
//! | CronJob `batch/v1`                   | 1.21  | `batch/v1beta1`                     |

use std::fmt;

/// A Kubernetes API server's major.minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// The newest version Atlas's types know (k8s-openapi's `v1_33`): the default for
    /// `atlas emit k8s` without `--server-version` or `--context`.
    pub const NEWEST: ServerVersion = ServerVersion {
        major: 1,
        minor: 33,
    };

    /// Reads `1.20`, `v1.20.2`, `1.20+` (GKE/EKS minors) or a server's `gitVersion`.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let minor = minor.parse().ok()?;
        (major == 1).then_some(ServerVersion { major, minor })
    }

    fn at_least(self, minor: u32) -> bool {
        self >= ServerVersion { major: 1, minor }
    }

    /// `completionMode: Indexed`.
    pub fn has_indexed_job(self) -> bool {
        self.at_least(21)
    }

    /// `backoffLimitPerIndex`: array tasks that fail alone.
    pub fn has_backoff_limit_per_index(self) -> bool {
        self.at_least(29)
    }

    /// `ttlSecondsAfterFinished` without a feature gate.
    pub fn has_job_ttl(self) -> bool {
        self.at_least(21)
    }

    /// Job `spec.suspend` without a feature gate (alpha in 1.21, beta and on from 1.22).
    pub fn has_job_suspend(self) -> bool {
        self.at_least(22)
    }

    /// The CronJob API group version.
    pub fn cronjob_api_version(self) -> &'static str {
        if self.at_least(21) {
            "batch/v1"
        } else {
            "batch/v1beta1"
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for ServerVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServerVersion::parse(text).ok_or_else(|| {
            format!(
                "`{}` is not a Kubernetes version (expected MAJOR.MINOR such as 1.20 or v1.29.3)",
                text.escape_debug()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_servers_and_people_write_them() {
        let v = |major, minor| Some(ServerVersion { major, minor });
        assert_eq!(ServerVersion::parse("1.20"), v(1, 20));
        assert_eq!(ServerVersion::parse("v1.20.2"), v(1, 20));
        assert_eq!(ServerVersion::parse("1.27+"), v(1, 27));
        assert_eq!(ServerVersion::parse("v1.29.3-eks-1234"), v(1, 29));
        assert_eq!(ServerVersion::parse("2.0"), None);
        assert_eq!(ServerVersion::parse("one.two"), None);
        assert_eq!(ServerVersion::parse(""), None);
    }

    #[test]
    fn features_follow_the_table() {
        let old = ServerVersion::parse("1.20").unwrap();
        let mid = ServerVersion::parse("1.25").unwrap();
        assert!(!old.has_indexed_job() && mid.has_indexed_job());
        assert!(!mid.has_backoff_limit_per_index());
        assert!(ServerVersion::NEWEST.has_backoff_limit_per_index());
        assert_eq!(old.cronjob_api_version(), "batch/v1beta1");
        assert_eq!(mid.cronjob_api_version(), "batch/v1");
        assert!(!old.has_job_suspend() && !old.has_job_ttl());
    }
}
