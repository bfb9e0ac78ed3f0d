//! Tenants (teams): their members' roles, their quotas and what they have used, and the one
//! rule of who sees a run, as SQL both stores put in their queries ([`visible_sql`]): a run of
//! a tenant is seen by the tenant's members (any role); a run of no tenant by its owner only.

use serde::{Deserialize, Serialize};

/// What a member may do in their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the tenant's runs, experiments and reports; starts nothing.
    Viewer,
    /// Runs workflows in the tenant and reads everything of it.
    Member,
    /// A member who also manages the tenant's members (the site admin sets quotas).
    Admin,
}

impl Role {
    /// The word in the store, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    /// The role a word names (`admin`, `member`, `viewer`).
    pub fn parse(word: &str) -> Option<Role> {
        match word {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may start, cancel or push records for runs.
    pub fn can_run(self) -> bool {
        self >= Role::Member
    }
}

/// A tenant's limits; `None` is no limit. Core- and GPU-hours count over the last
/// `period_days` (a rolling window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Quotas {
    /// Runs active at once (submitted, running or frozen).
    pub runs: Option<u32>,
    /// Cores × hours of the tenant's runs over the period.
    pub core_hours: Option<f64>,
    /// GPUs × hours of the tenant's runs over the period.
    pub gpu_hours: Option<f64>,
    /// The period of the hour quotas, in days (30 when not set).
    pub period_days: Option<f64>,
    /// GiB of run directories (each measured by its agent when the run ended).
    pub storage_gib: Option<f64>,
}

impl Quotas {
    /// The rolling period of the hour quotas, in seconds.
    pub fn period_seconds(&self) -> f64 {
        self.period_days.unwrap_or(30.0) * 86_400.0
    }

    /// Whether any limit is set.
    pub fn is_empty(&self) -> bool {
        self.runs.is_none()
            && self.core_hours.is_none()
            && self.gpu_hours.is_none()
            && self.storage_gib.is_none()
    }
}

/// A member of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user: String,
    pub role: Role,
}

/// A tenant as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    pub name: String,
    pub created_at: f64,
    /// By user name.
    pub members: Vec<Member>,
    pub quotas: Quotas,
}

/// A role word from the store.
pub(crate) fn parse_role(word: &str) -> Result<Role, crate::StoreError> {
    Role::parse(word).ok_or_else(|| crate::StoreError::Corrupt(format!("unknown role `{word}`")))
}

/// What a tenant's runs hold and have used: what its quotas are checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Runs submitted, running or frozen now.
    pub active_runs: u64,
    /// Cores × hours of runs since the period's start (a running run up to now).
    pub core_hours: f64,
    /// GPUs × hours, likewise.
    pub gpu_hours: f64,
    /// GiB of the run directories of all the tenant's runs, as measured when each ended.
    pub storage_gib: f64,
}

/// What an experiment about to start asks of its tenant: how many runs, and each run's cores,
/// GPUs and walltime (hours, when the workflow says).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ask {
    pub runs: u64,
    pub cores: f64,
    pub gpus: f64,
    pub walltime_hours: Option<f64>,
}

/// Whether `ask` fits `tenant`'s `quotas` given its `usage`: `Err` says the figure and the
/// limit. An hour quota refuses when it is used up, or when the runs' walltimes could pass it.
pub fn check(tenant: &str, quotas: &Quotas, usage: &Usage, ask: &Ask) -> Result<(), String> {
    let days = quotas.period_seconds() / 86_400.0;
    if let Some(limit) = quotas.runs {
        if usage.active_runs + ask.runs > u64::from(limit) {
            return Err(format!(
                "tenant `{tenant}` has {} run(s) active and this would start {} more: its quota is {limit} run(s) at once",
                usage.active_runs, ask.runs
            ));
        }
    }
    if let Some(limit) = quotas.storage_gib {
        if usage.storage_gib >= limit {
            return Err(format!(
                "tenant `{tenant}` has {:.2} GiB in run directories: its quota is {limit} GiB (remove old runs' directories, or ask for more)",
                usage.storage_gib
            ));
        }
    }
    let hours = [
        ("core", quotas.core_hours, usage.core_hours, ask.cores),
        ("GPU", quotas.gpu_hours, usage.gpu_hours, ask.gpus),
    ];
    for (what, limit, used, each) in hours {
        // Runs that ask for none of it (no GPUs) are not held back by its quota.
        let Some(limit) = limit.filter(|_| each > 0.0) else {
            continue;
        };
        if used >= limit {
            return Err(format!(
                "tenant `{tenant}` has used {used:.1} {what}-hours of its {limit} in the last {days} days"
            ));
        }
        if let Some(wall) = ask.walltime_hours {
            let more = ask.runs as f64 * each * wall;
            if used + more > limit {
                return Err(format!(
                    "tenant `{tenant}` has used {used:.1} {what}-hours of its {limit} in the last {days} days, and these runs could use {more:.1} more ({} × {each} {what}s × {wall} h walltime)",
                    ask.runs
                ));
            }
        }
    }
    Ok(())
}

