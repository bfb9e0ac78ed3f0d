//! A tenant's quotas as Slurm's own limits: the `sacctmgr` script `atlas emit slurm --tenant T`
//! prints. It makes an account named after the tenant (when missing), sets its association
//! limits from the quotas (runs at once → `GrpJobs` for the account and `MaxJobs` for each
//! user; core- and GPU-hours → `GrpTRESMins`), and adds the users who submit for it. Every
//! limit is set each time (`-1` where the quota is unset), so running it again after a quota
//! changed brings Slurm in line. Slurm enforces them only with `AccountingStorageEnforce=limits`
//! and slurmdbd.

use crate::quote::shell_quote;

/// What the script is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOptions {
    /// The tenant: the account's name.
    pub tenant: String,
    /// Runs active at once.
    pub runs: Option<u32>,
    /// Cores × hours over the tenant's period.
    pub core_hours: Option<f64>,
    /// GPUs × hours over the tenant's period.
    pub gpu_hours: Option<f64>,
    /// The Unix users who submit for the tenant.
    pub users: Vec<String>,
    /// The Slurm cluster (`ClusterName`), when slurmdbd serves several.
    pub cluster: Option<String>,
}

/// Why a script cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccountError(String);

/// A Slurm account, user or cluster name: what sacctmgr takes unquoted in `where` clauses.
fn slurm_name(what: &str, name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(AccountError(format!(
            "{what} {:?} is not a Slurm name Atlas writes: 1-64 of lowercase letters, digits, `-`, `_` and `.`",
            name.chars().take(64).collect::<String>()
        )))
    }
}

/// Minutes of a quota in hours, as Slurm's TRES-minutes (`-1`: no limit), rounded up: a
/// quota under a minute is one minute, not 0 (which would stop every job).
fn minutes(hours: Option<f64>) -> String {
    hours.map_or("-1".into(), |h| {
        format!("{}", ((h * 60.0).ceil() as u64).max(1))
    })
}

/// The lines that say which quota became which limit, and what is not carried.
fn explained(o: &AccountOptions) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(n) = o.runs {
        lines.push(format!("#   {n} run(s) at once: GrpJobs={n} (the account's running jobs), MaxJobs={n} (each user's); more jobs wait (AssocGrpJobsLimit, AssocMaxJobsLimit)"));
    }
    for (what, hours, tres) in [
        ("core", o.core_hours, "cpu"),
        ("GPU", o.gpu_hours, "gres/gpu"),
    ] {
        if let Some(h) = hours {
            lines.push(format!("#   {h} {what}-hours: GrpTRESMins={tres}={}. Slurm counts them until its usage decays (PriorityDecayHalfLife) or is reset (RawUsage=0), not over Atlas's rolling period", minutes(Some(h))));
        }
    }
    if o.gpu_hours.is_some() {
        lines.push("#   gres/gpu is counted only where AccountingStorageTRES lists it (sacctmgr refuses it elsewhere)".into());
    }
    if lines.is_empty() {
        lines.push("#   none: every limit is cleared (-1)".into());
    }
    lines
}

