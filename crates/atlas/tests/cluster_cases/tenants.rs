//! A tenant on the real cluster: its objects (`atlas emit k8s --tenant T`) applied unedited,
//! its member's run going to its namespace, the runner ServiceAccount allowed what the
//! `kubernetes` target does there and nothing elsewhere, members bound to the built-in roles,
//! and the ResourceQuota refusing a Job over the tenant's runs quota.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::project::Project;
use crate::{kubeconfig, Namespace, WORKFLOW};

/// `atlas emit k8s --tenant T`, applied with `kubectl apply -f -`.
fn apply_tenant(p: &Project, ns: &Namespace) {
    let (code, yaml, stderr) = p.atlas(&["emit", "k8s", "--tenant", &ns.name]);
    assert_eq!(code, 0, "{stderr}");
    let mut child = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", ns.kubeconfig.display()))
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl auth can-i VERB RESOURCE -n NS --as WHO`: yes or no.
fn can(ns: &Namespace, who: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let (_, out) = ns.kubectl(&[
        "auth", "can-i", verb, resource, "-n", namespace, "--as", who,
    ]);
    out.trim() == "yes"
}

/// Waits until the quota's status says `field` (`hard` or `used`) of Jobs is `value`.
fn quota_says(ns: &Namespace, field: &str, value: &str) {
    let path = format!("jsonpath={{.status.{field}.count/jobs\\.batch}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, out) = ns.in_ns(&["get", "resourcequota", "atlas-quota", "-o", &path]);
        if out.trim() == value {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "quota {field} is {out:?}, not {value}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn a_tenants_namespace_holds_its_runs_and_its_quota_refuses_a_job_over_it() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "tenant");
    let t = ns.name.clone();
    // A target that names no namespace: a tenant's runs go to the tenant's.
    let toml = format!(
        "[targets.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"{}\"\n\
         registry = \"127.0.0.1:5000/atlas-test\"\ngpus = false\npending_timeout = 300\n",
        kubeconfig.display()
    );
    let p = Project::new("cluster-tenant", &toml);
    std::fs::write(p.dir.join("w.yaml"), WORKFLOW).unwrap();
    for args in [
        vec!["tenant", "add", &t],
        vec!["tenant", "member", "add", &t, "ada", "--role", "member"],
        vec!["tenant", "member", "add", &t, "vic", "--role", "viewer"],
    ] {
        let (code, _, stderr) = p.atlas(&args);
        assert_eq!(code, 0, "{stderr}");
    }
    apply_tenant(&p, &ns);

    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["run", "w.yaml", "--on", "k8s"])
        .current_dir(&p.dir)
        .env("ATLAS_DB", p.dir.join("db/atlas.db"))
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"))
        .env("ATLAS_USER", "ada")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = &p.runs()[0];
    assert_eq!(run["tenant"], t.as_str(), "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    let job = run["schedulerId"].as_str().unwrap();
    assert!(
        job.starts_with(&format!("{t}/")),
        "in the tenant's namespace: {job}"
    );

    // The runner does what the target does, in the tenant's namespace only.
    let runner = format!("system:serviceaccount:{t}:atlas-runner");
    assert!(can(&ns, &runner, "create", "jobs", &t));
    assert!(can(&ns, &runner, "get", "pods/log", &t));
    assert!(!can(&ns, &runner, "create", "jobs", "default"));
    assert!(!can(&ns, &runner, "list", "secrets", &t));
    assert!(!can(&ns, &runner, "create", "rolebindings", &t));
    assert!(!can(&ns, &runner, "delete", "namespaces", &t));
    // Members: a member edits, a viewer reads; neither reaches another namespace.
    assert!(can(&ns, "ada", "create", "jobs", &t));
    assert!(!can(&ns, "ada", "create", "rolebindings", &t));
    assert!(!can(&ns, "ada", "get", "pods", "default"));
    assert!(can(&ns, "vic", "get", "pods", &t));
    assert!(!can(&ns, "vic", "create", "jobs", &t));

    // One run at once: the quota, applied again, refuses a second Job.
    let (code, _, stderr) = p.atlas(&["tenant", "quota", "set", &t, "--runs", "1"]);
    assert_eq!(code, 0, "{stderr}");
    apply_tenant(&p, &ns);
    let (ok, out) = ns.in_ns(&["delete", "jobs", "--all", "--wait=true"]);
    assert!(ok, "{out}");
    quota_says(&ns, "hard", "1");
    quota_says(&ns, "used", "0");
    let create = |name: &str| {
        ns.in_ns(&[
            "create",
            "job",
            name,
            "--image=127.0.0.1:5000/atlas-test/none:0",
            "--",
            "true",
        ])
    };
    let (ok, out) = create("first");
    assert!(ok, "{out}");
    let (ok, out) = create("second");
    assert!(!ok, "the quota let a second Job in: {out}");
    assert!(out.contains("exceeded quota: atlas-quota"), "{out}");
}