/// The statuses of a run that holds (or will hold) resources: what the run quota counts.
pub const ACTIVE_STATUSES: &str = "('submitted', 'running', 'frozen')";

/// SQL that is true when the run (or node sample) `alias` is seen by the principal bound at
/// `user` (`?1` in SQLite, `$1` in PostgreSQL; see [`principal`]): a tenant's run by its
/// members, a run of no tenant by its owner; a token scoped to a tenant (`USER/TENANT`) sees
/// that tenant's runs while its user is a member, and nothing else. Never NULL, so `NOT` of it
/// is safe.
pub fn visible_sql(alias: &str, user: &str) -> String {
    format!(
        "(({alias}.tenant IS NULL AND {alias}.owner IS NOT NULL AND {alias}.owner = {user}) \
         OR EXISTS (SELECT 1 FROM tenant_members m WHERE m.tenant = {alias}.tenant \
                    AND (m.user_name = {user} OR m.user_name || '/' || m.tenant = {user})))"
    )
}

/// Who the store's visibility rule ([`visible_sql`]) is asked about: a user (`ada`), or a
/// token of that user scoped to one tenant (`ada/team-a`). Names never hold `/`.
pub fn principal(user: &str, scope: Option<&str>) -> String {
    match scope {
        Some(tenant) => format!("{user}/{tenant}"),
        None => user.to_string(),
    }
}

/// An API token scoped to one tenant and one role (`atlas token add`): only its SHA-256 is
/// kept. It never gives more than its user's own role in the tenant, and nothing once they
/// leave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRow {
    /// `tok-` and 8 hex digits: what `atlas token revoke` names.
    pub id: String,
    pub user: String,
    pub tenant: String,
    pub role: Role,
    /// What it is for (`node agents on rack 3`).
    pub label: Option<String>,
    pub created_at: f64,
}

/// The usage SQL's selected columns, for the tenant bound at `tenant`, the period's start at
/// `since` and now at `now`: active runs, core-seconds and GPU-seconds.
pub fn usage_sql(tenant: &str, since: &str, now: &str) -> String {
    let held = format!(
        "(CASE WHEN wall_seconds IS NOT NULL THEN wall_seconds \
               WHEN status IN {ACTIVE_STATUSES} AND started_at IS NOT NULL THEN {now} - started_at \
               ELSE 0 END)"
    );
    format!(
        "SELECT (SELECT count(*) FROM runs WHERE tenant = {tenant} AND status IN {ACTIVE_STATUSES}), \
                COALESCE(sum(cores * {held}), 0), COALESCE(sum(gpus * {held}), 0), \
                (SELECT COALESCE(sum(storage_bytes), 0) FROM runs WHERE tenant = {tenant}) \
         FROM runs WHERE tenant = {tenant} AND submitted_at >= {since}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_by_what_they_allow() {
        for role in [Role::Viewer, Role::Member, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("owner"), None);
        assert!(!Role::Viewer.can_run());
        assert!(Role::Member.can_run() && Role::Admin.can_run());
        assert_eq!(Quotas::default().period_seconds(), 30.0 * 86_400.0);
        assert!(Quotas::default().is_empty());
    }

    fn ask(runs: u64, walltime_hours: Option<f64>) -> Ask {
        Ask {
            runs,
            cores: 4.0,
            gpus: 0.0,
            walltime_hours,
        }
    }

    #[test]
    fn quotas_refuse_with_the_figure_and_the_limit() {
        let quotas = Quotas {
            runs: Some(3),
            core_hours: Some(10.0),
            gpu_hours: Some(1.0),
            period_days: Some(7.0),
            storage_gib: Some(50.0),
        };
        let mut usage = Usage {
            active_runs: 2,
            core_hours: 2.0,
            gpu_hours: 5.0,
            storage_gib: 49.9,
        };
        assert_eq!(
            check("t", &quotas, &usage, &ask(1, None)),
            Ok(()),
            "GPU hours unasked"
        );
        let why = check("t", &quotas, &usage, &ask(2, None)).unwrap_err();
        assert!(
            why.contains("2 run(s) active") && why.contains("quota is 3"),
            "{why}"
        );
        // Walltimes that could pass the core-hours: 2 + 1 × 4 cores × 3 h > 10.
        let why = check("t", &quotas, &usage, &ask(1, Some(3.0))).unwrap_err();
        assert!(
            why.contains("12.0 more") && why.contains("of its 10"),
            "{why}"
        );
        assert_eq!(check("t", &quotas, &usage, &ask(1, Some(2.0))), Ok(()));
        usage.core_hours = 10.0;
        let why = check("t", &quotas, &usage, &ask(1, None)).unwrap_err();
        assert!(
            why.contains("used 10.0 core-hours of its 10 in the last 7 days"),
            "{why}"
        );
        assert_eq!(
            check("t", &Quotas::default(), &usage, &ask(99, Some(1e6))),
            Ok(())
        );
        usage.storage_gib = 50.0;
        let why = check("t", &quotas, &usage, &ask(1, None)).unwrap_err();
        assert!(
            why.contains("50.00 GiB in run directories: its quota is 50 GiB"),
            "{why}"
        );
    }
}