/// The script (POSIX sh) that makes Slurm hold `options`' limits.
pub fn account_script(options: &AccountOptions) -> Result<String, AccountError> {
    slurm_name("the tenant", &options.tenant)?;
    for user in &options.users {
        slurm_name("the user", user)?;
    }
    if let Some(cluster) = &options.cluster {
        slurm_name("the cluster", cluster)?;
    }
    let account = shell_quote(&options.tenant);
    let cluster = options
        .cluster
        .as_ref()
        .map(|c| format!(" cluster={}", shell_quote(c)))
        .unwrap_or_default();
    let runs = options.runs.map_or("-1".into(), |n| n.to_string());
    // gres/gpu only when asked for: sacctmgr refuses a TRES the cluster does not track.
    let mut tres = format!("cpu={}", minutes(options.core_hours));
    if options.gpu_hours.is_some() {
        tres.push_str(&format!(",gres/gpu={}", minutes(options.gpu_hours)));
    }
    let users: Vec<String> = options.users.iter().map(|u| shell_quote(u)).collect();
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Slurm's side of Atlas tenant `{}`: an account of that name whose association limits\n",
        options.tenant
    ));
    s.push_str("# hold the tenant's quotas, and the users who submit for it. Written by `atlas emit slurm`;\n");
    s.push_str("# run it as a Slurm administrator where sacctmgr reaches slurmdbd. Running it again sets\n");
    s.push_str(
        "# every limit again. Atlas gives the tenant's Slurm runs `--account` of the same name.\n",
    );
    s.push_str("# The quotas, as Slurm limits:\n");
    for line in explained(options) {
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str("# Not carried: the storage quota (Slurm has none for directories; `atlas run` checks it).\n");
    s.push_str("set -eu\n");
    s.push_str(&format!("if ! sacctmgr -n -P show account where name={account}{cluster} format=account | grep -qx {account}; then\n"));
    s.push_str(&format!(
        "  sacctmgr -i add account {account}{cluster} Description={} Organization=atlas\n",
        shell_quote(&format!("Atlas tenant {}", options.tenant))
    ));
    s.push_str("fi\n");
    s.push_str(&format!("sacctmgr -i modify account where name={account}{cluster} set GrpJobs={runs} MaxJobs={runs} GrpTRESMins={tres} >/dev/null\n"));
    s.push_str(&format!("sacctmgr -n -P show assoc where account={account}{cluster} user= format=account,grpjobs,maxjobs,grptresmins\n"));
    if !users.is_empty() {
        s.push_str(&format!("for user in {}; do\n", users.join(" ")));
        s.push_str(&format!("  if ! sacctmgr -n -P show assoc where account={account}{cluster} user=\"$user\" format=user | grep -qx \"$user\"; then\n"));
        s.push_str(&format!(
            "    sacctmgr -i add user \"$user\" account={account}{cluster}\n"
        ));
        s.push_str("  fi\n");
        s.push_str("done\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> AccountOptions {
        AccountOptions {
            tenant: "team-a".into(),
            runs: Some(2),
            core_hours: Some(100.0),
            gpu_hours: None,
            users: vec!["atlas".into(), "ada".into()],
            cluster: None,
        }
    }

    #[test]
    fn quotas_become_association_limits_and_cleared_ones_minus_one() {
        let script = account_script(&options()).unwrap();
        assert!(
            script.contains("set GrpJobs=2 MaxJobs=2 GrpTRESMins=cpu=6000 "),
            "{script}"
        );
        assert!(script.contains("for user in atlas ada; do"), "{script}");
        assert!(script.contains("Not carried: the storage quota"));
        let cleared = AccountOptions {
            runs: None,
            core_hours: None,
            ..options()
        };
        let script = account_script(&cleared).unwrap();
        assert!(
            script.contains("set GrpJobs=-1 MaxJobs=-1 GrpTRESMins=cpu=-1 "),
            "{script}"
        );
        assert!(script.contains("none: every limit is cleared"));
        let gpus = AccountOptions {
            gpu_hours: Some(2.5),
            ..options()
        };
        let script = account_script(&gpus).unwrap();
        assert!(
            script.contains("GrpTRESMins=cpu=6000,gres/gpu=150 "),
            "{script}"
        );
    }

    #[test]
    fn names_that_are_not_slurm_names_are_refused() {
        for (tenant, user) in [("team a", "ada"), ("team-a", "ada;rm"), ("team-a", "$(id)")] {
            let bad = AccountOptions {
                tenant: tenant.into(),
                users: vec![user.into()],
                ..options()
            };
            assert!(account_script(&bad).is_err(), "{tenant} {user}");
        }
        let clustered = AccountOptions {
            cluster: Some("atlas-multi".into()),
            ..options()
        };
        let script = account_script(&clustered).unwrap();
        assert!(
            script.contains("add account team-a cluster=atlas-multi"),
            "{script}"
        );
    }
}
