//! A tenant's quotas held by Slurm itself (slurmdbd, `AccountingStorageEnforce=limits` in
//! `scripts/cluster-up`): `atlas emit slurm --tenant T` makes the account with its limits; a
//! job submitted outside Atlas over the runs limit waits (`AssocGrpJobsLimit` or
//! `AssocMaxJobsLimit`); Atlas's run of the tenant is submitted with its account and waits its
//! turn; Atlas's own check refuses with the figure before anything reaches Slurm; and a tenant
//! without a Slurm account is named in the failure.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{project, run_in_project, ssh, ssh_config, Cancel};

/// `sh SCRIPT` as the Slurm administrator (root here, with the cluster's slurm.conf).
fn as_slurm_admin(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("SLURM_CONF", "/var/lib/atlas/cluster/slurm.conf")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the test's Slurm account when dropped.
struct Account(String);

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sacctmgr -i delete user atlas account={0}; sacctmgr -i delete user root account={0}; sacctmgr -i delete account {0}",
                self.0
            ))
            .env("SLURM_CONF", "/var/lib/atlas/cluster/slurm.conf")
            .output();
    }
}

/// The job's state and reason, once `want` holds for it (within 30 s).
fn wait_for(config: &std::path::Path, job: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The remote shell reads the line: the format is quoted for it.
        let line = ssh(config, &["squeue", "-h", "-j", job, "-o", "'%T|%r'"]);
        if want(line.trim()) || Instant::now() > deadline {
            return line.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn slurm_holds_a_tenants_jobs_over_its_account_limit_and_atlas_submits_with_the_account() {
    let Some(config) = ssh_config() else {
        return;
    };
    let tenant = format!("acct-{}", std::process::id());
    let workflow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: acct}\nspec:\n  phases:\n  - {name: one, run: 'echo in-account'}\n";
    let p = project("accounts", &config, workflow);
    let db = p.dir.join("db/atlas.db").display().to_string();
    let atlas = |args: &[&str]| p.atlas_in(&p.dir.join("project"), &db, args);
    let ok = |args: &[&str]| {
        let (code, out, err) = atlas(args);
        assert_eq!(code, 0, "atlas {args:?}: {err}");
        out
    };
    let user = std::env::var("ATLAS_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "local".into());
    ok(&["tenant", "add", &tenant]);
    ok(&["tenant", "member", "add", &tenant, &user]);
    ok(&["tenant", "quota", "set", &tenant, "--runs", "1"]);
    let script = ok(&["emit", "slurm", "--tenant", &tenant, "--user", "atlas"]);
    assert!(script.contains("GrpJobs=1 MaxJobs=1"), "{script}");
    let _account = Account(tenant.clone());
    let shown = as_slurm_admin(&script);
    assert!(
        shown.contains(&format!("{tenant}|1|1|")),
        "the limits: {shown}"
    );
    // Run twice: nothing changes, nothing fails.
    as_slurm_admin(&script);

    // Outside Atlas: the second job of the account waits for the first.
    let submit = |seconds: &str| {
        let wrap = format!("sleep {seconds}");
        let out = ssh(
            &config,
            &[
                "sbatch",
                "--parsable",
                &format!("--account={tenant}"),
                "--wrap",
                &format!("'{wrap}'"),
            ],
        );
        out.trim().split(';').next().unwrap().to_string()
    };
    let first = submit("6");
    let second = submit("1");
    let _cancel = Cancel(&config, vec![first.clone(), second.clone()]);
    assert!(!first.is_empty() && !second.is_empty(), "sbatch answered");
    let running = wait_for(&config, &first, |s| s.starts_with("RUNNING"));
    assert!(running.starts_with("RUNNING"), "{running}");
    let held = wait_for(&config, &second, |s| s.contains("Assoc"));
    assert!(
        held.starts_with("PENDING|AssocGrpJobsLimit")
            || held.starts_with("PENDING|AssocMaxJobsLimit"),
        "the account's limit holds the job: {held}"
    );

    // Atlas's run of the tenant goes to Slurm with the account, waits its turn, and runs.
    let (code, _, err) = run_in_project(&p);
    assert_eq!(code, 0, "{err}");
    let run = &p.runs()[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    let job = run["schedulerId"]
        .as_str()
        .unwrap()
        .trim_start_matches("head:");
    let account = ssh(
        &config,
        &["sacct", "-n", "-X", "-P", "-j", job, "-o", "account"],
    );
    assert_eq!(account.trim(), tenant, "the job's account");

    // Atlas's own check refuses first, with the figure and the limit.
    ok(&["tenant", "quota", "set", &tenant, "--runs", "0"]);
    let (code, _, err) = run_in_project(&p);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("its quota is 0 run(s) at once"), "{err}");

    // A tenant Slurm has no account for: the failure says so.
    let other = format!("noacct-{}", std::process::id());
    ok(&["tenant", "add", &other]);
    ok(&["tenant", "member", "add", &other, &user]);
    let (code, _, err) = atlas(&["run", "w.yaml", "--on", "cluster", "--tenant", &other]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("Invalid account"), "{err}");
}
